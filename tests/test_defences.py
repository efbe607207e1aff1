r"""The defences of :mod:`byzlab.core.defences`: S-CC, ARC, ClippedClustering, DnC, FLTrust.

Each rule is checked three ways: on tiny inputs whose answer is worked out by
hand (the numbers are written as literals, the working in the comments); on
random inputs against an independent implementation; and end to end, three
rounds of ``byzlab.run`` against ROP, with the state of the stateful rules
carried through a checkpoint.

Peers
-----
* ARC: ByzFL's ``ARC(f)`` (PyPI ``byzfl``, a test dependency).
* ClippedClustering and DnC: Blades (PyPI ``blades``) cannot serve as a peer.
  Its only release on PyPI (0.1.1234) holds no aggregators: they live in its
  ``fllib`` package, which is not on PyPI, and the wheel's other dependencies
  (ray[rllib], wandb, torchvision 0.15) would clash with this environment.  The
  tests compare instead against plain re-implementations written here from
  Blades' definitions: ClippedClustering with ``np.median`` over the norm history
  and scikit-learn's ``AgglomerativeClustering`` (precomputed cosine distances,
  as Blades calls it); DnC with ``torch.linalg.svd`` (as Blades and the paper).
* S-CC: the authors' library is not a package; a per-client loop written from
  the definition (written out in :func:`byzlab.core.defences.sequential_centered_clip`) is the reference,
  run on the same buckets.
* FLTrust: a per-client loop of the paper's formula.
"""
import numpy as np
import pytest
import torch

import byzlab
from byzlab.core import aggregators as A
from byzlab.core import kernels
from byzlab.core import defences as D
from byzlab.core.draws import subset
from byzlab.core.registry import AGGREGATORS, PRE_AGGREGATORS, ConfigError


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _rand(k, d, seed=0):
    return torch.randn(k, d, generator=_gen(seed), dtype=torch.float64)


# --------------------------------------------------------------------------- S-CC
def test_scc_one_bucket_by_hand():
    # k = 3, s = 3, first round: one bucket, reference 0: the mean of clip_1(x_i)
    # clip([3, 4]) = [0.6, 0.8]; [0, 0.5] unchanged; clip([-6, 8]) = [-0.6, 0.8]
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5], [-6.0, 8.0]], dtype=torch.float64)
    out = D.sequential_centered_clip(x, torch.zeros(2, dtype=torch.float64), t=1, generator=_gen(), tau=1.0)
    assert torch.allclose(out, torch.tensor([0.0, 0.7], dtype=torch.float64))


def test_scc_moves_the_reference_after_each_bucket_by_hand():
    # buckets {0}, then {1}, from m = 0, τ = 1:
    #   m = clip([2, 0]) = [1, 0]
    #   x_1 - m = [-1, 2], norm √5  ->  m = [1, 0] + [-1, 2]/√5 = [0.5527864, 0.8944272]
    # (CC would give the mean of [1, 0] and [0, 1] = [0.5, 0.5])
    x = torch.tensor([[2.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    buckets = [torch.tensor([0]), torch.tensor([1])]
    out = D._sequential_clip(x, torch.zeros(2, dtype=torch.float64), buckets, 1.0)
    assert torch.allclose(out, torch.tensor([0.5527864045, 0.8944271910], dtype=torch.float64))
    # k = 2, s = 1 after the first round: two buckets of one client, their order drawn from the generator
    m0 = torch.tensor([1e-3, 1e-3], dtype=torch.float64)
    orders = [tuple(round(v, 9) for v in D._sequential_clip(x, m0, [torch.tensor([i]), torch.tensor([1 - i])],
                                                              1.0).tolist()) for i in (0, 1)]
    seen = {tuple(round(v, 9) for v in D.sequential_centered_clip(x, m0, t=2, generator=_gen(seed), s=1).tolist())
            for seed in range(8)}
    assert seen == set(orders) and len(seen) == 2


def test_scc_without_clipping_returns_the_last_buckets_mean():
    # with every ‖x_i − m̃‖ ≤ τ each bucket step sets m̃ to that bucket's mean
    x = _rand(7, 5)
    order, sizes = D._scc_buckets(x, torch.zeros(5, dtype=torch.float64), True, 3, _gen(3))
    out = D.sequential_centered_clip(x, None, t=1, generator=_gen(3), tau=1e6, s=3)
    assert sizes == [4, 3]
    assert torch.allclose(out, x[order[4:]].mean(0))


@pytest.mark.parametrize("t", [1, 4])
def test_scc_with_one_bucket_is_cc(t):
    # s ≥ k: a single bucket holding every client (t = 1: ⌊k/s⌋ → 1 bucket; later: k groups of one,
    # one bucket taking one client of each), so S-CC is one CC step from the same centre
    x = _rand(6, 30)
    center = torch.zeros(30, dtype=torch.float64) if t == 1 else _rand(1, 30, seed=1)[0]
    for s in (6, 9):
        got = D.sequential_centered_clip(x, center, t=t, generator=_gen(), tau=2.0, s=s)
        assert torch.allclose(got, A.centered_clip(x, center, tau=2.0), rtol=1e-12, atol=1e-14)


def test_scc_buckets_mix_similarity_groups():
    k, d = 25, 40
    x = _rand(k, d)
    ref = _rand(1, d, seed=1)[0]
    order, sizes = D._scc_buckets(x, ref, False, 3, _gen())
    assert sizes == [3] * 8 + [1]
    assert sorted(order.tolist()) == list(range(k))
    cos = torch.nn.functional.cosine_similarity(x, ref[None], dim=1)
    rank = torch.empty(k, dtype=torch.long)
    rank[torch.argsort(cos)] = torch.arange(k)
    group = torch.where(rank < 9, 0, torch.where(rank < 17, 1, 2))  # 25 split into 9, 8, 8
    for j in range(8):
        assert sorted(group[order[3 * j: 3 * j + 3]].tolist()) == [0, 1, 2]
    assert group[order[24]].item() == 0
    first, sizes1 = D._scc_buckets(x, ref, True, 3, _gen())
    assert sizes1 == [4] + [3] * 7 and sorted(first.tolist()) == list(range(k))
    again, _ = D._scc_buckets(x, ref, False, 3, _gen())
    assert torch.equal(order, again)  # the generator is the only source of randomness


@pytest.mark.parametrize("k, s, default, balanced", [
    (25, 3, [3] * 8 + [1], [4] + [3] * 7),      # the bench's k: a last bucket of one, or none
    (26, 3, [3] * 8 + [2], [4, 4] + [3] * 6),
    (24, 3, [3] * 8, [3] * 8),                   # s divides k: the same buckets
    (7, 5, [5, 2], [7]),                          # ⌊7/5⌋ = 1 bucket
    (11, 4, [4, 4, 3], [6, 5]),                   # 3 leftovers over 2 buckets
    (2, 3, [2], [2]),
])
def test_scc_bucket_sizes_by_hand(k, s, default, balanced):
    assert D.scc_bucket_sizes(k, s) == default and D.scc_bucket_sizes(k, s, balanced=True) == balanced
    x, ref = _rand(k, 6), _rand(1, 6, seed=1)[0]
    for flag, sizes in ((False, default), (True, balanced)):
        order, got = D._scc_buckets(x, ref, False, s, _gen(), flag)
        assert got == sizes and sorted(order.tolist()) == list(range(k))


def test_scc_balanced_buckets_mix_groups_and_leave_no_client_alone():
    k, d = 25, 40
    x = _rand(k, d)
    ref = _rand(1, d, seed=1)[0]
    order, sizes = D._scc_buckets(x, ref, False, 3, _gen(), True)
    cos = torch.nn.functional.cosine_similarity(x, ref[None], dim=1)
    rank = torch.empty(k, dtype=torch.long)
    rank[torch.argsort(cos)] = torch.arange(k)
    group = torch.where(rank < 9, 0, torch.where(rank < 17, 1, 2))  # 25 split into 9, 8, 8
    assert sizes == [4] + [3] * 7
    assert sorted(group[order[:4]].tolist()) == [0, 0, 1, 2]  # the least-aligned leftover joins bucket 0
    for j in range(7):
        assert sorted(group[order[4 + 3 * j: 7 + 3 * j]].tolist()) == [0, 1, 2]


def test_scc_last_bucket_of_one_decides_with_a_large_tau_by_hand():
    """k = 4, s = 3, centre 0: similarity groups {two least aligned}, {one}, {one}.  The authors' buckets
    are 3 clients, then one of the two least aligned alone; with τ = 100 (no clipping) the result is that
    one vector: m̃ = mean(bucket 0) + (x_last − mean(bucket 0)) = x_last.  Balanced: one bucket of 4,
    m̃ = mean(x)."""
    x = torch.tensor([[-1.0, 0.0], [-0.9, -0.1], [1.0, 0.2], [1.0, -0.2]], dtype=torch.float64)
    center = torch.tensor([1.0, 0.0], dtype=torch.float64)  # rows 0 and 1 are the least aligned (cos < 0)
    got = D.sequential_centered_clip(x, center, t=2, generator=_gen(), tau=100.0, s=3)
    assert any(torch.allclose(got, x[i]) for i in (0, 1))
    balanced = D.sequential_centered_clip(x, center, t=2, generator=_gen(), tau=100.0, s=3, balanced=True)
    assert torch.allclose(balanced, torch.tensor([0.025, -0.025], dtype=torch.float64))  # (−1 − 0.9 + 1 + 1)/4
    # a small τ: balanced is one CC step from the centre over all four (Eq. 6, one iteration)
    small = D.sequential_centered_clip(x, center, t=2, generator=_gen(), tau=0.5, s=3, balanced=True)
    assert torch.allclose(small, A.centered_clip(x, center, tau=0.5), atol=1e-12)


def _scc_loop(x, m, buckets, tau, buck_avg, mult_ref):
    """S-CC written from its definition, one client at a time."""
    def clip(v):
        n = float(np.linalg.norm(v))
        return v * min(1.0, tau / n) if n > 0 else v

    x = x.numpy()
    m = m.numpy().copy()
    orig = m.copy()
    for b in buckets:
        rows = [x[i] for i in b.tolist()]
        if buck_avg:
            avg = sum(rows) / len(rows)
            target = orig + clip(avg - orig) if mult_ref else avg
            m = m + clip(target - m)
        elif mult_ref:
            m = m + sum(clip(orig + clip(v - orig) - m) for v in rows) / len(rows)
        else:
            m = m + sum(clip(v - m) for v in rows) / len(rows)
    return torch.from_numpy(m)


@pytest.mark.parametrize("buck_avg,mult_ref", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("t", [1, 7])
def test_scc_equals_the_per_client_definition(buck_avg, mult_ref, t):
    k, d = 25, 300
    x = _rand(k, d) * 0.5 + 0.2
    center = torch.zeros(d, dtype=torch.float64) if t == 1 else _rand(1, d, seed=2)[0] * 0.1 + 0.2
    order, sizes = D._scc_buckets(x, center, t == 1, 3, _gen(5))
    bounds = np.cumsum([0] + sizes)
    buckets = [order[a:b] for a, b in zip(bounds, bounds[1:])]
    for tau in (0.5, 3.0):
        want = _scc_loop(x, center, buckets, tau, buck_avg, mult_ref)
        got = D.sequential_centered_clip(x, center, t=t, generator=_gen(5), tau=tau, s=3,
                                         buck_avg=buck_avg, mult_ref=mult_ref)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_scc_column_blocks_and_float32(monkeypatch):
    x = _rand(10, 2500)
    center = _rand(1, 2500, seed=1)[0] * 0.1
    whole = D.sequential_centered_clip(x, center, t=3, generator=_gen(), tau=0.7, s=3)
    monkeypatch.setattr(kernels, "CPU_BLOCK", 1000)  # several column blocks
    blocked = D.sequential_centered_clip(x, center, t=3, generator=_gen(), tau=0.7, s=3)
    assert torch.allclose(whole, blocked, rtol=1e-12, atol=1e-14)
    single = D.sequential_centered_clip(x.float(), center.float(), t=3, generator=_gen(), tau=0.7, s=3)
    assert torch.allclose(single.double(), whole, rtol=1e-4, atol=1e-5)
    assert torch.equal(center, _rand(1, 2500, seed=1)[0] * 0.1)  # the reference is not modified


# --------------------------------------------------------------------------- ARC
def test_arc_by_hand():
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0], [0.0, 0.0]])
    # n = 4, f = 1: ⌊2·1·3/4⌋ = 1 clipped: [6, 8] (norm 10) to the next norm, 5
    assert torch.equal(D.arc(x, 1), torch.tensor([[3.0, 4.0], [0.0, 1.0], [3.0, 4.0], [0.0, 0.0]]))
    # f = 2: ⌊2·2·2/4⌋ = 2 clipped (norms 10 and 5) to the next norm, 1
    assert torch.allclose(D.arc(x, 2), torch.tensor([[0.6, 0.8], [0.0, 1.0], [0.6, 0.8], [0.0, 0.0]]))
    assert torch.equal(D.arc(x, 0), x)  # nothing to clip
    # n = 3, f = 1: ⌊2·1·2/3⌋ = 1: [7, 8, 9] (norm √194) clipped to √77 = ‖[4, 5, 6]‖
    y = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]], dtype=torch.float64)
    assert torch.allclose(D.arc(y, 1)[2], torch.tensor([4.4100400904, 5.0400458176, 5.6700515448],
                                                       dtype=torch.float64))


@pytest.mark.parametrize("n,f", [(25, 5), (25, 1), (25, 12), (10, 3), (7, 0), (4, 2), (100, 30)])
def test_arc_equals_byzfl(n, f):
    from byzfl import ARC

    x = _rand(n, 50, seed=n + f) * torch.rand(n, 1, generator=_gen(f), dtype=torch.float64) * 10
    want = ARC(f)(x.numpy().copy())
    assert np.allclose(D.arc(x, f).numpy(), want, rtol=1e-12, atol=1e-14)


def test_arc_composes_with_every_aggregator():
    assert "arc" in PRE_AGGREGATORS
    cfg = byzlab.RunConfig.make(dataset="digits", aggregator="tm", pre_aggregators=["arc", "bucketing"],
                                attack="alie", k=10, k_m=2, epochs=1, max_rounds=2)
    sim = byzlab.Simulation(cfg)
    sim.advance()
    assert torch.isfinite(sim.theta).all()


# --------------------------------------------------------------------------- ClippedClustering
def test_clippedclustering_by_hand_with_history():
    state = {}
    # round 1: norms 4, 1, 2 -> median 2 -> [4, 0] clipped to [2, 0]
    # cosine distances: d(0,1) = 0, d(0,2) = d(1,2) = 1 -> clusters {0, 1}, {2}
    # mean of the larger: ([2, 0] + [1, 0]) / 2
    x1 = torch.tensor([[4.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    assert torch.allclose(D.clipped_clustering(x1, state), torch.tensor([1.5, 0.0], dtype=torch.float64))
    assert state["norms"].tolist() == [4.0, 1.0, 2.0]
    # round 2: norms 10, 3, 5; history 4 1 2 10 3 5 -> median (3 + 4)/2 = 3.5
    # [0, 10] -> [0, 3.5]; [0, 3] stays; [5, 0] -> [3.5, 0]; clusters {0, 1}, {2} -> [0, 3.25]
    x2 = torch.tensor([[0.0, 10.0], [0.0, 3.0], [5.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(D.clipped_clustering(x2, state), torch.tensor([0.0, 3.25], dtype=torch.float64))
    # without history the median of this round alone (5) gives ([0, 5] + [0, 3]) / 2
    assert torch.allclose(D.clipped_clustering(x2), torch.tensor([0.0, 4.0], dtype=torch.float64))


def test_clippedclustering_tie_goes_to_the_tighter_cluster_by_hand():
    # unit vectors a=[1,0], b=[.8,.6], c=[0,1], e=[-.8,.6]: no clipping (median norm 1)
    # d(a,b) = 0.2, d(c,e) = 0.4, d(b,c) = 0.4, d(a,c) = 1, d(a,e) = 1.8, d(b,e) = 1.28
    # merges: {a,b} (0.2), then {c,e} (0.4 < ({a,b},c) = 0.7): two clusters of 2,
    # {a,b} the tighter (0.2 < 0.4) -> mean [0.9, 0.3], whichever rows come first
    a, b, c, e = [1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-0.8, 0.6]
    want = torch.tensor([0.9, 0.3], dtype=torch.float64)
    for rows in ([a, b, c, e], [c, e, a, b], [e, a, c, b]):
        assert torch.allclose(D.clipped_clustering(torch.tensor(rows, dtype=torch.float64)), want)


def _clippedclustering_reference(rounds, linkage):
    """Blades' definition with NumPy and scikit-learn, one round after another."""
    from sklearn.cluster import AgglomerativeClustering

    history, outs = [], []
    for x in rounds:
        v = x.numpy()
        norms = np.linalg.norm(v, axis=1)
        history.extend(norms.tolist())
        thr = np.median(history)
        clipped = np.array([u * thr / n if n > thr else u for u, n in zip(v, norms)])
        unit = clipped / np.linalg.norm(clipped, axis=1, keepdims=True)
        dist = np.clip(1.0 - unit @ unit.T, 0.0, None)
        np.fill_diagonal(dist, 0.0)
        labels = AgglomerativeClustering(n_clusters=2, metric="precomputed", linkage=linkage).fit(dist).labels_
        flag = 1 if labels.sum() > len(labels) // 2 else 0
        outs.append(torch.from_numpy(clipped[labels == flag].mean(0)))
    return outs


@pytest.mark.parametrize("linkage", ["average", "single", "complete"])
def test_clippedclustering_equals_blades_definition(linkage):
    rounds = []
    for r in range(4):
        k = 25 if r % 2 else 11  # odd k: no tie between the two clusters' sizes
        benign = _rand(k - 4, 60, seed=10 + r) * 0.3 + 1.0 + r
        byz = _rand(4, 60, seed=20 + r) * 0.3 - 2.0 * (r + 1)
        x = torch.cat([benign, byz])[torch.randperm(k, generator=_gen(r))]
        rounds.append(x)
    rounds.append(_rand(13, 60, seed=99))  # no structure at all
    want = _clippedclustering_reference(rounds, linkage)
    state = {}
    for x, w in zip(rounds, want):
        assert torch.allclose(D.clipped_clustering(x, state, linkage=linkage), w, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- DnC
def test_dnc_by_hand():
    # all coordinates (sub_dim ≥ d); only the first coordinate varies: v = e1
    # mean 2.25, centred -1.25 -2.25 -3.25 6.75, scores 1.5625 5.0625 10.5625 45.5625
    x = torch.tensor([[1.0, 0.0], [0.0, 0.0], [-1.0, 0.0], [9.0, 0.0]])
    assert torch.allclose(D.dnc(x, f=1), torch.tensor([0.0, 0.0]))  # drop row 3
    assert torch.allclose(D.dnc(x, f=1, c=2.0), torch.tensor([0.5, 0.0]))  # drop rows 3 and 2
    assert torch.allclose(D.dnc(x, f=0), x.mean(0))
    with pytest.raises(ValueError, match=r"^c: dnc needs"):
        D.dnc(x, f=2, c=2.0)


def _dnc_reference(x, f, generator, niters, c, sub_dim):
    """DnC as in the paper's Algorithm 2, with an SVD; the good sets intersected."""
    k, d = x.shape
    good = set(range(k))
    for _ in range(niters):
        cols = subset(generator, d, sub_dim, device="cpu")  # the same draws (the sampler: test_draws.py)
        sub = x[:, cols]
        mu = sub.mean(0)
        v = torch.linalg.svd(sub - mu, full_matrices=False).Vh[0]
        scores = [float(torch.dot(s - mu, v) ** 2) for s in sub]
        good &= set(np.argsort(scores)[: k - int(c * f)].tolist())
    return x[sorted(good)].mean(0)


@pytest.mark.parametrize("niters,c,sub_dim", [(1, 1.0, 10000), (1, 1.0, 40), (3, 1.0, 40), (2, 1.5, 100)])
def test_dnc_equals_the_svd_definition(niters, c, sub_dim):
    k, d, f = 25, 300, 5
    benign = _rand(k - f, d, seed=1) + 0.5
    byz = benign.mean(0) + 0.8 * _rand(1, d, seed=2)  # ALIE-like: close, but along one direction
    x = torch.cat([benign, byz + 0.05 * _rand(f, d, seed=3)])
    got = D.dnc(x, f, _gen(4), niters=niters, c=c, sub_dim=sub_dim)
    want = _dnc_reference(x, f, _gen(4), niters, c, sub_dim)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)
    if sub_dim < d:  # same seed, same coordinates
        assert torch.equal(got, D.dnc(x, f, _gen(4), niters=niters, c=c, sub_dim=sub_dim))
    assert not torch.allclose(got, x.mean(0))  # the outliers were removed


def test_dnc_top_eigvec_matches_eigh():
    for seed in range(5):
        z = _rand(25, 8, seed=seed)
        m = z @ z.T
        u = D._top_eigvec(m)
        ref = torch.linalg.eigh(m).eigenvectors[:, -1]
        assert torch.allclose(u.abs(), ref.abs(), atol=1e-10)


# --------------------------------------------------------------------------- FLTrust
def test_fltrust_by_hand():
    # g0 = [3, 4], ‖g0‖ = 5; cosines 0.6, 0.8, -0.6 -> trust 0.6, 0.8, 0
    # rescaled to norm 5: [5, 0], [0, 5]; (0.6·[5, 0] + 0.8·[0, 5]) / 1.4 = [3, 4] / 1.4
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-1.0, 0.0]], dtype=torch.float64)
    g0 = torch.tensor([3.0, 4.0], dtype=torch.float64)
    assert torch.allclose(D.fltrust(x, g0), torch.tensor([2.142857142857, 2.857142857143], dtype=torch.float64))
    # every trust score 0 -> the zero vector
    assert torch.equal(D.fltrust(-x[:2], g0), torch.zeros(2, dtype=torch.float64))
    assert torch.equal(D.fltrust(x, torch.zeros(2, dtype=torch.float64)), torch.zeros(2, dtype=torch.float64))
    # a zero client vector has weight 0
    with_zero = torch.cat([x, torch.zeros(1, 2, dtype=torch.float64)])
    assert torch.allclose(D.fltrust(with_zero, g0), D.fltrust(x, g0))
    with pytest.raises(ValueError, match=r"^server_update: fltrust"):
        D.fltrust(x, None)


def test_fltrust_equals_the_per_client_formula(monkeypatch):
    x = _rand(25, 2500)
    g0 = _rand(1, 2500, seed=1)[0] + x.mean(0)
    ts = [max(0.0, float(torch.dot(m, g0) / (m.norm() * g0.norm()))) for m in x]
    want = sum(t * m * g0.norm() / m.norm() for t, m in zip(ts, x)) / sum(ts)
    monkeypatch.setattr(kernels, "CPU_BLOCK", 1000)
    assert torch.allclose(D.fltrust(x, g0), want, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- registry and end to end
@pytest.mark.parametrize("agg,params,msg", [
    ("s_cc", {"tau": 0.0}, "tau: must be > 0"),
    ("s_cc", {"s": 0}, "s: must be an integer >= 1"),
    ("s_cc", {"buck_avg": "yes"}, "buck_avg: must be true or false"),
    ("dnc", {"c": -1.0}, "c: must be >= 0"),
    ("dnc", {"sub_dim": 0}, "sub_dim: must be an integer >= 1"),
    ("dnc", {"niters": 1.5}, "niters: must be an integer >= 1"),
    ("clippedclustering", {"linkage": "ward"}, "linkage: must be one of average, single, complete"),
])
def test_bad_parameters_are_one_line_errors(agg, params, msg):
    with pytest.raises(ConfigError, match=f"^{msg}") as e:
        byzlab.RunConfig.make(dataset="digits", aggregator=agg, aggregator_params=params, k=10, k_m=2)
    assert "\n" not in str(e.value)


def test_registered_defaults():
    assert AGGREGATORS["s_cc"].params == {"tau": 1.0, "s": 3, "buck_avg": False, "mult_ref": False,
                                           "balanced": False}
    assert AGGREGATORS["dnc"].params == {"niters": 1, "c": 1.0, "sub_dim": 10000}
    assert AGGREGATORS["clippedclustering"].params == {"linkage": "average"}
    assert AGGREGATORS["fltrust"].params == {} and AGGREGATORS["fltrust"].context == ("server_update",)
    assert byzlab.RunConfig.make(dataset="digits", aggregator="fltrust").server_trains
    with pytest.raises(ConfigError, match="^k_m: aggregator 'dnc' needs k > k_m"):
        byzlab.RunConfig.make(dataset="digits", aggregator="dnc", pre_aggregators=["bucketing"],
                              pre_aggregator_params={"bucketing": {"s": 5}}, k=10, k_m=2)


RUN = dict(dataset="digits", attack="rop", k=10, k_m=2, epochs=1, max_rounds=3)


@pytest.mark.parametrize("agg,pre", [("s_cc", ()), ("clippedclustering", ()), ("dnc", ()), ("fltrust", ()),
                                     ("cc", ("arc",)), ("s_cc", ("arc",))])
def test_three_rounds_against_rop(agg, pre):
    res = byzlab.run(aggregator=agg, pre_aggregators=pre, **RUN)
    assert len(res.rounds) == 3 and not res.diverged
    assert np.isfinite(res.rounds["train_loss"]).all() and np.isfinite(res.final_accuracy)


@pytest.mark.parametrize("agg", ["s_cc", "clippedclustering", "dnc", "fltrust"])
def test_state_survives_a_checkpoint(agg, tmp_path):
    params = {"sub_dim": 500} if agg == "dnc" else {}  # DnC draws coordinates: the generator is checkpointed too
    cfg = byzlab.RunConfig.make(aggregator=agg, aggregator_params=params, **{**RUN, "max_rounds": 4})
    full = byzlab.Simulation(cfg)
    full.advance()
    sim = byzlab.Simulation(cfg)
    sim.advance(2)
    path = tmp_path / "c.ckpt"
    sim.save_checkpoint(path)
    resumed = byzlab.Simulation(cfg)
    assert resumed.load_checkpoint(path) == 2
    if agg == "clippedclustering":
        assert resumed.rule_state["aggregator"]["norms"].shape == (2 * 10,)
    resumed.advance()
    assert resumed.t == full.t > 2
    assert torch.equal(resumed.theta, full.theta)
