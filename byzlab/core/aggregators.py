r"""Robust aggregators (Section III-D of the paper) as pure functions.

Every function takes ``x``, a ``(k, d)`` tensor with one client vector (momentum
$m_{i,t}$) per row, and returns the aggregate $\tilde m_t$ as a ``(d,)`` tensor
(Algorithm 1, line 13: $\tilde m_t \leftarrow \mathrm{AGG}(m_{1,t}, \dots, m_{k,t})$).
Inputs are never modified.  All are permutation invariant in the rows (Krum-family
ties aside) and run on whatever device ``x`` lives on, without host synchronisation.

Pre-aggregators (``bucketing``, ``nnm``) map ``(k, d) -> (k', d)`` and compose
with any aggregator (``RunConfig.pre_aggregators``).

Registered names (``byzlab list``): one canonical spelling per rule, the paper's
abbreviation, used by configs, run keys, the CLI, profiles and result tables; the
Python function's name is an accepted alias (``byzlab.core.registry.ALIASES``):

| canonical   | alias (function)   | rule                                   |
|-------------|--------------------|----------------------------------------|
| `mean`      | –                  | average (FedAvg), not robust           |
| `cm`        | `median`           | coordinate-wise median                 |
| `tm`        | `trimmed_mean`     | coordinate-wise trimmed mean           |
| `rfa`       | `geometric_median` | RFA, smoothed Weiszfeld                |
| `cc`        | `centered_clip`    | Centered Clipping (Eq. 6, Alg. 2)      |
| `krum`      | –                  | Krum                                   |
| `multikrum` | `multi_krum`       | Multi-Krum                             |
| `bulyan`    | –                  | Bulyan                                 |

Pre-aggregators: ``bucketing``, ``nnm``.

Notation in the formulas below: $x_1, \dots, x_k \in \mathbb{R}^d$ the rows of
``x``, $x_{ij}$ coordinate $j$ of row $i$, $f$ the number of Byzantine clients
the server guards against (``RoundContext.f``: ``agg_f`` if set, else $k_m$).

How they are computed (speed)
-----------------------------
A round aggregates k = 25 vectors of d ≈ 0.3–5 M coordinates, so every rule is
written as a few passes over ``x`` that never build another ``(k, d)`` tensor
(the helpers are in :mod:`byzlab.core.kernels`):

* weighted sums Σ_i w_i x_i are one matrix–vector product (RFA, Multi-Krum) and
  row mixtures (bucketing, NNM) one matrix product;
* differences x_i − v (distances ‖x_i − v‖ for RFA and CC, CC's clipped sum)
  are formed one block of columns at a time (:func:`~byzlab.core.kernels.column_blocks`), so the
  temporary stays in cache;
* coordinate-wise order statistics (CM, TM, Bulyan) on CPU use a comparator
  network applied to whole rows (:func:`~byzlab.core.kernels.rank_network`): every comparator is one
  ``minimum`` and one ``maximum`` over a block of columns, vectorised across
  columns, instead of a per-column sort or ``topk`` along the short dimension
  (which is several times slower on CPU).  On CUDA: ``sort`` (TM) and ``median``/``topk`` (CM).

All of these are exact reformulations: results equal the textbook formulas up
to floating-point rounding (the order of additions).
"""
from __future__ import annotations

import torch

from .draws import draw
from .kernels import (
    apply_rank_network_,
    clipped_sum,
    rank_sum,
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
    r"""Plain average (FedAvg, McMahan et al. 2017, unweighted); not robust.

    $$\mathrm{AGG}(x) = \frac{1}{k}\sum_{i=1}^{k} x_i$$

    One Byzantine row can move it arbitrarily far.  It is the reference every robust
    rule should match when all rows are benign.
    """
    _check(x)
    return x.mean(0)


def median(x: torch.Tensor) -> torch.Tensor:
    r"""Coordinate-wise median (CM; Yin, Chen, Ramchandran & Bartlett, ICML 2018; the paper's [59], [61], Section III-D).

    $$[\mathrm{CM}(x)]_j = \operatorname{median}_{i=1..k}\, x_{ij}
      = \begin{cases} x_{\omega_j(h+1)\,j} & k = 2h + 1 \\
        \tfrac12\bigl(x_{\omega_j(h)\,j} + x_{\omega_j(h+1)\,j}\bigr) & k = 2h \end{cases}$$

    where $\omega_j$ sorts column $j$ in increasing order.  For even $k$ the average of
    the two middle values (``torch.median`` alone would return the lower one), as
    ``np.median`` and ByzFL's ``Median``.  No parameter.

    On CPU a :func:`~byzlab.core.kernels.rank_network` moves the middle value(s) of every
    column into place (:func:`~byzlab.core.kernels.rank_sum`: compiled into one loop on large
    matrices); elsewhere ``torch.median`` (odd $k$) or ``topk`` (even $k$).
    """
    _check(x)
    k = x.shape[0]
    if x.device.type == "cpu":
        h = k // 2
        cuts = (h, h + 1) if k % 2 else (h - 1, h, h + 1)
        cuts = tuple(c for c in cuts if 0 < c < k)
        if k % 2:
            return rank_sum(x, cuts, h, h + 1)
        return rank_sum(x, cuts, h - 1, h + 1).mul_(0.5)
    if k % 2 == 1:
        return x.median(dim=0).values
    top = torch.topk(x, k // 2 + 1, dim=0).values  # largest k/2+1, descending
    return 0.5 * (top[-1] + top[-2])


def trimmed_mean(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Coordinate-wise trimmed mean (TM; Yin et al., ICML 2018, the paper's [61]; Section III-D).

    For each coordinate $j$ drop the $f$ largest and $f$ smallest values and
    average the remaining $k - 2f$:

    $$[\mathrm{TM}(x)]_j = \frac{1}{k-2f}\sum_{i=f+1}^{k-f} x_{\omega_j(i)\,j}$$

    where $\omega_j$ sorts column $j$ in increasing order.  (The paper prints the sum
    from $i = k_m$ to $k - k_m$ with $f = k_m$; that is $k - 2k_m + 1$ terms, an
    off-by-one: the $k - 2f$ middle values are meant, as here and in ByzFL's
    ``TrMean(f)``.)  In the simulator ``f`` is the round context's ``f`` ($k_m$
    unless ``agg_f`` is set).  Requires $k > 2f$; $f = 0$ gives the mean.

    On CPU a :func:`~byzlab.core.kernels.rank_network` moves the f smallest and f largest values of
    every column to the outer rows and the middle rows are summed (:func:`~byzlab.core.kernels.rank_sum`:
    compiled into one loop on large matrices); elsewhere (CUDA) one ``sort`` of the
    columns and the mean of the middle rows — the definition above, measured 2.6× faster than
    (sum − top-f − bottom-f) with two ``topk`` selections on an H200 at k = 25, f = 5, d = 6.6 M
    (7.4 against 19.6 ms; ``benchmarks/RESULTS.md``), and free of that form's cancellation.
    """
    _check(x)
    k = x.shape[0]
    if not 0 <= f or 2 * f >= k:
        raise ValueError(f"f: trimmed_mean needs 0 <= 2*f < k (k={k}), got f={f}")
    if f == 0:
        return x.mean(0)
    if x.device.type == "cpu":
        return rank_sum(x, (f, k - f), f, k - f).div_(k - 2 * f)
    return torch.sort(x, dim=0).values[f: k - f].mean(0)


# --------------------------------------------------------------------------- RFA
def geometric_median(x: torch.Tensor, iters: int = 3, nu: float = 0.1, init: str = "zero") -> torch.Tensor:
    r"""RFA: smoothed Weiszfeld approximation of the geometric median (Pillutla, Kakade & Harchaoui, IEEE TSP 2022, the paper's [42]; Section III-D).

    The geometric median

    $$\mathrm{RFA}(x) = \operatorname*{arg\,min}_{z \in \mathbb{R}^d} \sum_{i=1}^{k} \lVert z - x_i\rVert_2$$

    is approximated by ``iters`` ($T$) smoothed Weiszfeld steps from $z^{(0)}$:

    $$z^{(s+1)} = \frac{\sum_i w_i^{(s)} x_i}{\sum_i w_i^{(s)}},\qquad
      w_i^{(s)} = \frac{1}{\max\bigl(\nu,\ \lVert z^{(s)} - x_i\rVert_2\bigr)}$$

    and returns $z^{(T)}$ (uniform client weights $\alpha_i = 1/k$, which cancel).

    Defaults: $T$ = 3, as the paper fixes (Section VI, following [42]);
    ``nu`` ($\nu$) = 0.1, the authors' library's command-line default (its class
    default is 1e-6); ``init="zero"`` starts from $z^{(0)} = 0$ as the authors'
    library does, ``init="mean"`` from the average as Pillutla et al. (and ByzFL's
    ``GeometricMedian``) do.
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
    r"""Centered Clipping (CC; Karimireddy, He & Jaggi, ICML 2021, the paper's [27]; Eq. 6 and Algorithm 2).

    Eq. 6 clips a vector into the ball of radius $\tau$ around a centre $v$:

    $$f_{cc}(m \mid v, \tau) = v + \min\Bigl(1, \frac{\tau}{\lVert m - v\rVert}\Bigr)(m - v)$$

    and Algorithm 2 averages the clipped vectors.  With $v_0$ = ``center`` (the
    previous aggregate $\tilde m_{t-1}$; the simulator passes zeros at $t = 1$, and
    ``None`` is read as zeros) and ``iters`` ($l$) iterations:

    $$v_{l+1} = \frac{1}{k}\sum_{i=1}^{k} f_{cc}(x_i \mid v_l, \tau)
              = v_l + \frac{1}{k}\sum_{i=1}^{k}\min\Bigl(1, \frac{\tau}{\lVert x_i - v_l\rVert}\Bigr)(x_i - v_l)$$

    Inside the ball $f_{cc}$ is the identity: with every $\lVert x_i - v\rVert \le \tau$
    the result is the plain mean.  Defaults: $\tau$ = 1.0 (the registered default;
    the paper runs $\tau \in \{0.1, 1\}$), $l$ = 1 (Section VI); $\tau$ is not scaled by
    $(1 - \beta)$, as in the paper.  Distances below 1e-12 count as zero.
    """
    _check(x)
    v = torch.zeros_like(x[0]) if center is None else center
    for _ in range(iters):
        v = v + clipped_sum(x, v, tau) / x.shape[0]
    return v


# --------------------------------------------------------------------------- Krum family
def pairwise_sq_distances(x: torch.Tensor) -> torch.Tensor:
    r"""``(k, k)`` squared Euclidean distances $D_{ij} = \lVert x_i - x_j\rVert^2$ via the Gram matrix, diagonal exactly 0.

    $D_{ij} = G_{ii} + G_{jj} - 2 G_{ij}$ with $G = \dot x\,\dot x^\top$ and
    $\dot x_i = x_i - \frac1k\sum_l x_l$ (clamped at 0).  The rows are centred on
    their mean first (distances do not change): the Gram formula would otherwise
    cancel catastrophically in float32 when the vectors share a component much
    larger than their spread (momenta late in training).  Centring and the matmul
    go block by block over the columns, so no centred copy of ``x`` is made.
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
    r"""Krum (Blanchard, El Mhamdi, Guerraoui & Stainer, NeurIPS 2017, the paper's [6]).

    Each row gets the score

    $$s(i) = \sum_{j \in N_i} \lVert x_i - x_j\rVert^2$$

    with $N_i$ the $n_b$ nearest *other* rows, $n_b = k - f - 2$ by default; Krum
    returns the row of minimal score, $x_{i^\star}$ with $i^\star = \arg\min_i s(i)$
    (ties: the lowest index).  ``neighbours`` overrides $n_b$ (ByzFL uses
    $k - f - 1$); $n_b$ is clamped to $[1, k - 1]$.  Blanchard et al. require
    $k > 2f + 2$; the simulator enforces $k > 2f$.
    """
    _check(x)
    scores = _krum_scores(pairwise_sq_distances(x), f, neighbours)
    return x.index_select(0, torch.argmin(scores).view(1))[0]  # (a 0-dim index would read it on the host)


def multi_krum(x: torch.Tensor, f: int, m: int | None = None, neighbours: int | None = None) -> torch.Tensor:
    r"""Multi-Krum (Blanchard et al., NeurIPS 2017): the average of the ``m`` best-scored rows.

    $$\mathrm{MultiKrum}(x) = \frac{1}{m}\sum_{i \in S_m} x_i$$

    with $S_m$ the $m$ rows of lowest Krum score $s(i)$ (:func:`krum`, ``neighbours``
    as there); $m$ = ``None`` → $k - f$ (ByzFL's default).  $m = 1$ is Krum.  This
    is what the authors' library calls "krum".  Requires $1 \le m \le k$.
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
    r"""Bulyan (El Mhamdi, Guerraoui & Rouault, ICML 2018, the paper's [17]).

    1. Selection: $\theta = k - 2f$ rows, chosen one at a time by Krum on the rows not
       yet selected (scores recomputed on the $n$ remaining rows with their
       $\max(1, n - f - 2)$ nearest remaining neighbours); $S$ the selected set.
    2. Aggregation: per coordinate, average the $\beta = \theta - 2f$ selected values
       closest to the coordinate-wise median of the selection:

    $$[\mathrm{Bulyan}(x)]_j = \frac{1}{\beta}\sum_{i \in M_j} x_{ij},\qquad
      M_j = \operatorname*{arg\,min}_{M \subseteq S,\ |M| = \beta}\ \sum_{i \in M}\bigl|x_{ij} - \operatorname{median}_{l \in S} x_{lj}\bigr|$$

    Requires $k \ge 4f + 3$.  Ties between two values equally close to the median:
    the lower one on CPU.  (The authors' library ends with a trimmed mean of the
    selection instead of step 2.)
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
    r"""Bucketing (Karimireddy, He & Jaggi, ICLR 2022), a pre-aggregator.

    Shuffle the $k$ rows with a random permutation $\pi$ (from ``generator``, the
    run's RNG), split them into $\lceil k/s\rceil$ buckets $B_q$ of $s$ consecutive
    rows (the last one may be smaller) and return the bucket means

    $$y_q = \frac{1}{|B_q|}\sum_{i \in B_q} x_{\pi(i)},\qquad q = 1, \dots, \lceil k/s\rceil,$$

    a ``(⌈k/s⌉, d)`` tensor to feed to any aggregator.  Default $s$ = 2.
    """
    _check(x)
    k = x.shape[0]
    perm = draw(generator, torch.randperm, k, device=x.device)
    nb = -(-k // s)
    bucket = torch.arange(k, device=x.device) // s  # bucket of each position of the shuffled order
    weight = torch.full((k,), 1.0 / s, dtype=x.dtype, device=x.device)
    weight.masked_fill_(bucket == nb - 1, 1.0 / (k - (nb - 1) * s))  # the last bucket may be smaller
    mix = torch.zeros(nb, k, dtype=x.dtype, device=x.device).index_put_((bucket, perm), weight)
    return mix @ x  # row q: the mean of the rows in bucket q


def nnm(x: torch.Tensor, f: int) -> torch.Tensor:
    r"""Nearest-neighbour mixing (NNM; Allouah, Farhadkhani, Guerraoui, Gupta, Pinot & Stephan, AISTATS 2023), a pre-aggregator.

    Replace each row by the average of its $k - f$ nearest rows (itself included,
    Euclidean distance):

    $$y_i = \frac{1}{k-f}\sum_{j \in N_i} x_j,\qquad i = 1, \dots, k,$$

    with $N_i$ the indices of the $k - f$ rows closest to $x_i$ (ties broken by
    ``topk``).  Returns a ``(k, d)`` tensor to feed to any aggregator.
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
                    checks={"tau": positive, "iters": positive_int}, clip_radius="tau", non_finite_fill="center",
                    symbols={"tau": "τ", "iters": "l"},
                    description="Centered Clipping around the previous aggregate (Eq. 6, Alg. 2)")(centered_clip)
register_aggregator("krum", requires=_need(2, 0, "krum"), checks={"neighbours": optional_positive_int},
                    description="Krum: the single best-scored client")(krum)
register_aggregator("multikrum", aliases=("multi_krum",), requires=_need(2, 0, "multikrum"),
                    checks={"m": optional_positive_int, "neighbours": optional_positive_int},
                    description="Multi-Krum: mean of the m best-scored clients")(multi_krum)
register_aggregator("bulyan", requires=_need(4, 2, "bulyan"),
                    description="Bulyan: Krum selection then median-centred trimming")(bulyan)
register_pre_aggregator("bucketing", checks={"s": positive_int}, rows=lambda k, p: -(-k // p["s"]),
                        description="random buckets of s clients averaged (Karimireddy et al. 2022)")(bucketing)
register_pre_aggregator("nnm", description="nearest-neighbour mixing (Allouah et al. 2023)")(nnm)
