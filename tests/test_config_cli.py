"""Bad input: one line naming the parameter and the allowed range; CLI exit 2, no traceback."""
import json
import os
import re
import subprocess
import sys

import pytest

import byzlab
from byzlab import ConfigError, RunConfig


@pytest.mark.parametrize("kw, pattern", [
    (dict(beta=1.0), r"^beta: must be in \[0, 1\)"),
    (dict(beta=-0.1), r"^beta: must be in \[0, 1\)"),
    (dict(aggregator="cc", tau=0.0), r"^tau: must be > 0"),
    (dict(aggregator="cc", tau=-1.0), r"^tau: must be > 0"),
    (dict(k=10, k_m=10), r"^k_m: must satisfy 0 <= k_m < k"),
    (dict(k_m=-1), r"^k_m: must be an integer >= 0"),
    (dict(k=10, k_m=5, aggregator="tm"), r"^k_m: aggregator 'tm' needs k > 2\*k_m"),
    (dict(k=10, k_m=5, aggregator="krum"), r"^k_m: aggregator 'krum' needs k > 2\*k_m"),
    (dict(k=25, k_m=6, aggregator="bulyan"), r"^k_m: aggregator 'bulyan' needs k > 4\*k_m\+2"),
    (dict(aggregator="foo"), r"^aggregator: unknown 'foo'; choose one of: .*bulyan.*cc"),
    (dict(attack="foo"), r"^attack: unknown 'foo'; choose one of: .*rop"),
    (dict(dataset="foo"), r"^dataset: unknown 'foo'; choose one of: .*mnist5k"),
    (dict(model="foo"), r"^model: unknown 'foo'"),
    (dict(partition="noniid"), r"^partition: unknown 'noniid'"),
    (dict(alpha=0.0), r"^alpha: must be in \(0"),
    (dict(b=0), r"^b: must be an integer >= 1"),
    (dict(epochs=0), r"^epochs: must be an integer >= 1"),
    (dict(lr=0.0), r"^lr: must be in \(0"),
    (dict(attack="rop", lam=1.5), r"^lam: must be in \[0, 1\]"),
    (dict(attack="rop", z=-1.0), r"^z: must be >= 0"),
    (dict(attack="ipm", eps=0.0), r"^eps: must be > 0"),
    (dict(aggregator="rfa", iters=0), r"^iters: must be an integer >= 1"),
    (dict(aggregator="tm", tau=1.0), r"^tau: not a config field nor a parameter of aggregator 'tm'"),
    (dict(engine="jit"), r"^engine: unknown 'jit'"),
    (dict(precision="fp8"), r"^precision: unknown 'fp8'"),
    (dict(device="tpu"), r"^device: must be 'auto', 'cpu' or 'cuda"),
    (dict(pre_aggregators=("foo",)), r"^pre_aggregator: unknown 'foo'"),
    (dict(pre_aggregators=("bucketing",), pre_aggregator_params={"bucketing": {"s": 0}}), r"^s: must be an integer >= 1"),
    (dict(k=25, k_m=5, aggregator="tm", pre_aggregators=("bucketing",), pre_aggregator_params={"bucketing": {"s": 3}}),
     r"^k_m: aggregator 'tm' needs k > 2\*k_m \(k=9 inputs"),
])
def test_config_errors_are_one_line(kw, pattern):
    with pytest.raises(ConfigError, match=pattern) as e:
        RunConfig.make(**kw)
    assert "\n" not in str(e.value)


def test_cuda_asked_for_but_absent():
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises(ConfigError, match=r"^device: 'cuda' asked for but CUDA is not available"):
        RunConfig.make(device="cuda")


def test_defaults_are_the_paper_s():
    c = RunConfig.make()
    assert (c.k, c.k_m, c.b, c.epochs, c.lr, c.lr_decay, c.lr_decay_at) == (25, 5, 32, 100, 0.1, 0.1, 0.75)
    rop = RunConfig.make(attack="rop").attack_params
    assert rop["z"] == 1.0 and rop["lam"] == 0.9
    assert RunConfig.make(aggregator="rfa").aggregator_params == {"iters": 3, "nu": 0.1, "init": "zero"}
    assert RunConfig.make(attack="ipm").attack_params == {"eps": 0.2}
    assert RunConfig.make(aggregator="cc").aggregator_params == {"tau": 1.0, "iters": 1}


@pytest.mark.parametrize("alias,name", [("median", "cm"), ("trimmed_mean", "tm"), ("geometric_median", "rfa"),
                                        ("centered_clip", "cc"), ("multi_krum", "multikrum")])
def test_an_alias_is_the_same_run_under_the_canonical_name(alias, name):
    from byzlab.core import aggregators
    from byzlab.core.registry import AGGREGATORS, lookup

    a, c = RunConfig.make(aggregator=alias, attack="alie"), RunConfig.make(aggregator=name, attack="alie")
    assert a.aggregator == name and a == c and a.key() == c.key()
    assert lookup("aggregator", alias) is AGGREGATORS[name] and AGGREGATORS[name].fn is getattr(aggregators, alias)
    assert alias not in AGGREGATORS and f"alias: {alias}" in byzlab.available()["aggregators"][name]


def test_cli_accepts_an_alias_and_records_the_canonical_name(tmp_path):
    out = tmp_path / "r"
    r = subprocess.run([sys.executable, "-m", "byzlab.cli", "run", "--dataset", "digits", "--k", "6", "--k-m", "1",
                        "--epochs", "1", "--max-rounds", "2", "--aggregator", "trimmed_mean", "--attack", "alie",
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "config.json").read_text())["aggregator"] == "tm"


def test_registering_over_an_alias_needs_replace():
    from byzlab.core.registry import ALIASES, register_aggregator

    with pytest.raises(ConfigError, match="'median' is already registered"):
        register_aggregator("median")(lambda x: x.mean(0))
    assert ALIASES["aggregator"]["median"] == "cm"


def test_key_is_stable_and_covers_every_parameter():
    a = RunConfig.make(attack="rop", z=1.0)
    assert a.key() == RunConfig.make(attack="rop").key()  # defaults resolved
    assert a.key() != RunConfig.make(attack="rop", z=2.0).key()
    assert a.key() != RunConfig.make(attack="rop", seed=1).key()
    assert a.key() == RunConfig.make(attack="rop", data_root="/elsewhere").key()  # not part of the math
    assert RunConfig.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_user_plugin_works_like_a_builtin(tmp_path):
    @byzlab.register_aggregator("test_norm_clip_mean")
    def norm_clip_mean(x, max_norm=1.0):
        scale = (max_norm / x.norm(dim=1).clamp_min(1e-12)).clamp(max=1.0)
        return (x * scale[:, None]).mean(0)

    @byzlab.register_attack("test_zero")
    def zero(benign, prev_aggregate, scale=0.0):
        return benign.mean(0) * scale

    cfg = RunConfig.make(dataset="digits", k=6, k_m=1, epochs=1, aggregator="test_norm_clip_mean",
                         attack="test_zero", max_norm=0.5)
    assert cfg.aggregator_params == {"max_norm": 0.5}
    res = byzlab.run(cfg)
    assert len(res.history) == 1
    with pytest.raises(ConfigError, match="max_norm: must be a finite number"):
        RunConfig.make(aggregator="test_norm_clip_mean", max_norm="big")


PLUGIN = '''
import byzlab
@byzlab.register_attack("plugin_scaled_mean")
def scaled_mean(benign, s=-1.0):
    return s * benign.mean(0)
'''


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "byzlab.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": os.getcwd()})


def test_cli_run_writes_results_and_summary(tmp_path):
    (tmp_path / "myplugin.py").write_text(PLUGIN)
    out = tmp_path / "runs" / "x"
    p = run_cli("run", "--dataset", "digits", "--attack", "plugin_scaled_mean", "--param", "s=-0.5",
                "--aggregator", "cc", "--tau", "1", "--beta", "0.9", "--epochs", "2", "--k", "6", "--k-m", "1",
                "--seed", "0", "--out", str(out), "--plugin", str(tmp_path / "myplugin.py"), "-q")
    assert p.returncode == 0, p.stderr
    assert "test accuracy" in p.stdout and p.stdout.count("\n") == 1
    saved = byzlab.RunResult.load(out)
    assert saved.config.attack_params == {"s": -0.5}
    assert len(saved.history) == 2


@pytest.mark.parametrize("args, pattern", [
    (["run", "--beta", "1.5"], "beta: must be in [0, 1)"),
    (["run", "--aggregator", "nope"], "aggregator: unknown 'nope'"),
    (["run", "--aggregator", "cc", "--tau", "-1"], "tau: must be > 0"),
    (["run", "--k", "4", "--k-m", "2", "--aggregator", "tm"], "k_m: aggregator 'tm' needs"),
    (["run", "--dataset", "cifar10", "--data-root", "/nonexistent", "--no-download"], "cifar10"),
    (["run", "--param", "oops"], "--param: expected NAME=VALUE"),
    (["run", "--plugin", "no_such_module_xyz"], "plugin: cannot import"),
    (["run", "--epochs", "ten"], "invalid int value"),
])
def test_cli_bad_input_exits_2_with_one_line(args, pattern, tmp_path):
    out = tmp_path / "o"
    p = run_cli(*args, "--out", str(out), "-q")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and pattern in lines[0], p.stderr
    assert not out.exists()  # nothing half-written


def test_cli_list_shows_everything():
    p = run_cli("list", "--json")
    assert p.returncode == 0
    kinds = json.loads(p.stdout)
    for name in ("mean", "cm", "tm", "rfa", "cc", "krum", "multikrum", "bulyan"):
        assert name in kinds["aggregators"]
    for name in ("rop", "rop_s", "alie", "alie_alt", "ipm", "minmax", "minsum", "bit_flip", "label_flip", "none"):
        assert name in kinds["attacks"]
    assert "τ" in kinds["aggregators"]["cc"]
    assert {"bucketing", "nnm"} <= set(kinds["pre_aggregators"])
    assert {"mnist5k", "digits", "mnist", "fmnist", "cifar10", "cifar100"} <= set(kinds["datasets"])
    assert {"cnn", "resnet20", "resnet9"} <= set(kinds["models"])


def test_cli_ctrl_c_keeps_the_state_and_rerun_resumes(tmp_path):
    import signal
    import time

    import pandas as pd

    args = ["run", "--dataset", "digits", "--k", "6", "--k-m", "1", "--epochs", "3000", "--attack", "ipm",
            "--aggregator", "cm", "--seed", "3", "-q"]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = tmp_path / "r"
    p = subprocess.Popen([sys.executable, "-m", "byzlab.cli", *args, "--out", str(out), "--checkpoint-every", "20"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ckpt = tmp_path / ".r.ckpt"
    deadline = time.monotonic() + 180  # the run is in its rounds once it has saved once (any machine load)
    while not ckpt.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ckpt.exists(), "the run saved no checkpoint within 180 s"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "state saved" in err and ckpt.exists() and not out.exists()
    resumed = run_cli(*args, "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    assert not ckpt.exists()
    assert run_cli(*args, "--out", str(tmp_path / "ref")).returncode == 0
    a = pd.read_csv(out / "rounds.csv")
    b = pd.read_csv(tmp_path / "ref" / "rounds.csv")
    pd.testing.assert_frame_equal(a, b)


def test_cli_run_prints_the_no_attack_baseline_computed_once(tmp_path):
    args = ["run", "--dataset", "digits", "--k", "6", "--k-m", "1", "--epochs", "3", "--attack", "ipm",
            "--aggregator", "cm", "--seed", "0", "-q", "--baseline", "--store", str(tmp_path / "store")]
    pattern = r"test accuracy ([0-9.]+)% \(no attack ([0-9.]+)%: ([−+])([0-9.]+) points\) after "
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "computing the no-attack baseline" in first.stderr and first.stdout.count("\n") == 1
    ours, theirs, sign, gap = re.search(pattern, first.stdout).groups()
    base = byzlab.run(dataset="digits", k=6, k_m=1, epochs=3, attack="none", aggregator="cm", seed=0)
    assert float(theirs) == round(float(base.history["test_accuracy"].iloc[-1]), 2)
    assert float(gap) == round(abs(float(ours) - float(theirs)), 1) and (sign == "−") == (float(ours) < float(theirs))
    again = run_cli(*args)  # read from the store, not recomputed
    assert again.returncode == 0 and "computing" not in again.stderr
    assert re.search(pattern, again.stdout).groups() == (ours, theirs, sign, gap)
    plain = run_cli(*args[:-3])  # without --baseline: the summary as before
    assert "no attack" not in plain.stdout


def test_every_run_config_field_is_a_cli_option_with_its_default_in_the_help():
    import dataclasses

    from byzlab.cli import build_parser
    from byzlab.running.options import config_overrides

    given = {"lr_decay": 0.5, "lr_decay_at": 0.25, "weight_decay": 0.001, "root_size": 50, "k": 9,
             "alpha": 0.3, "eval_every": 3, "max_rounds": 7, "agg_f": 1, "norm": "gn"}
    argv = ["run"]
    for name, value in given.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    cfg = RunConfig.make(**config_overrides(build_parser().parse_args(argv + ["--no-diagnostics", "--pre", "nnm"])))
    for name, value in given.items():
        assert getattr(cfg, name) == value and type(getattr(cfg, name)) is type(value), name
    assert cfg.diagnostics is False and cfg.pre_aggregators == ("nnm",)
    rules_and_labels = {"aggregator_params", "attack_params", "pre_aggregator_params", "progress_label"}
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["run"].format_help().split())
    for f in dataclasses.fields(RunConfig):
        if f.name in rules_and_labels:
            continue
        flag = {"b": "--b", "pre_aggregators": "--pre", "diagnostics": "--no-diagnostics",
                "download": "--no-download"}.get(f.name, f"--{f.name.replace('_', '-')}")
        assert flag in help_text, f.name
        if f.default not in (None, (), True, False):
            shown = f"{f.default:g}" if isinstance(f.default, float) else str(f.default)
            assert f"({shown})" in help_text, f.name
