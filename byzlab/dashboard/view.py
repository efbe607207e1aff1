"""The dashboard's widgets: sliders, dropdowns, buttons, a plotly ``FigureWidget`` and
status/diagnostics/error lines, on top of a :class:`~byzlab.dashboard.session.LiveSession`
that trains in the background.  ipywidgets and plotly are imported only when a
:class:`Dashboard` is built.

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

The figure is updated incrementally, at most every ``update_interval`` seconds,
with one batched restyle of the traces that received points.
"""
from __future__ import annotations

import html
import threading
from typing import Any

from ..core.config import NO_ATTACK, RunConfig
from ..core.data import DATASET_SPECS
from ..core.registry import AGGREGATORS, ATTACKS
from .labels import RULE_KNOBS, knob_applies, short_label
from .session import CONTROLS, MODES, LiveRun, LiveSession

__all__ = ["Dashboard", "KNOBS", "EMBEDDED"]

#: knobs shown as sliders: name -> (label, kind, min, max, step)
KNOBS = {
    "z": ("z (ROP)", "linear", 0.0, 10.0, 0.1),
    "lam": ("λ (ROP)", "linear", 0.0, 1.0, 0.05),
    "tau": ("τ (CC)", "log", -2.0, 1.0, 0.1),
    "beta": ("β (momentum)", "linear", 0.0, 0.99, 0.01),
}
EMBEDDED = tuple(name for name, spec in DATASET_SPECS.items() if spec.source is None)  # offline


# --------------------------------------------------------------------------- the dashboard
class Dashboard:
    """The widget tree and the figure of a :class:`LiveSession`, which trains in the background.

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
    session
        The :class:`LiveSession` (runs, training thread, error state); ``current``,
        ``previous``, ``baseline``, ``error``, ``exception``, ``traceback``,
        ``latency`` and ``update_interval`` are its attributes.
    """

    #: trace index of each (panel, run) in :attr:`figure`
    TRACES = {
        ("acc", "baseline"): 0, ("acc", "previous"): 1, ("acc", "current"): 2,
        ("loss", "baseline"): 3, ("loss", "previous"): 4, ("loss", "current"): 5,
        ("diag", "cos_ref_benign"): 6, ("diag", "cos_ref_byz"): 7, ("diag", "clip_fraction"): 8,
    }

    def __init__(self, dataset: str | None = None, *, autostart: bool = True, **settings: Any):
        """``settings``: the starting point, as :class:`LiveSession` takes it (RunConfig's defaults and
        the rules' registered ones, except β = :data:`DEFAULT_BETA` and :data:`DEFAULT_EPOCHS` epochs)."""
        # validates the starting point once, up front (one-line ConfigError)
        self.session = LiveSession(dataset, on_update=self._flush, **settings)
        self._draw_lock = threading.Lock()
        self._suppress = False
        self._shown: dict[int, tuple] = {}
        self._build_widgets()
        if autostart:
            self.session.restart()

    # ------------------------------------------------------------------ widgets
    def _build_widgets(self) -> None:
        import ipywidgets as W

        v = self.session.values
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

        from ..core.data import DATASETS

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

        for name in CONTROLS:
            c[name].observe(self._on_change, names="value")
        c["run"].on_click(lambda _: self.resume())
        c["stop"].on_click(lambda _: self.stop(wait=False))
        c["restart"].on_click(lambda _: self.restart())

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
        unknown = sorted(set(values) - set(CONTROLS))
        if unknown:
            raise KeyError(f"set: no control {unknown[0]!r}; controls: {', '.join(CONTROLS)}")
        self._suppress = True
        try:
            for name, value in values.items():
                self.controls[name].value = value
        finally:
            self._suppress = False
        self._sync_enabled()
        self.session.set(**self.values())  # the widgets' values, as they took them (e.g. clamped)

    def values(self) -> dict[str, Any]:
        """The current value of every control."""
        return {name: self.controls[name].value for name in CONTROLS}

    @property
    def config(self) -> RunConfig:
        """The RunConfig the controls describe now (ConfigError when they are invalid)."""
        return self.session.build_config(self.values())

    @property
    def running(self) -> bool:
        return self.session.running

    @property
    def runs(self) -> dict[str, list[dict]]:
        """``{"current"|"previous"|"baseline": history rows}`` of the curves shown now."""
        return self.session.runs

    # the session's runs and error state, read through the dashboard
    @property
    def current(self) -> LiveRun | None:
        """The current setting's run."""
        return self.session.current

    @property
    def previous(self) -> LiveRun | None:
        """The previous setting's run."""
        return self.session.previous

    @property
    def baseline(self) -> LiveRun | None:
        """The no-attack baseline's run."""
        return self.session.baseline

    @property
    def error(self) -> str:
        """The one-line error shown (``""`` when none)."""
        return self.session.error

    @property
    def exception(self) -> BaseException | None:
        """The exception behind :attr:`error`."""
        return self.session.exception

    @property
    def traceback(self) -> str:
        """The formatted traceback behind :attr:`error`."""
        return self.session.traceback

    @property
    def latency(self) -> float | None:
        """Seconds from the last change of a control to its run's first new point on screen."""
        return self.session.latency

    @property
    def update_interval(self) -> float:
        """The least number of seconds between two redraws while training."""
        return self.session.update_interval

    @update_interval.setter
    def update_interval(self, seconds: float) -> None:
        self.session.update_interval = float(seconds)

    def resume(self) -> None:
        """Continue the unfinished runs (or start the current setting if nothing is loaded)."""
        self.session.resume()

    def restart(self) -> None:
        """Run the current setting again from round 0."""
        self.session.restart()

    def stop(self, wait: bool = True, timeout: float | None = 30.0) -> None:
        """Stop training (the runs keep their state: :meth:`resume` continues them)."""
        self.session.stop(wait, timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until training finished or stopped; True if the thread is no longer running."""
        return self.session.wait(timeout)

    def close(self) -> None:
        """Stop training and close the widgets."""
        self.stop()
        self.widget.close()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        cur = self.current
        where = f"round {cur.t}/{cur.total} of {cur.label}" if cur else "no run"
        return f"<byzlab.Dashboard {self.session.state}: {where}>"

    # ------------------------------------------------------------------ change requests (UI thread)
    def _on_change(self, change) -> None:
        if self._suppress:
            return
        self._sync_enabled()
        if change["owner"] is self.controls["mode"]:
            self.session.update(mode=change["new"])  # applies to the next change
            return
        self.session.set(**self.values())

    # ------------------------------------------------------------------ display (batched; training thread)
    def _flush(self) -> None:
        """Redraw: the session's ``on_update`` (it throttles the calls to ``update_interval``)."""
        try:
            with self._draw_lock:
                self._draw()
        except Exception as e:  # noqa: BLE001 - e.g. the front end went away; keep the message
            self.session.keep_error(e)
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
                 "idle": "starting…"}[self.session.state]
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
