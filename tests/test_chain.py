"""The server's rule chain (byzlab.core.chain): screening of non-finite rows, rule declarations, diagnostics.

References are plain re-implementations (masked means and clipping written out with torch on the
finite rows), the rules' own functions called directly (for the "propagate" policy), and hand counts."""
from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

import byzlab
from byzlab import RunConfig, RunResult, Simulation
from byzlab.core import aggregators as A
from byzlab.core.chain import DIAGNOSTIC_COLUMNS, RuleChain, screen
from byzlab.core.data import load_dataset
from byzlab.core.registry import AGGREGATORS, ATTACKS, PRE_AGGREGATORS, ConfigError, RoundContext, lookup

QUICK = dict(dataset="digits", k=10, k_m=2, b=16, epochs=4, seed=0)
#: kinds of untrusted rows: (name, how a row is spoilt)
KINDS = {
    "nan_entry": lambda r: r.index_fill_(0, torch.tensor([3]), float("nan")),
    "pos_inf_entry": lambda r: r.index_fill_(0, torch.tensor([5]), float("inf")),
    "neg_inf_entry": lambda r: r.index_fill_(0, torch.tensor([0]), float("-inf")),
    "all_nan": lambda r: r.fill_(float("nan")),
    "huge": lambda r: r.fill_(1e30),
    "zero": lambda r: r.zero_(),
}
SCREENED = {"nan_entry", "pos_inf_entry", "neg_inf_entry", "all_nan"}  # in any precision; "huge" in float32


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def ctx_for(k, d, f, dtype, seed=0, center=None):
    return RoundContext(t=2, k=k, k_m=f, f=f, lr=0.1, prev_aggregate=center,
                        center=torch.zeros(d, dtype=dtype) if center is None else center,
                        generator=torch.Generator().manual_seed(seed), server_update=torch.ones(d, dtype=dtype))


def chain_of(agg: str, pre: tuple[str, ...] = (), policy: str = "drop") -> RuleChain:
    a = lookup("aggregator", agg)
    rules = tuple(lookup("pre_aggregator", p) for p in pre)
    return RuleChain(a, a.resolve({}), rules, tuple(r.resolve({}) for r in rules), policy)


def spoilt(k, d, f, dtype, seed):
    """A random (k, d) matrix with up to f rows spoilt by random kinds; the kinds used, by row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(k, d, generator=g, dtype=torch.float64).to(dtype)
    n_bad = 1 + int(torch.randint(0, max(f, 1), (1,), generator=g))
    rows = torch.randperm(k, generator=g)[:n_bad].tolist()
    names = list(KINDS)
    kinds = {}
    for r in rows:
        kind = names[int(torch.randint(0, len(names), (1,), generator=g))]
        KINDS[kind](x[r])
        kinds[r] = kind
    return x, kinds


def expected_bad(kinds, k, dtype):
    bad = torch.zeros(k, dtype=torch.bool)
    for r, kind in kinds.items():
        bad[r] = kind in SCREENED or (kind == "huge" and dtype == torch.float32)
    return bad


# --------------------------------------------------------------------------- the property over every rule
CASES = [(k, f, dtype, seed) for (k, f) in ((7, 1), (12, 2), (25, 5)) for dtype in (torch.float32, torch.float64)
         for seed in range(3)]


@pytest.mark.parametrize("name", sorted(AGGREGATORS))
def test_every_aggregator_stays_finite_with_untrusted_rows(name):
    for k, f, dtype, seed in CASES:
        d = 40
        x, kinds = spoilt(k, d, f, dtype, seed)
        chain = chain_of(name)
        ctx = ctx_for(k, d, f, dtype, seed)
        agg, seen, bad = chain.aggregate(x, ctx, {})
        assert torch.isfinite(agg).all(), (name, k, f, dtype, kinds)
        assert torch.equal(bad, expected_bad(kinds, k, dtype)), (name, kinds)
        assert torch.isfinite(seen).all()
        good = ~bad
        torch.testing.assert_close(seen[good], x[good])  # finite rows untouched
        # the matrix the rule must see, built here: screened rows set to the declared fill
        filled = x.clone()
        fill = x[good].double().mean(0).to(dtype) if chain.fill == "mean" else ctx.center
        filled[bad] = fill
        torch.testing.assert_close(seen, filled, rtol=1e-5, atol=1e-5)
        # ... and the aggregate is the rule itself on that matrix (same RNG state, fresh state dict)
        want = chain.aggregator(filled, chain.params, ctx_for(k, d, f, dtype, seed))
        torch.testing.assert_close(agg, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", sorted(PRE_AGGREGATORS))
def test_every_pre_aggregator_stays_finite_with_untrusted_rows(name):
    for k, f, dtype, seed in CASES:
        x, kinds = spoilt(k, 40, f, dtype, seed)
        for agg in ("mean", "cc", "cm"):
            out, _, _ = chain_of(agg, (name,)).aggregate(x, ctx_for(k, 40, f, dtype, seed), {})
            assert torch.isfinite(out).all(), (name, agg, kinds)


def test_no_finite_row_at_all_gives_the_fill_through_the_rule():
    x = torch.full((7, 5), float("nan"))
    centre = torch.arange(5.0)
    for name in sorted(AGGREGATORS):
        agg, seen, bad = chain_of(name).aggregate(x, ctx_for(7, 5, 1, torch.float32, center=centre), {})
        assert bad.all() and torch.isfinite(agg).all(), name
    # mean: zero (no finite row to average); cc: its centre (a zero displacement)
    assert torch.equal(chain_of("mean").aggregate(x, ctx_for(7, 5, 1, torch.float32), {})[0], torch.zeros(5))
    cc, _, _ = chain_of("cc").aggregate(x, ctx_for(7, 5, 1, torch.float32, center=centre), {})
    assert torch.equal(cc, centre)


def test_mean_and_cc_on_the_finite_rows_by_hand():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(9, 30, generator=g, dtype=torch.float64)
    x[2, 4], x[7] = float("nan"), float("inf")
    good = torch.tensor([i not in (2, 7) for i in range(9)])
    centre = torch.randn(30, generator=g, dtype=torch.float64)
    mean, _, _ = chain_of("mean").aggregate(x, ctx_for(9, 30, 2, torch.float64), {})
    torch.testing.assert_close(mean, x[good].sum(0) / 7)  # exactly the mean of the 7 finite rows
    cc, _, _ = chain_of("cc").aggregate(x, ctx_for(9, 30, 2, torch.float64, center=centre), {})
    diff = x[good] - centre
    scale = torch.clamp(1.0 / diff.norm(dim=1), max=1.0)  # τ = 1 (the default)
    torch.testing.assert_close(cc, centre + (scale[:, None] * diff).sum(0) / 9)  # Eq. 6, screened rows add 0


def test_propagate_is_the_rules_on_the_raw_matrix():
    """The paper's plain behaviour: a NaN entry reaches TM's column and CC's whole vector."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(8, 12, generator=g)
    x[3, 0] = float("nan")
    tm, seen, bad = chain_of("tm", policy="propagate").aggregate(x, ctx_for(8, 12, 2, torch.float32), {})
    assert seen is x and bad is None
    torch.testing.assert_close(tm, A.trimmed_mean(x, 2), equal_nan=True)
    assert math.isnan(tm[0]) and torch.isfinite(tm[1:]).all()
    cc, _, _ = chain_of("cc", policy="propagate").aggregate(x, ctx_for(8, 12, 2, torch.float32), {})
    assert torch.isnan(cc).all()
    drop, _, _ = chain_of("tm").aggregate(x, ctx_for(8, 12, 2, torch.float32), {})
    assert torch.isfinite(drop).all()


@pytest.mark.parametrize("pre", [(), *[(p,) for p in PRE_AGGREGATORS if p in ("bucketing", "nnm", "arc")]])
@pytest.mark.parametrize("agg", [a for a in AGGREGATORS if lookup("aggregator", a).fn.__module__.startswith("byzlab")])
def test_no_rule_modifies_the_matrix_it_is_given(agg, pre):
    """On CPU a round with no screened row hands the rules the momentum matrix itself (no copy), so
    every registered rule, through the chain, must leave it bit for bit as it was."""
    k, d, f = 36, 3000, 2  # after bucketing (buckets of 3) still enough rows for Bulyan
    x = torch.randn(k, d, generator=torch.Generator().manual_seed(5))
    before = x.clone()
    agg_out, seen, bad = chain_of(agg, pre).aggregate(x, ctx_for(k, d, f, torch.float32), {})
    assert seen is x and not bad.any()
    assert torch.equal(x, before)
    assert agg_out.untyped_storage().data_ptr() != x.untyped_storage().data_ptr()


def test_an_aggregate_that_is_a_view_of_the_unscreened_matrix_is_copied():
    """A rule may return a view of its input; with the matrix itself handed over (CPU, nothing
    screened) the aggregate must not change when the matrix is overwritten next round."""
    from byzlab.core.registry import Rule

    first_row = Rule("_first_row", lambda x: x[0], "aggregator", {}, ())
    chain = RuleChain(first_row, {}, (), (), "drop")
    x = torch.randn(5, 40)
    agg, _, _ = chain.aggregate(x, ctx_for(5, 40, 1, torch.float32), {})
    want = x[0].clone()
    x.zero_()
    assert torch.equal(agg, want)


def test_screen_writes_into_the_buffer_and_leaves_the_input_alone():
    x = torch.randn(6, 100000)  # two column blocks on CPU
    x[1, 70000] = float("nan")
    before = x.clone()
    buf = torch.empty_like(x)
    y, bad = screen(x, "mean", None, out=buf)
    assert y is buf
    assert torch.equal(x.isnan(), before.isnan()) and torch.equal(x.nan_to_num(7.0), before.nan_to_num(7.0))
    assert bad.tolist() == [False, True, False, False, False, False]
    torch.testing.assert_close(y[1], x[[0, 2, 3, 4, 5]].mean(0))


def test_the_policy_is_validated_in_one_line():
    with pytest.raises(ConfigError) as e:
        RunConfig.make(**QUICK, non_finite="skip")
    assert str(e.value) == "non_finite: must be one of drop, propagate; got 'skip'"
    assert RunConfig.make(**QUICK).key() == RunConfig.make(**QUICK, non_finite="drop").key()  # keys kept
    assert RunConfig.make(**QUICK).key() != RunConfig.make(**QUICK, non_finite="propagate").key()


# --------------------------------------------------------------------------- the simulator, a plug-in attack
PLUGIN = '''
import torch
import byzlab

@byzlab.register_attack("_untrusted_row", replace=True)
def untrusted_row(benign, k_m, kind: str = "nan_entry"):
    """k_m copies of the benign mean, one of them spoilt."""
    out = benign.mean(0).repeat(k_m, 1)
    if kind == "nan_entry":
        out[0, 0] = float("nan")
    elif kind == "pos_inf_entry":
        out[0, 0] = float("inf")
    else:
        out[0] = float("nan")
    return out
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    path = tmp_path_factory.mktemp("plugin") / "untrusted.py"
    path.write_text(PLUGIN)
    byzlab.load_plugin(str(path))
    yield str(path)
    ATTACKS.pop("_untrusted_row", None)


ROBUST = sorted(set(AGGREGATORS) - {"mean"})


@pytest.mark.parametrize("name", ROBUST)
def test_one_untrusted_client_never_reaches_theta_in_the_simulator(digits, plugin, name):
    for kind in ("nan_entry", "pos_inf_entry", "all_nan"):
        f = {"agg_f": 1} if name == "bulyan" else {}  # Bulyan needs k > 4f + 2
        sim = Simulation(RunConfig.make(**QUICK, aggregator=name, attack="_untrusted_row", kind=kind, max_rounds=4,
                                        **f), dataset=digits)
        sim.advance()
        assert torch.isfinite(sim.theta).all() and not sim.diverged, (name, kind)
        assert sim.round_diag[:4, DIAGNOSTIC_COLUMNS.index("non_finite")].tolist() == [1.0] * 4


@pytest.mark.parametrize("name", ["tm", "cm", "cc", "rfa"])
def test_propagate_reproduces_the_old_divergence(digits, plugin, name):
    res = byzlab.run(RunConfig.make(**QUICK, aggregator=name, attack="_untrusted_row", kind="nan_entry",
                                    max_rounds=8, eval_every=4, non_finite="propagate"), dataset=digits)
    assert res.diverged


def test_mean_survives_too_and_the_count_reaches_the_results(digits, plugin, tmp_path):
    res = byzlab.run(RunConfig.make(**QUICK, aggregator="mean", attack="_untrusted_row", kind="all_nan",
                                    max_rounds=8, eval_every=4), dataset=digits)
    assert not res.diverged
    assert res.rounds["non_finite"].tolist() == [1.0] * 8 and res.history["non_finite"].tolist() == [1.0, 1.0]
    folder = res.save(tmp_path / "r")
    assert RunResult.load(folder).rounds["non_finite"].tolist() == [1.0] * 8


def test_a_result_stored_before_the_column_reads_it_as_nan(digits, tmp_path):
    res = byzlab.run(RunConfig.make(**QUICK, attack="none", max_rounds=4), dataset=digits)
    folder = res.save(tmp_path / "old")
    for name in ("history.csv", "rounds.csv"):
        p = folder / name
        pd.read_csv(p).drop(columns="non_finite").to_csv(p, index=False)
    back = RunResult.load(folder)
    assert list(back.history.columns) == list(res.history.columns)
    assert back.history["non_finite"].isna().all() and back.rounds["non_finite"].isna().all()


def test_an_adaptive_attack_queries_the_same_screened_chain(digits):
    """The trial aggregate of an adaptive attack is the server's chain, screening included."""
    sim = Simulation(RunConfig.make(**QUICK, aggregator="tm", attack="alie", max_rounds=2), dataset=digits)
    sim.advance(1)
    ctx = sim.context(2, 0.1)
    x = sim.X.clone()
    x[-1, 0] = float("nan")
    trial = sim.chain.trial(ctx, sim.rule_state)(x)
    good = torch.ones(sim.k, dtype=torch.bool)
    good[-1] = False
    filled = x.clone()
    filled[-1] = x[good].mean(0)
    torch.testing.assert_close(trial, A.trimmed_mean(filled, sim.config.f))


# --------------------------------------------------------------------------- what rules declare
def test_a_plugin_cc_like_rule_gets_the_clip_fraction(digits):
    @byzlab.register_aggregator("_my_clip", clip_radius="radius", non_finite_fill="center", replace=True)
    def my_clip(x, center, radius: float = 0.05):
        return A.centered_clip(x, center, radius)

    try:
        sim = Simulation(RunConfig.make(**QUICK, aggregator="_my_clip", attack="alie", max_rounds=2), dataset=digits)
        sim.advance()
        clip = sim.round_diag[:2, DIAGNOSTIC_COLUMNS.index("clip_fraction")]
        assert torch.isfinite(clip).all() and 0 < float(clip.max()) <= 1
        plain = Simulation(RunConfig.make(**QUICK, aggregator="mean", attack="alie", max_rounds=2), dataset=digits)
        plain.advance()
        assert torch.isnan(plain.round_diag[:2, DIAGNOSTIC_COLUMNS.index("clip_fraction")]).all()
    finally:
        AGGREGATORS.pop("_my_clip", None)
    with pytest.raises(TypeError, match="clip_radius 'tau' is not one of its parameters"):
        byzlab.register_aggregator("_bad_clip", clip_radius="tau")(lambda x: x.mean(0))


def test_a_plugin_pre_aggregator_declares_its_rows_for_validation():
    @byzlab.register_pre_aggregator("_halve", rows=lambda k, p: k // 2, replace=True)
    def halve(x):
        return 0.5 * (x[0::2][: x.shape[0] // 2] + x[1::2][: x.shape[0] // 2])

    try:
        RunConfig.make(**QUICK, aggregator="tm", pre_aggregators=["_halve"])  # 10 -> 5 rows > 2*2
        with pytest.raises(ConfigError) as e:
            RunConfig.make(**{**QUICK, "k": 8}, aggregator="tm", pre_aggregators=["_halve"])  # 8 -> 4 rows
        assert "k=4 inputs" in str(e.value)
        # bucketing declares ⌈k/s⌉: 10 clients in buckets of 3 -> 4 rows, not > 2*2
        with pytest.raises(ConfigError, match="k=4 inputs"):
            RunConfig.make(**QUICK, aggregator="tm", pre_aggregators=["bucketing"],
                           pre_aggregator_params={"bucketing": {"s": 3}})
    finally:
        PRE_AGGREGATORS.pop("_halve", None)


def test_a_parameter_of_the_wrong_type_is_named_with_its_type():
    with pytest.raises(ConfigError) as e:
        RunConfig.make(**QUICK, aggregator="cc", tau="1.0")
    assert str(e.value) == "tau: must be > 0, got str '1.0'"


# --------------------------------------------------------------------------- garbage as an attack
@pytest.mark.parametrize("attack", ["nan", "inf", "huge"])
def test_the_garbage_attacks_are_screened_and_counted(digits, attack):
    for name in ("cm", "tm", "cc", "krum"):
        sim = Simulation(RunConfig.make(**QUICK, aggregator=name, attack=attack, max_rounds=3), dataset=digits)
        sim.advance()
        assert torch.isfinite(sim.theta).all(), (attack, name)
        assert sim.round_diag[:3, DIAGNOSTIC_COLUMNS.index("non_finite")].tolist() == [2.0] * 3  # both k_m rows
    # the paper's plain server: a NaN or ±inf entry makes CC's vector non-finite; CC clips a finite
    # huge row to nothing (its distance is inf, its weight τ/inf = 0), the mean does not
    agg = "mean" if attack == "huge" else "cc"
    old = byzlab.run(RunConfig.make(**QUICK, aggregator=agg, attack=attack, max_rounds=4, eval_every=2,
                                    non_finite="propagate"), dataset=digits)
    assert old.diverged


def test_the_garbage_vectors_by_hand():
    from byzlab.core import attacks_garbage as G

    benign = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 5.0]])
    assert torch.equal(G.nan_entry(benign).isnan(), torch.tensor([True, False, False]))
    assert G.nan_entry(benign)[1:].tolist() == [3.0, 4.0]
    assert G.inf_entries(benign).tolist() == [float("inf"), float("-inf"), 4.0]
    assert G.huge(benign, scale=10.0).tolist() == [-20.0, -30.0, -40.0]
    assert not torch.isfinite(G.huge(benign).square().sum())  # 1e30: the squared norm overflows float32
