"""Live JupyterLab dashboard: move ROP's z and λ, CC's τ or the worker momentum β
and watch a short training run react, round by round.

>>> import byzlab
>>> dash = byzlab.dashboard()          # doctest: +SKIP   (displays itself in a notebook)
>>> dash.set(z=3.0)                    # doctest: +SKIP   (as if the slider had moved)

What is shown
-------------
* test accuracy and benign train loss of three runs: the **current** setting, the
  **previous** setting and the **no-attack baseline** (no Byzantine clients,
  same data, aggregator, β and seed; computed once per such setting and cached in
  memory for the whole Python session);
* the Table III diagnostics of the current run — the mean cosine of the benign
  and of the Byzantine momenta to CC's reference m̃_{t−1} — and CC's clip
  fraction (share of clients with ‖m_i − m̃_{t−1}‖ > τ), as curves and as numbers;
* a progress bar "round t / T, acc x%", a stop and a run button, and the one-line
  error of anything that went wrong in training.

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

Training runs in one background (daemon) thread; the figure (a plotly
``FigureWidget``) is updated incrementally, at most every ``update_interval``
seconds, with one batched restyle of the traces that received points.
"""
from __future__ import annotations

import html
import sys
import threading
import time
import traceback
import types
from dataclasses import dataclass, field, fields
from typing import Any

from ..config import NO_ATTACK, RunConfig
from ..data import DATASET_SPECS, cached_dataset, clear_dataset_cache
from ..errors import ConfigError, one_line
from ..registry import AGGREGATORS, ATTACKS
from .labels import RULE_KNOBS, knob_applies, parse_params, short_label

__all__ = ["Dashboard", "dashboard", "clear_caches", "parse_params", "short_label"]

#: knobs shown as sliders: name -> (label, kind, min, max, step)
KNOBS = {
    "z": ("z (ROP)", "linear", 0.0, 10.0, 0.1),
    "lam": ("λ (ROP)", "linear", 0.0, 1.0, 0.05),
    "tau": ("τ (CC)", "log", -2.0, 1.0, 0.1),
    "beta": ("β (momentum)", "linear", 0.0, 0.99, 0.01),
}
EMBEDDED = tuple(name for name, spec in DATASET_SPECS.items() if spec.source is None)  # offline
MODES = ("fork", "restart")

_CONFIG_FIELDS = {f.name for f in fields(RunConfig)}

# --------------------------------------------------------------------------- caches (per process)
#: no-attack baselines: RunConfig.key() of the baseline config -> its history rows
_BASELINES: dict[str, list[dict]] = {}


def clear_caches() -> None:
    """Forget the cached data sets and no-attack baselines."""
    clear_dataset_cache()
    _BASELINES.clear()


# --------------------------------------------------------------------------- runs
@dataclass(eq=False)
class _Run:
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


# --------------------------------------------------------------------------- the dashboard
class Dashboard:
    """The widget tree, the figure and the background training thread.

    Attributes
    ----------
    widget
        The ipywidgets container to display (the object displays itself too).
    figure
        The plotly ``FigureWidget`` (3 rows: accuracy, loss, diagnostics).
    controls
        ``name -> widget``: ``z``, ``lam``, ``tau``, ``beta`` (sliders), ``attack``,
        ``aggregator``, ``dataset``, ``partition`` (dropdowns), ``epochs``,
        ``mode``, ``params`` (extra rule parameters, ``name=value, ...``) and the
        ``run``, ``stop`` and ``restart`` buttons.
    progress, status, diagnostics, error_box
        The progress bar, its label, the live Table III/CC numbers and the error line.
    """

    #: trace index of each (panel, run) in :attr:`figure`
    TRACES = {
        ("acc", "baseline"): 0, ("acc", "previous"): 1, ("acc", "current"): 2,
        ("loss", "baseline"): 3, ("loss", "previous"): 4, ("loss", "current"): 5,
        ("diag", "cos_ref_benign"): 6, ("diag", "cos_ref_byz"): 7, ("diag", "clip_fraction"): 8,
    }

    def __init__(self, dataset: str = "mnist5k", *, attack: str = "rop", aggregator: str = "cc",
                 partition: str = "iid", epochs: int = 30, beta: float = 0.0, z: float = 1.0,
                 lam: float = 0.9, tau: float = 1.0, eval_every: int | None = 1, seed: int = 0,
                 mode: str = "fork", params: str = "", update_interval: float = 0.25,
                 autostart: bool = True, **config: Any):
        if mode not in MODES:
            raise ConfigError(f"mode: must be one of {', '.join(MODES)}; got {mode!r}")
        extra = {k: config.pop(k) for k in list(config) if k not in _CONFIG_FIELDS}
        for key in ("aggregator_params", "attack_params"):
            extra.update(config.pop(key, None) or {})
        if extra:
            params = ", ".join(filter(None, [params, *(f"{k}={v!r}" for k, v in extra.items())]))
        self._base = {**config, "eval_every": eval_every, "seed": seed}
        self.update_interval = float(update_interval)
        # validate the starting point once, up front (one-line ConfigError)
        self._initial = dict(dataset=dataset, attack=attack, aggregator=aggregator, partition=partition,
                             epochs=epochs, beta=beta, z=z, lam=lam, tau=tau, mode=mode, params=params)
        self._build_config(self._initial)

        self._lock = threading.Lock()
        self._draw_lock = threading.Lock()
        self._pending: _Request | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._suppress = False
        self.current: _Run | None = None
        self.previous: _Run | None = None
        self.baseline: _Run | None = None
        self.error = ""
        self.exception: BaseException | None = None
        self.traceback = ""
        self._state = "idle"
        self._changed_at: float | None = None
        #: seconds from the last change of a control to its run's first new point on screen
        self.latency: float | None = None
        self._last_flush = 0.0
        self._shown: dict[int, tuple] = {}
        self._build_widgets()
        if autostart:
            self._post(restart=True)

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        import ipywidgets as W

        v = self._initial
        style = {"description_width": "96px"}
        lay = W.Layout(width="270px")

        def slider(name: str):
            label, kind, lo, hi, step = KNOBS[name]
            if kind == "log":
                w = W.FloatLogSlider(value=v[name], base=10, min=lo, max=hi, step=step, readout_format=".3g")
            else:
                w = W.FloatSlider(value=v[name], min=lo, max=hi, step=step, readout_format=".2f")
            w.description, w.style, w.layout, w.continuous_update = label, style, lay, False
            return w

        from ..data import DATASETS

        datasets = [d for d in EMBEDDED if d in DATASETS] + sorted(d for d in DATASETS if d not in EMBEDDED)
        c: dict[str, Any] = {name: slider(name) for name in KNOBS}
        c["attack"] = W.Dropdown(options=[NO_ATTACK, *sorted(ATTACKS)], value=v["attack"], description="attack",
                                 style=style, layout=lay)
        c["aggregator"] = W.Dropdown(options=sorted(AGGREGATORS), value=v["aggregator"], description="aggregator",
                                     style=style, layout=lay)
        c["dataset"] = W.Dropdown(options=datasets, value=v["dataset"], description="dataset", style=style,
                                  layout=lay)
        c["partition"] = W.Dropdown(options=["iid", "dirichlet"], value=v["partition"], description="partition",
                                    style=style, layout=lay)
        c["epochs"] = W.BoundedIntText(value=v["epochs"], min=1, max=10_000, description="epochs", style=style,
                                       layout=lay)
        c["mode"] = W.ToggleButtons(options=list(MODES), value=v["mode"], description="on change",
                                    tooltips=["continue from the current round (Simulation.fork)",
                                              "start again from round 0"],
                                    style={"description_width": "96px", "button_width": "70px"})
        c["params"] = W.Text(value=v["params"], description="params", placeholder="name=value, ... (e.g. iters=2)",
                             continuous_update=False, style=style, layout=W.Layout(width="270px"))
        c["run"] = W.Button(description="run", icon="play", tooltip="resume, or start the current setting",
                            layout=W.Layout(width="80px"))
        c["stop"] = W.Button(description="stop", icon="stop", button_style="warning", tooltip="stop training",
                             layout=W.Layout(width="80px"))
        c["restart"] = W.Button(description="restart", icon="refresh", tooltip="run the current setting from round 0",
                                layout=W.Layout(width="90px"))
        self.controls = c

        for name in (*KNOBS, "attack", "aggregator", "dataset", "partition", "epochs", "mode", "params"):
            c[name].observe(self._on_change, names="value")
        c["run"].on_click(lambda _: self.resume())
        c["stop"].on_click(lambda _: self.stop(wait=False))
        c["restart"].on_click(lambda _: self._post(restart=True))

        self.progress = W.IntProgress(value=0, min=0, max=1, description="", layout=W.Layout(width="300px"))
        self.status = W.HTML(value="starting …")
        self.status.add_class("byzlab-status")
        self.diagnostics = W.HTML(value="")
        self.diagnostics.add_class("byzlab-diagnostics")
        self.error_box = W.HTML(value="")
        self.error_box.add_class("byzlab-error")
        self.figure = self._build_figure()
        self._sync_enabled()

        title = W.HTML("<b>byzlab</b> — ROP vs Centered Clipping, live "
                       "<span style='color:#888'>(sliders apply on release)</span>")
        col = W.Layout(margin="0 12px 0 0")
        controls = W.HBox([
            W.VBox([c["attack"], c["aggregator"], c["dataset"], c["partition"]], layout=col),
            W.VBox([c["z"], c["lam"], c["tau"], c["beta"]], layout=col),
            W.VBox([c["epochs"], c["params"], c["mode"], W.HBox([c["run"], c["stop"], c["restart"]])]),
        ])
        self.widget = W.VBox([title, controls, W.HBox([self.progress, self.status]), self.diagnostics,
                              self.error_box, self.figure])
        self.widget.add_class("byzlab-dashboard")

    def _build_figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07, row_heights=[0.45, 0.28, 0.27],
                            subplot_titles=("test accuracy (%)", "benign train loss",
                                            "Table III: cos(m̃ₜ₋₁, mᵢ) · CC clip fraction"))
        colors = {"baseline": "#7f7f7f", "previous": "#9ecae1", "current": "#d62728"}
        names = {"baseline": "no attack", "previous": "previous", "current": "current"}
        for panel, row in (("acc", 1), ("loss", 2)):
            for run in ("baseline", "previous", "current"):
                fig.add_trace(go.Scatter(
                    x=[], y=[], mode="lines", name=names[run], legendgroup=run, showlegend=panel == "acc",
                    meta=f"{panel}-{run}", line=dict(color=colors[run], width=2.5 if run == "current" else 1.8,
                                                    dash="dash" if run == "baseline" else "solid")),
                    row=row, col=1)
        for key, color, dash, name in (("cos_ref_benign", "#2ca02c", "solid", "cos benign"),
                                       ("cos_ref_byz", "#d62728", "solid", "cos Byzantine"),
                                       ("clip_fraction", "#9467bd", "dot", "CC clip fraction")):
            fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name=name, meta=f"diag-{key}", legendgroup="diag",
                                     line=dict(color=color, dash=dash, width=1.6)), row=3, col=1)
        fig.update_layout(height=660, width=840, margin=dict(l=55, r=20, t=40, b=40), uirevision="byzlab",
                          template="plotly_white", legend=dict(orientation="h", y=-0.08, x=0),
                          font=dict(size=11))
        fig.update_xaxes(title_text="round", row=3, col=1)
        fig.update_yaxes(range=[-1.05, 1.05], row=3, col=1)
        return go.FigureWidget(fig)

    def _sync_enabled(self) -> None:
        c = self.controls
        att = ATTACKS.get(c["attack"].value)
        agg = AGGREGATORS.get(c["aggregator"].value)
        for name in RULE_KNOBS:
            c[name].disabled = not (knob_applies(att, name) or knob_applies(agg, name))

    # ------------------------------------------------------------------ public API
    def set(self, **values: Any) -> None:
        """Set controls as if the user had moved them (one change request for all of them).

        ``dash.set(z=3.0)``, ``dash.set(attack="alie", beta=0.9)``, ``dash.set(params="iters=2")``.
        """
        unknown = sorted(set(values) - set(self._value_names()))
        if unknown:
            raise KeyError(f"set: no control {unknown[0]!r}; controls: {', '.join(self._value_names())}")
        self._suppress = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._suppress = False
        self._sync_enabled()
        self._post()

    def values(self) -> dict[str, Any]:
        """The current value of every control."""
        return {name: self.controls[name].value for name in self._value_names()}

    @property
    def config(self) -> RunConfig:
        """The RunConfig the controls describe now (ConfigError when they are invalid)."""
        return self._build_config(self.values())

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

    def close(self) -> None:
        """Stop training and close the widgets."""
        self.stop()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        cur = self.current
        where = f"round {cur.t}/{cur.total} of {cur.label}" if cur else "no run"
        return f"<byzlab.Dashboard {self._state}: {where}>"

    # ------------------------------------------------------------------ change requests (UI thread)
    def _value_names(self) -> tuple[str, ...]:
        return (*KNOBS, "attack", "aggregator", "dataset", "partition", "epochs", "mode", "params")

    def _on_change(self, change) -> None:
        if self._suppress:
            return
        self._sync_enabled()
        if change["owner"] is self.controls["mode"]:
            return  # applies to the next change
        self._post()

    def _post(self, restart: bool = False) -> None:
        """Hand the controls' values to the training thread (starting it when needed)."""
        req = _Request(self.values(), restart, time.monotonic())
        with self._lock:
            if self._pending is not None and self._pending.restart:
                req.restart = True
            self._pending = req
            self._stop.clear()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._worker, name="byzlab-dashboard", daemon=True)
                self._thread.start()

    # ------------------------------------------------------------------ configs
    def _build_config(self, v: dict) -> RunConfig:
        att = ATTACKS.get(v["attack"]) if v["attack"] != NO_ATTACK else None
        agg = AGGREGATORS.get(v["aggregator"])
        rule_kw = {name: float(v[name]) for name in RULE_KNOBS if knob_applies(att, name) or knob_applies(agg, name)}
        rule_kw.update(parse_params(v["params"]))
        fields_kw = {k: rule_kw.pop(k) for k in list(rule_kw) if k in _CONFIG_FIELDS}
        base = {**self._base, **fields_kw, "dataset": v["dataset"], "partition": v["partition"],
                "attack": v["attack"], "aggregator": v["aggregator"], "beta": float(v["beta"]),
                "epochs": int(v["epochs"])}
        return RunConfig.make(base, **rule_kw)

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

    def _active_runs(self) -> list[_Run]:
        out: list[_Run] = []
        for run in (self.current, self.baseline, self.previous):
            if run is not None and run.active and run not in out:
                out.append(run)
        return out

    def _advance(self, run: _Run) -> None:
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

    def _new_run(self, cfg: RunConfig) -> _Run:
        from ..simulator import Simulation

        sim = Simulation(cfg, dataset=cached_dataset(cfg.dataset, cfg.data_root, cfg.download))
        return _Run(cfg, sim, [], sim.total_rounds)

    def _baseline_for(self, cfg: RunConfig) -> _Run:
        """The no-attack run of ``cfg``: on screen (still training or complete), cached, or a new one."""
        key = cfg.key()
        for run in (self.baseline, self.current, self.previous):
            if (run is not None and run.config.attack == NO_ATTACK and run.config.key() == key
                    and (run.sim is not None or (run.rows and run.t >= run.total))):
                return run
        if key in _BASELINES:
            rows = _BASELINES[key]
            return _Run(cfg, None, list(rows), int(rows[-1]["round"]) if rows else 0)
        return self._new_run(cfg)

    def _apply(self, req: _Request) -> None:
        """Turn the controls' values into runs: fork or restart the current one, find the baseline."""
        self.error, self.exception, self.traceback = "", None, ""
        cfg = self._build_config(req.values)
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
                new = _Run(cfg, child, [dict(r) for r in child.history[-1:]], child.total_rounds, child.t)
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

    # ------------------------------------------------------------------ display (batched)
    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < self.update_interval:
            return
        self._last_flush = now
        try:
            with self._draw_lock:
                self._draw()
        except Exception as e:  # noqa: BLE001 - e.g. the front end went away; keep the message
            if not self.error:
                self.error = one_line(e)
            self.error_box.value = self._error_html()

    def _draw(self) -> None:
        def col(rows, key):
            return tuple(None if (r[key] is None or r[key] != r[key]) else r[key] for r in rows)

        updates: list[tuple[int, tuple, tuple, str]] = []
        slots = {"baseline": self.baseline, "previous": self.previous, "current": self.current}
        prefix = {"baseline": "no attack", "previous": "previous", "current": "current"}
        for name, run in slots.items():
            rows = list(run.rows) if run is not None else []
            label = f"{prefix[name]}: {short_label(run.config)}" if run is not None else prefix[name]
            if name == "baseline" and run is not None:
                label = f"no attack: {short_label(run.config).removeprefix('no attack, ')}"
            x = tuple(int(r["round"]) for r in rows)
            for panel, key in (("acc", "test_accuracy"), ("loss", "train_loss")):
                updates.append((self.TRACES[(panel, name)], x, col(rows, key), label))
        cur_rows = list(self.current.rows) if self.current is not None else []
        x = tuple(int(r["round"]) for r in cur_rows)
        for key in ("cos_ref_benign", "cos_ref_byz", "clip_fraction"):
            idx = self.TRACES[("diag", key)]
            updates.append((idx, x, col(cur_rows, key), self.figure.data[idx].name))

        changed = [(i, x, y, label) for i, x, y, label in updates if self._shown.get(i) != (len(x), x[-1:], label,
                                                                                               y[-1:])]
        if changed:
            with self.figure.batch_update():
                for i, x, y, label in changed:
                    tr = self.figure.data[i]
                    tr.x, tr.y = x, y
                    if tr.name != label:
                        tr.name = label
                    self._shown[i] = (len(x), x[-1:], label, y[-1:])
        self._draw_status()

    def _draw_status(self) -> None:
        cur, base = self.current, self.baseline
        if cur is not None:
            self.progress.max = max(1, cur.total)
            self.progress.value = min(cur.t, self.progress.max)
        parts = []
        if cur is not None:
            last = cur.rows[-1] if cur.rows else None
            acc = f", acc {last['test_accuracy']:.1f}%" if last else ""
            parts.append(f"round {cur.t} / {cur.total}{acc}")
            if base is not None and base is not cur and base.rows:
                b = base.rows[-1]
                parts.append(f"no attack {b['test_accuracy']:.1f}% (round {int(b['round'])})")
            if cur.forked_at:
                parts.append(f"forked at round {cur.forked_at}")
        state = {"running": "training…", "done": "done", "stopped": "stopped", "error": "error",
                 "idle": "starting…"}[self._state]
        parts.append(f"<i>{state}</i>")
        self.status.value = " · ".join(parts)
        self.diagnostics.value = self._diag_html()
        self.error_box.value = self._error_html()

    def _diag_html(self) -> str:
        cur = self.current
        last = cur.rows[-1] if cur is not None and cur.rows else None
        if last is None:
            return ""

        def num(key):
            v = last.get(key)
            return "–" if v is None or v != v else f"{v:.3f}"

        return ("<span style='font-family:monospace'>Table III · "
                f"cos(m̃<sub>t−1</sub>, benign) <b>{num('cos_ref_benign')}</b> · "
                f"cos(m̃<sub>t−1</sub>, Byzantine) <b>{num('cos_ref_byz')}</b> · "
                f"CC clip fraction <b>{num('clip_fraction')}</b> · "
                f"loss {num('train_loss')}</span>")

    def _error_html(self) -> str:
        if not self.error:
            return ""
        return f"<span style='color:#b00020'><b>error:</b> {html.escape(self.error)}</span>"


def dashboard(dataset: str = "mnist5k", **kwargs: Any) -> Dashboard:
    """Build (and, unless ``autostart=False``, start) the live dashboard; display it as a notebook cell's result.

    Defaults are chosen to show the attack within a minute on a 2-core CPU: the
    embedded ``mnist5k`` (or ``digits``, much faster), 30 epochs, evaluation every
    round, ROP (z = 1, λ = 0.9) against CC (τ = 1) at β = 0 — raise β to see
    worker momentum's protection.  Any other keyword is a :class:`RunConfig`
    field (``k``, ``k_m``, ``b``, ``lr``, ``max_rounds``, ...) or a rule
    parameter (put into the ``params`` box).
    """
    return Dashboard(dataset, **kwargs)


# ``byzlab.dashboard`` is both this module and the lazy function of the package:
# importing the module rebinds the package attribute to it, so the module itself
# is callable and ``byzlab.dashboard(...)`` works either way.
class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Dashboard:
        return dashboard(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
