"""The contract between the simulator and the rules, and no hidden state.

A plug-in author relies on :class:`byzlab.core.registry.RoundContext`: these tests
register rules that record every context value they receive and check each
against what the docs promise (computed here independently: the round number,
η_t from the schedule, the previous round's aggregate as recorded by the rule
itself, zeros at t = 1, …).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import byzlab
from byzlab.core import aggregators as A
from byzlab.core.registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, ConfigError

SMALL = dict(dataset="digits", k=7, k_m=2, b=8, epochs=1, max_rounds=4, seed=1, beta=0.5, eval_every=2)


@pytest.fixture
def recorder():
    """Register a recording aggregator, pre-aggregator and attack; unregister them afterwards."""
    seen: dict[str, list[dict]] = {"agg": [], "pre": [], "att": []}

    def record_agg(x, t, k, f, lr, prev_aggregate, center, generator, state):
        state["calls"] = state.get("calls", 0) + 1
        seen["agg"].append(dict(t=t, k=k, f=f, lr=lr, n=x.shape[0], generator=generator, calls=state["calls"],
                                prev=None if prev_aggregate is None else prev_aggregate.clone(),
                                center=center.clone()))
        out = x.mean(0)
        seen["agg"][-1]["out"] = out.clone()
        return out

    def record_pre(x, t, f, state):
        state.setdefault("ts", []).append(t)
        seen["pre"].append(dict(t=t, f=f, ts=list(state["ts"])))
        return x

    def record_att(benign, t, k, k_m, f, lr, prev_aggregate, byzantine, mask, state):
        seen["att"].append(dict(t=t, k=k, k_m=k_m, f=f, lr=lr, n=benign.shape[0],
                                byz=tuple(byzantine.shape), mask=mask,
                                prev=None if prev_aggregate is None else prev_aggregate.clone()))
        return -benign.mean(0)

    byzlab.register_aggregator("_rec_agg")(record_agg)
    byzlab.register_pre_aggregator("_rec_pre")(record_pre)
    byzlab.register_attack("_rec_att")(record_att)
    yield seen
    for table, name in ((AGGREGATORS, "_rec_agg"), (PRE_AGGREGATORS, "_rec_pre"), (ATTACKS, "_rec_att")):
        table.pop(name, None)


def test_a_plugin_receives_every_documented_context_value(recorder):
    sim = byzlab.Simulation(aggregator="_rec_agg", attack="_rec_att", pre_aggregators=["_rec_pre"],
                            agg_f=1, lr=0.2, lr_decay=0.5, lr_decay_at=0.5, **{**SMALL, "epochs": 2,
                                                                                 "max_rounds": None})
    rpe = sim.rounds_per_epoch
    sim.advance(rpe + 2)
    agg, att, pre = recorder["agg"], recorder["att"], recorder["pre"]
    assert [r["t"] for r in agg] == list(range(1, rpe + 3)) == [r["t"] for r in att]
    for r in agg:
        assert r["k"] == 7 and r["n"] == 7
        assert r["f"] == 1  # agg_f, not the true k_m = 2: the server only knows what it guards against
        # η_t: 0.2 during the first epoch (decay at half of 2 epochs), 0.1 after
        assert r["lr"] == pytest.approx(0.2 if r["t"] <= rpe else 0.1)
        assert isinstance(r["generator"], torch.Generator)
        assert r["calls"] == r["t"]  # the rule's own state persists across rounds
    assert agg[0]["prev"] is None
    assert torch.equal(agg[0]["center"], torch.zeros_like(agg[0]["out"]))  # zeros at t = 1
    for before, now in zip(agg, agg[1:]):
        assert torch.equal(now["prev"], before["out"]) and torch.equal(now["center"], before["out"])
    for r in att:
        assert (r["k"], r["k_m"], r["f"], r["n"]) == (7, 2, 1, 5)
        assert r["byz"] == (2, sim.d)  # asked for: the Byzantine clients' own momenta
        assert r["mask"].dtype == torch.bool and r["mask"].shape == (sim.d,)
    assert att[0]["prev"] is None and torch.equal(att[1]["prev"], agg[0]["out"])
    assert pre[-1]["ts"] == list(range(1, rpe + 3)) and all(p["f"] == 1 for p in pre)


def test_rule_state_survives_a_checkpoint(recorder, tmp_path):
    sim = byzlab.Simulation(aggregator="_rec_agg", attack="none", **SMALL)
    sim.advance(2)
    path = tmp_path / "c.ckpt"
    sim.save_checkpoint(path)
    resumed = byzlab.Simulation(aggregator="_rec_agg", attack="none", **SMALL)
    assert resumed.load_checkpoint(path) == 2
    resumed.advance(1)
    assert recorder["agg"][-1]["calls"] == 3 and recorder["agg"][-1]["t"] == 3


def test_round_context_is_frozen_and_names_are_the_documented_ones():
    import dataclasses

    from byzlab.core.registry import RoundContext

    names = {f.name for f in dataclasses.fields(RoundContext)}
    assert names == {"t", "k", "k_m", "f", "lr", "prev_aggregate", "center", "generator", "byzantine", "mask",
                     "state", "server_update", "aggregate"}
    ctx = RoundContext(t=1, k=3, k_m=1, f=1, lr=0.1, prev_aggregate=None, center=torch.zeros(2), generator=None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.t = 2
    for name in names:
        assert f"\n    {name}\n" in RoundContext.__doc__, f"{name} is not documented"


@pytest.mark.parametrize("name, hint", [("b", "'f'"), ("k_m", "'f'")])
def test_retired_aggregator_context_names_say_what_to_use(name, hint):
    def rule(x, **kw):
        return x.mean(0)

    exec(f"def rule(x, {name}):\n    return x.mean(0)", globals(), ns := {})
    with pytest.raises(TypeError, match=hint):
        byzlab.register_aggregator("_retired")(ns["rule"])
    assert "_retired" not in AGGREGATORS


def test_trimmed_mean_trim_count_is_named_f():
    x = torch.tensor([[1.0], [2.0], [3.0], [4.0], [100.0]])
    assert A.trimmed_mean(x, f=1).item() == pytest.approx(3.0)  # (2 + 3 + 4) / 3 by hand


def test_registering_a_taken_name_is_an_error_unless_replace():
    def mean2(x):
        return x.mean(0)

    with pytest.raises(ConfigError, match="'cc' is already registered.*replace=True"):
        byzlab.register_aggregator("cc")(mean2)
    assert AGGREGATORS["cc"].fn is A.centered_clip
    byzlab.register_aggregator("_twice")(mean2)
    try:
        with pytest.raises(ConfigError, match="already registered"):
            byzlab.register_aggregator("_twice")(lambda x: x.sum(0))
        byzlab.register_aggregator("_twice", replace=True)(lambda x: x.sum(0))
        assert AGGREGATORS["_twice"].fn(torch.ones(2, 1)).item() == 2.0
    finally:
        AGGREGATORS.pop("_twice", None)


def test_loading_the_same_plugin_twice_is_harmless(tmp_path):
    plugin = tmp_path / "twice_rules.py"
    plugin.write_text("import byzlab\n@byzlab.register_aggregator('_plug_twice')\ndef r(x):\n    return x.mean(0)\n")
    try:
        byzlab.load_plugin(str(plugin))
        byzlab.load_plugin(str(plugin))
        assert "_plug_twice" in AGGREGATORS
    finally:
        AGGREGATORS.pop("_plug_twice", None)


def test_tf32_is_scoped_to_the_run():
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        sim = byzlab.Simulation(precision="tf32", attack="none", aggregator="mean", **SMALL)
        sim.advance(2)
        assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cudnn.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


@pytest.mark.parametrize("precision, inside", [("fp32", False), ("bf16", False), ("tf32", True)])
def test_a_round_runs_with_tf32_exactly_when_asked(precision, inside):
    """PyTorch's default lets cuDNN convolutions use TF32; byzlab's fp32 and bf16 rounds switch it off."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    seen = []
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not inside
        sim = byzlab.Simulation(precision=precision, attack="none", aggregator="mean", **SMALL)
        engine = sim.engine
        sim.engine = lambda *a: (seen.append((torch.backends.cuda.matmul.allow_tf32,
                                              torch.backends.cudnn.allow_tf32)), engine(*a))[1]
        sim.advance(2)
        assert seen == [(inside, inside)] * 2
        assert torch.backends.cuda.matmul.allow_tf32 is (not inside)
        assert torch.backends.cudnn.allow_tf32 is (not inside)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


# --------------------------------------------------------------------------- CLI exit codes, checkpoints
def _cli(*args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-m", "byzlab.cli", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=300)


def test_cli_a_bug_keeps_its_traceback_and_exits_1(tmp_path):
    plugin = tmp_path / "buggy_rules.py"
    plugin.write_text("import byzlab\n@byzlab.register_aggregator('buggy')\n"
                      "def buggy(x):\n    raise ValueError('an index went wrong')\n")
    p = _cli("run", "--plugin", str(plugin), "--dataset", "digits", "--aggregator", "buggy", "--attack", "none",
             "--epochs", "1", "-q")
    assert p.returncode == 1, p.stderr
    assert "Traceback" in p.stderr and "an index went wrong" in p.stderr


def test_cli_bad_input_is_one_line_and_exits_2():
    p = _cli("run", "--dataset", "digits", "--beta", "1.5", "-q")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == ["byzlab: error: beta: must be in [0, 1), got 1.5"]


def test_an_unreadable_checkpoint_is_an_error_naming_the_file(tmp_path):
    args = ["run", "--dataset", "digits", "--k", "6", "--k-m", "1", "--epochs", "2", "--attack", "ipm",
            "--aggregator", "cm", "-q", "--out", str(tmp_path / "r")]
    ckpt = tmp_path / ".r.ckpt"
    ckpt.write_bytes(b"not a checkpoint")
    p = _cli(*args)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    [line] = p.stderr.strip().splitlines()
    assert str(ckpt) in line and "--bad-checkpoint move" in line
    assert ckpt.read_bytes() == b"not a checkpoint" and not (tmp_path / "r").exists()  # nothing overwritten
    p = _cli(*args, "--bad-checkpoint", "move")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / ".r.ckpt.bad").read_bytes() == b"not a checkpoint"
    assert "moved to" in p.stderr and (tmp_path / "r" / "history.csv").exists()


def test_a_checkpoint_of_another_config_is_not_silently_restarted(tmp_path):
    path = tmp_path / "c.ckpt"
    byzlab.Simulation(attack="none", aggregator="mean", **SMALL).save_checkpoint(path)
    with pytest.raises(ConfigError, match=f"{path}.*different config"):
        byzlab.run(attack="none", aggregator="cm", checkpoint=path, **SMALL)


def test_paper_results_does_not_start_a_paper_sweep_in_a_notebook(tmp_path):
    from byzlab.analysis import paper

    with pytest.raises(ConfigError, match=r"^results: (\d+) of the \1 runs .*'paper'.*byzlab sweep --profile paper"):
        paper.results("paper", "fig1", store=tmp_path / "store")
    assert not any((tmp_path / "store").iterdir())  # nothing was computed


def test_server_update_is_the_servers_momentum_on_its_root_data():
    """With root_size = b the server's batch is its whole root set, whatever the order: at t = 1
    its momentum is (1 − β)·∇ℓ(θ_0; root set), computed here with a fresh model and autograd."""
    from byzlab.core.data import load_dataset
    from byzlab.core.models import build_model

    seen = []

    def trusting_mean(x, server_update):
        seen.append(server_update.clone())
        return x.mean(0)

    byzlab.register_aggregator("_trusting")(trusting_mean)
    try:
        cfg = byzlab.RunConfig.make(aggregator="_trusting", attack="none", root_size=8, **SMALL)
        assert cfg.server_trains and cfg.n_compute == 7 + 1
        sim = byzlab.Simulation(cfg)
        sim.advance(1)
    finally:
        AGGREGATORS.pop("_trusting", None)
    data = load_dataset("digits")
    root = torch.randperm(data.y_train.shape[0], generator=torch.Generator().manual_seed(1 + 1_000_003))[:8]
    torch.manual_seed(1)
    model = build_model("mlp", data.num_classes, data.input_shape)
    loss = torch.nn.functional.cross_entropy(model(data.x_train[root]), data.y_train[root])
    grad = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])
    torch.testing.assert_close(seen[0], (1 - 0.5) * grad, rtol=1e-5, atol=1e-7)


def test_root_size_is_validated():
    with pytest.raises(ConfigError, match="^root_size: must be an integer >= 1"):
        byzlab.RunConfig.make(root_size=0)


def test_the_attackers_trial_aggregate_changes_nothing(recorder):
    """An adaptive attack may evaluate the server's rule on trial matrices: the answer equals the
    real aggregate for the same matrix, and the rule's state and the run's RNG are untouched."""
    trials = []

    def probing(benign, aggregate, k_m):
        v = -benign.mean(0)
        X = torch.cat([benign, v.expand(k_m, -1)])
        trials.append((aggregate(X), aggregate(X)))
        return v

    byzlab.register_attack("_probing")(probing)
    try:
        sim = byzlab.Simulation(aggregator="_rec_agg", attack="_probing", pre_aggregators=["bucketing"],
                                **SMALL)
        sim.advance(3)
    finally:
        ATTACKS.pop("_probing", None)
    calls = recorder["agg"]  # per round: two trials (by the attack), then the server's own call
    real = calls[2::3]
    assert [r["calls"] for r in calls] == [1, 1, 1, 2, 2, 2, 3, 3, 3]  # trials ran on copies of the state
    assert [r["t"] for r in real] == [1, 2, 3]
    for (a, b), r in zip(trials, real):
        assert torch.equal(a, b)  # same RNG state for both trials (bucketing's permutation)
        assert torch.equal(a, r["out"])  # and the same as the round's own aggregation


def test_compute_in_notebook_must_be_a_boolean(tmp_path):
    from byzlab.running.experiments import load_profile

    path = tmp_path / "p.yaml"
    path.write_text("name: p\ncompute_in_notebook: sometimes\nexperiments: {e: {grid: {beta: [0.0]}}}\n")
    with pytest.raises(ConfigError, match="^profile: 'compute_in_notebook' must be true or false, got 'sometimes'$"):
        load_profile(path)


def test_bad_checkpoint_policy_is_validated(tmp_path):
    from byzlab.running.sweep import run_sweep

    with pytest.raises(ConfigError, match="^on_bad: must be one of error, move, got 'keep'$"):
        byzlab.run(attack="none", aggregator="mean", checkpoint=tmp_path / "c.ckpt", bad_checkpoint="keep", **SMALL)
    with pytest.raises(ConfigError, match="^bad_checkpoint: must be one of error, move, got 'keep'$"):
        run_sweep("quick", tmp_path / "out", bad_checkpoint="keep", render=False, progress=False)
