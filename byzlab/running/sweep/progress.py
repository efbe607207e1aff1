"""The driver's bookkeeping of a sweep: outcomes, retries, counts, the progress bar and its ETA.

A backend (:mod:`byzlab.running.sweep.backends`) hands every outcome it receives
(:mod:`byzlab.running.sweep.worker`) to :meth:`Tracker.handle`, which

* records an error in the store's ``.errors/`` and returns the run to submit
  again while it has retries left (else counts it as failed);
* stores a result that came back with the outcome (a worker that does not write
  the store, e.g. a Ray task: the driver is then the only writer) and removes
  its final checkpoint;
* counts computed, diverged and cached runs, advances the progress bar, and
  refines the remaining-time estimate with the speed of the runs just finished.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from ...core.config import RunConfig
from .estimate import Estimate, format_duration, speed_group
from .plan import Plan


@dataclass
class Tracker:
    """Driver-side bookkeeping: attempts, retries, counts and the progress bar."""

    plan: Plan
    retries: int
    est: Estimate | None
    parallel: int
    progress: bool
    attempts: Counter = field(default_factory=Counter)
    computed: int = 0
    diverged: int = 0
    cached: int = 0
    failed: dict = field(default_factory=dict)
    actual: float = 0.0
    predicted: float = 0.0
    remaining: set = field(default_factory=set)

    def __post_init__(self):
        self.by_key = {c.key(): c for c in self.plan.todo}
        self.remaining = set(self.by_key)
        self.t0 = time.monotonic()
        self.bar = None
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.plan.total, initial=len(self.plan.done), unit="run",
                            desc=f"sweep {self.plan.profile.name}", dynamic_ncols=True, smoothing=0,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} runs "
                                       "[{elapsed}{postfix}]")
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is None:
            return
        parts = []
        eta = self.eta()
        if eta is not None:
            parts.append(f"eta {format_duration(eta)}")
        if self.diverged:
            parts.append(f"{self.diverged} diverged")
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        self.bar.set_postfix_str(", ".join(parts), refresh=True)

    def eta(self) -> float | None:
        """Remaining wall time: measured estimates of the remaining runs, corrected by how this
        sweep's runs compared with their estimates, over the parallel runs; else the rate so far."""
        if self.est is not None:
            left, unknown = self.est.total(self.remaining)
            if left and not unknown:
                ratio = self.actual / self.predicted if self.predicted > 0 else 1.0
                return left * ratio / max(1, self.parallel)
        finished = self.computed + self.cached
        if finished:
            return (time.monotonic() - self.t0) / finished * len(self.remaining)
        return None

    def handle(self, o: dict) -> RunConfig | None:
        """Book an outcome; returns the config to submit again when it is retried."""
        key = o["key"]
        cfg = self.by_key.get(key)
        if cfg is None or key not in self.remaining:
            return None
        status = o["status"]
        if status == "error":
            self.attempts[key] += 1
            self.plan.store.record_error(cfg, o["error"], attempt=self.attempts[key], tb=o.get("traceback"))
            if self.attempts[key] <= self.retries:
                return cfg
            self.failed[key] = o["error"]
        else:
            if "result" in o:  # from a remote worker: the driver is the only writer
                if not self.plan.store.contains(cfg):
                    self.plan.store.put(o["result"])
                self.plan.store.checkpoint_path(cfg).unlink(missing_ok=True)
            if status == "cached":
                self.cached += 1
            else:
                self.computed += 1
                self.diverged += status == "diverged"
                self._learn(cfg, o)
        self.remaining.discard(key)
        if self.bar is not None:
            self.bar.update(1)
            self._postfix()
        return None

    def _learn(self, cfg: RunConfig, o: dict) -> None:
        """Compare a finished run with its estimate; a group without one takes its measured speed."""
        wall, rounds = o.get("wall_seconds"), o.get("rounds_computed")
        if self.est is None or not wall or not rounds:
            return
        predicted = self.est.seconds.get(cfg.key())
        if predicted:
            self.actual += wall
            self.predicted += predicted * rounds / cfg.schedule().total_rounds
            return
        group, per_round = speed_group(cfg), wall / rounds
        for k in self.remaining:
            if self.est.seconds.get(k) is None and speed_group(self.by_key[k]) == group:
                self.est.seconds[k] = per_round * self.by_key[k].schedule().total_rounds

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
