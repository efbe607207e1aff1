r"""Further defences: S-CC, ARC, ClippedClustering, DnC and FLTrust.

Same conventions as :mod:`byzlab.core.aggregators`: every rule takes ``x``, a
``(k, d)`` tensor with one client vector per row, never modifies it, runs on
the tensor's device, and returns the aggregate ``(d,)`` (the pre-aggregator
``arc`` returns a ``(k, d)`` tensor).  Randomness comes only from the
``generator`` the simulator passes (the run's seeded RNG).

Registered names (``byzlab list``): aggregators ``s_cc``, ``clippedclustering``,
``dnc``, ``fltrust``; pre-aggregator ``arc`` (composable with every aggregator).

Speed and host synchronisation
------------------------------
k ≤ 100 while d is up to millions, so each rule is a few passes over ``x``
(column blocks on CPU, :func:`~byzlab.core.kernels.column_blocks`) plus work on
``(k,)`` or ``(k, k)`` tensors.  Nothing reads a device value on the host:
bucket sizes, cluster counts and loop lengths depend only on k and the
parameters; choices that depend on the data (which clients share a bucket,
which pair of clusters merges, which clients DnC keeps) are index tensors on
the device.  DnC's top singular vector is therefore computed by repeated
squaring of the small ``(k, k)`` Gram matrix rather than by ``torch.linalg.svd``
(which synchronises on CUDA); the outlier scores it gives rank the clients
exactly as the SVD's do.
"""
from __future__ import annotations

import math

import torch

from .draws import draw, subset
from .kernels import column_blocks
from .registry import (
    non_negative,
    one_of,
    positive,
    positive_int,
    register_aggregator,
    register_pre_aggregator,
)

__all__ = [
    "sequential_centered_clip",
    "arc",
    "clipped_clustering",
    "dnc",
    "fltrust",
]

_EPS = 1e-12  # norms below this count as zero (as in CC's clipping)


def _check(x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x: expected a (k, d) tensor with k >= 1, got shape {tuple(x.shape)}")


def _clip_scale(norms: torch.Tensor, tau) -> torch.Tensor:
    """min(1, τ/‖v‖) for each norm (1 for a zero vector)."""
    return (tau / norms.clamp_min(_EPS)).clamp(max=1.0)


def _clip(v: torch.Tensor, tau: float) -> torch.Tensor:
    """clip_τ(v) = v·min(1, τ/‖v‖) along the last dimension."""
    return v * _clip_scale(torch.linalg.vector_norm(v, dim=-1, keepdim=True), tau)


def _dots_and_norms(x: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x @ v, ‖x_i‖)`` in one pass over ``x``, one column block at a time."""
    dots = x.new_zeros(x.shape[0])
    sq = x.new_zeros(x.shape[0])
    for sl in column_blocks(x):
        xb = x[:, sl]
        dots += xb @ v[sl]
        sq += torch.linalg.vector_norm(xb, dim=1).square_()
    return dots, sq.sqrt_()


def _gram(x: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """``(k, k)`` Gram matrix x xᵀ (of the rows minus their mean when ``centred``), block by block."""
    g = x.new_zeros(x.shape[0], x.shape[0])
    for sl in column_blocks(x):
        xb = x[:, sl]
        if centred:
            xb = xb - xb.mean(0)
        g.addmm_(xb, xb.T)
    return g


# --------------------------------------------------------------------------- S-CC
def scc_bucket_sizes(k: int, s: int, balanced: bool = False) -> list[int]:
    """The sizes of S-CC's buckets after the first round, in the order they are visited.

    The authors' definition: ⌈k/s⌉ buckets, the first ⌊k/s⌋ with s clients (one per
    similarity group), a last one with the k mod s clients left over, all from the least-aligned
    group (k = 25, s = 3: eight buckets of 3, then one of 1).  ``balanced``: ⌊k/s⌋ buckets (one
    when k < s) and the leftovers join the first ones, so the sizes differ by at most one
    (k = 25, s = 3: one bucket of 4, then seven of 3).
    """
    q, r = divmod(k, s)
    if not balanced:
        return [s] * q + ([r] if r else [])
    if q == 0:
        return [k]
    return [s + (j < r) for j in range(q)] if r <= q else [k // q + (j < k % q) for j in range(q)]


def _scc_buckets(x: torch.Tensor, reference: torch.Tensor, first: bool, s: int,
                 generator: torch.Generator | None, balanced: bool = False) -> tuple[torch.Tensor, list[int]]:
    """The clients in bucket order, ``(k,)`` on x's device, and the bucket sizes (host ints).

    First round: a random permutation cut into max(1, ⌊k/s⌋) buckets whose sizes
    differ by at most one (the first k mod ⌊k/s⌋ are one larger).  Later rounds:
    clients sorted by cos(m_i, m̃) ascending, the sorted list cut into s groups
    (sizes differing by at most one, larger first), and bucket j takes the j-th
    member of each group in a random order within the group: ⌈k/s⌉ buckets, the
    first ⌊k/s⌋ with s clients (one per group), a last one with k mod s
    (:func:`scc_bucket_sizes`).  ``balanced``: the member of rank ⌊k/s⌋ of a larger group
    (there is no such bucket) goes to bucket (group mod ⌊k/s⌋) instead.
    """
    k = x.shape[0]
    if first:
        nb = max(1, k // s)
        order = draw(generator, torch.randperm, k, device=x.device)
        return order, [k // nb + (i < k % nb) for i in range(nb)]
    dots, norms = _dots_and_norms(x, reference)
    by_similarity = torch.argsort(dots / norms.clamp_min(_EPS), stable=True)  # ‖m̃‖ > 0 does not change the order
    q, r = divmod(k, s)
    p = torch.arange(k, device=x.device)  # a position in the sorted list
    big = r * (q + 1)  # the r groups of q + 1 come first
    group = torch.where(p < big, p // (q + 1), r + (p - big) // max(q, 1))
    start = torch.where(p < big, group * (q + 1), big + (group - r) * q)
    local = p - start
    u = draw(generator, torch.rand, k, device=x.device).to(torch.float64)
    shuffled = torch.argsort(group.to(torch.float64) + u)  # positions, group by group, random inside each group
    bucket = local
    if balanced:  # the leftovers (rank q of the r larger groups) join the first buckets
        bucket = torch.where(local >= max(q, 1), group % max(q, 1), local % max(q, 1))
    bucket_major = torch.argsort(bucket * s + group, stable=True)  # slot (group g, rank j) -> bucket j, groups in order
    order = by_similarity[shuffled[bucket_major]]
    return order, scc_bucket_sizes(k, s, balanced)


def _sequential_clip(x: torch.Tensor, m: torch.Tensor, buckets: list[torch.Tensor], tau: float) -> torch.Tensor:
    """S-CC's default update over the buckets (row-index tensors) in order, from reference ``m``.

    Bucket j needs ‖x_i − m̃‖ for its rows before m̃ can move, so its distances are
    accumulated in the same pass over the column blocks that applies bucket j − 1's
    update (block by block, the new m̃ is final as soon as it is written): one pass
    per bucket plus one, instead of two.  The rows are gathered one block at a time,
    so no copy of them is made.
    """
    m = m.clone()
    blocks = column_blocks(x)
    sq = x.new_zeros(buckets[0].shape[0])
    for sl in blocks:
        sq += torch.linalg.vector_norm(x[:, sl].index_select(0, buckets[0]) - m[sl], dim=1).square_()
    for j, idx in enumerate(buckets):
        w = _clip_scale(sq.sqrt_(), tau) / idx.shape[0]
        nxt = buckets[j + 1] if j + 1 < len(buckets) else None
        if nxt is not None:
            sq = x.new_zeros(nxt.shape[0])
        for sl in blocks:
            xs = x[:, sl]
            mb = m[sl]
            mb += w @ (xs.index_select(0, idx) - mb)
            if nxt is not None:
                sq += torch.linalg.vector_norm(xs.index_select(0, nxt) - mb, dim=1).square_()
    return m


def sequential_centered_clip(x: torch.Tensor, center: torch.Tensor | None, t: int | None = None,
                             generator: torch.Generator | None = None, tau: float = 1.0, s: int = 3,
                             buck_avg: bool = False, mult_ref: bool = False, balanced: bool = False) -> torch.Tensor:
    r"""S-CC, sequential centered clipping: the ROP paper authors' remedy for CC.

    The reference m̃ starts at ``center`` (the previous aggregate m̃_{t−1}; zeros
    at t = 1; ``None`` is read as zeros and as a first round).  The k clients are
    put into buckets (see below) and the buckets are visited one after another;
    for bucket B

    $$\tilde m \leftarrow \tilde m + \frac{1}{|B|}\sum_{i \in B}
      \mathrm{clip}_\tau(m_i - \tilde m),\qquad
      \mathrm{clip}_\tau(v) = v \min\Bigl(1, \frac{\tau}{\lVert v\rVert}\Bigr)$$

    so later buckets are clipped around a centre already moved by the earlier
    ones.  The final m̃ is the aggregate (and, as the next round's ``center``, the
    next reference: the state S-CC carries between rounds is m̃_{t−1} itself, kept
    and checkpointed by the simulator).

    Buckets: at t = 1 (the reference is still zero) a random permutation cut into
    ⌊k/s⌋ buckets; afterwards the clients are sorted by cosine similarity to m̃,
    the sorted list is cut into ``s`` contiguous groups, and each of the ⌈k/s⌉
    buckets takes one client of each group at random, so every bucket mixes low-,
    mid- and high-similarity clients.  When s does not divide k, the last bucket holds
    only the k mod s leftover clients of the least-aligned group — where Byzantine
    vectors sort: with k = 25 and s = 3, ⌈25/3⌉ = 9 buckets, the ninth a single
    client, visited last.  That one vector moves m̃ by up to τ on its own, so with a
    large τ it decides the result (:func:`scc_bucket_sizes`).

    Variants (the authors' library's options, off by default):

    * ``buck_avg``: clip each bucket's average instead of each client,
      m̃ ← m̃ + clip_τ(mean_B − m̃);
    * ``mult_ref``: clip around the round's original reference m̃₀ first,
      m_i' = m̃₀ + clip_τ(m_i − m̃₀), then sequentially as above with m_i' for m_i
      (with ``buck_avg``: the bucket average takes m_i's place).

    * ``balanced``: ⌊k/s⌋ buckets whose sizes differ by at most one, the leftover
      clients joining the first buckets (k = 25, s = 3: one bucket of 4, seven of 3),
      so no vector is clipped alone.  Not the authors' definition, which stays the
      default.

    Reference: the ROP paper's authors' public library (``cc_seq.py``, names
    ``ccs``/``scc``); τ = 1.0, s = 3 are its defaults.  It differs from this
    definition in one detail: its first-round split always uses buckets of 3,
    whatever s.
    """
    _check(x)
    if not isinstance(s, int) or s < 1:
        raise ValueError(f"s: s_cc needs a bucket length >= 1, got {s!r}")
    first = center is None or (t is not None and t <= 1)
    m = torch.zeros_like(x[0]) if center is None else center
    order, sizes = _scc_buckets(x, m, first, s, generator, balanced)
    bounds = [0]
    for size in sizes:
        bounds.append(bounds[-1] + size)
    buckets = [order[i:j] for i, j in zip(bounds, bounds[1:])]
    if not (buck_avg or mult_ref):
        return _sequential_clip(x, m, buckets, tau)
    orig = m
    for idx in buckets:
        xb = x.index_select(0, idx)
        if buck_avg:
            avg = xb.mean(0)
            target = orig + _clip(avg - orig, tau) if mult_ref else avg
            m = m + _clip(target - m, tau)
        else:  # mult_ref
            moved = orig + _clip(xb - orig, tau)
            m = m + _clip(moved - m, tau).mean(0)
    return m


# --------------------------------------------------------------------------- ARC
def arc(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""ARC, adaptive robust clipping (Allouah et al. 2024), a pre-aggregator.

    With $n = k$ rows, the $c$ vectors of largest norm are clipped to the norm of
    the largest remaining one:

    $$\mathrm{ARC}(x)_i = \min\Bigl(1, \frac{\lVert x_{\pi(n-c)}\rVert}{\lVert x_i\rVert}\Bigr)\, x_i,
      \qquad c = \Bigl\lfloor \frac{2f}{n}(n - f) \Bigr\rfloor$$

    where π sorts the norms in increasing order (vectors below the threshold are
    unchanged, so every row may take the same formula).  c = 0 (f = 0) returns
    ``x`` itself; otherwise a new ``(k, d)`` tensor, to be fed to any aggregator.

    Reference: Allouah, Guerraoui, Gupta, Jellouli, Rizk, Stephan, "The Vital Role
    of Gradient Clipping in Byzantine-Resilient Distributed Learning", 2024
    (arXiv:2405.14432); ByzFL's ``ARC(f)``.  c is computed in integers here; ByzFL
    rounds (2f/n)·(n − f) in floating point first, which gives one fewer clipped
    vector in two cases with f > n/2 (n = 121, f = 66; n = 150, f = 105).
    """
    _check(x)
    n = x.shape[0]
    c = min(max(0, 2 * f * (n - f) // n), n - 1)
    norms = torch.linalg.vector_norm(x, dim=1)
    if c == 0:
        return x
    threshold = torch.kthvalue(norms, n - c).values  # the largest norm of the n − c smallest
    return x * _clip_scale(norms, threshold)[:, None]


# --------------------------------------------------------------------------- ClippedClustering
def _median(v: torch.Tensor) -> torch.Tensor:
    """Median of a 1-D tensor, the average of the two middle values for an even count (as ``np.median``)."""
    n = v.shape[0]
    lo = torch.kthvalue(v, (n + 1) // 2).values
    return lo if n % 2 else 0.5 * (lo + torch.kthvalue(v, n // 2 + 1).values)


def _two_clusters(dist: torch.Tensor, linkage: str) -> torch.Tensor:
    """Agglomerative clustering of k points into 2 clusters; ``(k,)`` cluster id of each point.

    ``dist`` is a symmetric ``(k, k)`` distance matrix.  Each step merges the two
    clusters at the smallest linkage distance (the first pair in row-major order
    on a tie), updated by the Lance–Williams formula: average linkage
    d(A∪B, C) = (|A| d(A,C) + |B| d(B,C)) / (|A| + |B|), single = min, complete = max.
    The cluster id is the smallest point index the cluster merged into (k − 2 steps,
    every choice an index tensor on the device).
    """
    k = dist.shape[0]
    inf = float("inf")
    d = dist.clone().fill_diagonal_(float("inf"))
    size = torch.ones(k, dtype=dist.dtype, device=dist.device)
    label = torch.arange(k, device=dist.device)
    diag = torch.arange(k, device=dist.device) * (k + 1)
    for _ in range(k - 2):
        flat = torch.argmin(d.view(-1)).view(1)
        a, b = flat // k, flat % k  # a < b: the first minimum of a symmetric matrix is above the diagonal
        row_a, row_b = d.index_select(0, a)[0], d.index_select(0, b)[0]
        if linkage == "average":
            na, nb = size.index_select(0, a), size.index_select(0, b)
            new = (na * row_a + nb * row_b) / (na + nb)
        elif linkage == "single":
            new = torch.minimum(row_a, row_b)
        else:
            new = torch.maximum(row_a, row_b)
        d.index_copy_(0, a, new[None])
        d.index_copy_(1, a, new[:, None])
        d.index_fill_(0, b, inf)
        d.index_fill_(1, b, inf)
        d.view(-1).index_fill_(0, diag, inf)
        size.index_add_(0, a, size.index_select(0, b))
        size.index_fill_(0, b, 0)
        label = torch.where(label == b, a, label)
    return label


def clipped_clustering(x: torch.Tensor, state: dict | None = None, linkage: str = "average") -> torch.Tensor:
    r"""ClippedClustering (Li, Xu, Zhang, Wang, Wang & Jiang 2023).

    1. Clipping: append this round's norms ‖m_i‖ to the history of all norms the
       rule has seen (kept in ``state``), take the median M of the whole history
       (the current round included; even count: the average of the two middle
       values) and clip: m_i' = m_i · min(1, M/‖m_i‖).
    2. Clustering: agglomerative clustering of the m_i' into 2 clusters with the
       cosine distance 1 − cos(m_i', m_j') (a zero vector has cosine 0 to every
       other) and average linkage (``linkage``: also ``single``, ``complete``).
    3. The aggregate is the mean of the m_i' of the larger cluster $L$:

    $$m_i' = m_i \min\Bigl(1, \frac{M}{\lVert m_i\rVert}\Bigr),\qquad
      \mathrm{CClust}(x) = \frac{1}{|L|}\sum_{i \in L} m_i'$$

    Ties in step 3 (two clusters of k/2) go to the tighter cluster, the one with
    the smaller mean within-cluster cosine distance (then to the cluster of the
    first row): Blades takes whichever cluster scikit-learn numbered 0.  Clipping
    by a positive factor leaves the cosines unchanged, so step 2 works from the
    ``(k, k)`` Gram matrix of ``x``.

    Reference: Li et al., "An Experimental Study of Byzantine-Robust Aggregation
    Schemes in Federated Learning", IEEE Trans. Big Data 2023; its Blades library's
    ``Clippedclustering`` (norm history, median, clip, 2 clusters, average linkage,
    mean of the larger one) is followed here, except for two details: Blades
    scales by M/(‖m_i‖ + 1e-6) rather than M/‖m_i‖, and caps M at ``max_tau`` =
    1e5.  ``state=None`` keeps no history (the median of this round's norms).
    """
    _check(x)
    if linkage not in ("average", "single", "complete"):
        raise ValueError(f"linkage: must be one of average, single, complete; got {linkage!r}")
    k = x.shape[0]
    g = _gram(x)
    norms = g.diagonal().clamp_min(0).sqrt()
    history = norms if state is None or "norms" not in state else torch.cat([state["norms"].to(norms), norms])
    if state is not None:
        state["norms"] = history
    scale = _clip_scale(norms, _median(history))
    if k == 1:
        return x[0] * scale[0]
    g64 = g.to(torch.float64)
    inv = 1.0 / norms.to(torch.float64).clamp_min(_EPS)
    dist = (1.0 - g64 * inv[:, None] * inv[None, :]).fill_diagonal_(0.0)
    label = _two_clusters(dist, linkage)
    in_first = label == label[0]
    n_first = in_first.sum()
    n_other = k - n_first
    w_first, w_other = in_first.to(torch.float64), (~in_first).to(torch.float64)
    spread_first = (w_first @ dist @ w_first) / (n_first * (n_first - 1)).clamp_min(1)
    spread_other = (w_other @ dist @ w_other) / (n_other * (n_other - 1)).clamp_min(1)
    take_first = (n_first > n_other) | ((n_first == n_other) & (spread_first <= spread_other))
    chosen = torch.where(take_first, in_first, ~in_first)
    w = chosen.to(x.dtype) * scale
    return (w @ x) / chosen.sum().to(x.dtype)


# --------------------------------------------------------------------------- DnC
def _top_eigvec(m: torch.Tensor, squarings: int = 64) -> torch.Tensor:
    """A unit eigenvector of the largest eigenvalue of the symmetric PSD matrix ``m`` (k, k).

    Repeated squaring: m^(2^p)/scale tends to λ₁^(2^p) u uᵀ, the other directions
    shrinking as (λ_i/λ₁)^(2^p) (below the float64 range after 64 squarings unless
    λ_i/λ₁ > 1 − 1e-17, i.e. a tie, when any vector of the top eigenspace is as good).
    The column with the largest diagonal entry is then a multiple of u.  No host
    synchronisation (``torch.linalg.svd``/``eigh`` synchronise on CUDA).
    """
    p = m / m.abs().amax().clamp_min(torch.finfo(m.dtype).tiny)
    for _ in range(squarings):
        p = p @ p
        p = p / p.abs().amax().clamp_min(torch.finfo(m.dtype).tiny)
    u = p.index_select(1, torch.argmax(p.diagonal()).view(1))[:, 0]
    return u / torch.linalg.vector_norm(u).clamp_min(torch.finfo(m.dtype).tiny)


def dnc(x: torch.Tensor, f: int, generator: torch.Generator | None = None, niters: int = 1, c: float = 1.0,
        sub_dim: int = 10000) -> torch.Tensor:
    r"""DnC, divide-and-conquer (Shejwalkar & Houmansadr, NDSS 2021, Algorithm 2).

    Repeat ``niters`` times: draw ``sub_dim`` (b) coordinates r at random without
    replacement (all d when b ≥ d; :func:`byzlab.core.draws.subset`, in time of order b),
    centre the sub-vectors, μ = mean_i x_i[r], take the top right singular vector v of
    the centred ``(k, b)`` matrix and score every client by

    $$s_i = \bigl(\langle x_i[r] - \mu,\ v\rangle\bigr)^2 ;$$

    the k − ⌊c·f⌋ lowest scores form this iteration's good set.  The aggregate is
    the mean of the clients in every good set (the intersection $G$,
    $\mathrm{DnC}(x) = \frac{1}{|G|}\sum_{i \in G} x_i$); an empty
    intersection (possible only with ``niters`` > 1 and c·f ≥ k/2) gives a zero
    vector.  Defaults are the paper's: ``niters`` = 1, ``c`` = 1.0, b = 10,000.

    s_i = σ₁² u_i² with u the top left singular vector, the top eigenvector of
    the ``(k, k)`` Gram matrix of the centred rows, which is what is computed (in
    float64, by repeated squaring, :func:`_top_eigvec`); the clients kept are the
    SVD's.  Blades' ``Dnc`` takes the union of the good sets instead of the
    intersection (the same for ``niters`` = 1).
    """
    _check(x)
    k, d = x.shape
    keep = k - int(math.floor(c * f))
    if keep < 1:
        raise ValueError(f"c: dnc needs k - floor(c*f) >= 1 (k={k}, f={f}), got c={c}")
    good = torch.ones(k, dtype=torch.bool, device=x.device)
    for _ in range(niters):
        if sub_dim >= d:
            gram = _gram(x, centred=True)
        else:
            cols = subset(generator, d, sub_dim, device=x.device)
            sub = x.index_select(1, cols).to(torch.float64)
            sub = sub - sub.mean(0)
            gram = sub @ sub.T
        u = _top_eigvec(gram.to(torch.float64))
        kept = torch.topk(u.square(), keep, largest=False).indices
        good &= torch.zeros(k, dtype=torch.bool, device=x.device).index_fill_(0, kept, True)
    w = good.to(x.dtype)
    return (w @ x) / w.sum().clamp_min(1.0)


# --------------------------------------------------------------------------- FLTrust
def fltrust(x: torch.Tensor, server_update: torch.Tensor | None) -> torch.Tensor:
    r"""FLTrust (Cao, Fang, Liu & Gong, NDSS 2021).

    With g₀ = ``server_update`` (the server's own momentum on its small root
    dataset, ``RunConfig.root_size`` samples), each client gets the trust score
    TS_i = ReLU(cos(m_i, g₀)) and is rescaled to g₀'s norm,
    m̂_i = (‖g₀‖/‖m_i‖) m_i:

    $$TS_i = \mathrm{ReLU}\bigl(\cos(m_i, g_0)\bigr),\qquad
      \hat m_i = \frac{\lVert g_0\rVert}{\lVert m_i\rVert}\, m_i,\qquad
      \mathrm{FLTrust}(x) = \frac{\sum_i TS_i\, \hat m_i}{\sum_i TS_i}$$

    When every TS_i is 0 (no client points within 90° of g₀, or g₀ = 0) the
    aggregate is the zero vector: the server makes no step.  A zero client
    vector has cosine 0 and weight 0.
    """
    _check(x)
    if server_update is None:
        raise ValueError("server_update: fltrust needs the server's update g0 (the simulator passes it)")
    dots, norms = _dots_and_norms(x, server_update)
    g0 = torch.linalg.vector_norm(server_update)
    inv = 1.0 / norms.clamp_min(_EPS)
    trust = torch.relu(dots * inv / g0.clamp_min(_EPS))
    total = trust.sum()
    w = trust * inv * g0 / total.clamp_min(torch.finfo(x.dtype).tiny)
    return w @ x


# --------------------------------------------------------------------------- registration
def _more_than_f(what: str):
    def requires(n: int, f: int) -> str | None:
        return None if n > f else f"k_m: aggregator '{what}' needs k > k_m (k={n} inputs, k_m={f})"
    return requires


register_aggregator("s_cc", checks={"tau": positive, "s": positive_int}, symbols={"tau": "τ", "s": "s"},
                    clip_radius="tau",
                    description="S-CC: sequential centered clipping over similarity-mixed buckets "
                                "(the ROP authors' remedy)")(sequential_centered_clip)
register_pre_aggregator("arc", description="ARC: the ⌊2f(k−f)/k⌋ largest vectors clipped to the next norm "
                                           "(Allouah et al. 2024)")(arc)
register_aggregator("clippedclustering", checks={"linkage": one_of("average", "single", "complete")},
                    description="ClippedClustering: clip to the median historical norm, mean of the larger "
                                "of 2 cosine clusters (Li et al. 2023)")(clipped_clustering)
register_aggregator("dnc", requires=_more_than_f("dnc"),
                    checks={"niters": positive_int, "c": non_negative, "sub_dim": positive_int},
                    symbols={"c": "c", "sub_dim": "b"},
                    description="DnC: drop the c·f largest projections on the top singular vector "
                                "(Shejwalkar & Houmansadr 2021)")(dnc)
register_aggregator("fltrust", description="FLTrust: cosine trust in the server's root-data update, "
                                           "norms rescaled to it (Cao et al. 2021)")(fltrust)
