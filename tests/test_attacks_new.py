"""Mimic, Fang and the adaptive-strength attacks (byzlab.core.attacks_adaptive).

Mimic against ByzFL: ByzFL's ``Mimic(epsilon)`` always copies the benign vector
of index ``epsilon``; it has no target-selection heuristic.  So the two are
compared where the definitions coincide, byzlab's ``target=`` mode, and the
heuristic (direction of largest benign variance, after the authors' reference
implementation) is checked on inputs where its choice is known by hand.

ByzFL's Opt-ALIE / Opt-IPM search the scale by an expansion/contraction line
search from 0 against a fixed aggregator object; byzlab searches a fixed grid
through the run's configured rule, so the chosen scales are not expected to
coincide and are checked here against a brute-force search over the same grid.
"""
import math

import numpy as np
import pytest
import torch

import byzlab
from byzlab.core import aggregators as A
from byzlab.core import attacks as T
from byzlab.core import attacks_adaptive as AA
from byzlab.core.registry import AGGREGATORS, ATTACKS, ConfigError, register_aggregator


@pytest.fixture
def benign():
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 40, generator=g, dtype=torch.float64) + 0.3


# --------------------------------------------------------------------------- Mimic
def test_mimic_fixed_target_copies_that_row_as_byzfl(benign):
    from byzfl import Mimic

    for i in (0, 7, 19):
        out = AA.mimic(benign, {}, None, target=i)
        assert torch.equal(out, benign[i])
        assert np.array_equal(out.numpy(), Mimic(i)(benign.numpy()))
    before = benign.clone()
    out = AA.mimic(benign, {}, None, target=3)
    out += 1.0  # a copy, not a view of the benign matrix
    assert torch.equal(benign, before)
    with pytest.raises(ConfigError, match="target"):
        AA.mimic(benign, {}, None, target=20)


def test_mimic_heuristic_picks_the_extreme_client_along_the_variance_direction():
    # All spread is along coordinate 0: x_i - mu = (a_i - mean(a)) e_0, so one power step
    # from z0 gives z = sign(z0[0]) e_0 and i* = argmax_i sign(z0[0]) a_i.
    a = torch.tensor([0.3, -1.0, 2.5, 0.7, -2.0], dtype=torch.float64)
    x = torch.stack([a, torch.full_like(a, 0.4), torch.full_like(a, -0.1)], dim=1)  # (5, 3)
    for seed in range(4):
        z0 = torch.randn(3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        sign = 1.0 if z0[0] > 0 else -1.0
        expected = 2 if sign > 0 else 4  # argmax a = 2.5 (client 2), argmin a = -2.0 (client 4)
        state = {}
        out = AA.mimic(x, state, torch.Generator().manual_seed(seed), warmup=1)
        assert int(state["target"]) == expected
        assert torch.equal(out, x[expected])
        assert torch.allclose(state["z"], torch.tensor([sign, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
        assert torch.allclose(state["mu"], x.mean(0))
        # after the warm-up the target is frozen, whatever the new vectors are
        y = x.flip(0) * 3.0
        out2 = AA.mimic(y, state, torch.Generator().manual_seed(99), warmup=1)
        assert torch.equal(out2, y[expected]) and state["rounds"] == 1


def test_mimic_warmup_tracks_the_direction_over_rounds():
    # Round 1 spreads along e_0, round 2 along e_1 with a larger spread.  With warmup = 2:
    # mu_2 = (mu_1 + mean_2)/2, z_2 = (z_1 + c/|c|)/2 normalised, c = sum <x_i - mu_2, z_1>(x_i - mu_2).
    x1 = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    x2 = torch.tensor([[0.5, 3.0], [0.5, -3.0], [0.5, 0.0]], dtype=torch.float64)
    state, gen = {}, torch.Generator().manual_seed(1)
    z0 = torch.randn(2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    AA.mimic(x1, state, gen, warmup=2)
    z1 = torch.tensor([1.0 if z0[0] > 0 else -1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(state["z"], z1)
    AA.mimic(x2, state, gen, warmup=2)
    mu2 = (x1.mean(0) + x2.mean(0)) / 2
    dev = x2 - mu2
    c = ((dev @ z1)[:, None] * dev).sum(0)
    z2 = (z1 + c / c.norm()) / 2
    z2 = z2 / z2.norm()
    assert torch.allclose(state["mu"], mu2) and torch.allclose(state["z"], z2)
    assert int(state["target"]) == int(torch.argmax(x2 @ z2)) and state["rounds"] == 2
    AA.mimic(x1, state, gen, warmup=2)  # third round: nothing more is tracked
    assert state["rounds"] == 2 and torch.allclose(state["z"], z2)


# --------------------------------------------------------------------------- Fang
def test_fang_hand_computed_ranges():
    # columns: mean  2 (s=+, w_min= 1 > 0)  -> [w_min/b, w_min] = [0.5, 1]
    #          mean -2 (s=-, w_max=-1 < 0)  -> [w_max, w_max/b] = [-1, -0.5]
    #          mean  2 (s=+, w_min=-1 < 0)  -> [b w_min, w_min] = [-2, -1]
    #          mean -2 (s=-, w_max= 1 > 0)  -> [w_max, b w_max] = [1, 2]
    #          mean  0 (s=0)                -> 0
    x = torch.tensor([[1.0, -2.0, -1.0, 1.0, 0.5],
                      [2.0, -1.0, 2.0, -2.0, -0.5],
                      [3.0, -3.0, 5.0, -5.0, 0.0]], dtype=torch.float64)
    lo = torch.tensor([0.5, -1.0, -2.0, 1.0, 0.0], dtype=torch.float64)
    hi = torch.tensor([1.0, -0.5, -1.0, 2.0, 0.0], dtype=torch.float64)
    out = AA.fang(x, 200, 2.0, torch.Generator().manual_seed(0))
    assert out.shape == (200, 5)
    assert ((out >= lo) & (out <= hi)).all()
    assert (out[:, :4].std(0) > 0.05).all()  # random inside the range, one draw per client and coordinate
    # b = 1: exactly the benign extreme on the side opposite to s_j
    exact = AA.fang(x, 3, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(exact, torch.tensor([[1.0, -1.0, -1.0, 1.0, 0.0]] * 3, dtype=torch.float64))
    # the draws come from the generator: same seed, same vectors
    again = AA.fang(x, 200, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


@pytest.mark.parametrize("rule", ["cm", "tm"])
def test_fang_drags_coordinatewise_rules_against_the_benign_direction(benign, rule):
    k_m = 5
    byz = AA.fang(benign, k_m, 2.0, torch.Generator().manual_seed(1))
    s = torch.sign(benign.mean(0))
    attacked = torch.cat([benign, byz])
    if rule == "cm":
        moved = A.median(attacked) - A.median(benign)
    else:
        moved = A.trimmed_mean(attacked, k_m) - A.trimmed_mean(benign, k_m)
    assert (s * moved < 0).all()  # every coordinate moves against s_j


# --------------------------------------------------------------------------- adaptive strength
def _plain(name, benign, s, prev=None):
    if name == "alie":
        return T.alie(benign, s)
    if name == "ipm":
        return T.ipm(benign, s)
    return T.rop(benign, prev, z=s)


def _call_adaptive(name, benign, k_m, agg, state, prev=None, **kw):
    if name == "alie":
        return AA.alie_adaptive(benign, benign.shape[0] + k_m, k_m, agg, state, **kw)
    if name == "ipm":
        return AA.ipm_adaptive(benign, k_m, agg, state, **kw)
    return AA.rop_adaptive(benign, k_m, prev, agg, state, **kw)


_REF = {"alie": T.alie_z_max(25, 5), "ipm": 0.2, "rop": 1.0}
_RANGE = {"alie": (0.1, 10.0), "ipm": (0.1, 100.0), "rop": (0.1, 100.0)}


def _damage_of(agg, benign, v, k_m, objective):
    x = torch.cat([benign, v.expand(k_m, -1)])
    return float(AA.damage(agg(x), benign.mean(0), objective))


@pytest.mark.parametrize("objective", ["distance", "alignment"])
@pytest.mark.parametrize("aggname", ["mean", "cc", "tm"])
@pytest.mark.parametrize("name", ["alie", "ipm", "rop"])
def test_adaptive_choice_is_the_brute_force_best_grid_point(benign, name, aggname, objective):
    k_m = 5
    prev = benign.mean(0) * 0.8 + 0.05
    centre = prev.clone()
    agg = {"mean": A.mean,
           "cc": lambda x: A.centered_clip(x, centre, tau=0.5),
           "tm": lambda x: A.trimmed_mean(x, k_m)}[aggname]
    state = {}
    v = _call_adaptive(name, benign, k_m, agg, state, prev=prev, objective=objective)

    lo, hi = _RANGE[name]
    grid = [_REF[name]] + AA.log_grid(lo, hi, 8)
    values = [_damage_of(agg, benign, _plain(name, benign, s, prev), k_m, objective) for s in grid]
    best = int(np.argmax(values))
    assert float(state["scale"]) == pytest.approx(grid[best], rel=1e-12)
    assert float(state["damage"]) == pytest.approx(values[best], rel=1e-9, abs=1e-12)
    # the vector sent is the plain attack at the chosen scale ...
    assert torch.allclose(v, _plain(name, benign, grid[best], prev), rtol=1e-12, atol=1e-12)
    # ... and does at least the plain (fixed-scale) attack's damage
    plain = _damage_of(agg, benign, _plain(name, benign, _REF[name], prev), k_m, objective)
    assert _damage_of(agg, benign, v, k_m, objective) >= plain - 1e-12


def test_adaptive_ipm_against_the_mean_takes_the_largest_eps(benign):
    # AGG = mean: AGG - mean_b = k_m/k (-eps - 1) mean_b, so the distance grows with eps
    state = {}
    AA.ipm_adaptive(benign, 5, A.mean, state)
    assert float(state["scale"]) == pytest.approx(100.0)
    assert float(state["damage"]) == pytest.approx(5 / 25 * 101 * float(benign.mean(0).norm()), rel=1e-12)


def test_golden_section_refinement_never_worse_and_within_bounds(benign):
    prev = benign.mean(0)
    agg = lambda x: A.centered_clip(x, prev, tau=0.5)  # noqa: E731
    calls = []

    def counting(x):
        calls.append(1)
        return agg(x)

    s0, s1 = {}, {}
    AA.rop_adaptive(benign, 5, prev, agg, s0, objective="alignment")
    AA.rop_adaptive(benign, 5, prev, counting, s1, objective="alignment", refine=6)
    assert len(calls) == 9 + 6  # the plain z, 8 grid points, 6 golden-section steps
    assert float(s1["damage"]) >= float(s0["damage"])
    assert 0.1 <= float(s1["scale"]) <= 100.0


def test_adaptive_needs_the_aggregate_context_and_checks_parameters(benign):
    with pytest.raises(ValueError, match="aggregate"):
        AA.alie_adaptive(benign, 25, 5, None, {})
    with pytest.raises(ConfigError, match="objective"):
        ATTACKS["rop_adaptive"].resolve({"objective": "loss"})
    with pytest.raises(ConfigError, match="n_candidates"):
        ATTACKS["alie_adaptive"].resolve({"n_candidates": 0})
    with pytest.raises(ConfigError, match="refine"):
        ATTACKS["ipm_adaptive"].resolve({"refine": -1})
    with pytest.raises(ConfigError, match="b"):
        ATTACKS["fang"].resolve({"b": 0.5})
    with pytest.raises(ConfigError, match="target"):
        ATTACKS["mimic"].resolve({"target": -1})


# --------------------------------------------------------------------------- end to end
def test_alie_adaptive_runs_end_to_end_against_cc():
    res = byzlab.run(dataset="digits", attack="alie_adaptive", aggregator="cc", k=10, k_m=2, epochs=1, max_rounds=3)
    assert len(res.rounds) == 3 and math.isfinite(res.final_accuracy)


@pytest.mark.parametrize("attack, aggregator", [("fang", "tm"), ("mimic", "cm")])
def test_fang_and_mimic_run_end_to_end(attack, aggregator):
    res = byzlab.run(dataset="digits", attack=attack, aggregator=aggregator, k=10, k_m=2, epochs=1, max_rounds=2)
    assert len(res.rounds) == 2 and math.isfinite(res.final_accuracy)


def test_search_leaves_the_rule_state_and_rng_alone():
    """The search calls the server's rule on copies: one real call per round, RNG and state untouched."""
    from byzlab.core.simulator import Simulation

    total = []

    def recording_cc(x, center, state, generator, tau=1.0):
        total.append(1)
        state["calls"] = state.get("calls", 0) + 1
        state["draw"] = torch.rand(1, generator=generator, device=x.device)  # consumes the run's RNG
        return A.centered_clip(x, center, tau)

    register_aggregator("_recording_cc_test")(recording_cc)
    try:
        sims = {}
        for attack in ("alie", "alie_adaptive"):
            total.clear()
            sim = Simulation(dataset="digits", attack=attack, aggregator="_recording_cc_test",
                             k=10, k_m=2, epochs=1, max_rounds=3)
            for _ in range(3):
                sim.step()
            sims[attack] = (sim, len(total))
        sim, n_calls = sims["alie_adaptive"]
        plain, n_plain = sims["alie"]
        assert sim.rule_state["aggregator"]["calls"] == 3  # exactly one real aggregation per round
        assert n_plain == 3 and n_calls == 3 * (1 + 9)  # + the plain z and 8 grid points per round
        assert torch.equal(sim.generator.get_state(), plain.generator.get_state())
        assert torch.equal(sim.rule_state["aggregator"]["draw"], plain.rule_state["aggregator"]["draw"])
        # the trial predicted the server's real aggregate of the last round exactly
        got = AA.damage(sim.prev_aggregate, sim.X[: sim.k_b].mean(0), "distance")
        assert torch.equal(got, sim.rule_state["attack"]["damage"])
    finally:
        del AGGREGATORS["_recording_cc_test"]
