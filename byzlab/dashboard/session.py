"""The dashboard's training side, without widgets: the runs on screen (current,
previous, no-attack baseline), the change requests, the background training thread
and its error state, and the per-process cache of no-attack baselines.

How a change is applied (``mode``)
----------------------------------
``fork`` (default): while the current run is still going, a change that keeps the
clients (z, λ, τ, β, another attack with Byzantine clients, another aggregator)
forks it from the current round (:meth:`Simulation.fork`); the old setting keeps
training beside it as the *previous* curve, so both continue from the same
state.  Changes of the data set, partition, epochs or of attack ↔ ``none``, and
any change after the run has finished, restart from round 0.
``restart``: every change starts a fresh run from round 0; the previous curve
stays where it was.

Training runs in one background (daemon) thread; after each evaluation it calls the
session's ``on_update`` (at most every ``update_interval`` seconds, at once after a
change), which is how :class:`byzlab.dashboard.view.Dashboard` redraws.  Nothing here
imports ipywidgets or plotly.

>>> s = LiveSession("digits", epochs=6)             # doctest: +SKIP
>>> s.restart(); s.wait(); s.runs["current"][-1]    # doctest: +SKIP
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field, fields
from typing import Any, Callable

from ..core.config import NO_ATTACK, RunConfig
from ..core.data import cached_dataset, clear_dataset_cache
from ..core.errors import ConfigError, one_line
from ..core.registry import AGGREGATORS, ATTACKS
from .labels import RULE_KNOBS, knob_applies, parse_params, short_label

__all__ = ["LiveSession", "LiveRun", "CONTROLS", "DEFAULT_BETA", "DEFAULT_EPOCHS", "MODES", "clear_caches",
           "knob_default"]

#: The β (worker momentum) a dashboard starts at: 0, not the paper's 0.9 (RunConfig's
#: default).  At β = 0 the attacks' effect shows within a minute of training; the
#: paper's β = 0.9, where worker momentum protects CC, is one slider move away.
DEFAULT_BETA = 0.0
#: Epochs of a dashboard run: 30, not the paper's 100 (RunConfig's default), so a run ends within minutes.
DEFAULT_EPOCHS = 30

MODES = ("fork", "restart")
#: the values a session is set with (a dashboard's controls), in the order of :attr:`LiveSession.values`
CONTROLS = ("z", "lam", "tau", "beta", "attack", "aggregator", "dataset", "partition", "epochs", "mode", "params")

_CONFIG_FIELDS = {f.name for f in fields(RunConfig)}


def knob_default(name: str, attack: str, aggregator: str) -> float:
    """A rule knob's starting value (z, λ, τ): the chosen attack's or aggregator's registered default,
    else that of the first registered rule with a numeric default for it (ROP's z and λ, CC's τ)."""
    chosen = [ATTACKS.get(attack), AGGREGATORS.get(aggregator)]
    for rule in [*chosen, *ATTACKS.values(), *AGGREGATORS.values()]:
        if knob_applies(rule, name):
            return float(rule.params[name])
    raise ConfigError(f"{name}: no registered rule has a numeric default for it")

# --------------------------------------------------------------------------- caches (per process)
#: no-attack baselines: RunConfig.key() of the baseline config -> its history rows
_BASELINES: dict[str, list[dict]] = {}


def clear_caches() -> None:
    """Forget the cached data sets and no-attack baselines."""
    clear_dataset_cache()
    _BASELINES.clear()


# --------------------------------------------------------------------------- runs
@dataclass(eq=False)
class LiveRun:
    """One curve: a config, its simulation while it trains, and the rows it produced."""

    config: RunConfig
    sim: Any = None  # Simulation while unfinished
    rows: list = field(default_factory=list)
    total: int = 0
    forked_at: int = 0

    @property
    def active(self) -> bool:
        return self.sim is not None and not self.sim.done

    @property
    def t(self) -> int:
        if self.sim is not None:
            return self.sim.t
        return int(self.rows[-1]["round"]) if self.rows else 0

    @property
    def label(self) -> str:
        return short_label(self.config)


@dataclass
class _Request:
    values: dict
    restart: bool = False
    at: float = 0.0  # time.monotonic() of the change


# --------------------------------------------------------------------------- the session
class LiveSession:
    """The runs of a live dashboard and the thread that trains them.

    Attributes
    ----------
    current, previous, baseline
        The :class:`LiveRun` of each curve (None until there is one).
    error, exception, traceback
        The one-line error of the last failure in training (``""`` when none), the
        exception and its formatted traceback; cleared by the next change.
    latency
        Seconds from the last change to its run's first new point (handed to ``on_update``).
    update_interval
        The least number of seconds between two ``on_update`` calls while training.
    on_update
        Called (without arguments, in the training thread) when there is something new
        to show; an exception it raises becomes the error line and never stops training.
    """

    def __init__(self, dataset: str | None = None, *, attack: str | None = None, aggregator: str | None = None,
                 partition: str | None = None, epochs: int = DEFAULT_EPOCHS, beta: float = DEFAULT_BETA,
                 z: float | None = None, lam: float | None = None, tau: float | None = None,
                 eval_every: int | None = 1, seed: int | None = None, mode: str = "fork", params: str = "",
                 update_interval: float = 0.25, on_update: Callable[[], Any] | None = None, **config: Any):
        """What is not given starts at :class:`RunConfig`'s default (data set, attack, aggregator,
        partition, seed) or the rules' registered ones (z, λ, τ: :func:`knob_default`), except
        ``beta`` (:data:`DEFAULT_BETA`) and ``epochs`` (:data:`DEFAULT_EPOCHS`)."""
        d = RunConfig()
        dataset, partition, seed = dataset or d.dataset, partition or d.partition, d.seed if seed is None else seed
        attack, aggregator = attack or d.attack, aggregator or d.aggregator
        z, lam, tau = (knob_default(n, attack, aggregator) if v is None else v
                       for n, v in (("z", z), ("lam", lam), ("tau", tau)))
        if mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
        extra = {k: config.pop(k) for k in list(config) if k not in _CONFIG_FIELDS}
        for key in ("aggregator_params", "attack_params"):
            extra.update(config.pop(key, None) or {})
        if extra:
            params = ", ".join(filter(None, [params, *(f"{k}={v!r}" for k, v in extra.items())]))
        self._base = {**config, "eval_every": eval_every, "seed": seed}
        self.update_interval = float(update_interval)
        self.on_update = on_update
        # validate the starting point once, up front (one-line ConfigError)
        self._values = dict(z=z, lam=lam, tau=tau, beta=beta, attack=attack, aggregator=aggregator,
                            dataset=dataset, partition=partition, epochs=epochs, mode=mode, params=params)
        self.build_config(self._values)

        self._lock = threading.Lock()
        self._pending: _Request | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.current: LiveRun | None = None
        self.previous: LiveRun | None = None
        self.baseline: LiveRun | None = None
        self.error = ""
        self.exception: BaseException | None = None
        self.traceback = ""
        self._state = "idle"
        self._changed_at: float | None = None
        #: seconds from the last change of a control to its run's first new point on screen
        self.latency: float | None = None
        self._last_flush = 0.0

    # ------------------------------------------------------------------ public API
    @property
    def values(self) -> dict[str, Any]:
        """The value of every control (a copy), in :data:`CONTROLS` order."""
        return dict(self._values)

    def update(self, **values: Any) -> None:
        """Change values without a change request (they apply with the next one), e.g. ``mode``."""
        unknown = sorted(set(values) - set(CONTROLS))
        if unknown:
            raise KeyError(f"set: no control {unknown[0]!r}; controls: {', '.join(CONTROLS)}")
        self._values.update(values)

    def set(self, **values: Any) -> None:
        """Change values as one change request to the training thread (starting it when needed).

        ``s.set(z=3.0)``, ``s.set(attack="alie", beta=0.9)``, ``s.set(params="iters=2")``.
        """
        self.update(**values)
        self._post()

    def build_config(self, values: dict) -> RunConfig:
        """The RunConfig of a complete set of control ``values`` (ConfigError when they are invalid)."""
        att = ATTACKS.get(values["attack"]) if values["attack"] != NO_ATTACK else None
        agg = AGGREGATORS.get(values["aggregator"])
        rule_kw = {name: float(values[name]) for name in RULE_KNOBS
                   if knob_applies(att, name) or knob_applies(agg, name)}
        rule_kw.update(parse_params(values["params"]))
        fields_kw = {k: rule_kw.pop(k) for k in list(rule_kw) if k in _CONFIG_FIELDS}
        base = {**self._base, **fields_kw, "dataset": values["dataset"], "partition": values["partition"],
                "attack": values["attack"], "aggregator": values["aggregator"], "beta": float(values["beta"]),
                "epochs": int(values["epochs"])}
        return RunConfig.make(base, **rule_kw)

    @property
    def config(self) -> RunConfig:
        """The RunConfig the values describe now (ConfigError when they are invalid)."""
        return self.build_config(self._values)

    @property
    def state(self) -> str:
        """``idle`` (nothing started), ``running``, ``done``, ``stopped`` or ``error``."""
        return self._state

    @property
    def running(self) -> bool:
        t = self._thread
        return t is not None and t.is_alive()

    @property
    def runs(self) -> dict[str, list[dict]]:
        """``{"current"|"previous"|"baseline": history rows}`` of the curves shown now."""
        return {name: list(run.rows) for name, run in
                (("current", self.current), ("previous", self.previous), ("baseline", self.baseline))
                if run is not None}

    def resume(self) -> None:
        """Continue the unfinished runs (or start the current setting if nothing is loaded)."""
        self._post(restart=self.current is None)

    def restart(self) -> None:
        """Run the current setting again from round 0."""
        self._post(restart=True)

    def stop(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Stop training (the runs keep their state: :meth:`resume` continues them)."""
        with self._lock:
            self._pending = None
            self._stop.set()
            thread = self._thread
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until training finished or stopped; True if the thread is no longer running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                thread = self._thread
            if thread is None or not thread.is_alive():
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            thread.join(left if left is None else min(left, 0.5))

    def keep_error(self, exc: BaseException) -> None:
        """Show ``exc`` as the error line unless one is shown already (e.g. the front end went away)."""
        if not self.error:
            self.error = one_line(exc)

    def __repr__(self) -> str:
        cur = self.current
        where = f"round {cur.t}/{cur.total} of {cur.label}" if cur else "no run"
        return f"<byzlab LiveSession {self._state}: {where}>"

    # ------------------------------------------------------------------ change requests
    def _post(self, restart: bool = False) -> None:
        """Hand the values to the training thread (starting it when needed)."""
        req = _Request(self.values, restart, time.monotonic())
        with self._lock:
            if self._pending is not None and self._pending.restart:
                req.restart = True
            self._pending = req
            self._stop.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, name="byzlab-dashboard", daemon=True)
                self._thread.start()

    @staticmethod
    def _baseline_config(cfg: RunConfig) -> RunConfig:
        return cfg.replace(attack=NO_ATTACK, attack_params={})

    # ------------------------------------------------------------------ training thread
    def _worker(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                self._work()
            except BaseException as e:  # noqa: BLE001 - shown in the dashboard, not lost in a log
                self._state = "error"
                self.exception = e
                self.traceback = traceback.format_exc()
                self.error = one_line(e)
            self._flush(force=True)
            with self._lock:
                if self._pending is not None and not self._stop.is_set():
                    continue  # a change arrived while this one finished: apply it
                if self._thread is me:
                    self._thread = None
                return

    def _work(self) -> None:
        turn = 0
        while True:
            with self._lock:
                if self._stop.is_set():
                    self._state = "stopped"
                    return
                req, self._pending = self._pending, None
            if req is not None:
                self._changed_at = req.at
                self._apply(req)
                turn = 0
                self._flush(force=True)
                if self.current is None or not self.current.active:  # e.g. a cached baseline: all shown now
                    self.latency, self._changed_at = time.monotonic() - req.at, None
            runs = self._active_runs()
            if not runs:
                with self._lock:
                    if self._pending is None:
                        self._state = "done"
                        return
                continue
            self._state = "running"
            run = runs[turn % len(runs)]
            turn += 1
            self._advance(run)
            urgent = self._changed_at is not None and run is self.current
            self._flush(force=urgent)
            if urgent:  # the new setting's first point is on screen
                self.latency, self._changed_at = time.monotonic() - self._changed_at, None

    def _flush(self, force: bool = False) -> None:
        """Call ``on_update`` (at most every ``update_interval`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._last_flush < self.update_interval:
            return
        self._last_flush = now
        if self.on_update is None:
            return
        try:
            self.on_update()
        except Exception as e:  # noqa: BLE001 - a failing display never stops training
            self.keep_error(e)

    def _active_runs(self) -> list[LiveRun]:
        out: list[LiveRun] = []
        for run in (self.current, self.baseline, self.previous):
            if run is not None and run.active and run not in out:
                out.append(run)
        return out

    def _advance(self, run: LiveRun) -> None:
        sim = run.sim
        try:
            sim.advance(sim.eval_every, callback=run.rows.append)
        except BaseException:
            run.sim = None  # its state may be half-updated: never continue nor fork it
            raise
        if sim.done:
            run.sim = None  # frees the (k, d) state; the rows stay
            if run.config.attack == NO_ATTACK:
                _BASELINES[run.config.key()] = list(run.rows)

    def _new_run(self, cfg: RunConfig) -> LiveRun:
        from ..core.simulator import Simulation

        sim = Simulation(cfg, dataset=cached_dataset(cfg.dataset, cfg.data_root, cfg.download))
        return LiveRun(cfg, sim, [], sim.total_rounds)

    def _baseline_for(self, cfg: RunConfig) -> LiveRun:
        """The no-attack run of ``cfg``: on screen (still training or complete), cached, or a new one."""
        key = cfg.key()
        for run in (self.baseline, self.current, self.previous):
            if (run is not None and run.config.attack == NO_ATTACK and run.config.key() == key
                    and (run.sim is not None or (run.rows and run.t >= run.total))):
                return run
        if key in _BASELINES:
            rows = _BASELINES[key]
            return LiveRun(cfg, None, list(rows), int(rows[-1]["round"]) if rows else 0)
        return self._new_run(cfg)

    def _apply(self, req: _Request) -> None:
        """Turn the controls' values into runs: fork or restart the current one, find the baseline."""
        self.error, self.exception, self.traceback = "", None, ""
        cfg = self.build_config(req.values)
        old, old_prev, old_base = self.current, self.previous, self.baseline
        if old is not None and not req.restart and old.config == cfg:
            return  # nothing changed: continue what is there
        new = None
        if cfg.attack == NO_ATTACK:
            new = self._baseline_for(cfg)
        elif req.values["mode"] == "fork" and not req.restart and old is not None and old.active:
            changes = {f: getattr(cfg, f) for f in _CONFIG_FIELDS if getattr(cfg, f) != getattr(old.config, f)}
            try:
                child = old.sim.fork(**changes)
            except ConfigError:
                raise
            except ValueError:
                child = None  # the data or the clients change: restart instead
            if child is not None:
                new = LiveRun(cfg, child, [dict(r) for r in child.history[-1:]], child.total_rounds, child.t)
        if new is None:
            new = self._new_run(cfg)
        baseline = new if cfg.attack == NO_ATTACK else self._baseline_for(self._baseline_config(cfg))
        if old is not None and old is not new:
            if not new.forked_at and old is not baseline:
                old.sim = None  # restarted: the previous curve stays where it was
            self.previous = old  # forked: it keeps training beside the new one
        self.current, self.baseline = new, baseline
        # runs that left the screen drop their simulation (memory)
        shown = (self.current, self.previous, self.baseline)
        for run in (old_prev, old_base):
            if run is not None and all(run is not s for s in shown):
                run.sim = None
