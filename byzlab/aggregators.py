r"""Robust aggregators (Section III-D of the paper) as pure functions.

Every function takes ``x``, a ``(k, d)`` tensor with one client vector (momentum
m_{i,t}) per row, and returns the aggregate m̃_t as a ``(d,)`` tensor.  Inputs are
never modified.  All are permutation invariant in the rows (Krum-family ties
aside) and run on whatever device ``x`` lives on, without host synchronisation.

Pre-aggregators (``bucketing``, ``nnm``) map ``(k, d) -> (k', d)`` and compose
with any aggregator (``RunConfig.pre_aggregators``).

Registered names (``byzlab list``) — one canonical spelling per rule, the paper's
abbreviation, used by configs, run keys, the CLI, profiles and result tables; the
Python function's name is an accepted alias (:data:`byzlab.registry.ALIASES`):

=============  ====================  =====================================
canonical      alias (function)      rule
=============  ====================  =====================================
``mean``       —                     average (FedAvg), not robust
``cm``         ``median``            coordinate-wise median
``tm``         ``trimmed_mean``      coordinate-wise trimmed mean
``rfa``        ``geometric_median``  RFA, smoothed Weiszfeld
``cc``         ``centered_clip``     Centered Clipping (Eq. 6, Alg. 2)
``krum``       —                     Krum
``multikrum``  ``multi_krum``        Multi-Krum
``bulyan``     —                     Bulyan
=============  ====================  =====================================

Pre-aggregators: ``bucketing``, ``nnm``.

How they are computed (speed)
-----------------------------
A round aggregates k = 25 vectors of d ≈ 0.3–5 M coordinates, so every rule is
written as a few passes over ``x`` that never build another ``(k, d)`` tensor:

* weighted sums Σ_i w_i x_i are one matrix–vector product (RFA, Multi-Krum) and
  row mixtures (bucketing, NNM) one matrix product;
* differences x_i − v (distances ‖x_i − v‖ for RFA and CC, CC's clipped sum)
  are formed one block of columns at a time (:func:`~byzlab.kernels.column_blocks`), so the
  temporary stays in cache;
* coordinate-wise order statistics (CM, TM, Bulyan) on CPU use a comparator
  network applied to whole rows (:func:`~byzlab.kernels.rank_network`): every comparator is one
  ``minimum`` and one ``maximum`` over a block of columns, vectorised across
  columns, instead of a per-column sort or ``topk`` along the short dimension
  (which is several times slower on CPU).  On CUDA they use ``topk``/``median``.

All of these are exact reformulations: results equal the textbook formulas up
to floating-point rounding (the order of additions).
"""
from __future__ import annotations

import torch

from .kernels import (
    apply_rank_network_,
    centered_matvec,
    column_blocks,
    rank_network,
    row_distances,
    window_around_median_mean,
)
from .registry import (
    positive,
    positive_int,
    optional_positive_int,
    one_of,
    register_aggregator,
    register_pre_aggregator,
)

__all__ = [
    "mean",
    "median",
    "trimmed_mean",
    "geometric_median",
    "centered_clip",
    "krum",
    "multi_krum",
    "bulyan",
    "bucketing",
    "nnm",
    "pairwise_sq_distances",
]


def _check(x: torch.Tensor) -> None:
    if x.dim() != 2 or x.shape[0] < 1:
        raise ValueError(f"x: expected a (k, d) tensor with k >= 1, got shape {tuple(x.shape)}")


# --------------------------------------------------------------------------- mean / median / TM
def mean(x: torch.Tensor) -> torch.Tensor:
    r"""Plain average :math:`\frac1k\sum_i x_i` (FedAvg; not robust)."""
    _check(x)
    return x.mean(0)


def median(x: torch.Tensor) -> torch.Tensor:
    r"""Coordinate-wise median (CM, [59], [61]).

    :math:`[\mathrm{CM}(x)]_j = \mathrm{median}_i\, x_{ij}`; for even k the average of
    the two middle values (``torch.median`` alone would return the lower one).
    """
    _check(x)
    k = x.shape[0]
    if x.device.type == "cpu":
        h = k // 2
        cuts = (h, h + 1) if k % 2 else (h - 1, h, h + 1)
        cuts = tuple(c for c in cuts if 0 < c < k)
        net = rank_network(k, cuts)
        out = x.new_empty(x.shape[1])
        for sl in column_blocks(x):
            w = apply_rank_network_(x[:, sl].clone(), net)
            out[sl] = w[h] if k % 2 else 0.5 * (w[h - 1] + w[h])
        return out
    if k % 2 == 1:
        return x.median(dim=0).values
    top = torch.topk(x, k // 2 + 1, dim=0).values  # largest k/2+1, descending
    return 0.5 * (top[-1] + top[-2])


def trimmed_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Coordinate-wise trimmed mean (TM, [61]; Section III-D).

    For each coordinate j drop the ``f`` largest and ``f`` smallest values and
    average the remaining k − 2f:

    .. math:: [\mathrm{TM}(x)]_j = \frac{1}{k-2f}\sum_{i=f+1}^{k-f} x_{\omega_j(i)\,j}

    where ω_j sorts column j.  In the simulator ``f`` is the round context's
    ``f`` (= k_m unless ``agg_f`` is set; ByzFL's ``TrMean(f)`` uses the same
    name).  Requires k > 2f.
    On CPU a :func:`~byzlab.kernels.rank_network` moves the f smallest and f largest values of
    every column to the outer rows and the middle rows are summed; elsewhere it is
    (sum − top-f − bottom-f) with two ``topk`` selections.
    """
    _check(x)
    k = x.shape[0]
    if not 0 <= f or 2 * f >= k:
        raise ValueError(f"f: trimmed_mean needs 0 <= 2*f < k (k={k}), got f={f}")
    if f == 0:
        return x.mean(0)
    if x.device.type == "cpu":
        net = rank_network(k, (f, k - f))
        out = x.new_empty(x.shape[1])
        for sl in column_blocks(x):
            out[sl] = apply_rank_network_(x[:, sl].clone(), net)[f: k - f].sum(0)
        return out.div_(k - 2 * f)
    total = x.sum(0)
    hi = torch.topk(x, f, dim=0, sorted=False).values.sum(0)
    lo = torch.topk(x, f, dim=0, largest=False, sorted=False).values.sum(0)
    return (total - hi - lo) / (k - 2 * f)


# --------------------------------------------------------------------------- RFA
def geometric_median(x: torch.Tensor, iters: int = 3, nu: float = 0.1, init: str = "zero") -> torch.Tensor:
    r"""Smoothed Weiszfeld approximation of the geometric median (RFA, [42]).

    RFA(x) = argmin_z Σ_i ‖z − x_i‖₂, approximated by ``iters`` (T) Weiszfeld steps

    .. math:: z \leftarrow \frac{\sum_i w_i x_i}{\sum_i w_i},\qquad
              w_i = \frac{1}{\max(\nu, \lVert z - x_i\rVert)}

    The paper fixes T = 3 (Section VI).  ``nu`` (ν) = 0.1 is the authors'
    library's CLI default.  ``init="zero"`` starts from z = 0 as the authors'
    library does; ``init="mean"`` starts from the average (Pillutla et al.).
    """
    _check(x)
    if init == "zero":
        z = torch.zeros_like(x[0])
    elif init == "mean":
        z = x.mean(0)
    else:
        raise ValueError(f"init: must be 'zero' or 'mean', got {init!r}")
    for _ in range(iters):
        w = 1.0 / row_distances(x, z).clamp_min(nu)
        z = (w @ x) / w.sum()
    return z


# --------------------------------------------------------------------------- CC
def centered_clip(x: torch.Tensor, center: torch.Tensor | None, tau: float, iters: int = 1) -> torch.Tensor:
    r"""Centered Clipping (CC, [27]; Eq. 6 and Algorithm 2 of the paper).

    With v₀ = ``center`` (the previous aggregate m̃_{t−1}; the simulator passes
    zeros at t = 1, and ``None`` is read as zeros) and ``iters`` (l) iterations:

    .. math:: v_{l+1} = v_l + \frac1k \sum_i \min\Bigl(1, \frac{\tau}{\lVert x_i - v_l\rVert}\Bigr)(x_i - v_l)

    so each client's vector is pulled back into the ball of radius τ around the
    centre (f_cc of Eq. 6) before averaging.  Inside the ball f_cc is the
    identity: with every ‖x_i − v‖ ≤ τ the result is the plain mean.  The paper
    uses l = 1, τ ∈ {0.1, 1} and does not scale τ by (1 − β).
    """
    _check(x)
    v = torch.zeros_like(x[0]) if center is None else center
    for _ in range(iters):
        scale = (tau / row_distances(x, v).clamp_min(1e-12)).clamp(max=1.0)
        v = v + centered_matvec(scale, x, v) / x.shape[0]
    return v


# --------------------------------------------------------------------------- Krum family
def pairwise_sq_distances(x: torch.Tensor) -> torch.Tensor:
    """(k, k) squared Euclidean distances via the Gram matrix, diagonal exactly 0.

    The rows are centred on their mean first (distances do not change): the
    Gram formula ‖a‖² + ‖b‖² − 2⟨a, b⟩ would otherwise cancel catastrophically
    in float32 when the vectors share a component much larger than their spread
    (momenta late in training).  Centring and the matmul go block by block over
    the columns, so no centred copy of ``x`` is made.
    """
    g = x.new_zeros(x.shape[0], x.shape[0])
    for sl in column_blocks(x):
        xb = x[:, sl]
        xb = xb - xb.mean(0)
        g.addmm_(xb, xb.T)
    sq = g.diagonal()
    d2 = (sq[:, None] + sq[None, :] - 2 * g).clamp_min(0)
    return d2.fill_diagonal_(0)


def _krum_scores(d2: torch.Tensor, f: int, neighbours: int | None = None) -> torch.Tensor:
    k = d2.shape[0]
    m = k - f - 2 if neighbours is None else neighbours
    m = max(1, min(m, k - 1))
    # smallest m distances to *others*: sort each row, skip the zero self-distance
    return torch.sort(d2, dim=1).values[:, 1 : m + 1].sum(1)


def krum(x: torch.Tensor, f: int, neighbours: int | None = None) -> torch.Tensor:
    r"""Krum (Blanchard et al. 2017, [6]).

    Score s(i) = Σ_{j ∈ N_i} ‖x_i − x_j‖², N_i the k − f − 2 nearest other rows;
    return the row of minimal score.  ``neighbours`` overrides k − f − 2 (ByzFL
    uses k − f − 1).  Requires k > 2f + 2 in theory; the simulator enforces k > 2f.
    """
    _check(x)
    scores = _krum_scores(pairwise_sq_distances(x), f, neighbours)
    return x.index_select(0, torch.argmin(scores).view(1))[0]  # (a 0-dim index would read it on the host)


def multi_krum(x: torch.Tensor, f: int, m: int | None = None, neighbours: int | None = None) -> torch.Tensor:
    r"""Multi-Krum: average of the ``m`` rows with the lowest Krum scores (m = None → k − f).

    This is what the authors' library calls "krum".
    """
    _check(x)
    k = x.shape[0]
    m = k - f if m is None else m
    if not 1 <= m <= k:
        raise ValueError(f"m: multi_krum needs 1 <= m <= k (k={k}), got {m}")
    scores = _krum_scores(pairwise_sq_distances(x), f, neighbours)
    idx = torch.topk(scores, m, largest=False).indices
    weights = torch.zeros(k, dtype=x.dtype, device=x.device).index_fill_(0, idx, 1.0 / m)
    return weights @ x


def bulyan(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Bulyan (El Mhamdi et al. 2018, [17]).

    1. Selection: θ = k − 2f rows chosen one at a time by Krum on the rows not
       yet selected (scores recomputed on the remaining set).
    2. Aggregation: per coordinate, average the β = θ − 2f selected values closest
       to the coordinate-wise median of the selection.

    Requires k ≥ 4f + 3.  (The authors' library ends with a trimmed mean instead
    of step 2.)
    """
    _check(x)
    k = x.shape[0]
    theta = k - 2 * f
    beta_ = theta - 2 * f
    if k < 4 * f + 3:
        raise ValueError(f"f: bulyan needs k >= 4*f + 3 (k={k}), got f={f}")
    d2 = pairwise_sq_distances(x)
    rows = torch.arange(k, device=x.device)
    remaining = torch.ones(k, dtype=torch.bool, device=x.device)
    chosen = []
    for step in range(theta):
        n = k - step
        m = max(1, n - f - 2)
        masked = torch.where(remaining[None, :] & remaining[:, None], d2, float("inf"))
        masked = masked.fill_diagonal_(float("inf"))
        scores = torch.sort(masked, dim=1).values[:, :m].sum(1)
        scores = torch.where(remaining, scores, float("inf"))
        i = torch.argmin(scores)
        chosen.append(i)
        remaining = remaining & (rows != i)
    selected = torch.stack(chosen)
    if x.device.type != "cpu":
        sel = x.index_select(0, selected)
        med = median(sel)
        closest = torch.topk((sel - med).abs(), beta_, dim=0, largest=False).indices
        return torch.gather(sel, 0, closest).mean(0)
    # CPU: sort the selection per coordinate; the β values closest to the median are
    # then a window of consecutive sorted values around the middle (ties: the lower one).
    net = rank_network(theta, tuple(range(1, theta)))
    out = x.new_empty(x.shape[1])
    for sl in column_blocks(x):
        out[sl] = window_around_median_mean(apply_rank_network_(x[:, sl].index_select(0, selected), net), beta_)
    return out



# --------------------------------------------------------------------------- pre-aggregators
def bucketing(x: torch.Tensor, s: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Bucketing (Karimireddy, He & Jaggi 2022).

    Shuffle the k rows with a random permutation, split them into ⌈k/s⌉ buckets of
    (at most) ``s`` consecutive rows and return the bucket means, a
    ``(⌈k/s⌉, d)`` tensor to feed to any aggregator.
    """
    _check(x)
    k = x.shape[0]
    perm = torch.randperm(k, generator=generator, device=generator.device if generator else "cpu").to(x.device)
    nb = -(-k // s)
    bucket = torch.arange(k, device=x.device) // s  # bucket of each position of the shuffled order
    weight = torch.full((k,), 1.0 / s, dtype=x.dtype, device=x.device)
    weight.masked_fill_(bucket == nb - 1, 1.0 / (k - (nb - 1) * s))  # the last bucket may be smaller
    mix = torch.zeros(nb, k, dtype=x.dtype, device=x.device).index_put_((bucket, perm), weight)
    return mix @ x  # row q: the mean of the rows in bucket q


def nnm(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Nearest-neighbour mixing (Allouah et al. 2023).

    Replace each row by the average of its k − f nearest rows (itself included,
    Euclidean distance): :math:`y_i = \frac{1}{k-f}\sum_{j \in N_i} x_j`.
    """
    _check(x)
    k = x.shape[0]
    idx = torch.topk(pairwise_sq_distances(x), k - f, dim=1, largest=False).indices  # (k, k-f)
    mix = torch.zeros(k, k, dtype=x.dtype, device=x.device).scatter_(1, idx, 1.0 / (k - f))
    return mix @ x


# --------------------------------------------------------------------------- registration
def _need(mult: int, add: int, what: str):
    def requires(n: int, f: int) -> str | None:
        if n > mult * f + add:
            return None
        return f"k_m: aggregator '{what}' needs k > {mult}*k_m" + (f"+{add}" if add else "") + f" (k={n} inputs, k_m={f})"
    return requires


register_aggregator("mean", description="plain average (FedAvg), not robust")(mean)
register_aggregator("cm", aliases=("median",), description="coordinate-wise median")(median)
register_aggregator("tm", aliases=("trimmed_mean",), requires=_need(2, 0, "tm"),
                    description="coordinate-wise trimmed mean, f trimmed per side")(trimmed_mean)
register_aggregator("rfa", aliases=("geometric_median",),
                    checks={"iters": positive_int, "nu": positive, "init": one_of("zero", "mean")},
                    symbols={"iters": "T", "nu": "ν"},
                    description="RFA: smoothed Weiszfeld geometric median")(geometric_median)
register_aggregator("cc", aliases=("centered_clip",), defaults={"tau": 1.0},
                    checks={"tau": positive, "iters": positive_int},
                    symbols={"tau": "τ", "iters": "l"},
                    description="Centered Clipping around the previous aggregate (Eq. 6, Alg. 2)")(centered_clip)
register_aggregator("krum", requires=_need(2, 0, "krum"), checks={"neighbours": optional_positive_int},
                    description="Krum: the single best-scored client")(krum)
register_aggregator("multikrum", aliases=("multi_krum",), requires=_need(2, 0, "multikrum"),
                    checks={"m": optional_positive_int, "neighbours": optional_positive_int},
                    description="Multi-Krum: mean of the m best-scored clients")(multi_krum)
register_aggregator("bulyan", requires=_need(4, 2, "bulyan"),
                    description="Bulyan: Krum selection then median-centred trimming")(bulyan)
register_pre_aggregator("bucketing", checks={"s": positive_int},
                        description="random buckets of s clients averaged (Karimireddy et al. 2022)")(bucketing)
register_pre_aggregator("nnm", description="nearest-neighbour mixing (Allouah et al. 2023)")(nnm)
