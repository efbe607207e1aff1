"""Aggregators against hand-computed values and invariants."""
import logging

import pytest
import torch

from byzlab.core import aggregators as A
from byzlab.core import kernels
from byzlab.core.errors import ConfigError


@pytest.fixture
def x():
    g = torch.Generator().manual_seed(0)
    return torch.randn(9, 13, generator=g, dtype=torch.float64)


def test_mean_and_median_by_hand():
    x = torch.tensor([[1.0, 10.0], [2.0, -5.0], [9.0, 0.0]])
    assert torch.equal(A.mean(x), torch.tensor([4.0, 5.0 / 3]))
    assert torch.equal(A.median(x), torch.tensor([2.0, 0.0]))
    x4 = torch.tensor([[1.0], [2.0], [4.0], [100.0]])
    assert A.median(x4).item() == 3.0  # average of the two middle values, not the lower one


def test_trimmed_mean_by_hand():
    x = torch.tensor([[1.0, -100.0], [2.0, 0.0], [3.0, 1.0], [4.0, 2.0], [1000.0, 3.0]])
    # b=1 drops min and max per coordinate
    assert torch.allclose(A.trimmed_mean(x, 1), torch.tensor([3.0, 1.0]))
    assert torch.allclose(A.trimmed_mean(x, 2), torch.tensor([3.0, 1.0]))
    assert torch.allclose(A.trimmed_mean(x, 0), x.mean(0))


def test_trimmed_mean_equals_sort_definition(x):
    for b in range(0, 4):
        s = x.sort(0).values[b: x.shape[0] - b].mean(0)
        assert torch.allclose(A.trimmed_mean(x, b), s)


def test_trimmed_mean_rejects_too_many(x):
    with pytest.raises(ValueError, match="^f: trimmed_mean"):
        A.trimmed_mean(x, 5)


def test_centered_clip_identity_inside_ball(x):
    center = x.mean(0)
    radius = (x - center).norm(dim=1).max().item()
    assert torch.allclose(A.centered_clip(x, center, tau=radius + 1e-6), x.mean(0))


def test_centered_clip_by_hand():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    # client 0 is at distance 5 from 0 -> scaled to norm 1: (0.6, 0.8); client 1 stays at 0
    out = A.centered_clip(x, None, tau=1.0)
    assert torch.allclose(out, torch.tensor([0.3, 0.4]))
    # l iterations move the centre repeatedly
    out2 = A.centered_clip(x, None, tau=1.0, iters=2)
    c = torch.tensor([0.3, 0.4])
    d0 = x[0] - c
    step = (d0 * min(1.0, 1.0 / d0.norm().item()) + (x[1] - c)) / 2
    assert torch.allclose(out2, c + step)


def test_geometric_median_by_hand():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0]])
    z = torch.zeros(2)
    for _ in range(3):
        w = 1 / (x - z).norm(dim=1).clamp_min(0.1)
        z = (w[:, None] * x).sum(0) / w.sum()
    assert torch.allclose(A.geometric_median(x, iters=3, nu=0.1), z)
    # robust: many identical points dominate one far outlier (small ν: almost exact median)
    y = torch.cat([torch.ones(8, 3), torch.full((1, 3), 1e6)])
    assert torch.allclose(A.geometric_median(y, iters=50, nu=1e-6, init="mean"), torch.ones(3), atol=1e-3)
    # with ν = 0.1 the smoothing leaves the outlier a weight of 1/‖·‖ against 1/ν for the others
    z = A.geometric_median(y, iters=50, nu=0.1, init="mean")
    expected = 1 + (1e6 - 1) / (1 + 8 * 0.1 ** -1 * ((1e6 - 1) * 3 ** 0.5))
    assert torch.allclose(z, torch.full((3,), expected), rtol=1e-4)


def test_krum_picks_the_central_point():
    x = torch.tensor([[0.0], [0.1], [0.2], [0.3], [50.0], [60.0]])
    # f=1: each score sums k-f-2 = 3 nearest squared distances
    assert A.krum(x, 1).item() == pytest.approx(0.1) or A.krum(x, 1).item() == pytest.approx(0.2)
    out = A.multi_krum(x, 1, m=4)
    assert out.item() == pytest.approx(0.15)
    assert A.multi_krum(x, 2).item() == pytest.approx(0.15)  # m = k - f = 4


def test_bulyan_rejects_outliers():
    g = torch.Generator().manual_seed(1)
    good = torch.randn(9, 5, generator=g, dtype=torch.float64) * 0.01
    bad = torch.full((2, 5), 100.0, dtype=torch.float64)
    out = A.bulyan(torch.cat([good, bad]), f=2)
    assert out.abs().max() < 0.05
    with pytest.raises(ValueError, match="f"):
        A.bulyan(torch.randn(10, 3), f=2)


def test_bucketing_shapes_and_mean(x):
    g = torch.Generator().manual_seed(0)
    out = A.bucketing(x, s=2, generator=g)
    assert out.shape == (5, x.shape[1])
    # the bucket means, weighted by bucket size, give back the overall mean
    sizes = torch.tensor([2, 2, 2, 2, 1], dtype=x.dtype)
    assert torch.allclose((out * sizes[:, None]).sum(0) / 9, x.mean(0))
    out3 = A.bucketing(x, s=3, generator=torch.Generator().manual_seed(0))
    assert out3.shape == (3, x.shape[1])


def test_nnm_by_hand():
    x = torch.tensor([[0.0], [1.0], [10.0]])
    out = A.nnm(x, f=1)  # each row: mean of its 2 nearest (itself included)
    assert torch.allclose(out.squeeze(), torch.tensor([0.5, 0.5, 5.5]))


@pytest.mark.parametrize("fn", [
    A.mean, A.median, lambda x: A.trimmed_mean(x, 2), lambda x: A.geometric_median(x),
    lambda x: A.centered_clip(x, torch.full_like(x[0], 0.1), 0.5), lambda x: A.krum(x, 2),
    lambda x: A.multi_krum(x, 2), lambda x: A.bulyan(x, 1), lambda x: A.nnm(x, 2).mean(0),
])
def test_permutation_invariance_and_no_mutation(fn, x):
    before = x.clone()
    out = fn(x)
    assert torch.equal(x, before), "inputs must not be modified"
    assert out.shape == (x.shape[1],)
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(fn(x[perm]), out, atol=1e-10)


def test_pairwise_distances(x):
    d2 = A.pairwise_sq_distances(x)
    ref = torch.cdist(x, x) ** 2
    assert torch.allclose(d2, ref, atol=1e-9)
    assert torch.all(d2.diagonal() == 0)


# --------------------------------------------------------------------------- CPU kernels
def _sort_tm(x, b):
    return x.sort(0).values[b: x.shape[0] - b].mean(0)


def _sort_median(x):
    s, k = x.sort(0).values, x.shape[0]
    return s[k // 2] if k % 2 else 0.5 * (s[k // 2 - 1] + s[k // 2])


@pytest.mark.parametrize("k", range(2, 11))
def test_rank_network_partitions_every_01_input(k):
    """0-1 principle: a comparator network puts every input into its rank groups iff it does so for 0/1 inputs."""
    cols = torch.arange(2 ** k)
    ones = ((cols[None, :] >> torch.arange(k)[:, None]) & 1).double()  # every 0/1 column of height k
    sorted_ones = ones.sort(0).values
    for cuts in [(c,) for c in range(1, k)] + [(b, k - b) for b in range(1, (k + 1) // 2)] + [tuple(range(1, k))]:
        cuts = tuple(sorted(set(cuts)))
        w = kernels.apply_rank_network_(ones.clone(), kernels.rank_network(k, cuts))
        bounds = (0, *cuts, k)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            assert torch.equal(w[lo:hi].sum(0), sorted_ones[lo:hi].sum(0)), (k, cuts, lo, hi)


def test_rank_network_rejects_bad_cuts():
    with pytest.raises(ValueError, match="cuts"):
        kernels.rank_network(5, (3, 2))
    with pytest.raises(ValueError, match="cuts"):
        kernels.rank_network(5, (0,))


@pytest.mark.parametrize("k", [3, 4, 7, 10, 25, 26])
@pytest.mark.parametrize("ties", [False, True])
def test_order_statistics_equal_the_sort_definitions_across_blocks(k, ties, monkeypatch):
    monkeypatch.setattr(kernels, "CPU_BLOCK", 7)  # several column blocks, the last one partial
    g = torch.Generator().manual_seed(k)
    x = torch.randint(-2, 3, (k, 30), generator=g).double() if ties else torch.randn(k, 30, generator=g, dtype=torch.float64)
    assert torch.equal(A.median(x), _sort_median(x))
    for b in range(0, (k - 1) // 2 + 1):
        assert torch.allclose(A.trimmed_mean(x, b), _sort_tm(x, b), atol=1e-12, rtol=0)


def test_order_statistics_propagate_nan_and_order_infinities():
    x = torch.randn(25, 6, generator=torch.Generator().manual_seed(0))
    x[3, 1] = float("nan")
    x[:4, 2] = float("inf")  # four +inf: trimmed away with b = 5
    x[:2, 3] = -float("inf")
    tm, cm = A.trimmed_mean(x, 5), A.median(x)
    assert torch.isnan(tm[1]) and torch.isnan(cm[1])
    ok = torch.tensor([0, 2, 3, 4, 5])
    assert torch.allclose(tm[ok], _sort_tm(x[:, ok], 5)) and torch.equal(cm[ok], _sort_median(x[:, ok]))


def _compiler_works() -> bool:
    """Whether torch.compile can build a CPU kernel on this machine (a C++ compiler and Python's headers)."""
    try:
        return bool(torch.compile(lambda t: t + 1)(torch.zeros(3)).eq(1).all())
    except Exception:  # noqa: BLE001 -- any failure to build: this machine cannot compile
        return False


@pytest.mark.parametrize("k", [25, 26])
def test_compiled_order_statistics_equal_the_eager_network_and_the_sort_definitions(k, monkeypatch):
    """The compiled network + sum (every matrix here) bit for bit equal to the eager one, NaN and ±inf included."""
    monkeypatch.setenv("BYZLAB_COMPILE", "1")
    monkeypatch.setattr(kernels, "COMPILED_MIN_NUMEL", 1)
    monkeypatch.setattr(kernels, "_COMPILED", {})  # this test's own compilations
    g = torch.Generator().manual_seed(k)
    x = torch.randn(k, 3000, generator=g, dtype=torch.float64)
    x[3, 1] = float("nan")
    x[:4, 2] = float("inf")
    x[:2, 3] = -float("inf")
    tm, cm = A.trimmed_mean(x, 5), A.median(x)
    assert len(kernels._COMPILED) == 2
    if any(fn is None for fn in kernels._COMPILED.values()):  # fell back: only allowed where nothing compiles
        assert not _compiler_works(), "torch.compile works here, but rank_sum's compilation failed"
        pytest.skip("torch.compile cannot build a CPU kernel on this machine (the eager path ran)")
    monkeypatch.setenv("BYZLAB_COMPILE", "0")
    for got, want in ((tm, A.trimmed_mean(x, 5)), (cm, A.median(x))):
        assert torch.equal(got.isnan(), want.isnan()) and torch.equal(got.nan_to_num(), want.nan_to_num())
    ok = torch.ones(x.shape[1], dtype=torch.bool)
    ok[1] = False
    assert torch.isnan(tm[1]) and torch.isnan(cm[1])
    assert torch.allclose(tm[ok], _sort_tm(x[:, ok], 5), atol=1e-12, rtol=0)
    assert torch.equal(cm[ok], _sort_median(x[:, ok]))


def test_rank_sum_falls_back_to_the_eager_network_when_compiling_fails(monkeypatch, caplog):
    monkeypatch.setenv("BYZLAB_COMPILE", "1")
    monkeypatch.setattr(kernels, "COMPILED_MIN_NUMEL", 1)
    monkeypatch.setattr(kernels, "_COMPILED", {})

    def broken(fn, **kwargs):
        def call(*args):
            raise RuntimeError("no C++ compiler found\nmore lines")
        return call

    monkeypatch.setattr(torch, "compile", broken)
    x = torch.randn(25, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="byzlab.core.kernels"):
        first, second = A.trimmed_mean(x, 5), A.trimmed_mean(x, 5)
    assert torch.allclose(first, _sort_tm(x, 5), atol=1e-12, rtol=0) and torch.equal(first, second)
    assert kernels._COMPILED == {(25, (5, 20), 5, 20): None}
    warned = [r.getMessage() for r in caplog.records if "torch.compile failed" in r.getMessage()]
    assert warned == ["rank_sum: torch.compile failed (RuntimeError: no C++ compiler found); "
                      "the eager comparator network runs instead"]


def test_compiling_is_off_by_default_on_in_compiled_networks_and_the_environment_decides(monkeypatch):
    monkeypatch.setattr(kernels, "COMPILED_MIN_NUMEL", 1)
    monkeypatch.setattr(kernels, "_COMPILED", {})
    monkeypatch.delenv("BYZLAB_COMPILE", raising=False)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # no compiler needed: which path, not speed
    x = torch.randn(25, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    A.trimmed_mean(x, 5)
    assert not kernels.compiling() and kernels._COMPILED == {}
    with kernels.compiled_networks():
        assert kernels.compiling()
        with_network = A.trimmed_mean(x, 5)
        monkeypatch.setenv("BYZLAB_COMPILE", "0")
        assert not kernels.compiling()
    assert list(kernels._COMPILED) == [(25, (5, 20), 5, 20)]
    assert torch.allclose(with_network, _sort_tm(x, 5), atol=1e-12, rtol=0)
    monkeypatch.setenv("BYZLAB_COMPILE", "1")
    assert kernels.compiling()
    monkeypatch.setenv("BYZLAB_COMPILE", "yes")
    with pytest.raises(ConfigError, match="BYZLAB_COMPILE: must be 0 or 1"):
        kernels.compiling()


def test_a_sweep_job_compiles_the_networks(monkeypatch, tmp_path):
    """execute_job runs its runs with compiling on (and restores the process's setting)."""
    from byzlab.running.sweep import worker

    seen = []
    monkeypatch.delenv("BYZLAB_COMPILE", raising=False)
    monkeypatch.setattr(worker, "_execute_job", lambda *args: seen.append(kernels.compiling()) or [])
    assert worker.execute_job([], str(tmp_path), {"write": True}) == []
    assert seen == [True] and not kernels.compiling()


def test_rank_sum_rejects_ranks_that_cut_a_group():
    x = torch.randn(7, 4)
    with pytest.raises(ValueError, match="lo, hi"):
        kernels.rank_sum(x, (2, 5), 1, 5)
    with pytest.raises(ValueError, match="lo, hi"):
        kernels.rank_sum(x, (2, 5), 5, 5)
    assert torch.allclose(kernels.rank_sum(x, (2, 5), 2, 5), x.sort(0).values[2:5].sum(0), atol=1e-6, rtol=0)


def test_bulyan_equals_its_definition(monkeypatch):
    monkeypatch.setattr(kernels, "CPU_BLOCK", 5)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(25, 17, generator=g, dtype=torch.float64)
    f = 5
    # selection: Krum, repeatedly, on the remaining rows
    remaining, chosen = list(range(25)), []
    d2 = torch.cdist(x, x) ** 2
    for _ in range(25 - 2 * f):
        m = max(1, len(remaining) - f - 2)
        scores = [sorted(d2[i, j].item() for j in remaining if j != i)[:m] for i in remaining]
        best = remaining[min(range(len(remaining)), key=lambda r: sum(scores[r]))]
        chosen.append(best)
        remaining.remove(best)
    sel = x[chosen]
    med = sel.median(0).values  # θ = 15 is odd
    beta = 25 - 4 * f
    closest = torch.topk((sel - med).abs(), beta, dim=0, largest=False).indices
    assert torch.allclose(A.bulyan(x, f), sel.gather(0, closest).mean(0), atol=1e-12)


def test_blocked_helpers_equal_the_plain_formulas(x, monkeypatch):
    monkeypatch.setattr(kernels, "CPU_BLOCK", 4)
    v, w = x[0] * 0.5, torch.linspace(0.1, 1.0, x.shape[0], dtype=x.dtype)
    assert [(s.start, s.stop) for s in kernels.column_blocks(x)] == [(0, 4), (4, 8), (8, 12), (12, 13)]
    assert torch.allclose(kernels.row_distances(x, v), (x - v).norm(dim=1))
    assert torch.allclose(kernels.centered_matvec(w, x, v), w @ (x - v))
    assert torch.allclose(A.centered_clip(x, v, tau=0.7), v + ((x - v) * (0.7 / (x - v).norm(dim=1, keepdim=True))
                                                               .clamp(max=1)).mean(0))


@pytest.mark.parametrize("block", [4, 1 << 20])  # several column blocks / the whole matrix as one
def test_clipped_sum_equals_the_plain_formula_in_blocks_and_in_one(x, monkeypatch, block):
    monkeypatch.setattr(kernels, "CPU_BLOCK", block)
    v = x[0] * 0.5
    diff = x - v
    plain = ((0.7 / diff.norm(dim=1)).clamp(max=1)[:, None] * diff).sum(0)
    assert torch.allclose(kernels.clipped_sum(x, v, 0.7), plain, atol=1e-12)
    # a row at the centre counts as distance zero (no division by 0): it adds nothing
    at_centre = torch.cat([v[None], x[1:]])
    assert torch.isfinite(kernels.clipped_sum(at_centre, v, 0.7)).all()
    # the one-block path is the blocked one's arithmetic, not just close to it
    monkeypatch.setattr(kernels, "CPU_BLOCK", 1 << 20)
    one = kernels.clipped_sum(x, v, 0.7)
    w = (0.7 / kernels.row_distances(x, v).clamp_min(1e-12)).clamp(max=1.0)
    assert torch.equal(one, kernels.centered_matvec(w, x, v))
