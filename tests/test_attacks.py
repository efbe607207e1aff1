"""Attacks against the paper's equations and their invariants."""
import math

import pytest
import torch

from byzlab.core import attacks as T
from byzlab.core.aggregators import centered_clip


@pytest.fixture
def benign():
    g = torch.Generator().manual_seed(0)
    return torch.randn(20, 50, generator=g, dtype=torch.float64) + 0.3


def test_z_max_of_the_paper():
    assert T.alie_z_max(25, 5) == pytest.approx(0.2533, abs=1e-4)
    # s = floor(k/2 + 1) - k_m ; z = Phi^-1((k - k_m - s)/(k - k_m))
    from scipy.stats import norm
    k, km = 50, 10
    s = math.floor(k / 2 + 1) - km
    assert T.alie_z_max(k, km) == pytest.approx(norm.ppf((k - km - s) / (k - km)))
    with pytest.raises(ValueError, match="k_m"):
        T.alie_z_max(5, 5)


def test_alie_is_mean_minus_z_unbiased_std(benign):
    z = 0.7
    m, s = benign.mean(0), benign.std(0, unbiased=True)
    assert torch.allclose(T.alie(benign, z), m - z * s)
    # unbiased: differs from the population std
    assert not torch.allclose(T.alie(benign, z), m - z * benign.std(0, unbiased=False))


def test_alie_alternating_sign(benign):
    z = 0.5
    even, odd = T.alie_alternating(benign, z, 2), T.alie_alternating(benign, z, 3)
    m = benign.mean(0)
    assert torch.allclose(even, T.alie(benign, z))
    assert torch.allclose(odd - m, -(even - m))  # Eq. 19


def test_ipm(benign):
    assert torch.allclose(T.ipm(benign, 0.2), -0.2 * benign.mean(0))


@pytest.mark.parametrize("lam", [0.0, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("z", [1.0, 10.0, 100.0])
def test_rop_orthogonal_with_norm_z(benign, lam, z):
    prev = torch.randn(50, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    out = T.rop(benign, prev, z=z, lam=lam)
    delta = out - prev  # relocated to m̃_{t-1}
    assert delta.norm().item() == pytest.approx(z, rel=1e-9)
    ref = lam * prev + (1 - lam) * benign.mean(0)
    assert abs(torch.dot(delta, ref).item()) / (delta.norm() * ref.norm()).item() < 1e-9
    # the direction is the normalised 1 - Proj(1, ref)
    p = torch.ones(50, dtype=torch.float64)
    p = p - (p @ ref) / (ref @ ref) * ref
    assert torch.allclose(delta, z * p / p.norm())


def test_rop_first_round_uses_benign_mean(benign):
    out = T.rop(benign, None, z=1.0, lam=0.9)
    m = benign.mean(0)
    assert (out - m).norm().item() == pytest.approx(1.0)
    assert abs(torch.dot(out - m, m).item()) < 1e-9
    zero = T.rop(benign, None, z=1.0, first_round="zero")  # the authors' library
    assert zero.norm().item() == pytest.approx(1.0)


def test_rop_library_options(benign):
    prev = benign.mean(0) * 0.5
    paper = T.rop(benign, prev)
    lib = T.rop(benign, prev, angle=270.0)
    assert torch.allclose(lib - prev, -(paper - prev), atol=1e-12)
    half = T.rop(benign, prev, pi=0.0)
    assert torch.allclose(half - benign.mean(0), paper - prev)


def test_rop_does_not_modify_inputs(benign):
    prev = benign[0].clone()
    b0, p0 = benign.clone(), prev.clone()
    T.rop(benign, prev)
    assert torch.equal(benign, b0) and torch.equal(prev, p0)


def test_rop_s_concentrates_on_mask(benign):
    prev = benign.mean(0)
    mask = torch.zeros(50, dtype=torch.bool)
    mask[:5] = True
    out = T.rop_s(benign, prev, mask, z=1.0)
    assert torch.equal(out[~mask], prev[~mask])  # m̃_{t-1} elsewhere (Eq. 20)
    dense = T.rop(benign, prev, z=1.0) - prev
    assert torch.allclose(out[mask] - prev[mask], 10.0 * dense[mask])  # scaled by d/||mask||_1 = 10


def test_minmax_and_minsum_constraints(benign):
    for dev in ("unit_vec", "std", "sign"):
        mm = T.minmax(benign, dev_type=dev)
        dists = (benign - mm).norm(dim=1)
        max_pair = torch.cdist(benign, benign).max()
        assert dists.max().item() == pytest.approx(max_pair.item(), rel=1e-6)  # tight: γ is maximal
        ms = T.minsum(benign, dev_type=dev)
        lhs = ((benign - ms) ** 2).sum()
        rhs = (torch.cdist(benign, benign) ** 2).sum(1).max()
        assert lhs.item() == pytest.approx(rhs.item(), rel=1e-6)


def test_bit_flip_and_label_flip():
    byz = torch.randn(3, 4)
    assert torch.equal(T.bit_flip(byz, byz), -byz)
    assert torch.equal(T.label_flip(byz, byz), byz)


def test_blocked_statistics_equal_the_plain_formulas(benign, monkeypatch):
    from byzlab.core import kernels

    monkeypatch.setattr(kernels, "CPU_BLOCK", 7)  # several column blocks, the last one partial
    assert torch.allclose(T.alie(benign, 0.4), benign.mean(0) - 0.4 * benign.std(0, unbiased=True))
    assert torch.allclose(T.alie_alternating(benign, 0.4, 3), benign.mean(0) + 0.4 * benign.std(0, unbiased=True))
    m = benign.mean(0)
    p = -m / m.norm()
    mm = T.minmax(benign)  # γ from the exact quadratics: max_i ‖m_byz − m_i‖ equals the largest pairwise distance
    assert (benign - mm).norm(dim=1).max().item() == pytest.approx(torch.cdist(benign, benign).max().item(), rel=1e-9)
    assert torch.allclose((mm - m) / (mm - m).norm(), p)


def test_cc_clips_every_rop_z_at_or_above_tau_to_the_same_point(benign):
    """ROP puts its vector at distance z from m̃_{t-1}, CC's centre; one CC iteration moves each row
    to centre + min(1, τ/‖x_i − centre‖)(x_i − centre) (Eq. 6), so a Byzantine row at z ≥ τ lands at
    centre + τ p̂ whatever z is — by hand: the aggregate is the mean of the clipped benign rows and
    k_m copies of that point, the same for z = τ, 2τ and 50τ; below τ, z moves it."""
    torch.manual_seed(3)
    prev = torch.randn(benign.shape[1], dtype=benign.dtype)
    tau, k_m = 0.7, 3

    def aggregate(z):
        byz = T.rop(benign, prev, z=z, lam=0.9)
        x = torch.cat([benign, byz.expand(k_m, -1)])
        return centered_clip(x, prev, tau=tau)

    r = 0.9 * prev + 0.1 * benign.mean(0)  # Algorithm 3, lines 1-6, written out
    p = torch.ones_like(r) - (r.sum() / r.dot(r)) * r
    p_hat = p / p.norm()
    d = benign - prev
    clipped = prev + d * (tau / d.norm(dim=1, keepdim=True)).clamp(max=1.0)
    by_hand = (clipped.sum(0) + k_m * (prev + tau * p_hat)) / (benign.shape[0] + k_m)
    for z in (tau, 2 * tau, 50 * tau):
        torch.testing.assert_close(aggregate(z), by_hand, rtol=1e-10, atol=1e-12)
    assert (aggregate(0.5 * tau) - by_hand).norm() > 1e-3
