"""The live dashboard without a browser: widgets, figure, training thread, errors (embedded digits data)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ipywidgets")
pytest.importorskip("anywidget")  # plotly's FigureWidget needs it

import ipywidgets  # noqa: E402
import plotly.graph_objects as go  # noqa: E402

import byzlab  # noqa: E402
import byzlab.core.simulator  # noqa: E402
from byzlab.dashboard import Dashboard, parse_params, short_label  # noqa: E402
from byzlab.core.registry import AGGREGATORS, ATTACKS, ConfigError  # noqa: E402
from live_helpers import built, poll  # noqa: F401  (built: a fixture)

ROOT = Path(__file__).resolve().parents[1]
QUICK = dict(dataset="digits", epochs=6)  # digits with k=25, b=32: one round per epoch


@pytest.fixture
def make():
    """Build dashboards (started at once, like in a notebook); stop their threads afterwards."""
    made: list[Dashboard] = []

    def _make(**kw) -> Dashboard:
        d = byzlab.dashboard(**{**QUICK, **kw})
        made.append(d)
        return d

    yield _make
    for d in made:
        d.close()
    assert not any(d.running for d in made)


def trace(d: Dashboard, panel: str, run: str):
    return d.figure.data[Dashboard.TRACES[(panel, run)]]


def finite(values) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


# --------------------------------------------------------------------------- streaming
def test_first_run_streams_into_the_figure(make):
    d = make()
    traces_before = list(d.figure.data)
    assert d.wait(120)
    assert d.error == "" and d.error_box.value == ""

    acc, base = trace(d, "acc", "current"), trace(d, "acc", "baseline")
    assert acc.x == tuple(range(1, 7))  # evaluated every round
    assert base.x == tuple(range(1, 7))  # the no-attack baseline beside it
    for tr in (acc, base):
        assert all(0.0 <= y <= 100.0 for y in tr.y)
    assert len(finite(trace(d, "loss", "current").y)) == 6
    assert list(acc.y) == [r["test_accuracy"] for r in d.runs["current"]]
    assert acc.name == "current: rop(z=1,lam=0.9) vs cc(tau=1) β=0"
    assert base.name == "no attack: cc(tau=1) β=0"
    assert trace(d, "acc", "previous").x == ()

    # Table III cosines and CC's clip fraction (no reference at round 1)
    cos_b, cos_m = trace(d, "diag", "cos_ref_benign"), trace(d, "diag", "cos_ref_byz")
    clip = trace(d, "diag", "clip_fraction")
    assert len(finite(cos_b.y)) == 5 and all(-1 <= v <= 1 for v in finite(cos_b.y + cos_m.y))
    assert all(0 <= v <= 1 for v in finite(clip.y))
    assert "Table III" in d.diagnostics.value and "clip fraction" in d.diagnostics.value

    assert d.progress.max == d.progress.value == 6
    assert "round 6 / 6, acc" in d.status.value and "done" in d.status.value
    # updated in place: the same 9 trace objects, no redraw of a new figure
    assert list(d.figure.data) == traces_before and len(d.figure.data) == 9
    assert isinstance(d.figure, go.FigureWidget) and isinstance(d.widget, ipywidgets.VBox)
    assert d.figure in d.widget.children and d.error_box in d.widget.children
    assert {"z", "lam", "tau", "beta", "attack", "aggregator", "dataset", "partition", "stop"} <= set(d.controls)
    assert "application/vnd.jupyter.widget-view+json" in d._repr_mimebundle_()


def test_changing_z_draws_a_new_curve_beside_the_previous_and_reuses_the_baseline(make, built):
    d = make()
    assert d.wait(120)
    first_acc, first_loss = trace(d, "acc", "current").y, trace(d, "loss", "current").y
    baseline = trace(d, "acc", "baseline").y
    n_built = len(built)

    d.set(z=5.0)  # the run had finished: a restart from round 0
    assert d.wait(120) and d.error == ""
    cur, prev = trace(d, "acc", "current"), trace(d, "acc", "previous")
    assert "z=5" in cur.name and "z=1" in prev.name
    assert prev.y == first_acc and cur.x == tuple(range(1, 7))
    assert trace(d, "loss", "current").y != first_loss  # other z, other training
    assert trace(d, "acc", "baseline").y == baseline
    new = built[n_built:]
    assert [c.attack_params["z"] for c in new] == [5.0]  # the baseline came from the cache

    d.set(attack="none")  # the no-attack setting is the cached baseline itself
    assert d.wait(60)
    assert len(built) == n_built + 1
    assert trace(d, "acc", "current").y == baseline and "z=5" in trace(d, "acc", "previous").name


def test_slider_change_forks_the_running_training_and_stop_button_stops_it(make):
    d = make(epochs=400, update_interval=0.05)
    poll(lambda: d.current is not None and len(d.current.rows) >= 3)
    d.controls["stop"].click()
    assert d.wait(30) and not d.running
    assert "stopped" in d.status.value
    t0 = d.current.t
    rows = len(d.current.rows)
    assert t0 < 400
    assert d.wait(0) and len(d.current.rows) == rows  # nothing trains after stop

    d.set(beta=0.5)  # forks from round t0; the β = 0 run trains on beside it
    poll(lambda: d.current.config.beta == 0.5 and len(d.current.rows) >= 4)
    d.stop()
    cur, prev, base = d.current, d.previous, d.baseline
    assert cur.forked_at == t0 and cur.rows[0]["round"] == t0
    assert cur.rows[0] == prev.rows[t0 - 1]  # same state at the fork
    assert prev.rows[-1]["round"] > t0 and prev.config.beta == 0.0
    assert trace(d, "acc", "current").x[0] == t0 and "β=0.5" in trace(d, "acc", "current").name
    assert base.config.beta == 0.5 and base.rows[0]["round"] == 1  # another baseline for another β
    assert "forked at round" in d.status.value

    d.set(mode="restart", z=2.0)  # restart mode: from round 0, the old curve frozen
    poll(lambda: d.current.config.attack_params["z"] == 2.0 and len(d.current.rows) >= 2)
    d.controls["stop"].click()
    assert d.wait(30)
    assert d.current.rows[0]["round"] == 1 and d.current.forked_at == 0
    frozen = len(d.previous.rows)
    d.resume()
    poll(lambda: len(d.current.rows) >= 4)
    d.stop()
    assert len(d.previous.rows) == frozen


# --------------------------------------------------------------------------- errors
def test_a_config_error_in_the_thread_is_shown_and_cleared(make):
    d = make()
    assert d.wait(120)
    d.set(params="tau=-1")
    assert d.wait(30)
    assert d.error == "ConfigError: tau: must be > 0, got -1.0"
    assert "tau: must be &gt; 0" in d.error_box.value and "error" in d.status.value
    d.set(params="")
    assert d.wait(60)
    assert d.error == "" and d.error_box.value == ""


@pytest.fixture
def failing_aggregator():
    @byzlab.register_aggregator("boom_test")
    def boom(x, t):
        if t >= 3:
            raise RuntimeError(f"boom at round {t}")
        return x.mean(0)

    yield "boom_test"
    AGGREGATORS.pop("boom_test", None)


def test_an_exception_during_training_appears_in_the_error_widget(make, failing_aggregator):
    d = make(aggregator=failing_aggregator)
    assert failing_aggregator in d.controls["aggregator"].options  # dropdowns come from the registries
    assert d.wait(60) and not d.running
    assert d.error == "RuntimeError: boom at round 3"
    assert "boom at round 3" in d.error_box.value and "boom" in d.traceback
    d.set(aggregator="cc")  # a failed run is never continued: the new setting restarts
    assert d.wait(120)
    assert d.error == "" and len(d.runs["current"]) == 6


# --------------------------------------------------------------------------- controls
def test_controls_follow_the_registries(make):
    d = make(autostart=False)
    assert d.controls["attack"].options == ("none", *sorted(ATTACKS))
    assert d.controls["aggregator"].options == tuple(sorted(AGGREGATORS))
    assert d.controls["dataset"].options[:2] == ("mnist5k", "digits")
    assert not d.controls["z"].disabled and not d.controls["tau"].disabled
    d.set(attack="alie")  # ALIE's z defaults to z_max (None): the slider does not drive it
    d.stop()
    assert d.controls["z"].disabled and d.controls["lam"].disabled
    assert d.config.attack_params["z"] is None
    d.set(aggregator="cm", attack="ipm", params="eps=0.5")
    d.stop()
    assert d.controls["tau"].disabled and not d.controls["beta"].disabled
    assert d.config.attack_params == {"eps": 0.5} and d.config.aggregator_params == {}
    with pytest.raises(KeyError, match="no control 'nope'"):
        d.set(nope=1)


def test_parse_params_and_labels():
    assert parse_params(" iters=2, first_round=zero; scale=None,") == {"iters": 2, "first_round": "zero",
                                                                      "scale": None}
    with pytest.raises(ConfigError, match="params: cannot read"):
        parse_params("tau")
    cfg = byzlab.RunConfig.make(attack="rop", aggregator="cc", tau=0.1, z=3, beta=0.9, pi=0.5)
    assert short_label(cfg) == "rop(z=3,lam=0.9,pi=0.5) vs cc(tau=0.1) β=0.9"
    with pytest.raises(ConfigError, match="mode"):
        byzlab.dashboard(dataset="digits", mode="sometimes", autostart=False)
    with pytest.raises(ConfigError, match="tau"):
        byzlab.dashboard(dataset="digits", tau=-1.0, autostart=False)


def test_import_byzlab_does_not_import_widgets():
    code = ("import sys, byzlab; assert 'ipywidgets' not in sys.modules and 'plotly' not in sys.modules; "
            "import byzlab.dashboard as m; assert callable(byzlab.dashboard) and callable(m.dashboard)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)


def test_notebook_is_stored_clean_with_a_parameters_cell():
    nb = json.loads((ROOT / "notebooks" / "00_explore.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert nb["cells"][0]["cell_type"] == "markdown"
    assert "parameters" in code[0]["metadata"].get("tags", [])
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    assert any("byzlab.dashboard(" in "".join(c["source"]) for c in code)
