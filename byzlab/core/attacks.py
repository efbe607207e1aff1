r"""Byzantine attacks as pure functions.

Omniscient attacks (Section III-B) see the benign momenta of the round,
``benign`` — a ``(k_b, d)`` tensor, one row per benign client — and, where
they need it, the previous aggregate $\tilde m_{t-1}$ (``prev_aggregate``, ``None`` at
t = 1).  They return the vector every Byzantine client sends (Algorithm 1, line 11:
$m_{i,t} \leftarrow \mathrm{Attack}(\mathcal{H}_t)$ for $i \in \mathcal{K}_m$).  Inputs are
never modified; everything runs on the tensors' device with no host
synchronisation.

Data attacks (``label_flip``, ``bit_flip``) work from the Byzantine clients'
own honest momenta (``byzantine``), computed by the simulator on their own
shards.

Notation: $\bar m_t$ the mean of the benign momenta, $\bar\sigma_t$ their
coordinate-wise unbiased standard deviation, $k$ clients of which $k_m$ Byzantine
($\mathcal{K}_m$) and $k_b = k - k_m$ benign ($\mathcal{K}_b$).

Speed: as in :mod:`byzlab.core.aggregators`, no ``(k_b, d)`` temporary is built; $\bar\sigma_t$
is computed in two passes (mean, then squared deviations) over one block of
columns at a time, which on CPU is several times faster than ``Tensor.std(0)``
along the short dimension and equal to it up to floating-point rounding.
"""
from __future__ import annotations

import functools
import math

import torch

from .kernels import column_blocks, row_distances
from .registry import non_negative, one_of, positive, register_attack, unit_interval

__all__ = [
    "alie_z_max",
    "alie",
    "alie_alternating",
    "ipm",
    "rop",
    "rop_s",
    "minmax",
    "minsum",
    "bit_flip",
    "label_flip",
]


def alie_z_max(k: int, k_m: int) -> float:
    r"""ALIE's $z^{max}$ (Eq. 2–3; Baruch, Baruch & Goldberg, NeurIPS 2019, the paper's [3]).

    Eq. 2 counts the benign "supporters" needed, Eq. 3 takes the largest $z$ that
    leaves enough of them farther from the mean:

    $$s = \Bigl\lfloor \frac{k}{2} + 1 \Bigr\rfloor - k_m,\qquad
      z^{max} = \max_z \Bigl\{ z : \Phi(z) < \frac{k - k_m - s}{k - k_m} \Bigr\}
              = \Phi^{-1}\Bigl(\frac{k - k_m - s}{k - k_m}\Bigr)$$

    with $\Phi$ the standard normal CDF (scipy's ``norm.ppf`` for $\Phi^{-1}$).
    For k = 25, k_m = 5: s = 8, $\Phi^{-1}(0.6) \approx 0.2533$.  Raises
    ``ValueError`` when the quantile falls outside (0, 1).
    """
    if not (isinstance(k, int) and isinstance(k_m, int) and 0 <= k_m < k):
        raise ValueError(f"k_m: alie_z_max needs integers 0 <= k_m < k, got k={k!r}, k_m={k_m!r}")
    from scipy.stats import norm

    s = math.floor(k / 2 + 1) - k_m
    q = (k - k_m - s) / (k - k_m)
    if not 0 < q < 1:
        raise ValueError(f"k_m: no valid z_max for k={k}, k_m={k_m} (quantile {q:.3f} outside (0, 1))")
    return float(norm.ppf(q))


def _mean_std(benign: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinate-wise mean m̄ and unbiased (n − 1) standard deviation σ̄ of the rows.

    Two passes (mean, then squared deviations) over each block of columns while
    it is in cache.
    """
    mean = benign.new_empty(benign.shape[1])
    std = torch.empty_like(mean)
    for sl in column_blocks(benign):
        xb = benign[:, sl]
        m = xb.mean(0)
        mean[sl] = m
        std[sl] = (xb - m).square_().sum(0)
    return mean, std.div_(benign.shape[0] - 1).sqrt_()


def _row_dots(x: torch.Tensor, v: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``(n,)`` inner products ⟨x_i − v, p⟩, the difference formed one column block at a time."""
    out = x.new_zeros(x.shape[0])
    for sl in column_blocks(x):
        out += (x[:, sl] - v[sl]) @ p[sl]
    return out


def alie(benign: torch.Tensor, z: float) -> torch.Tensor:
    r"""A Little Is Enough (ALIE; Baruch et al., NeurIPS 2019, the paper's [3]; Eq. 4).

    $$m_{i,t} = \bar m_t - z\,\bar\sigma_t,\qquad i \in \mathcal{K}_m$$

    with $\bar m_t$ the coordinate-wise mean and $\bar\sigma_t$ the coordinate-wise
    unbiased ($k_b - 1$) standard deviation of the benign rows.  The paper uses
    $z = z^{max}$ (Eq. 2–3, :func:`alie_z_max`), the registered ``alie``'s default
    (``z=None``); ``z`` overrides it (the authors' library defaulted to z = 1.2
    until 2026-03).  ByzFL's ``ALittleIsEnough(tau)`` adds $+\tau\bar\sigma_t$, the
    same attack with the opposite sign convention.
    """
    mean, std = _mean_std(benign)
    return std.mul_(-z).add_(mean)


def alie_alternating(benign: torch.Tensor, z: float, t: int) -> torch.Tensor:
    r"""ALIE with the sign of its perturbation alternating each round (Eq. 19, Fig. 1).

    $$m_{i,t} = \bar m_t + \Delta_t,\qquad
      \Delta_t = \begin{cases} -z\,\bar\sigma_t & t \bmod 2 = 0 \\ +z\,\bar\sigma_t & t \bmod 2 = 1 \end{cases}$$

    so consecutive perturbations cancel instead of accumulating
    ($\cos(\Delta_t, \Delta_{t-1}) = -1$ where ALIE has $\approx +1$, Table II).
    $\bar m_t$, $\bar\sigma_t$ and $z$ as in :func:`alie` (registered ``alie_alt``:
    $z = z^{max}$ by default).
    """
    sign = 1.0 if t % 2 == 0 else -1.0
    mean, std = _mean_std(benign)
    return std.mul_(-sign * z).add_(mean)


def ipm(benign: torch.Tensor, eps: float) -> torch.Tensor:
    r"""Inner Product Manipulation (IPM; Xie, Koyejo & Gupta, UAI 2019, the paper's [60]; Section III-C).

    $$m_{i,t} = -\varepsilon\,\bar m_t,\qquad i \in \mathcal{K}_m$$

    It aims to make the inner product of Eq. 5, $\langle \bar g, \mathrm{AGG}(\cdot)\rangle$,
    negative.  The paper (and the registered ``ipm``) use $\varepsilon$ = 0.2.
    """
    return -eps * benign.mean(0)


def _rop_parts(benign, prev_aggregate, lam, first_round):
    mean = benign.mean(0)
    if prev_aggregate is None:  # Algorithm 3, lines 2-3: t = 1
        ref = mean if first_round == "mean" else torch.zeros_like(mean)
    else:
        ref = prev_aggregate
    r = lam * ref + (1.0 - lam) * mean  # line 4: reference direction
    p = torch.ones_like(mean)  # line 1
    rr = r @ r
    coef = torch.where(rr > 0, (p @ r) / rr.clamp_min(torch.finfo(r.dtype).tiny), torch.zeros_like(rr))
    p = p - coef * r  # lines 5-6: remove the projection on r
    p_hat = p / torch.linalg.vector_norm(p).clamp_min(torch.finfo(p.dtype).tiny)
    return mean, ref, r, p_hat


def rop(
    benign: torch.Tensor,
    prev_aggregate: torch.Tensor | None,
    z: float = 1.0,
    lam: float = 0.9,
    *,
    pi: float = 1.0,
    angle: float = 90.0,
    first_round: str = "mean",
) -> torch.Tensor:
    r"""Relocated Orthogonal Perturbation (ROP, Algorithm 3 of the paper).

    With $\bar m_t$ the benign mean and $\tilde m_{t-1}$ = ``prev_aggregate``:

    1. Reference (lines 2–4): $\tilde m_{t-1} := \bar m_t$ at $t = 1$, and
       $r_t = \lambda\,\tilde m_{t-1} + (1 - \lambda)\,\bar m_t$.
    2. Orthogonal direction (lines 1, 5–6): $p = \mathbf{1} - \mathrm{Proj}_{r_t}(\mathbf{1})
       = \mathbf{1} - \frac{\langle \mathbf{1}, r_t\rangle}{\lVert r_t\rVert^2} r_t$,
       $\hat p = p / \lVert p\rVert$, so $\langle \hat p, r_t\rangle = 0$.
    3. Relocation (line 7):

    $$m_{i,t} = \tilde m_{t-1} + z\,\hat p,\qquad i \in \mathcal{K}_m,$$

    so $\lVert m_{i,t} - \tilde m_{t-1}\rVert = z$: every Byzantine vector sits at
    distance $z$ from CC's centre, orthogonal to the reference direction.

    Parameters (paper symbols): ``z`` ($z$, perturbation norm; 1 in Section VI),
    ``lam`` ($\lambda$, weight of $\tilde m_{t-1}$ in the reference; 0.9).

    Options that reproduce the authors' library (not the paper's defaults):
    ``pi`` ($\pi$) places the attack at $\pi\,\tilde m_{t-1} + (1 - \pi)\,\bar m_t$
    ($\pi$ = 1: relocation as in the paper); ``angle`` rotates the unit direction in
    the plane of $\hat r_t$ and $\hat p$, $u = \cos(\text{angle})\,\hat r_t + \sin(\text{angle})\,\hat p$
    (90° = $\hat p$ as in the paper, the library's default until mid-2025; its
    current 270° is $-\hat p$); ``first_round="zero"`` uses $\tilde m_0 = 0$ at
    $t = 1$ as the library does, instead of Algorithm 3's $\tilde m_0 := \bar m_1$.
    """
    mean, ref, r, p_hat = _rop_parts(benign, prev_aggregate, lam, first_round)
    if angle == 90.0:
        u = p_hat
    else:
        a = math.radians(angle)
        r_hat = r / torch.linalg.vector_norm(r).clamp_min(torch.finfo(r.dtype).tiny)
        u = math.cos(a) * r_hat + math.sin(a) * p_hat
    centre = ref if pi == 1.0 else pi * ref + (1.0 - pi) * mean
    return centre + z * u


def rop_s(
    benign: torch.Tensor,
    prev_aggregate: torch.Tensor | None,
    mask: torch.Tensor,
    z: float = 1.0,
    lam: float = 0.9,
    scale: float | None = None,
) -> torch.Tensor:
    r"""Sparse ROP (ROP-S, Eq. 20 of the paper): the ROP perturbation concentrated on a few layers.

    With $\Delta_t = z\,\hat p$ the ROP perturbation (:func:`rop`, Algorithm 3 with
    $\tilde m_0 := \bar m_1$) and ``mask`` $\in \{0, 1\}^d$ marking the first and
    last layers, normalisation parameters and biases
    (:func:`byzlab.core.models.sparse_mask`), Eq. 20 reads

    $$\Delta_t \leftarrow (\mathbf{1} - \mathrm{mask}) \odot \tilde m_{t-1}
      + \frac{d}{\lVert \mathrm{mask}\rVert_1}\, \mathrm{mask} \odot \Delta_t$$

    and the vector sent keeps $\tilde m_{t-1}$ on the untargeted coordinates and adds
    the scaled perturbation on the targeted ones:

    $$m_{i,t} = \tilde m_{t-1} + \frac{d}{\lVert \mathrm{mask}\rVert_1}\,\mathrm{mask} \odot z\,\hat p$$

    ``scale`` overrides $d / \lVert \mathrm{mask}\rVert_1$.  ROP-S is not in the
    authors' library (its "sparse" attacks are a later, different attack).
    """
    _, ref, _, p_hat = _rop_parts(benign, prev_aggregate, lam, "mean")
    m = mask.to(benign.dtype)
    s = (benign.shape[1] / m.sum().clamp_min(1.0)) if scale is None else scale
    return ref + (s * z) * (m * p_hat)


def _dev(benign: torch.Tensor, dev_type: str) -> tuple[torch.Tensor, torch.Tensor]:
    mean = benign.mean(0)
    if dev_type == "unit_vec":
        dev = -mean / torch.linalg.vector_norm(mean).clamp_min(torch.finfo(mean.dtype).tiny)
    elif dev_type == "sign":
        dev = -torch.sign(mean)
    elif dev_type == "std":
        dev = -_mean_std(benign)[1]
    else:
        raise ValueError(f"dev_type: must be 'unit_vec', 'std' or 'sign', got {dev_type!r}")
    return mean, dev


def _max_gamma(a: torch.Tensor, bvec: torch.Tensor, c: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """Largest γ ≥ 0 with a_i + 2γ b_i + γ² c ≤ bound for all i (closed form, no search)."""
    disc = (bvec * bvec - c * (a - bound)).clamp_min(0)
    roots = (-bvec + disc.sqrt()) / c.clamp_min(torch.finfo(c.dtype).tiny)
    return roots.min().clamp_min(0)


def minmax(benign: torch.Tensor, dev_type: str = "unit_vec") -> torch.Tensor:
    r"""AGR-agnostic Min-Max (Shejwalkar & Houmansadr, NDSS 2021).

    $$m_{byz} = \bar m + \gamma^\star p,\qquad
      \gamma^\star = \max\Bigl\{\gamma \ge 0 : \max_{i} \lVert m_{byz} - m_i\rVert \le \max_{i,j} \lVert m_i - m_j\rVert \Bigr\}$$

    over the benign rows $m_i$, with the perturbation direction $p$ set by
    ``dev_type``: ``unit_vec`` $-\bar m / \lVert\bar m\rVert$ (default), ``std``
    $-\bar\sigma$, ``sign`` $-\mathrm{sign}(\bar m)$.  The original searches $\gamma$
    by bisection; each constraint is a quadratic in $\gamma$, so here
    $\gamma^\star$ is exact (closed form).
    """
    mean, p = _dev(benign, dev_type)
    a = row_distances(benign, mean).square()  # ‖m̄ − m_i‖²
    bv = -_row_dots(benign, mean, p)  # ⟨m̄ − m_i, p⟩
    c = p @ p
    g = benign @ benign.T
    sq = g.diagonal()
    bound = (sq[:, None] + sq[None, :] - 2 * g).max().clamp_min(0)
    return mean + _max_gamma(a, bv, c, bound) * p


def minsum(benign: torch.Tensor, dev_type: str = "unit_vec") -> torch.Tensor:
    r"""AGR-agnostic Min-Sum (Shejwalkar & Houmansadr, NDSS 2021).

    As :func:`minmax` with the sum of squared distances as the constraint:

    $$\gamma^\star = \max\Bigl\{\gamma \ge 0 : \sum_i \lVert m_{byz} - m_i\rVert^2 \le \max_i \sum_j \lVert m_i - m_j\rVert^2 \Bigr\}$$
    """
    mean, p = _dev(benign, dev_type)
    n = benign.shape[0]
    a = row_distances(benign, mean).square().sum()
    bv = -_row_dots(benign, mean, p).sum()
    c = n * (p @ p)
    g = benign @ benign.T
    sq = g.diagonal()
    bound = (sq[:, None] + sq[None, :] - 2 * g).clamp_min(0).sum(1).max()
    return mean + _max_gamma(a[None], bv[None], c, bound) * p


def bit_flip(benign: torch.Tensor, byzantine: torch.Tensor) -> torch.Tensor:
    r"""Bit flip: each Byzantine client negates its own honest gradient (Section VI).

    $$g_{i,t} \leftarrow -g_{i,t}\ \Rightarrow\ m_{i,t} = -m^{honest}_{i,t},\qquad i \in \mathcal{K}_m$$

    The momentum of negated gradients is the negated honest momentum (Eq. 7 is
    linear), so this returns −``byzantine`` row by row.
    """
    return -byzantine


def label_flip(benign: torch.Tensor, byzantine: torch.Tensor) -> torch.Tensor:
    r"""Label flip: each Byzantine client trains honestly on flipped labels (Section VI).

    $$y \mapsto C - 1 - y$$

    with $C$ classes (10, or 100 for CIFAR-100); the simulator computes the
    Byzantine clients' momenta on flipped labels (``flip_labels=True`` in the
    registration) and this returns them unchanged.
    """
    return byzantine


# --------------------------------------------------------------------------- registration
_z_max_cached = functools.lru_cache(maxsize=None)(alie_z_max)  # called every round: keep scipy out of it


def _alie_default_z(z, k, k_m):  # z=None -> z_max(k, k_m) of Eq. 3
    return _z_max_cached(k, k_m) if z is None else z


def _optional_number(name, v):
    return None if v is None else non_negative(name, v)


@register_attack("alie", checks={"z": _optional_number}, symbols={"z": "z^max"},
                 description="A Little Is Enough: mean − z·std of the benign momenta (Eq. 4)")
def _alie(benign, k, k_m, z: float | None = None):
    return alie(benign, _alie_default_z(z, k, k_m))


@register_attack("alie_alt", checks={"z": _optional_number}, symbols={"z": "z^max"},
                 description="ALIE with the perturbation's sign alternating each round (Eq. 19)")
def _alie_alt(benign, k, k_m, t, z: float | None = None):
    return alie_alternating(benign, _alie_default_z(z, k, k_m), t)


register_attack("ipm", defaults={"eps": 0.2}, checks={"eps": positive}, symbols={"eps": "ε"},
                description="Inner Product Manipulation: −ε·mean of the benign momenta")(ipm)

_ROP_CHECKS = {"z": non_negative, "lam": unit_interval, "pi": unit_interval,
               "first_round": one_of("mean", "zero")}
register_attack("rop", checks=_ROP_CHECKS, symbols={"z": "z", "lam": "λ", "pi": "π"},
                description="Relocated Orthogonal Perturbation (Algorithm 3)")(rop)
register_attack("rop_s", checks={"z": non_negative, "lam": unit_interval,
                                 "scale": lambda n, v: None if v is None else positive(n, v)},
                symbols={"z": "z", "lam": "λ"},
                description="sparse ROP on first/last layers, norm parameters and biases (Eq. 20)")(rop_s)
register_attack("minmax", checks={"dev_type": one_of("unit_vec", "std", "sign")},
                description="AGR-agnostic Min-Max (Shejwalkar & Houmansadr 2021)")(minmax)
register_attack("minsum", checks={"dev_type": one_of("unit_vec", "std", "sign")},
                description="AGR-agnostic Min-Sum (Shejwalkar & Houmansadr 2021)")(minsum)
register_attack("bit_flip", description="Byzantine clients negate their own honest gradients")(bit_flip)
register_attack("label_flip", flip_labels=True,
                description="Byzantine clients train on flipped labels y -> C-1-y")(label_flip)
