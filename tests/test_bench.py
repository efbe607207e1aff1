"""``byzlab bench``: defence/attack specs and their errors, the leaderboard computed by hand, the
shipped bench profiles, and an end-to-end bench (with a plug-in defence) SIGKILLed mid-way and
resumed, ending with the leaderboard of an uninterrupted run.

Runs are deterministic on CPU for a given config and seed, so the resumed bench must give
exactly the numbers of the uninterrupted one (wall-clock times aside).
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from byzlab import RunConfig
from byzlab.bench import (attack_label, bench_profile, defence_label, label, leaderboard, leaderboard_markdown,
                          notebook_profile, parse_attack, parse_defence)
from byzlab.cli import main
from byzlab.running.experiments import PROFILE_DIR
from byzlab.core.registry import AGGREGATORS, ATTACKS, ConfigError
from byzlab.running.sweep import run_sweep

TINY = """\
name: tiny_bench
seeds: [0, 1]
base: {dataset: digits, partition: iid, k: 10, k_m: 2, agg_f: 2, b: 16, epochs: 3, lr: 0.1}
experiments:
  bench:
    grid:
      defence: [{aggregator: mean}]
      attack: [alie]
      beta: [0.5]
"""

RULES = '''\
"""A plug-in defence: the mean of the client vectors clipped to a maximum norm."""
import byzlab


@byzlab.register_aggregator("bench_norm_clip")
def bench_norm_clip(x, max_norm=1.0):
    scale = (max_norm / x.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
    return (x * scale[:, None]).mean(0)
'''

#: the tiny bench of the end-to-end tests: 2 defences x (2 attacks + none) x 1 beta x 2 seeds = 12 runs
ARGS = ["--defence", "tm", "--defence", "rules.py:bench_norm_clip:max_norm=2", "--attack", "alie",
        "--attack", "ipm", "--beta", "0.9", "--seeds", "0,1", "--no-figures", "-q"]
#: wall-clock columns, the only ones allowed to differ between two computations
WALL = ["seconds_per_round"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    (root / "tiny.yaml").write_text(TINY)
    (root / "rules.py").write_text(RULES)
    return root


# --------------------------------------------------------------------------- specs
@pytest.mark.parametrize("spec, label_, entry", [
    ("cc", "cc", {"aggregator": "cc", "aggregator_params": {}}),
    ("cc:tau=1", "cc", {"aggregator": "cc", "aggregator_params": {"tau": 1.0}}),
    (" cc:tau=0.1 ", "cc:tau=0.1", {"aggregator": "cc", "aggregator_params": {"tau": 0.1}}),
    ("nnm+cm", "nnm+cm", {"aggregator": "cm", "aggregator_params": {}, "pre_aggregators": ["nnm"],
                          "pre_aggregator_params": {}}),
    ("bucketing+cc:bucketing.s=3,tau=0.1", "bucketing+cc:bucketing.s=3,tau=0.1",
     {"aggregator": "cc", "aggregator_params": {"tau": 0.1}, "pre_aggregators": ["bucketing"],
      "pre_aggregator_params": {"bucketing": {"s": 3}}}),
])
def test_defence_specs_and_their_labels(spec, label_, entry):
    d = parse_defence(spec)
    assert d.label == label_ and d.entry() == entry
    cfg = RunConfig.make(dataset="digits", attack="alie", **entry)
    assert defence_label(cfg) == label_  # the label of a run is the shortest spec giving it
    again = RunConfig.make(dataset="digits", attack="alie", **parse_defence(label_).entry())
    assert again.key() == cfg.key()  # and it gives the same run


def test_attack_specs():
    assert parse_attack("alie").entry() == "alie"
    rop = parse_attack("rop:z=10,lam=0.5")
    assert rop.entry() == {"attack": "rop", "attack_params": {"z": 10.0, "lam": 0.5}}
    assert rop.label == "rop:z=10,lam=0.5"
    assert attack_label(RunConfig.make(attack="rop", z=10.0, lam=0.5)) == "rop:z=10,lam=0.5"
    assert attack_label(RunConfig.make(attack="none")) == "none"


@pytest.mark.parametrize("spec, message", [
    ("foo", "defence 'foo': aggregator: unknown 'foo'; choose one of: "),
    ("cc:tua=1", "defence 'cc:tua=1': aggregator 'cc': unknown parameter 'tua'; valid: iters, tau"),
    ("cc:tau=-1", "defence 'cc:tau=-1': tau: must be > 0"),
    ("nnm", "'nnm' is a pre-aggregator: end with an aggregator, e.g. nnm+cm"),
    ("nnm++cm", "empty rule name; expected [FILE.py:][PRE+]...NAME[:PARAM=VALUE,...]"),
    ("foo+cm", "pre_aggregator: unknown 'foo'"),
    ("cc:tau", "expected PARAM=VALUE, got 'tau'"),
    ("cc:bucketing.s=2", "'bucketing' is not a pre-aggregator of this defence"),
    ("bucketing+cc:bucketing.s=0", "s: must be an integer >= 1"),
    ("no_such_file.py:x", "plugin: file not found: no_such_file.py"),
])
def test_bad_defence_specs_are_one_line_errors(spec, message, work, capsys):
    with pytest.raises(ConfigError) as e:
        parse_defence(spec)
    assert message in str(e.value) and "\n" not in str(e.value)
    # on the command line: that line, exit status 2, no traceback, nothing run
    assert main(["bench", "--profile", str(work / "tiny.yaml"), "--out", str(work / "bad"),
                 "--defence", spec]) == 2
    err = capsys.readouterr().err
    assert err == f"byzlab: error: {e.value}\n"
    assert not (work / "bad").exists()


def test_bad_attacks_betas_and_profiles(work, capsys):
    with pytest.raises(ConfigError, match="attack 'nnm\\+alie': an attack takes no pre-aggregators"):
        parse_attack("nnm+alie")
    with pytest.raises(ConfigError, match="attack 'rop:zz=1': attack 'rop': unknown parameter 'zz'"):
        parse_attack("rop:zz=1")
    with pytest.raises(ConfigError, match="'quick' is not a bench profile"):
        bench_profile(PROFILE_DIR / "quick.yaml")
    bad = work / "unknown_rule.yaml"
    bad.write_text(TINY.replace("attack: [alie]", "attack: [alie, not_an_attack]"))
    with pytest.raises(ConfigError, match="lists attack 'not_an_attack', which is not registered.*--attack"):
        bench_profile(bad)
    assert bench_profile(bad, attacks=["ipm"]).experiments["bench"]["grid"]["attack"] == ["ipm", "none"]
    with pytest.raises(SystemExit) as e:
        main(["bench", "--beta", "1.5"])
    assert e.value.code == 2 and "expected comma-separated numbers in [0, 1)" in capsys.readouterr().err
    assert main(["bench", "--resume"]) == 2
    assert "resume: give the bench's folder with --out" in capsys.readouterr().err


def test_plugin_defence_from_a_file(work):
    d = parse_defence(f"{work / 'rules.py'}:bench_norm_clip:max_norm=0.5")
    assert "bench_norm_clip" in AGGREGATORS
    assert d.label == "bench_norm_clip:max_norm=0.5"
    prof = bench_profile(work / "tiny.yaml", defences=[f"{work / 'rules.py'}:bench_norm_clip", "nnm+cm"])
    assert str((work / "rules.py").resolve()) in prof.plugins  # the sweep's workers load it too
    assert sorted({defence_label(c) for c in prof.configs("bench")}) == ["bench_norm_clip", "nnm+cm"]


# --------------------------------------------------------------------------- profiles
def test_shipped_bench_profiles():
    ci = bench_profile("ci")
    cfgs = ci.configs("bench")
    assert len(cfgs) == 2 * 3 * 1 * 2 and {c.dataset for c in cfgs} == {"digits"}
    assert notebook_profile("quick")[0].name == "bench_ci"  # the notebook's default: seconds
    assert notebook_profile("paper")[1] == "table4"  # the paper's own grid, from its sweep's runs
    prof, experiment = notebook_profile(PROFILE_DIR / "quick.yaml")  # a quick sweep's profile.yaml
    assert experiment == "table4"
    assert {defence_label(c) for c in prof.configs("table4")} == {"cc:tau=0.1", "cc", "rfa", "tm"}
    # explicit defences and attacks replace the profile's; the no-attack baseline is always there
    quick = bench_profile("quick", defences=["cc", "tm"], attacks=["alie"])
    assert len(quick.configs("bench")) == 2 * 2 * 2 * 2
    names = {n for name in ("bench_quick", "bench_paper") for n in _grid_names(name)}
    if names <= set(ATTACKS) | set(AGGREGATORS) | {"nnm", "arc"}:  # every rule of the profiles registered
        for name, per_setting in (("bench_quick", 1), ("bench_paper", None)):
            prof = bench_profile(name)
            grid = prof.experiments["bench"]["grid"]
            n = len(grid["defence"]) * len(grid["attack"]) * len(grid["beta"]) * len(prof.seeds)
            assert len(prof.configs("bench")) == n * len(grid.get("setting", [None]))
            assert "none" in grid["attack"] and len(grid["attack"]) >= 10


def _grid_names(profile: str) -> set[str]:
    import yaml

    grid = yaml.safe_load((PROFILE_DIR / f"{profile}.yaml").read_text())["experiments"]["bench"]["grid"]
    return {*grid["attack"], *(d["aggregator"] for d in grid["defence"]),
            *(p for d in grid["defence"] for p in d.get("pre_aggregators", []))}


# --------------------------------------------------------------------------- leaderboard
def hand_table() -> pd.DataFrame:
    """Defences A and B, attacks x and y (+ none), beta 0.9, seeds 0 and 1."""
    acc = {("A", "x"): (50, 70), ("A", "y"): (60, 40), ("A", "none"): (90, 80),
           ("B", "x"): (30, 20), ("B", "y"): (80, 90), ("B", "none"): (95, 97)}
    rows = [{"dataset": "digits", "partition": "iid", "defence": d, "aggregator": d.lower(), "attack": a,
             "beta": 0.9, "seed": s, "final_accuracy": float(v[s]),
             "seconds_per_round": (0.01, 0.03)[s] if a == "none" else (0.01, 0.02)[s]}
            for (d, a), v in acc.items() for s in (0, 1)]
    return pd.DataFrame(rows)


def test_leaderboard_by_hand():
    board = leaderboard(hand_table(), ddof=0).set_index("defence")  # population std: the numbers below
    assert list(board.index) == ["A", "B"] and board["rank"].tolist() == [1, 2]
    a, b = board.loc["A"], board.loc["B"]
    # A: per-seed minima 50 (x, seed 0) and 40 (y, seed 1): 45 ± 5; x and y each worst once,
    # y has the lower mean (50 < 60) so it is named
    assert (a["worst_mean"], a["worst_std"], a["worst_attack"], a["worst_attack_seeds"]) == (45, 5, "y", 1)
    assert (a["clean_mean"], a["clean_std"], a["n_seeds"], a["n_attacks"]) == (85, 5, 2, 2)
    assert a["seconds_per_round"] == pytest.approx(0.015)  # the median over its runs
    # B: minima 30 and 20, both x: 25 ± 5
    assert (b["worst_mean"], b["worst_std"], b["worst_attack"], b["worst_attack_seeds"]) == (25, 5, "x", 2)
    assert (b["clean_mean"], b["clean_std"]) == (96, 1)
    # the default: the sample std (ddof = 1) of {50, 40}, √50
    assert leaderboard(hand_table()).set_index("defence").loc["A", "worst_std"] == pytest.approx(50 ** 0.5)
    md = leaderboard_markdown(leaderboard(hand_table(), ddof=0))
    assert "| 0.9 | 1 | `A` | 45.0 ± 5.0 | y (1/2 seeds) | 85.0 ± 5.0 | 15.0 |" in md
    # without a defence column the aggregator label is used
    assert leaderboard(hand_table().drop(columns="defence"))["defence"].tolist() == ["a", "b"]


def test_leaderboard_errors():
    t = hand_table()
    with pytest.raises(ConfigError, match="several runs for defence 'A', attack 'x'"):
        leaderboard(pd.concat([t, t.iloc[:1]]))
    with pytest.raises(ConfigError, match="no attacked run"):
        leaderboard(t[t["attack"] == "none"])
    with pytest.raises(ConfigError, match="empty results table"):
        leaderboard(t.iloc[:0])
    with pytest.raises(ConfigError, match="lacks columns"):
        leaderboard(t.drop(columns="final_accuracy"))


# --------------------------------------------------------------------------- end to end
def run_folders(store: Path) -> list[str]:
    if not store.exists():
        return []
    return sorted(p.name for p in store.iterdir() if not p.name.startswith(".") and (p / "config.json").exists())


def test_bench_sigkilled_mid_way_then_resumed_gives_the_uninterrupted_leaderboard(work, monkeypatch, capsys):
    # uninterrupted, in this process (1 thread: the numbers of a worker)
    prof = bench_profile(work / "tiny.yaml", defences=["tm", f"{work / 'rules.py'}:bench_norm_clip:max_norm=2"],
                         attacks=["alie", "ipm"], betas=[0.9])
    ref = run_sweep(prof, work / "ref", seeds=[0, 1], workers=0, render=False, progress=False,
                    print_fn=lambda s: None)
    assert ref.ok and ref.computed == 12
    reference = leaderboard(label(ref.table, prof))

    cmd = [sys.executable, "-m", "byzlab.cli", "bench", "--profile", "tiny.yaml", "--out", "out", "--workers", "2",
           *ARGS]
    proc = subprocess.Popen(cmd, cwd=work, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    store = work / "out" / "store"
    deadline = time.monotonic() + 120
    while not run_folders(store) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the bench ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, at once
    proc.wait()
    partial = run_folders(store)
    assert 1 <= len(partial) < 12 and not (work / "out" / "leaderboard.csv").exists()

    r = subprocess.run([sys.executable, "-m", "byzlab.cli", "bench", "--resume", "--out", "out", "--workers", "2",
                        "--no-figures", "-q"], cwd=work, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"12/12 runs ({12 - len(partial)} computed now)" in r.stdout
    assert "| 0.9 | 1 |" in r.stdout and (work / "out" / "leaderboard.md").exists()
    assert len(run_folders(store)) == 12  # each run exactly once
    resumed = pd.read_csv(work / "out" / "leaderboard.csv")
    assert set(resumed["defence"]) == {"tm", "bench_norm_clip:max_norm=2"}
    a, b = reference.drop(columns=WALL), resumed.drop(columns=WALL)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-6, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col

    # the same command again computes nothing and writes the figures; the notebook reads the same runs
    r = subprocess.run([*cmd[:-2], "--no-notebook", "-q"], cwd=work, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "12/12 runs (0 computed now)" in r.stdout
    assert (work / "out" / "bench_heatmap.html").exists() and (work / "out" / "bench_ranking.html").exists()
    from byzlab.bench import results

    table = results(work / "out" / "profile.yaml", store=work / "out" / "store")
    assert len(table) == 12 and set(table["attack"]) == {"alie", "ipm", "none"}

    # by default the bench renders notebooks/11_bench.ipynb on its runs, into its folder
    import byzlab.running.figures

    calls = []
    monkeypatch.setattr(byzlab.running.figures, "render", lambda **kw: calls.append(kw))
    assert main(["bench", "--resume", "--out", str(work / "out"), "--workers", "0", "-q"]) == 0
    assert calls == [{"profile": str(work / "out" / "profile.yaml"), "store": str((work / "out" / "store").resolve()),
                      "out": str(work / "out"), "figures_dir": str(work / "out"), "notebooks": ["11_bench"],
                      "progress": False}]
    assert "12/12 runs (0 computed now)" in capsys.readouterr().out
