r"""byzlab's Simulation against an independent per-client reference (``benchmarks/naive.py``).

The reference re-implements Algorithm 1 plainly: one deep-copied model per
benign client with its own BatchNorm running statistics and its own momentum
m_{i,t} = (1 − β) g_{i,t} + β m_{i,t−1} (Eq. 7), the batch-sampling
specification of the simulator (same draws from a seeded ``torch.Generator``),
the attacks ROP (Algorithm 3), ALIE (Eqs. 2–4, unbiased std) and IPM (−ε m̄_t),
and the aggregators CC (Eq. 6, centre m̃_{t−1}, zeros at t = 1), TM (sort,
drop f per side) and RFA (smoothed Weiszfeld from 0) in textbook form.  It
shares with byzlab only the ``Dataset`` container, ``partition`` and the model
builder.

For both gradient engines (``loop``, ``vmap``), a BatchNorm and a GroupNorm
ResNet-20, and the pairs ROP+CC, ALIE+TM, IPM+RFA, every round of a 4-round run
(two epochs: a reshuffle at round 3, a learning-rate decay from round 3 on,
augmentation with a per-channel pad value) must give the same m̃_t, θ_t and
server BatchNorm statistics.

Precision: everything runs in float64 (the default dtype is set for each test
and restored after).  The two implementations add in different orders (blocked
kernels, ``lerp`` for Eq. 7, a comparator network for TM, batched calls), which
in float64 leaves differences of ~1e-14 relative.  The ``vmap`` engine, however,
evaluates the loss on float32 logits (``out.float()`` in
``byzlab.core.simulator.client_grad_fn``), so its gradients carry float32 rounding
(up to ~8e-8 relative here, measured) even in a float64 run.  Hence a tolerance per engine,
``RTOL = {"loop": 1e-10, "vmap": 1e-6}``, about 10^4 and 13 times the largest measured
error, *relative to the size of what is compared*:

* ‖θ_t^sim − θ_t^ref‖_∞ ≤ RTOL · ‖θ_t^ref − θ_0‖_∞ (relative to the distance
  travelled, not to θ, so that a wrong update cannot hide behind ‖θ‖);
* ‖m̃_t^sim − m̃_t^ref‖_∞ ≤ RTOL · ‖m̃_t^ref‖_∞, and the same for every
  floating-point server buffer (BatchNorm running mean and variance);
  ``num_batches_tracked`` exactly.

Any modelling difference (β, a biased std, another trim count, a centre other
than m̃_{t−1}, another batch) is orders of magnitude above it.  (In float32 the
same comparison shows differences up to ~2e-4, mostly from RFA's weights, which
would leave far less room.)
"""
from __future__ import annotations

import functools
import importlib.util
import math
from pathlib import Path

import pytest
import torch

from byzlab import Simulation
from byzlab.core.data import Dataset
from byzlab.core.models import build_model

_spec = importlib.util.spec_from_file_location(
    "byzlab_naive_reference", Path(__file__).resolve().parents[1] / "benchmarks" / "naive.py")
naive = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(naive)

RTOL = {"loop": 1e-10, "vmap": 1e-6, "fused": 1e-10}  # see the module docstring
DTYPE = torch.float64
SEED = 0
# k = 7 clients, k_m = 2 Byzantine; 60 training images give shards of 9, 9, 9, 9, 8 (benign) and
# ⌊⌊60/7⌋/4⌋ = 2 rounds per epoch; 2 epochs = 4 rounds, η = 0.1 then 0.05 from epoch ⌊0.75·2⌋ = 1.
RUN = dict(k=7, k_m=2, b=4, epochs=2, lr=0.1, lr_decay=0.5, lr_decay_at=0.75, beta=0.9)
N_TRAIN, SHAPE, CLASSES = 60, (3, 8, 8), 10
PAIRS = {  # attack, aggregator and their parameters (as the simulator and the reference spell them)
    "rop+cc": (dict(attack="rop", aggregator="cc", z=3.0, lam=0.9, tau=2.5),
               dict(attack="rop", aggregator="cc", z=3.0, lam=0.9, tau=2.5)),
    "alie+tm": (dict(attack="alie", aggregator="tm"),
                dict(attack="alie", aggregator="tm")),
    "ipm+rfa": (dict(attack="ipm", aggregator="rfa", eps=0.2, iters=3, nu=0.1),
                dict(attack="ipm", aggregator="rfa", eps=0.2, rfa_iters=3, nu=0.1)),
}


@pytest.fixture(autouse=True)
def float64():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def _dataset() -> Dataset:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N_TRAIN, *SHAPE, generator=g, dtype=DTYPE)
    y = torch.randint(0, CLASSES, (N_TRAIN,), generator=g)
    xt = torch.randn(8, *SHAPE, generator=g, dtype=DTYPE)
    yt = torch.randint(0, CLASSES, (8,), generator=g)
    return Dataset("tiny-cifar", x, y, xt, yt, CLASSES, augment=True, default_model="resnet20",
                   pad_value=(-1.5, -0.5, 2.0))


def _initial_model(norm: str) -> torch.nn.Module:
    """θ_0 as the simulator draws it: the model built under ``torch.manual_seed(seed)``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return build_model("resnet20", CLASSES, SHAPE, norm=norm)


@functools.lru_cache(maxsize=None)
def _reference(norm: str, pair: str) -> dict:
    """The reference run: θ_0, then per round θ_t, m̃_t, the server buffers and CC's clip counts."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(DTYPE)
    try:
        ref = naive.PerClientLoop(_initial_model(norm), _dataset(), seed=SEED, **RUN, **PAIRS[pair][1])
        out = {"theta0": ref.theta.clone(), "theta": [], "agg": [], "buffers": []}
        for _ in range(RUN["epochs"] * ref.rounds_per_epoch):
            ref.step()
            out["theta"].append(ref.theta.clone())
            out["agg"].append(ref.prev.clone())
            out["buffers"].append({n: b.clone() for n, b in ref.server.named_buffers()})
        out["clipped"] = [int(c) for c in ref.clipped]
        return out
    finally:
        torch.set_default_dtype(previous)


def _rel_err(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> float:
    return float((a - b).abs().max() / scale.abs().max())


@pytest.mark.parametrize("engine", ["loop", "vmap", "fused"])
@pytest.mark.parametrize("norm", ["bn", "gn"])
@pytest.mark.parametrize("pair", list(PAIRS))
def test_simulation_matches_per_client_reference(pair, norm, engine):
    ref, tol = _reference(norm, pair), RTOL[engine]
    sim = Simulation(dataset=_dataset(), model="resnet20", norm=norm, seed=SEED, device="cpu", engine=engine,
                     **RUN, **PAIRS[pair][0])
    assert sim.engine_name == engine and sim.theta.dtype == DTYPE
    assert sim.total_rounds == len(ref["theta"]) == 4
    assert torch.equal(sim.theta, ref["theta0"])  # same θ_0: what follows is Algorithm 1 alone

    for t in range(sim.total_rounds):
        sim.step()
        theta, agg = ref["theta"][t], ref["agg"][t]
        err_agg = _rel_err(sim.prev_aggregate, agg, agg)
        err_theta = _rel_err(sim.theta, theta, theta - ref["theta0"])
        assert err_agg <= tol, f"round {t + 1}: aggregate m̃_t off by {err_agg:.2e} (relative)"
        assert err_theta <= tol, f"round {t + 1}: θ_t off by {err_theta:.2e} of the distance travelled"
        bufs = dict(sim.model.named_buffers())
        assert bufs.keys() == ref["buffers"][t].keys()
        for name, want in ref["buffers"][t].items():
            if want.is_floating_point():  # BatchNorm running mean / variance: mean over benign clients
                err = _rel_err(bufs[name], want, want)
                assert err <= tol, f"round {t + 1}: server buffer {name} off by {err:.2e} (relative)"
            else:
                assert torch.equal(bufs[name], want), f"round {t + 1}: {name}"
        assert math.isfinite(float(sim.round_loss[t]))

    if pair == "rop+cc":  # both branches of CC's min{1, τ/‖m_i − m̃_{t−1}‖} are exercised
        clipped = ref["clipped"]
        assert sum(clipped) > 0 and any(c < RUN["k"] for c in clipped), clipped
