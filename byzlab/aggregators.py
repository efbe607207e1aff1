r"""Robust aggregators (Section III-D of the paper) as pure functions.

Every function takes ``x``, a ``(k, d)`` tensor with one client vector (momentum
m_{i,t}) per row, and returns the aggregate m̃_t as a ``(d,)`` tensor.  Inputs are
never modified.  All are permutation invariant in the rows (Krum-family ties
aside) and run on whatever device ``x`` lives on, without host synchronisation.

Pre-aggregators (``bucketing``, ``nnm``) map ``(k, d) -> (k', d)`` and compose
with any aggregator (``RunConfig.pre_aggregators``).

Registered names (``byzlab list``): ``mean``, ``cm``, ``tm``, ``rfa``, ``cc``,
``krum``, ``multikrum``, ``bulyan``; pre-aggregators ``bucketing``, ``nnm``.
"""
from __future__ import annotations

import torch

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
    if k % 2 == 1:
        return x.median(dim=0).values
    top = torch.topk(x, k // 2 + 1, dim=0).values  # largest k/2+1, descending
    return 0.5 * (top[-1] + top[-2])


def trimmed_mean(x: torch.Tensor, b: int) -> torch.Tensor:
    r"""Coordinate-wise trimmed mean (TM, [61]; Section III-D).

    For each coordinate j drop the ``b`` largest and ``b`` smallest values and
    average the remaining k − 2b:

    .. math:: [\mathrm{TM}(x)]_j = \frac{1}{k-2b}\sum_{i=b+1}^{k-b} x_{\omega_j(i)\,j}

    where ω_j sorts column j.  In the simulator ``b`` = k_m.  Requires k > 2b.
    Computed as (sum − top-b − bottom-b) with two ``topk`` selections instead of
    a full sort.
    """
    _check(x)
    k = x.shape[0]
    if not 0 <= b or 2 * b >= k:
        raise ValueError(f"b: trimmed_mean needs 0 <= 2*b < k (k={k}), got b={b}")
    if b == 0:
        return x.mean(0)
    total = x.sum(0)
    hi = torch.topk(x, b, dim=0, sorted=False).values.sum(0)
    lo = torch.topk(x, b, dim=0, largest=False, sorted=False).values.sum(0)
    return (total - hi - lo) / (k - 2 * b)


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
        w = 1.0 / torch.linalg.vector_norm(x - z, dim=1).clamp_min(nu)
        z = (w @ x) / w.sum()
    return z


# --------------------------------------------------------------------------- CC
def centered_clip(x: torch.Tensor, center: torch.Tensor | None, tau: float, iters: int = 1) -> torch.Tensor:
    r"""Centered Clipping (CC, [27]; Eq. 6 and Algorithm 2 of the paper).

    With v₀ = ``center`` (the previous aggregate m̃_{t−1}; zeros when ``None``,
    i.e. at t = 1) and ``iters`` (l) iterations:

    .. math:: v_{l+1} = v_l + \frac1k \sum_i \min\Bigl(1, \frac{\tau}{\lVert x_i - v_l\rVert}\Bigr)(x_i - v_l)

    so each client's vector is pulled back into the ball of radius τ around the
    centre (f_cc of Eq. 6) before averaging.  Inside the ball f_cc is the
    identity: with every ‖x_i − v‖ ≤ τ the result is the plain mean.  The paper
    uses l = 1, τ ∈ {0.1, 1} and does not scale τ by (1 − β).
    """
    _check(x)
    v = torch.zeros_like(x[0]) if center is None else center
    for _ in range(iters):
        diff = x - v
        norms = torch.linalg.vector_norm(diff, dim=1)
        scale = (tau / norms.clamp_min(1e-12)).clamp(max=1.0)
        v = v + (scale @ diff) / x.shape[0]
    return v


# --------------------------------------------------------------------------- Krum family
def pairwise_sq_distances(x: torch.Tensor) -> torch.Tensor:
    """(k, k) squared Euclidean distances via the Gram matrix (one matmul), diagonal exactly 0."""
    g = x @ x.T
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
    return x[torch.argmin(scores)].clone()


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
    return x[idx].mean(0)


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
    remaining = torch.ones(k, dtype=torch.bool, device=x.device)
    chosen = []
    inf = torch.tensor(float("inf"), device=x.device, dtype=x.dtype)
    for step in range(theta):
        n = k - step
        m = max(1, n - f - 2)
        masked = torch.where(remaining[None, :] & remaining[:, None], d2, inf)
        masked = masked.clone().fill_diagonal_(float("inf"))
        scores = torch.sort(masked, dim=1).values[:, :m].sum(1)
        scores = torch.where(remaining, scores, inf)
        i = torch.argmin(scores)
        chosen.append(i)
        remaining = remaining.clone()
        remaining[i] = False
    sel = x[torch.stack(chosen)]
    med = median(sel)
    closest = torch.topk((sel - med).abs(), beta_, dim=0, largest=False).indices
    return torch.gather(sel, 0, closest).mean(0)


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
    xs = x[perm]
    nb = -(-k // s)
    pad = nb * s - k
    if pad == 0:
        return xs.view(nb, s, -1).mean(1)
    sums = torch.zeros(nb, x.shape[1], dtype=x.dtype, device=x.device)
    bucket = torch.arange(k, device=x.device) // s
    sums.index_add_(0, bucket, xs)
    counts = torch.bincount(bucket, minlength=nb).to(x.dtype)
    return sums / counts[:, None]


def nnm(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Nearest-neighbour mixing (Allouah et al. 2023).

    Replace each row by the average of its k − f nearest rows (itself included,
    Euclidean distance): :math:`y_i = \frac{1}{k-f}\sum_{j \in N_i} x_j`.
    """
    _check(x)
    k = x.shape[0]
    idx = torch.topk(pairwise_sq_distances(x), k - f, dim=1, largest=False).indices  # (k, k-f)
    return x[idx].mean(1)


# --------------------------------------------------------------------------- registration
def _need(mult: int, add: int, what: str):
    def requires(n: int, f: int) -> str | None:
        if n > mult * f + add:
            return None
        return f"k_m: aggregator '{what}' needs k > {mult}*k_m" + (f"+{add}" if add else "") + f" (k={n} inputs, k_m={f})"
    return requires


register_aggregator("mean", description="plain average (FedAvg), not robust")(mean)
register_aggregator("cm", description="coordinate-wise median")(median)
register_aggregator("tm", requires=_need(2, 0, "tm"),
                    description="coordinate-wise trimmed mean, k_m trimmed per side")(trimmed_mean)
register_aggregator("rfa", checks={"iters": positive_int, "nu": positive, "init": one_of("zero", "mean")},
                    symbols={"iters": "T", "nu": "ν"},
                    description="RFA: smoothed Weiszfeld geometric median")(geometric_median)
register_aggregator("cc", defaults={"tau": 1.0}, checks={"tau": positive, "iters": positive_int},
                    symbols={"tau": "τ", "iters": "l"},
                    description="Centered Clipping around the previous aggregate (Eq. 6, Alg. 2)")(centered_clip)
register_aggregator("krum", requires=_need(2, 0, "krum"), checks={"neighbours": optional_positive_int},
                    description="Krum: the single best-scored client")(krum)
register_aggregator("multikrum", requires=_need(2, 0, "multikrum"),
                    checks={"m": optional_positive_int, "neighbours": optional_positive_int},
                    description="Multi-Krum: mean of the m best-scored clients")(multi_krum)
register_aggregator("bulyan", requires=_need(4, 2, "bulyan"),
                    description="Bulyan: Krum selection then median-centred trimming")(bulyan)
register_pre_aggregator("bucketing", checks={"s": positive_int},
                        description="random buckets of s clients averaged (Karimireddy et al. 2022)")(bucketing)
register_pre_aggregator("nnm", description="nearest-neighbour mixing (Allouah et al. 2023)")(nnm)
