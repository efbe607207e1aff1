"""Driving runs: restore → advance (interrupts honoured at round boundaries) → checkpoint → result.

Every entry point that trains runs to the end drives them through :class:`Driver`:
``byzlab run`` and :func:`run` (one run), the sweep's workers (one run, or several
advanced together by a :class:`~byzlab.core.batched.BatchedSimulation`) and through them
``byzlab bench``.  A driver

1. continues each run from its checkpoint, when there is one (:func:`byzlab.core.checkpoint.restore`);
2. advances the runs; a Ctrl-C or SIGTERM inside :func:`~byzlab.core.interrupts.stop_at_round_boundaries`
   stops them at the end of the round in progress (:class:`~byzlab.core.interrupts.RoundInterrupt`);
3. saves each unfinished run every ``every`` rounds or ``seconds`` of wall time, whichever comes
   first, and always when it is stopped at a round boundary, so nothing computed is lost;
4. hands over each finished run's :class:`~byzlab.core.results.RunResult` and removes its checkpoint
   (or keeps it, for a caller that stores the result elsewhere first).

The live dashboard advances its runs itself (:mod:`byzlab.dashboard.session`): they live in
memory to be forked, in a thread where signals cannot be caught, so there is nothing to restore
or save.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core import checkpoint
from ..core.data import Dataset
from ..core.engines import threads_scope
from ..core.interrupts import RoundInterrupt, one_round, stop_at_round_boundaries
from ..core.results import RunResult
from ..core.simulator import Simulation

__all__ = ["Driver", "run", "default_checkpoint_every"]


def default_checkpoint_every(total_rounds: int) -> int:
    """The sweep's default cadence: a tenth of the run (at least one round)."""
    return max(1, math.ceil(total_rounds / 10))


class Driver:
    """Drives ``runner`` (a :class:`~byzlab.core.simulator.Simulation`, or a
    :class:`~byzlab.core.batched.BatchedSimulation` holding several) from its checkpoints to its results.

    ``paths``: one checkpoint file per run (a single path for a single run), or None to save nothing.
    ``every``/``seconds``: the saving cadence in rounds and in seconds of wall time (None/inf:
    only when stopped at a round boundary and, with ``keep_checkpoint``, at the end).
    ``on_bad``: what to do with a checkpoint that cannot be used (:func:`byzlab.core.checkpoint.restore`).
    """

    def __init__(self, runner: Any, paths: str | os.PathLike | Sequence | None = None, *,
                 every: int | None = None, seconds: float = math.inf, on_bad: str = "error"):
        self.runner = runner
        self.sims: list = list(getattr(runner, "sims", [runner]))
        if paths is None or isinstance(paths, (str, os.PathLike)):
            paths = [paths] * len(self.sims)
        self.paths = [None if p is None else Path(p) for p in paths]
        if len(self.paths) != len(self.sims):
            raise ValueError("paths: one checkpoint path per run")
        self.every, self.seconds = every, seconds
        #: the round each run continued from (0 for a fresh start)
        self.starts = [s.t if p is None else checkpoint.restore(s, p, on_bad) for s, p in zip(self.sims, self.paths)]
        now = time.monotonic()
        self._saved = [(s.t, now) for s in self.sims]
        self._taken = [False] * len(self.sims)  # results handed over (their checkpoints settled)

    @property
    def done(self) -> bool:
        return self.runner.done

    @property
    def t(self) -> int:
        """The least round reached by an unfinished run (the last round once all are done)."""
        return min((s.t for s in self.sims if not s.done), default=max(s.t for s in self.sims))

    # ------------------------------------------------------------------ advancing
    def advance(self, rounds: int | None = None, callback: Callable | None = None) -> None:
        """Advance ``rounds`` rounds (None: to the end), saving on the cadence and when stopped
        at a round boundary (then :class:`~byzlab.core.interrupts.RoundInterrupt` is re-raised).

        ``callback`` is the runner's evaluation callback (``row`` for a simulation,
        ``(run_index, row)`` for a batched one).
        """
        target = None if rounds is None else self.t + rounds
        while not self.done and (target is None or self.t < target):
            try:
                with threads_scope(self.sims[0].config.threads):  # RunConfig.threads, as in the sweep
                    self.runner.advance(self._chunk(target), callback=callback)
                with one_round():  # a signal during a periodic save is honoured after it, at this boundary
                    self._save_due()
            except RoundInterrupt:  # the round is complete: the state of every run is consistent
                self.save()
                raise

    def run(self, callback: Callable | None = None, on_finished: Callable[[int], Any] | None = None) -> None:
        """Advance to the end; ``on_finished(i)`` as soon as run ``i`` is done (a batch's runs end apart)."""
        told = [False] * len(self.sims)
        one_by_one = on_finished is not None and len(self.sims) > 1
        while True:
            for i, s in enumerate(self.sims):
                if s.done and not told[i]:
                    told[i] = True
                    if on_finished is not None:
                        on_finished(i)
            if self.done:
                return
            self.advance(1 if one_by_one else None, callback)

    def _chunk(self, target: int | None) -> int | None:
        """Rounds to hand the runner at once: up to ``target``, and no further than the next save."""
        left = None if target is None else target - self.t
        if not any(self.paths):
            return left
        if math.isfinite(self.seconds):
            return 1  # a wall-time cadence is checked after every round
        if self.every is None:
            return left
        due = min(self.every - (s.t - t0) for s, (t0, _) in zip(self.sims, self._saved) if not s.done)
        return max(1, due if left is None else min(due, left))

    # ------------------------------------------------------------------ saving
    def _save_due(self) -> None:
        now = time.monotonic()
        for i, (s, (t0, at)) in enumerate(zip(self.sims, self._saved)):
            if not s.done and ((self.every is not None and s.t - t0 >= self.every) or now - at >= self.seconds):
                self.save(i)

    def save(self, index: int | None = None) -> None:
        """Checkpoint run ``index`` (default: every run whose result has not been handed over)."""
        for i in range(len(self.sims)) if index is None else (index,):
            if self.paths[i] is not None and not self._taken[i]:
                checkpoint.save(self.sims[i], self.paths[i])
                self._saved[i] = (self.sims[i].t, time.monotonic())

    # ------------------------------------------------------------------ results
    def result(self, index: int = 0, *, keep_checkpoint: bool = False) -> RunResult:
        """Run ``index``'s result.  Its checkpoint is removed, or with ``keep_checkpoint`` saved at the
        last round (for a caller that stores the result elsewhere first, then removes the file)."""
        if keep_checkpoint:
            self.save(index)
        elif self.paths[index] is not None:
            self.paths[index].unlink(missing_ok=True)
        self._taken[index] = True
        return self.sims[index].result()


def run(
    config: Any = None,
    *,
    dataset: Dataset | str | None = None,
    progress: bool = False,
    callback: Callable[[dict], Any] | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    bad_checkpoint: str = "error",
    **overrides: Any,
) -> RunResult:
    """Run Algorithm 1 to the end and return its :class:`~byzlab.core.results.RunResult`.

    ``byzlab.run(attack="rop", aggregator="cc", tau=1.0, beta=0.9, epochs=30)``.
    Keyword overrides are config fields or parameters of the chosen rules;
    ``dataset`` is a data set name (the config field) or an already loaded
    :class:`~byzlab.core.data.Dataset` to train on.
    With ``checkpoint`` (a file path) the state is saved every
    ``checkpoint_every`` rounds and on Ctrl-C or SIGTERM, which stop the run at
    the end of the round in progress (a second Ctrl-C stops at once, saving
    nothing); a later call with the same config resumes from it, bit for bit;
    the file is removed once the run is complete.  A checkpoint that cannot be
    used raises :class:`~byzlab.core.checkpoint.CheckpointError` naming the file, or
    with ``bad_checkpoint="move"`` is moved aside and the run starts afresh.
    """
    sim = Simulation(config, dataset=dataset, **overrides)
    driver = Driver(sim, checkpoint, every=checkpoint_every, on_bad=bad_checkpoint)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sim.total_rounds, initial=sim.t, unit="round",
                   desc=sim.config.progress_label or sim.config.label(), leave=False)

    def on_eval(row: dict) -> None:
        if bar is not None:
            bar.update(sim.t - bar.n)
            bar.set_postfix(acc=f"{row['test_accuracy']:.2f}", loss=f"{row['train_loss']:.3f}")
        if callback is not None:
            callback(row)

    try:
        with stop_at_round_boundaries():
            driver.run(on_eval)
    finally:
        if bar is not None:
            bar.close()
    return driver.result()
