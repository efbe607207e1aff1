r"""Attacks that adapt to the data or to the server's rule: Mimic, Fang, and adaptive-strength ALIE/IPM/ROP.

Importing this module registers ``mimic``, ``fang``, ``alie_adaptive``,
``ipm_adaptive`` and ``rop_adaptive`` (:mod:`byzlab.core.config` imports it, so they
are available wherever the built-ins are).  Conventions are those of
:mod:`byzlab.core.attacks`: ``benign`` is the ``(k_b, d)`` matrix of benign momenta
(k_b = k − k_m), never modified; an attack returns one ``(d,)`` vector sent by
all k_m Byzantine clients, or a ``(k_m, d)`` tensor.  m̄ is the benign mean.

Mimic (Karimireddy, He & Jaggi, ICLR 2022)
    The Byzantine clients copy one benign client, chosen along the direction of
    largest benign variance (:func:`mimic`); it over-weights that client's data
    without ever leaving the benign distribution.

Fang (Fang et al., USENIX Security 2020, full-knowledge attack on trimmed mean / median)
    Each coordinate is pushed beyond the benign extreme opposite to the benign
    direction sign(m̄_j) (:func:`fang`).

Adaptive strength (``alie_adaptive``, ``ipm_adaptive``, ``rop_adaptive``)
    The plain attack with its scale (z of ALIE and ROP, ε of IPM) chosen each
    round by a short search that maximises the damage done to the *configured*
    server rule, evaluated with the round context's ``aggregate`` (the server's
    pre-aggregators and aggregator on copies of their states and of the RNG, so
    the search changes nothing in the run).  See :func:`search_scale`.

    Cost: each candidate scale is one full aggregation, so a round costs
    (``n_candidates`` + 1 + ``refine``) aggregations more than the plain attack
    (the + 1 is the plain attack's own scale, always tried), plus two calls of
    the plain attack and one copy of the benign matrix; with the defaults
    (8 candidates, no refinement) a round's attack + aggregation takes about
    10× as long as with the plain attack.  ``benchmarks/adaptive_cost.py``
    measures it (CPU, d = 431,080, k = 25: 8–12×).
"""
from __future__ import annotations

import functools
import math
from typing import Callable

import torch

from .attacks import alie, alie_z_max, ipm, rop
from .draws import draw
from .registry import (
    ConfigError,
    non_negative,
    one_of,
    positive,
    positive_int,
    register_attack,
    unit_interval,
)

__all__ = [
    "mimic",
    "mimic_update_direction",
    "fang",
    "OBJECTIVES",
    "damage",
    "log_grid",
    "search_scale",
    "alie_adaptive",
    "ipm_adaptive",
    "rop_adaptive",
]


# --------------------------------------------------------------------------- Mimic
def _cov_times(benign: torch.Tensor, mu: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Σ_i ⟨x_i − μ, z⟩ (x_i − μ), i.e. (X − 1μᵀ)ᵀ(X − 1μᵀ) z, without forming X − 1μᵀ."""
    w = benign @ z - mu @ z  # (k_b,) inner products <x_i - mu, z>
    return benign.T @ w - w.sum() * mu


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v).clamp_min(torch.finfo(v.dtype).tiny)


def mimic_update_direction(benign: torch.Tensor, state: dict, generator: torch.Generator | None = None) -> None:
    r"""One step of Mimic's estimate of the direction of largest benign variance, kept in ``state``.

    With $n$ = ``state["rounds"]`` rounds seen so far, $\bar m$ this round's benign
    mean and $C(\mu)\,v = \sum_i \langle x_i - \mu, v\rangle (x_i - \mu)$ the benign
    scatter matrix applied to $v$:

    * $n = 0$: $\mu = \bar m$, $z_0 \sim \mathcal{N}(0, I)$ (drawn from ``generator``),
      and one power-iteration step $z = C(\mu) z_0 / \lVert C(\mu) z_0\rVert$;
    * $n \ge 1$: an online power iteration on the benign covariance averaged over rounds,

    $$\mu \leftarrow \frac{n\,\mu + \bar m}{n + 1},\qquad
      c = \frac{C(\mu)\,z}{\lVert C(\mu)\,z\rVert},\qquad
      z \leftarrow \frac{n\,z + c}{\lVert n\,z + c\rVert}.$$

    This is the estimator of the authors' reference implementation
    (``MimicVariantAttacker`` of epfml/byzantine-robust-noniid-optimizer).
    """
    n = state.get("rounds", 0)
    mean = benign.mean(0)
    if n == 0:
        z0 = draw(generator, torch.randn, benign.shape[1], device=benign.device, dtype=benign.dtype)
        state["mu"] = mean
        state["z"] = _unit(_cov_times(benign, mean, z0))
    else:
        mu = state["mu"] * (n / (n + 1)) + mean / (n + 1)
        c = _unit(_cov_times(benign, mu, state["z"]))
        state["mu"] = mu
        state["z"] = _unit(state["z"] * (n / (n + 1)) + c / (n + 1))
    state["rounds"] = n + 1


def mimic(
    benign: torch.Tensor,
    state: dict | None = None,
    generator: torch.Generator | None = None,
    target: int | None = None,
    warmup: int = 1,
) -> torch.Tensor:
    r"""Mimic (Karimireddy, He & Jaggi, ICLR 2022): every Byzantine client sends a copy of benign client $i^\star$.

    $$m_{i,t} = m_{i^\star,t},\qquad i \in \mathcal{K}_m,\qquad
      i^\star = \operatorname*{arg\,max}_{i \in \mathcal{K}_b} \langle m_{i,t}, z\rangle$$

    The copies over-weight client $i^\star$'s data, a bias no distance- or
    order-based rule can see, since the sent vector *is* a benign one.

    Choice of $i^\star$ (the paper's heuristic, as in the authors' implementation):
    during the first ``warmup`` rounds the attackers track $z$, the direction of
    largest variance of the benign vectors (:func:`mimic_update_direction`,
    an online power iteration kept in ``state``), and each of those rounds send
    the benign vector furthest along it.  From round ``warmup`` + 1 on, $i^\star$ is
    frozen to the last choice and $z$ is no longer updated.  ``warmup`` = 1 (the
    reference implementation's default) picks $i^\star$ from one power-iteration
    step on the first round's vectors.  The random start $z_0$ is drawn from the
    run's generator (the reference implementation uses a fixed seed), once, at the
    first round.

    ``target`` (an index into the benign rows, 0 … k_b − 1, i.e. the client id)
    skips the heuristic and always copies that client, as ByzFL's ``Mimic(epsilon)``.

    ``state`` keys: ``rounds``, ``mu`` (running benign mean), ``z`` (unit
    direction), ``target`` (0-d long tensor, the client copied this round).
    """
    kb = benign.shape[0]
    if target is not None:
        if not 0 <= target < kb:
            raise ConfigError(f"target: must be a benign client index in [0, {kb - 1}], got {target!r}")
        if state is not None:
            state["target"] = torch.tensor(target, device=benign.device)
        return benign[target].clone()
    if state is None:
        raise ValueError("state: mimic without a fixed target needs the rule's state dict")
    if warmup < 1:
        raise ConfigError(f"warmup: must be an integer >= 1, got {warmup!r}")
    if state.get("rounds", 0) < warmup:
        mimic_update_direction(benign, state, generator)
        state["target"] = torch.argmax(benign @ state["z"])
    return benign.index_select(0, state["target"].reshape(1)).squeeze(0)


# --------------------------------------------------------------------------- Fang
def fang(benign: torch.Tensor, n: int, b: float = 2.0, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""Fang et al.'s full-knowledge attack on trimmed mean and median (Fang, Cao, Jia & Gong, USENIX Security 2020, Sec. 3.2).

    With $s_j = \mathrm{sign}(\bar m_j)$ the benign direction of coordinate $j$ and
    $w^{max}_j = \max_i m_{ij}$, $w^{min}_j = \min_i m_{ij}$ the benign extremes, each of the
    ``n`` Byzantine vectors draws, coordinate by coordinate and independently,

    $$m_{byz,j} \sim \begin{cases}
      \mathcal{U}\bigl[w^{max}_j,\ b\,w^{max}_j\bigr] & s_j < 0,\ w^{max}_j > 0 \\
      \mathcal{U}\bigl[w^{max}_j,\ w^{max}_j / b\bigr] & s_j < 0,\ w^{max}_j \le 0 \\
      \mathcal{U}\bigl[w^{min}_j / b,\ w^{min}_j\bigr] & s_j > 0,\ w^{min}_j > 0 \\
      \mathcal{U}\bigl[b\,w^{min}_j,\ w^{min}_j\bigr] & s_j > 0,\ w^{min}_j \le 0 \\
      \bar m_j\ (= 0) & s_j = 0
    \end{cases}$$

    So every Byzantine value lies beyond the benign extreme on the side opposite
    to $s_j$, by a random factor in $[1, b]$ ($b$ = 2 in the paper and by default),
    and a coordinate-wise rule's output is dragged against the benign direction.
    The paper states the attack on local *models* ($s_j$ = sign of the parameter's
    change); on gradients/momenta the server steps against the aggregate, so $s_j$
    here is the sign of the benign mean, as in Blades' implementation.  Random
    draws use ``generator`` (the run's RNG).  Returns ``(n, d)``.  (The authors'
    library sends the interval's far end for every attacker instead of sampling.)
    """
    mean = benign.mean(0)
    s = torch.sign(mean)
    wmax, wmin = benign.amax(0), benign.amin(0)
    u = draw(generator, torch.rand, n, benign.shape[1], device=benign.device, dtype=benign.dtype)
    up_far = torch.where(wmax > 0, wmax * b, wmax / b)  # the far end above w_max
    down_far = torch.where(wmin < 0, wmin * b, wmin / b)  # the far end below w_min
    up = wmax + u * (up_far - wmax)
    down = down_far + u * (wmin - down_far)
    return torch.where(s < 0, up, torch.where(s > 0, down, mean))


# --------------------------------------------------------------------------- adaptive strength
#: names of the damage objectives of the adaptive attacks
OBJECTIVES = ("distance", "alignment")


def damage(aggregate: torch.Tensor, benign_mean: torch.Tensor, objective: str = "distance") -> torch.Tensor:
    r"""How much an aggregate $\tilde m$ hurts, as a 0-d tensor (larger is worse for the server).

    * ``"distance"``: $\lVert \tilde m - \bar m\rVert$, the distance of the aggregate
      from the benign mean (the objective of ByzFL's Opt-ALIE / Opt-IPM);
    * ``"alignment"``: $-\cos(\tilde m, \bar m) = -\frac{\langle \tilde m, \bar m\rangle}{\lVert\tilde m\rVert\,\lVert\bar m\rVert}$,
      the negative alignment of the aggregate with the benign mean (0 when either
      is the zero vector): a step against $\bar m$ scores > 0.
    """
    if objective == "distance":
        return torch.linalg.vector_norm(aggregate - benign_mean)
    if objective == "alignment":
        tiny = torch.finfo(aggregate.dtype).tiny
        norms = torch.linalg.vector_norm(aggregate) * torch.linalg.vector_norm(benign_mean)
        return -(aggregate @ benign_mean) / norms.clamp_min(tiny)
    raise ValueError(f"objective: must be one of {', '.join(OBJECTIVES)}; got {objective!r}")


def log_grid(lo: float, hi: float, n: int) -> list[float]:
    r"""``n`` scales log-spaced from ``lo`` to ``hi`` (both included; ``[lo]`` when n = 1).

    $$s_i = \mathrm{lo}\cdot\Bigl(\frac{\mathrm{hi}}{\mathrm{lo}}\Bigr)^{i/(n-1)},\qquad i = 0, \dots, n - 1$$
    """
    if not (lo > 0 and hi >= lo):
        raise ConfigError(f"lo, hi: need 0 < lo <= hi, got lo={lo!r}, hi={hi!r}")
    if n == 1:
        return [float(lo)]
    r = math.log(hi / lo) / (n - 1)
    return [lo * math.exp(i * r) for i in range(n - 1)] + [float(hi)]


_INVPHI = (math.sqrt(5.0) - 1.0) / 2.0


def _golden_max(f: Callable[[float], float], a: float, b: float, evals: int) -> tuple[float, float]:
    """Golden-section search for the maximum of ``f`` on [a, b] with ``evals`` evaluations; the best (x, f(x))."""
    c, e = b - _INVPHI * (b - a), a + _INVPHI * (b - a)
    fc = f(c)
    tried = [(c, fc)]
    if evals >= 2:
        fe = f(e)
        tried.append((e, fe))
        for _ in range(evals - 2):
            if fc > fe:  # the maximum lies in [a, e]
                b, e, fe = e, c, fc
                c = b - _INVPHI * (b - a)
                fc = f(c)
                tried.append((c, fc))
            else:  # in [c, b]
                a, c, fc = c, e, fe
                e = a + _INVPHI * (b - a)
                fe = f(e)
                tried.append((e, fe))
    return max(tried, key=lambda p: p[1])


def search_scale(
    aggregate: Callable[[torch.Tensor], torch.Tensor],
    benign: torch.Tensor,
    k_m: int,
    base: torch.Tensor,
    direction: torch.Tensor,
    candidates: list[float],
    objective: str = "distance",
    refine: int = 0,
    log_step: float | None = None,
    bounds: tuple[float, float] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""The scale $s$ maximising :func:`damage` of the configured rule on the trial matrix.

    $$s^\star = \operatorname*{arg\,max}_{s \in \text{candidates}}\
      \mathrm{damage}\Bigl(\mathrm{AGG}\bigl([\,m_1; \dots; m_{k_b};\ \underbrace{v(s); \dots; v(s)}_{k_m}\,]\bigr),\ \bar m\Bigr),
      \qquad v(s) = \mathrm{base} + s\cdot\mathrm{direction}$$

    Every candidate is one call of ``aggregate`` on the ``(k_b + k_m, d)`` trial
    matrix (benign rows first, then k_m copies of v(s), the simulator's layout).
    The best candidate is picked on the device (``argmax``; ties go to the
    earliest candidate), so with ``refine`` = 0 there is no host synchronisation.
    ``refine`` > 0 then spends that many more aggregations on a golden-section
    search of log s within ``log_step`` (one grid step) either side of the best
    candidate, kept inside ``bounds`` (default: the candidates' range); the result
    is the best scale evaluated, never worse than the grid's.

    Returns ``(scale, damage, vector)``: 0-d tensors and the ``(d,)`` vector
    v(scale), computed with the same operation as the trial rows, so the server's
    real aggregate of that round equals the trial's bit for bit.
    """
    kb, d = benign.shape
    X = benign.new_empty(kb + k_m, d)
    X[:kb] = benign
    mean = benign.mean(0)

    def vector(s: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        return torch.addcmul(base, direction, s, out=out)

    def evaluate(s: torch.Tensor) -> torch.Tensor:
        if k_m:
            vector(s, out=X[kb])
            X[kb + 1:] = X[kb]
        val = damage(aggregate(X), mean, objective)  # a scalar: safe even if the result aliases X
        return val.masked_fill(torch.isnan(val), float("-inf"))

    # filled on the device, one scalar each: torch.tensor(candidates, device=...) would be a host-to-device copy
    scales = torch.stack([benign.new_full((), float(c)) for c in candidates])
    values = torch.stack([evaluate(scales[i]) for i in range(len(candidates))])
    best = torch.argmax(values).reshape(1)  # indexing by a 0-d tensor would read it on the host
    scale, value = scales.index_select(0, best)[0], values.index_select(0, best)[0]

    if refine > 0 and log_step:
        s_best, v_best = float(scale), float(value)  # host sync: the search branches on values
        positive_c = [c for c in candidates if c > 0]
        lo_s, hi_s = bounds if bounds is not None else (min(positive_c or [1.0]), max(positive_c or [1.0]))
        if s_best > 0:
            a = max(math.log(s_best) - log_step, math.log(lo_s))
            b = min(math.log(s_best) + log_step, math.log(hi_s))
            if b > a:
                def f(log_s: float) -> float:
                    s = torch.tensor(math.exp(log_s), device=benign.device, dtype=benign.dtype)
                    return float(evaluate(s))

                log_new, v_new = _golden_max(f, a, b, refine)
                if v_new > v_best:
                    scale = torch.tensor(math.exp(log_new), device=benign.device, dtype=benign.dtype)
                    value = torch.tensor(v_new, device=benign.device, dtype=benign.dtype)
    return scale, value, vector(scale)


def _adaptive(benign, k_m, aggregate, state, attack, reference, objective, n_candidates, lo, hi, refine, name):
    """Shared body of the registered adaptive attacks: ``attack(s)`` is affine in the scale s."""
    if aggregate is None:
        raise ValueError(f"aggregate: {name} needs the server's rule (RoundContext.aggregate), "
                         f"which this caller does not provide")
    if objective not in OBJECTIVES:
        raise ConfigError(f"objective: must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
    if hi < lo:
        raise ConfigError(f"hi: must be >= lo ({lo}), got {hi!r}")
    base = attack(0.0)
    direction = attack(1.0) - base
    candidates = [float(reference)] + log_grid(lo, hi, n_candidates)
    step = math.log(hi / lo) / (n_candidates - 1) if n_candidates > 1 else math.log(2.0)
    scale, value, v = search_scale(aggregate, benign, k_m, base, direction, candidates, objective, refine, step)
    if state is not None:
        state["scale"] = scale
        state["damage"] = value
    return v


_ADAPTIVE_DOC = r"""

    Adaptive strength: each round the scale is the best of the plain attack's
    own scale (always tried first, so ties keep it) and ``n_candidates`` scales
    log-spaced in [``lo``, ``hi``], by :func:`damage` with ``objective``
    ("distance": ‖AGG(X) − m̄‖, "alignment": −cos(AGG(X), m̄)), AGG being the
    configured server rule evaluated through ``aggregate`` on copies of its
    state and RNG (:func:`search_scale`); ``refine`` > 0 adds that many
    golden-section steps around the best grid point.  The vector sent is
    base + s·direction with base, direction from two calls of the plain attack
    (scale 0 and 1), i.e. the plain attack at scale s up to rounding.

    Cost: n_candidates + 1 + refine aggregations per round on top of the
    server's own (10× the aggregation work with the defaults).
    ``state["scale"]`` and ``state["damage"]`` hold this round's choice and its
    objective value (0-d tensors).
"""


def alie_adaptive(
    benign: torch.Tensor,
    k: int,
    k_m: int,
    aggregate: Callable[[torch.Tensor], torch.Tensor] | None,
    state: dict | None = None,
    z: float | None = None,
    objective: str = "distance",
    n_candidates: int = 8,
    lo: float = 0.1,
    hi: float = 10.0,
    refine: int = 0,
) -> torch.Tensor:
    r"""ALIE (Eq. 4, :func:`byzlab.core.attacks.alie`) with z chosen each round against the configured rule.

    $$m_{i,t} = \bar m_t - z^\star\bar\sigma_t,\qquad z^\star = \operatorname*{arg\,max}_{z \in \{z_0\} \cup G} \mathrm{damage}(\mathrm{AGG}(\cdot), \bar m_t)$$

    (:func:`search_scale`); the plain attack's $z_0$ (``z``, $z^{max}$ of Eq. 3 when
    None) is one candidate; default grid $G$: ``n_candidates`` = 8 values
    log-spaced in $z \in [0.1, 10]$.
    """
    zref = _z_max(k, k_m) if z is None else z
    return _adaptive(benign, k_m, aggregate, state, lambda s: alie(benign, s), zref,
                     objective, n_candidates, lo, hi, refine, "alie_adaptive")


def ipm_adaptive(
    benign: torch.Tensor,
    k_m: int,
    aggregate: Callable[[torch.Tensor], torch.Tensor] | None,
    state: dict | None = None,
    eps: float = 0.2,
    objective: str = "distance",
    n_candidates: int = 8,
    lo: float = 0.1,
    hi: float = 100.0,
    refine: int = 0,
) -> torch.Tensor:
    r"""IPM (:func:`byzlab.core.attacks.ipm`) with ε chosen each round against the configured rule.

    $$m_{i,t} = -\varepsilon^\star\bar m_t,\qquad \varepsilon^\star = \operatorname*{arg\,max}_{\varepsilon \in \{\varepsilon_0\} \cup G} \mathrm{damage}(\mathrm{AGG}(\cdot), \bar m_t)$$

    (:func:`search_scale`); the plain attack's $\varepsilon_0$ (``eps``, 0.2) is one
    candidate; default grid $G$: 8 values log-spaced in $\varepsilon \in [0.1, 100]$.
    ByzFL's Opt-IPM maximises the same "distance" objective by an
    expansion/contraction line search from ε = 0 instead of a grid.
    """
    return _adaptive(benign, k_m, aggregate, state, lambda s: ipm(benign, s), eps,
                     objective, n_candidates, lo, hi, refine, "ipm_adaptive")


def rop_adaptive(
    benign: torch.Tensor,
    k_m: int,
    prev_aggregate: torch.Tensor | None,
    aggregate: Callable[[torch.Tensor], torch.Tensor] | None,
    state: dict | None = None,
    z: float = 1.0,
    lam: float = 0.9,
    pi: float = 1.0,
    angle: float = 90.0,
    first_round: str = "mean",
    objective: str = "distance",
    n_candidates: int = 8,
    lo: float = 0.1,
    hi: float = 100.0,
    refine: int = 0,
) -> torch.Tensor:
    r"""ROP (Algorithm 3, :func:`byzlab.core.attacks.rop`) with its perturbation norm z chosen each round.

    $$m_{i,t} = \tilde m_{t-1} + z^\star\hat p,\qquad z^\star = \operatorname*{arg\,max}_{z \in \{z_0\} \cup G} \mathrm{damage}(\mathrm{AGG}(\cdot), \bar m_t)$$

    (:func:`search_scale`; options ``lam``, ``pi``, ``angle``, ``first_round`` as in
    :func:`byzlab.core.attacks.rop`); the plain attack's $z_0$ (``z``, 1) is one
    candidate; default grid $G$: 8 values log-spaced in $z \in [0.1, 100]$ (the
    paper's Figs. 13–14 use 1, 10, 100).
    """
    def attack(s):
        return rop(benign, prev_aggregate, z=s, lam=lam, pi=pi, angle=angle, first_round=first_round)
    return _adaptive(benign, k_m, aggregate, state, attack, z,
                     objective, n_candidates, lo, hi, refine, "rop_adaptive")


for _fn in (alie_adaptive, ipm_adaptive, rop_adaptive):
    _fn.__doc__ += _ADAPTIVE_DOC


# --------------------------------------------------------------------------- registration
_z_max = functools.lru_cache(maxsize=None)(alie_z_max)  # called every round: keep scipy out of it


def _optional_index(name, v):
    ok = v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)
    return None if ok else f"{name}: must be a client index >= 0 or None, got {v!r}"


def _at_least_one(name, v):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 1
    return None if ok else f"{name}: must be >= 1, got {v!r}"


def _non_negative_int(name, v):
    ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    return None if ok else f"{name}: must be an integer >= 0, got {v!r}"


def _optional_number(name, v):
    return None if v is None else non_negative(name, v)


register_attack("mimic", checks={"target": _optional_index, "warmup": positive_int},
                description="Mimic: all Byzantine clients copy one benign client "
                            "(Karimireddy et al. 2022)")(mimic)


@register_attack("fang", checks={"b": _at_least_one}, symbols={"b": "b"},
                 description="Fang et al. 2020: beyond the benign extremes against sign(mean), "
                             "for trimmed mean / median")
def _fang(benign, k_m, generator, b: float = 2.0):
    return fang(benign, k_m, b, generator)


_SEARCH_CHECKS = {"objective": one_of(*OBJECTIVES), "n_candidates": positive_int, "lo": positive,
                  "hi": positive, "refine": _non_negative_int}
register_attack("alie_adaptive", checks={"z": _optional_number, **_SEARCH_CHECKS}, symbols={"z": "z^max"},
                description="ALIE with z searched each round against the configured rule")(alie_adaptive)
register_attack("ipm_adaptive", checks={"eps": positive, **_SEARCH_CHECKS}, symbols={"eps": "ε"},
                description="IPM with ε searched each round against the configured rule")(ipm_adaptive)
register_attack("rop_adaptive",
                checks={"z": non_negative, "lam": unit_interval, "pi": unit_interval,
                        "first_round": one_of("mean", "zero"), **_SEARCH_CHECKS},
                symbols={"z": "z", "lam": "λ", "pi": "π"},
                description="ROP with z searched each round against the configured rule")(rop_adaptive)
