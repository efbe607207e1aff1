"""The resumable sweep: planning, fault tolerance (SIGKILL, worker death, crashes, divergence),
the Ray engine, the results table and Table IV, and the command line's errors.

The grids are tiny (digits, 10 clients, a few epochs) so that the file runs in about a minute
on two cores; runs are deterministic on CPU for a given config and seed, so an interrupted and
resumed sweep must produce exactly the numbers of an uninterrupted one.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import byzlab
from byzlab import RunConfig
from byzlab.cli import main
from byzlab.running.experiments import load_profile
from byzlab.running.store import ResultStore
from byzlab.running.tables import paper_table4, results_table, table4
from byzlab.running.sweep import make_plan, run_sweep

#: wall-clock columns, the only ones allowed to differ between two computations of a run
WALL = ["seconds_per_round", "wall_seconds"]

TINY = """\
name: tiny
description: a tiny Table IV on digits
seeds: [0, 1]
base: {dataset: digits, k: 10, k_m: 2, b: 16, epochs: 8, lr: 0.1}
experiments:
  table4:
    grid:
      setting: [{partition: iid}]
      attack: [alie, none]
      aggregator: [{aggregator: cc, tau: 1.0}, {aggregator: tm}]
      beta: [0.9]
"""

PLUGIN = '''\
"""Attacks that fail on purpose, to test the sweep's fault handling."""
import os
import signal
from pathlib import Path

import byzlab
from byzlab.core.registry import ATTACKS

MARK = Path(__file__).with_name("killed.mark")


@byzlab.register_attack("alie_kill_once")
def alie_kill_once(benign, k, k_m, t, at_round: int = 23):
    """ALIE, but the first process to reach round ``at_round`` is SIGKILLed (a worker dying mid-run)."""
    if t == at_round and not MARK.exists():
        MARK.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return ATTACKS["alie"].fn(benign, k=k, k_m=k_m)


@byzlab.register_attack("always_fails")
def always_fails(benign):
    raise RuntimeError("this attack always fails")
'''


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "byzlab.cli", "sweep", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def run_folders(store: Path) -> list[str]:
    if not store.exists():
        return []
    return sorted(p.name for p in store.iterdir() if not p.name.startswith(".") and (p / "config.json").exists())


def comparable(df: pd.DataFrame) -> pd.DataFrame:
    """Sorted by run, without wall-clock columns and columns no row of this subset uses."""
    return df.drop(columns=WALL).dropna(axis=1, how="all").sort_values("key").reset_index(drop=True)


def assert_same_results(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a, b = comparable(a), comparable(b)
    assert list(a.columns) == list(b.columns)
    assert a["key"].tolist() == b["key"].tolist()
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-6, atol=1e-9,
                                       equal_nan=True, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted sweep of the tiny profile (in this process, 1 thread: the numbers of a worker)."""
    root = tmp_path_factory.mktemp("reference")
    prof = write(root / "tiny.yaml", TINY)
    summary = run_sweep(prof, root / "ref", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert summary.ok and summary.computed == 8
    return {"dir": root, "profile": prof, "table": pd.read_csv(root / "ref" / "results.csv")}


# --------------------------------------------------------------------------- planning
def test_paper_profile_covers_every_table4_cell_and_the_figures():
    prof = load_profile("paper")
    assert len(prof.seeds) >= 3
    assert {"table4", "fig1", "fig3", "fig12", "fig13_14"} <= set(prof.experiments)
    rows = [{"dataset": c.dataset, "partition": "iid" if c.partition == "iid" else f"dirichlet{c.alpha:g}",
             "attack": c.attack, "aggregator": c.aggregator if c.aggregator != "cc" else
             f"cc_tau{c.aggregator_params['tau']:g}", "beta": c.beta}
            for c in prof.experiment_configs("table4")]
    cells = pd.DataFrame(rows).drop_duplicates()
    paper = paper_table4()
    merged = paper.merge(cells, on=["dataset", "partition", "attack", "aggregator", "beta"], how="left",
                         indicator=True)
    assert (merged["_merge"] == "both").all()  # every cell of the paper's Table IV is swept
    baselines = cells[cells["attack"] == "none"]
    assert len(baselines) == len(paper[["dataset", "partition"]].drop_duplicates()) * 4 * 3


def test_plan_counts_shared_runs_once_and_knows_what_is_done(tmp_path):
    prof = load_profile("quick")
    plan = make_plan(prof, ResultStore(tmp_path / "store"))
    assert plan.counts() == {"table4": 144, "fig1": 6, "fig3": 12, "fig12": 48, "fig13_14": 72}
    # Figs. 1/12/13-14 reuse Table IV runs (Fig. 3 runs on mnist5k and shares none)
    assert plan.total == len({c.key() for c in plan.configs}) == 243
    assert len(plan.todo) == plan.total and not plan.done
    shared = [k for k, names in plan.experiments.items() if len(names) > 1]
    assert shared and all("table4" in plan.experiments[k] for k in shared)


def test_profile_errors_name_the_experiment(tmp_path):
    bad = write(tmp_path / "bad.yaml", TINY.replace("beta: [0.9]", "beta: [1.5]"))
    with pytest.raises(ValueError, match=r"experiment 'table4': beta: must be in \[0, 1\)"):
        load_profile(bad).configs()
    bad = write(tmp_path / "bad2.yaml", TINY.replace("beta: [0.9]", "beta: 0.9"))
    with pytest.raises(ValueError, match="grid axis 'beta' must be a non-empty list"):
        load_profile(bad)
    bad = write(tmp_path / "bad3.yaml", TINY.replace("seeds: [0, 1]", "seeds: [-1]"))
    with pytest.raises(ValueError, match="seeds.*integers >= 0"):
        load_profile(bad)


def test_overrides_and_seeds_survive_the_profile_file(tmp_path):
    prof = load_profile(write(tmp_path / "tiny.yaml", TINY)).with_overrides(epochs=3).with_seeds([5])
    again = load_profile(prof.save(tmp_path / "swept.yaml"))
    assert [c.key() for c in again.configs()] == [c.key() for c in prof.configs()]
    assert {c.epochs for c in again.configs()} == {3} and {c.seed for c in again.configs()} == {5}


# --------------------------------------------------------------------------- fault tolerance
def test_sigkill_mid_sweep_then_resume_gives_the_uninterrupted_results(reference, tmp_path):
    prof = write(tmp_path / "tiny.yaml", TINY)
    store = tmp_path / "out" / "store"
    proc = subprocess.Popen([sys.executable, "-m", "byzlab.cli", "sweep", "--profile", str(prof), "--out", "out",
                             "--workers", "2", "--no-render", "-q"], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not run_folders(store) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the sweep ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers, at once
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    partial = run_folders(store)
    assert 1 <= len(partial) < 8
    assert not (tmp_path / "out" / "results.csv").exists()

    r = cli("--resume", "--out", "out", "--workers", "2", "--no-render", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"({len(partial)} before, {8 - len(partial)} computed now" in r.stdout
    assert run_folders(store) == sorted(reference["table"]["key"])  # each run exactly once
    assert not ResultStore(store).errors()
    assert_same_results(pd.read_csv(tmp_path / "out" / "results.csv"), reference["table"])
    assert not make_plan(load_profile(tmp_path / "out" / "profile.yaml"), ResultStore(store)).todo


def test_ctrl_c_saves_the_run_in_progress_and_resuming_matches(tmp_path):
    one = TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("attack: [alie, none]", "attack: [alie]")
    # 200 epochs (1,600 rounds, seconds): long enough that Ctrl-C after the first checkpoint
    # (round 20) always lands mid-run, even on a fast, idle machine
    prof = write(tmp_path / "one.yaml", one.replace("epochs: 8", "epochs: 200").replace(
        "aggregator: [{aggregator: cc, tau: 1.0}, {aggregator: tm}]", "aggregator: [{aggregator: cc, tau: 1.0}]"))
    ckpts = tmp_path / "out" / "store" / ".checkpoints"
    proc = subprocess.Popen([sys.executable, "-m", "byzlab.cli", "sweep", "--profile", str(prof), "--out", "out",
                             "--workers", "1", "--checkpoint-every", "20", "--no-render", "-q"], cwd=tmp_path,
                            start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list(ckpts.glob("*.pt")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole process group
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert "interrupted; 0/1 runs stored" in err and "byzlab sweep --resume --out out" in err
    assert len(list(ckpts.glob("*.pt"))) == 1 and "Traceback" not in err

    r = cli("--resume", "--out", "out", "--workers", "1", "--no-render", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    resumed = pd.read_csv(tmp_path / "out" / "results.csv")
    store = ResultStore(tmp_path / "out" / "store")
    assert store.get(make_plan(load_profile(prof), store).configs[0]).meta["resumed_from_round"] >= 20
    whole = run_sweep(prof, tmp_path / "whole", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert_same_results(resumed, whole.table)


def fault_profile(tmp_path: Path) -> Path:
    write(tmp_path / "faulty.py", PLUGIN)
    return write(tmp_path / "faults.yaml", textwrap.dedent("""\
        name: faults
        seeds: [0]
        plugins: [faulty.py]
        base: {dataset: digits, k: 10, k_m: 2, b: 16, epochs: 5, lr: 0.1}
        experiments:
          table4:
            grid:
              setting:
                - {attack: alie_kill_once, aggregator: cc, tau: 1.0}
                - {attack: always_fails, aggregator: cc, tau: 1.0}
                - {attack: none, aggregator: mean, lr: 1.0e+30}
                - {attack: alie, aggregator: cc, tau: 1.0}
        """))


def test_worker_death_crash_and_divergence_are_handled(tmp_path):
    prof = fault_profile(tmp_path)
    ray_before = "ray" in sys.modules
    summary = run_sweep(prof, tmp_path / "out", workers=1, checkpoint_every=5, render=False, progress=False,
                        print_fn=lambda s: None)
    assert ray_before or "ray" not in sys.modules  # the local engine never imports Ray
    store = ResultStore(tmp_path / "out" / "store")
    plan = make_plan(load_profile(prof), store)
    by_attack = {c.attack: c for c in plan.configs}

    # the worker SIGKILLed at round 23 was replaced; the run continued from its round-20 checkpoint
    assert (tmp_path / "killed.mark").exists()
    killed = store.get(by_attack["alie_kill_once"])
    assert killed is not None and killed.meta["resumed_from_round"] == 20
    # ... and gave the numbers of an uninterrupted computation (the mark now exists: no kill)
    again = run_sweep(prof, tmp_path / "again", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert_same_results(summary.table[summary.table["attack"] == "alie_kill_once"],
                        again.table[again.table["attack"] == "alie_kill_once"])

    # the crashing run: tried twice, recorded with its error, the others completed
    failing = by_attack["always_fails"].key()
    assert list(summary.failed) == [failing] and "always fails" in summary.failed[failing]
    err = store.error(by_attack["always_fails"])
    assert err["attempt"] == 2 and "RuntimeError: this attack always fails" in err["error"]
    assert "Traceback" in err["traceback"]
    assert not store.contains(by_attack["always_fails"])

    # the diverging run is a result: chance level, flagged
    div = summary.table.set_index("attack").loc["none"]
    assert bool(div["diverged"]) and div["final_accuracy"] == pytest.approx(10.0)
    assert summary.diverged == 1 and summary.computed == 3 and len(summary.table) == 3
    assert not summary.ok
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert sorted(table["attack"]) == ["alie", "alie_kill_once", "none"]
    assert not list((store.root / ".checkpoints").glob("*.pt"))  # finished runs leave no checkpoint


def test_cli_exit_status_and_failure_report(tmp_path):
    prof = fault_profile(tmp_path)
    (tmp_path / "killed.mark").write_text("")  # no worker death in this one
    r = cli("--profile", str(prof), "--out", "out", "--workers", "0", "--retries", "0", "--no-render", "-q",
            cwd=tmp_path)
    assert r.returncode == 1
    assert "3/4 runs stored" in r.stdout and "1 failed" in r.stdout
    assert "failed" in r.stderr and "RuntimeError: this attack always fails" in r.stderr
    assert ResultStore(tmp_path / "out" / "store").errors()[0]["attempt"] == 1  # --retries 0: one attempt


def test_extending_the_grid_computes_only_the_new_runs(tmp_path):
    small = write(tmp_path / "tiny.yaml", TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 8", "epochs: 2"))
    first = run_sweep(small, tmp_path / "out", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert (first.computed, first.done_before, first.done) == (4, 0, 4)
    write(small, TINY.replace("epochs: 8", "epochs: 2"))  # a second seed
    second = run_sweep(small, tmp_path / "out", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert (second.computed, second.done_before, second.done, second.total) == (4, 4, 8, 8)
    assert sorted(second.table["seed"]) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert_same_results(second.table[second.table["seed"] == 0], first.table)


def test_the_sweep_writes_the_curves_the_notebooks_draw(tmp_path):
    """results.csv + curves.csv: one curve row per run and evaluation (digits, k = 10, b = 16: 1,437 // 10 // 16 =
    8 rounds an epoch, 2 epochs, evaluated once an epoch), whose last accuracy is the run's final accuracy; the
    notebooks' frames and Table III read the pair with nothing trained."""
    from byzlab.analysis import paper

    prof = write(tmp_path / "tiny.yaml", TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 8", "epochs: 2"))
    run_sweep(prof, tmp_path / "out", workers=0, render=False, progress=False, print_fn=lambda s: None)
    results = pd.read_csv(tmp_path / "out" / "results.csv")
    curves = pd.read_csv(tmp_path / "out" / "curves.csv")
    assert list(curves.columns) == ["key", "round", "epoch", "test_accuracy", "train_loss"]
    assert sorted(curves["key"].unique()) == sorted(results["key"]) and len(results) == 4
    assert all(list(g["round"]) == [8, 16] for _, g in curves.groupby("key"))
    last = curves.groupby("key")["test_accuracy"].last()
    assert np.allclose(last.loc[results["key"]].to_numpy(), results["final_accuracy"].to_numpy())
    # the paper's knobs are plain columns: CC's tau where the aggregator is CC, NaN elsewhere
    assert (results.loc[results["aggregator"] == "cc_tau1", "tau"] == 1.0).all()
    assert results.loc[results["aggregator"] == "tm", "tau"].isna().all() and results["z"].isna().all()
    rows, frame = paper.frames(tmp_path / "tiny.yaml", table=tmp_path / "out" / "results.csv",
                               store=tmp_path / "elsewhere", aggregator="cc")
    assert len(rows) == 2 and len(frame) == 4 and set(frame["aggregator"]) == {"cc_tau1"}
    assert list(paper.table3(rows).index.get_level_values("tau")) == [1.0]
    assert not (tmp_path / "elsewhere").exists()


def test_batched_jobs_store_every_run(tmp_path):
    prof = write(tmp_path / "tiny.yaml", TINY.replace("epochs: 8", "epochs: 2"))
    batched = run_sweep(prof, tmp_path / "b", workers=0, runs_per_job=3, render=False, progress=False,
                        print_fn=lambda s: None)
    single = run_sweep(prof, tmp_path / "s", workers=0, render=False, progress=False, print_fn=lambda s: None)
    assert batched.ok and len(batched.table) == 8
    store = ResultStore(tmp_path / "b" / "store")
    assert {store.get(c).meta["batch"] for c in make_plan(load_profile(prof), store).configs} == {1, 3}
    a, b = comparable(batched.table), comparable(single.table)
    assert a["key"].tolist() == b["key"].tolist()
    # the same runs up to floating-point reassociation in the batched kernels
    np.testing.assert_allclose(a["final_train_loss"], b["final_train_loss"], rtol=1e-3)
    assert (a["final_accuracy"] - b["final_accuracy"]).abs().max() <= 1.0


# --------------------------------------------------------------------------- Ray
@pytest.mark.ray
def test_ray_engine_with_a_worker_killed_mid_run(reference, tmp_path):
    if importlib.util.find_spec("ray") is None:  # not imported here: this process stays Ray-free
        pytest.skip("ray is not installed")
    write(tmp_path / "faulty.py", PLUGIN)
    text = TINY.replace("attack: [alie, none]", "attack: [alie, alie_kill_once]").replace("seeds: [0, 1]", "seeds: [0]")
    prof = write(tmp_path / "tiny.yaml", text + "plugins: [faulty.py]\n")
    r = cli("--profile", str(prof), "--out", "out", "--backend", "ray", "--workers", "2", "--checkpoint-every", "5",
            "--no-render", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "killed.mark").exists()  # a Ray worker really was SIGKILLed, and the task retried
    store = ResultStore(tmp_path / "out" / "store")
    table = pd.read_csv(tmp_path / "out" / "results.csv")
    assert run_folders(store.root) == sorted(table["key"]) and len(table) == 4  # each run exactly once
    assert not store.errors() and not list((store.root / ".checkpoints").glob("*.pt"))
    if "alie_kill_once" not in byzlab.core.registry.ATTACKS:  # the store validates configs: register the plug-in
        byzlab.load_plugin(str(tmp_path / "faulty.py"))
    resumed = [store.get(RunConfig.from_dict(json.loads((store.root / k / "config.json").read_text())))
               for k in table.loc[table["attack"] == "alie_kill_once", "key"]]
    assert any(r.meta["resumed_from_round"] == 20 for r in resumed)
    ref = reference["table"]
    assert_same_results(table[table["attack"] == "alie"], ref[(ref["attack"] == "alie") & (ref["seed"] == 0)])


# --------------------------------------------------------------------------- results, Table IV
def test_table4_mean_std_over_seeds_and_the_paper_merge():
    paper = paper_table4()
    # two seeds per cell at mean ± std: the sample std (the default) of {m - s, m + s} is s·√2
    rows = pd.concat([paper.assign(seed=0, final_accuracy=paper["accuracy_mean"] - paper["accuracy_std"]),
                      paper.assign(seed=1, final_accuracy=paper["accuracy_mean"] + paper["accuracy_std"])])
    t4 = table4(rows, paper=True)
    assert len(t4) == len(paper) and (t4["n_seeds"] == 2).all()
    np.testing.assert_allclose(t4["accuracy_mean"], t4["paper_mean"])
    np.testing.assert_allclose(t4["accuracy_std"], t4["paper_std"] * np.sqrt(2), atol=1e-9)
    population = table4(rows, ddof=0, paper=True)  # the population std of {m - s, m + s} is s
    np.testing.assert_allclose(population["accuracy_std"], population["paper_std"], atol=1e-9)


def test_results_table_labels_join_the_paper_table(reference):
    df = reference["table"].copy()
    assert set(df["partition"]) == {"iid"} and set(df["aggregator"]) == {"cc_tau1", "tm"}
    # relabelled as a paper data set, the runs land on the paper's rows
    t4 = table4(df.assign(dataset="fmnist"), paper=True)
    hit = t4[t4["attack"] == "alie"]
    assert len(hit) == 2 and hit["paper_mean"].notna().all() and (hit["n_seeds"] == 2).all()
    assert t4[t4["attack"] == "none"]["paper_mean"].isna().all()  # the paper's table has no baseline rows
    assert (tmp := reference["dir"] / "ref" / "table4.csv").exists() and len(pd.read_csv(tmp)) == 4


def test_results_table_partition_label_matches_the_paper():
    cfg = RunConfig.make(dataset="digits", partition="dirichlet", alpha=1.0, epochs=1, max_rounds=1,
                         attack="alie", aggregator="cc", tau=0.1, beta=0.99)
    from byzlab import run

    row = results_table([run(cfg)]).iloc[0]
    assert (row["partition"], row["aggregator"], row["beta"]) == ("dirichlet1", "cc_tau0.1", 0.99)
    assert ((paper_table4()["partition"] == row["partition"]) & (paper_table4()["aggregator"] == row["aggregator"])
            ).any()


def test_table4_refuses_to_average_different_configs(reference):
    df = reference["table"]
    mixed = pd.concat([df, df.assign(cell="another", key=df["key"] + "x")])
    with pytest.raises(ValueError, match="different configs"):
        table4(mixed)
    with pytest.raises(ValueError, match="ddof: must be an integer >= 0"):
        table4(df, ddof=-1)
    with pytest.raises(ValueError, match="lacks columns"):
        table4(df.drop(columns=["beta"]))
    with pytest.raises(ValueError, match="no run of the 'table4' experiment"):
        table4(df.assign(experiments="fig1"))


# --------------------------------------------------------------------------- dry run, rendering
def test_dry_run_counts_and_estimates_from_finished_runs(reference, capsys):
    out = reference["dir"] / "ref"
    assert main(["sweep", "--out", str(out), "--resume", "--dry-run", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "profile tiny: 8 runs (table4 8;" in text
    assert "8 done, 0 to run" in text
    assert "finished runs" in text  # the speed measured by the sweep itself
    assert "estimate for the 0 runs to do: 0s" in text


def test_dry_run_calibrates_and_runs_nothing(tmp_path, capsys):
    prof = write(tmp_path / "tiny.yaml", TINY)
    assert main(["sweep", "--profile", str(prof), "--out", str(tmp_path / "o"), "--dry-run", "--workers", "2"]) == 0
    text = capsys.readouterr().out
    assert "8 runs" in text and "0 done, 8 to run" in text and "calibration" in text
    assert "with 2 parallel runs" in text and "without an estimate" not in text
    cache = json.loads((tmp_path / "o" / "store" / ".calibration.json").read_text())
    assert all(v["seconds_per_round"] > 0 and v["stand_in"] is False for v in cache.values())
    assert run_folders(tmp_path / "o" / "store") == [] and not (tmp_path / "o" / "results.csv").exists()
    assert main(["sweep", "--profile", str(prof), "--out", str(tmp_path / "p"), "--dry-run", "--no-calibrate"]) == 0
    assert "8 runs without an estimate" in capsys.readouterr().out


def test_render_is_called_with_the_swept_profile_and_store(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("byzlab.running.figures")
    fake.render = lambda **kw: calls.append(kw)
    monkeypatch.setitem(sys.modules, "byzlab.running.figures", fake)
    prof = write(tmp_path / "tiny.yaml", TINY.replace("epochs: 8", "epochs: 1").replace("seeds: [0, 1]", "seeds: [0]"))
    summary = run_sweep(prof, tmp_path / "out", workers=0, progress=False, print_fn=lambda s: None)
    assert summary.rendered is True
    out = tmp_path / "out"
    assert calls == [{"profile": str(out / "profile.yaml"), "store": str(out / "store"),
                      "out": str(out / "notebooks"), "figures_dir": str(out / "figures")}]
    assert [c.key() for c in load_profile(calls[0]["profile"]).configs()] == list(summary.table["key"])


def test_missing_figures_module_is_one_line_and_skipped(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "byzlab.running.figures", None)  # as if byzlab.running.figures did not exist
    lines = []
    prof = write(tmp_path / "tiny.yaml", TINY.replace("epochs: 8", "epochs: 1").replace("seeds: [0, 1]", "seeds: [0]"))
    summary = run_sweep(prof, tmp_path / "out", workers=0, progress=False, print_fn=lines.append)
    assert summary.rendered is False and summary.ok
    assert lines == ["byzlab sweep: byzlab.running.figures is not available; skipping the notebooks"]


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("args, message", [
    (["--workers", "-1"], "workers: must be an integer >= 0, got -1"),
    (["--threads", "0"], "threads: must be an integer >= 1, got 0"),
    (["--batch", "0"], "runs_per_job: must be an integer >= 1, got 0"),
    (["--checkpoint-every", "0"], "checkpoint_every: must be an integer >= 1, got 0"),
    (["--retries", "-1"], "retries: must be an integer >= 0, got -1"),
    (["--gpus-per-run", "-0.5"], "gpus_per_run: must be a number >= 0, got -0.5"),
    (["--address", "10.0.0.1:6379"], "address: only with backend 'ray'"),
    (["--backend", "slurm"], "argument --backend: invalid choice: 'slurm'"),
    (["--engine", "ray"], "engine: 'ray' is a backend: pass --backend ray"),
    (["--seeds", "0,x"], "argument --seeds: expected comma-separated integers >= 0"),
    (["--experiment", "fig99"], "experiment: unknown 'fig99' in profile 'tiny'; choose one of: table4"),
    (["--beta", "1.5"], "beta: must be in [0, 1)"),
])
def test_bad_sweep_options_are_one_line_errors(tmp_path, capsys, args, message):
    prof = write(tmp_path / "tiny.yaml", TINY)
    try:  # argparse's own errors exit from the parser, ours return the status
        code = main(["sweep", "--profile", str(prof), "--out", str(tmp_path / "o"), "--no-render", "-q", *args])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("byzlab: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert run_folders(tmp_path / "o" / "store") == []


def test_unknown_profile_and_resume_without_a_sweep(tmp_path, capsys):
    assert main(["sweep", "--profile", "nope", "--no-render"]) == 2
    err = capsys.readouterr().err
    choices = err.split("choose one of: ")[1].removesuffix(" or a path to a .yaml file\n").split(", ")
    assert err.startswith("byzlab: error: profile: unknown 'nope'; ") and {"paper", "quick"} <= set(choices)
    assert main(["sweep", "--resume", "--out", str(tmp_path / "empty"), "--no-render"]) == 2
    assert "resume: no sweep to resume in" in capsys.readouterr().err
    prof = write(tmp_path / "tiny.yaml", TINY)
    out = tmp_path / "o"
    load_profile(prof).save(out / "profile.yaml")
    assert main(["sweep", "--resume", "--out", str(out), "--epochs", "3", "--no-render"]) == 2
    assert "resume: continues the sweep as it was started" in capsys.readouterr().err


def test_a_second_sweep_on_the_same_output_is_refused(tmp_path):
    import fcntl

    prof = write(tmp_path / "tiny.yaml", TINY)
    (tmp_path / "o").mkdir()
    with open(tmp_path / "o" / ".sweep.lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        with pytest.raises(ValueError, match="out: another sweep is running in"):
            run_sweep(prof, tmp_path / "o", workers=0, render=False, progress=False, print_fn=lambda s: None)


def test_a_backend_is_one_registered_subclass(tmp_path, capsys):
    from byzlab.running.sweep.backends import BACKENDS, InlineBackend

    submitted = []

    class Tally(InlineBackend, name="tally_test"):  # runs jobs in this process, counting them
        def submit(self, job):
            submitted.append(len(job))
            super().submit(job)

    try:
        small = write(tmp_path / "tiny.yaml", TINY.replace("seeds: [0, 1]", "seeds: [0]").replace("epochs: 8",
                                                                                                 "epochs: 2"))
        summary = run_sweep(small, tmp_path / "out", backend="tally_test", render=False, progress=False,
                            print_fn=lambda s: None)
        assert (summary.computed, summary.done) == (4, 4) and submitted == [1, 1, 1, 1]
        assert main(["sweep", "--profile", str(small), "--out", str(tmp_path / "cli"), "--backend", "tally_test",
                     "--no-render", "-q"]) == 0  # the command line knows it too
        assert len(submitted) == 8
        with pytest.raises(ValueError, match="^address: only with backend 'ray'"):
            run_sweep(small, tmp_path / "o", backend="tally_test", address="h:1", render=False, progress=False)
    finally:
        BACKENDS.pop("tally_test", None)
