"""The dashboard's training side without widgets: LiveSession's runs, forks, baseline cache and errors."""
from __future__ import annotations

import inspect
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from byzlab.core.config import RunConfig
from byzlab.dashboard.session import CONTROLS, DEFAULT_BETA, LiveSession, clear_caches
from byzlab.core.errors import ConfigError
from live_helpers import built, poll  # noqa: F401  (built: a fixture)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def make():
    """Build sessions (not started); stop their threads afterwards."""
    made: list[LiveSession] = []

    def _make(dataset: str = "digits", **kw) -> LiveSession:
        s = LiveSession(dataset, **kw)
        made.append(s)
        return s

    yield _make
    for s in made:
        s.stop()
    assert not any(s.running for s in made)


def curve(rows) -> list[tuple]:
    return [(int(r["round"]), r["test_accuracy"], r["train_loss"]) for r in rows]


def rounds(rows) -> list[int]:
    return [int(r["round"]) for r in rows]


def test_a_session_trains_without_widgets():
    code = ("import sys; from byzlab.dashboard.session import LiveSession; "
            "s = LiveSession('digits', epochs=2); s.restart(); assert s.wait(120); "
            "assert s.error == '' and s.state == 'done', s.error; "
            "assert [r['round'] for r in s.runs['current']] == [1, 2]; "
            "assert 'ipywidgets' not in sys.modules and 'plotly' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=180)


def test_first_run_streams_rows_to_on_update(make):
    seen: list[tuple[int, int, str]] = []
    s = make(epochs=4, on_update=lambda: seen.append((len(s.current.rows) if s.current else 0,
                                                      threading.current_thread() is threading.main_thread(),
                                                      s.state)))
    assert s.state == "idle" and not s.running and s.current is None and s.runs == {}
    s.restart()
    assert s.wait(120) and not s.running
    assert s.error == "" and s.exception is None and s.state == "done"
    assert rounds(s.runs["current"]) == [1, 2, 3, 4] and rounds(s.runs["baseline"]) == [1, 2, 3, 4]
    assert "previous" not in s.runs
    assert s.baseline.config == s.current.config.replace(attack="none", attack_params={})
    assert s.current.sim is None and s.current.t == s.current.total == 4  # finished runs free their state
    # called from the training thread, never fewer rows than before, the last call sees everything
    assert seen and not any(main for _, main, _ in seen)
    counts = [n for n, _, _ in seen]
    assert counts == sorted(counts) and counts[-1] == 4
    assert s.latency is not None and s.latency >= 0
    assert s.current.label == "rop(z=1,lam=0.9) vs cc(tau=1) β=0"


def test_values_config_and_control_names(make):
    s = make(epochs=3, z=2.0, params="iters=2")
    assert tuple(s.values) == CONTROLS
    assert s.values["z"] == 2.0 and s.config.attack_params["z"] == 2.0
    assert s.config.aggregator_params["iters"] == 2
    s.update(mode="restart", tau=0.5)  # stored, no request: nothing starts
    assert not s.running and s.values["mode"] == "restart" and s.config.aggregator_params["tau"] == 0.5
    values = s.values
    values["z"] = 9.0  # a copy
    assert s.values["z"] == 2.0
    with pytest.raises(KeyError, match="no control 'nope'"):
        s.set(nope=1)
    assert not s.running
    with pytest.raises(ConfigError, match="mode"):
        LiveSession("digits", mode="sometimes")
    with pytest.raises(ConfigError, match="tau"):
        LiveSession("digits", tau=-1.0)


def test_a_change_while_training_forks_and_the_old_setting_trains_on(make):
    s = make(epochs=400, update_interval=0.05)
    s.restart()
    poll(lambda: s.current is not None and len(s.current.rows) >= 3)
    assert s.wait(0.01) is False and s.running  # a timeout, not a hang
    s.stop()
    assert not s.running and s.wait(0) and s.state == "stopped"
    t0, first = s.current.t, s.current
    assert 3 <= t0 < 400 and rounds(first.rows) == list(range(1, t0 + 1))

    s.set(beta=0.5)
    poll(lambda: s.current.config.beta == 0.5 and len(s.current.rows) >= 4)
    s.stop()
    cur, prev, base = s.current, s.previous, s.baseline
    assert prev is first and cur.forked_at == t0
    assert cur.rows[0] == prev.rows[t0 - 1]  # the same state at the fork
    assert rounds(cur.rows) == list(range(t0, t0 + len(cur.rows)))
    assert prev.rows[-1]["round"] > t0 and prev.config.beta == 0.0  # it trained on beside the fork
    assert base.config.beta == 0.5 and base.rows[0]["round"] == 1  # another β, another baseline

    # resume continues the same runs from where they stopped
    n = len(cur.rows)
    s.resume()
    poll(lambda: len(s.current.rows) >= n + 2)
    s.stop()
    assert s.current is cur and rounds(cur.rows) == list(range(t0, t0 + len(cur.rows)))

    s.update(mode="restart")
    s.set(z=2.0)  # restart mode: from round 0, the previous curve frozen
    poll(lambda: s.current.config.attack_params["z"] == 2.0 and len(s.current.rows) >= 2)
    s.stop()
    assert s.current.forked_at == 0 and s.current.rows[0]["round"] == 1
    assert s.previous is cur and cur.sim is None


def test_the_no_attack_baseline_is_computed_once_and_cached(make, built):
    clear_caches()
    a = make(epochs=3, seed=7)
    a.restart()
    assert a.wait(120) and a.error == ""
    assert [c.attack for c in built] == ["rop", "none"]
    baseline_rows = a.runs["baseline"]
    assert rounds(baseline_rows) == [1, 2, 3]

    a.set(z=4.0)  # the run had finished: a restart; the baseline on screen is kept
    assert a.wait(120) and a.error == ""
    assert [c.attack for c in built] == ["rop", "none", "rop"] and built[-1].attack_params["z"] == 4.0
    assert a.runs["baseline"] == baseline_rows and "z=1" in a.previous.label

    b = make(epochs=3, seed=7, z=2.0)  # another session: the baseline comes from the process cache
    b.restart()
    assert b.wait(120) and b.error == ""
    assert [c.attack for c in built] == ["rop", "none", "rop", "rop"]
    assert b.runs["baseline"] == baseline_rows and b.baseline.sim is None

    b.set(attack="none")  # the no-attack setting is the cached baseline itself
    assert b.wait(60) and len(built) == 4
    assert b.runs["current"] == baseline_rows and b.current is b.baseline

    clear_caches()  # forgotten: computed again
    c = make(epochs=3, seed=7)
    c.restart()
    assert c.wait(120)
    assert [x.attack for x in built[4:]] == ["rop", "none"]
    assert curve(c.runs["baseline"]) == curve(baseline_rows)  # the same seed: the same curve


def test_an_invalid_value_is_a_one_line_error_not_an_exception_in_the_thread(make):
    s = make(epochs=2)
    s.restart()
    assert s.wait(120)
    rows = s.runs["current"]
    s.set(params="tau=-1")  # returns: the thread finds the error
    assert s.wait(30) and not s.running
    assert s.error == "ConfigError: tau: must be > 0, got -1.0" and "\n" not in s.error
    assert isinstance(s.exception, ConfigError) and "Traceback" in s.traceback
    assert s.state == "error" and s.runs["current"] == rows  # the runs on screen are kept
    s.set(params="")
    assert s.wait(60)
    assert s.error == "" and s.exception is None and s.traceback == "" and s.state == "done"


def test_a_failing_on_update_never_stops_training(make):
    def fail():
        raise RuntimeError("front end gone\nsecond line")

    s = make(epochs=3, on_update=fail)
    s.restart()
    assert s.wait(120)
    assert s.error == "RuntimeError: front end gone" and s.state == "done"
    assert rounds(s.runs["current"]) == [1, 2, 3]


def test_stop_from_the_training_thread_does_not_deadlock(make):
    s = make(epochs=400, update_interval=0.0)
    s.on_update = lambda: s.stop() if s.current is not None and len(s.current.rows) >= 2 else None
    s.restart()
    assert s.wait(60) and s.state == "stopped"
    assert 2 <= len(s.current.rows) < 400


def test_the_dashboard_starts_at_beta_zero_not_the_paper_s():
    # the dashboard starts at β = 0 (the attacks show within a minute), not at the paper's 0.9
    assert inspect.signature(LiveSession).parameters["beta"].default == DEFAULT_BETA == 0.0
    assert RunConfig().beta == 0.9


def test_the_starting_point_is_run_config_s_and_the_registered_rules_defaults():
    import torch

    from byzlab.core.registry import ATTACKS, register_attack

    d, s = RunConfig(), LiveSession()
    v = s.values
    assert (v["dataset"], v["attack"], v["aggregator"], v["partition"]) == (d.dataset, d.attack, d.aggregator,
                                                                            d.partition)
    assert (v["z"], v["lam"], v["tau"]) == (1.0, 0.9, 1.0)  # ROP's z and λ, CC's τ (Section VI)
    assert s.config.seed == d.seed and v["epochs"] == 30

    @register_attack("_dash_z")
    def _dash_z(benign, z: float = 2.5):
        return torch.zeros_like(benign[0])

    try:
        other = LiveSession("digits", attack="_dash_z")
        assert other.values["z"] == 2.5 and other.config.attack_params == {"z": 2.5}
        assert LiveSession("digits", attack="_dash_z", z=0.5).config.attack_params == {"z": 0.5}
    finally:
        ATTACKS.pop("_dash_z", None)
