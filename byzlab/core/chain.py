r"""The server's rule chain (lines 12-13 of Algorithm 1) and its per-round diagnostics.

One home for what the server does with the ``(k, d)`` matrix of replies, used by
the simulator (:class:`~byzlab.core.simulator.Simulation`) and by the Flower strategy
(:class:`~byzlab.flower.ByzlabStrategy`) alike:

1. **Screening** (:meth:`RuleChain.screen`), under the ``non_finite`` policy;
2. the **pre-aggregators**, then the **aggregator** (m̃_t = AGG(...), Alg. 1 line 13),
   each rule with its own ``RoundContext.state`` (by role: ``pre0``, ``pre1``, ...,
   ``aggregator``; the attack's is ``attack``);
3. the **trial** ``aggregate`` an adaptive attack queries (:meth:`RuleChain.trial`):
   the same chain on copies of the rules' states and of the RNG;
4. the **diagnostics** (:func:`diagnostics`), one row of :data:`DIAGNOSTIC_COLUMNS`.

Untrusted replies (the ``non_finite`` policy)
---------------------------------------------
``"drop"`` (the default): a reply row x_i whose squared norm ‖x_i‖² is not finite in
the matrix's precision — any NaN or ±inf entry, or entries so large that distances
between rows overflow (float32: ‖x_i‖ ≳ 1.8·10¹⁹) — is treated as a Byzantine
reply and screened out before the first rule runs: its row is replaced by the
*fill* the first rule of the chain declares at registration (``non_finite_fill``),
and counted in the per-round diagnostic ``non_finite``.  θ never sees it.

* ``"mean"`` (every rule unless it says otherwise): the mean of the finite rows (a
  zero vector when no row is finite).  For ``mean`` the aggregate is then exactly the
  mean of the finite rows.  For the robust rules (cm, tm, rfa, krum, multikrum,
  bulyan, s_cc, clippedclustering, dnc, fltrust, and the pre-aggregators bucketing,
  nnm, arc) a screened row becomes one more row at the finite rows' mean: a vector an
  omniscient attacker could have sent itself, so a rule robust to f Byzantine rows
  stays so (the screened rows count among the f; ``f`` is not changed).
* ``"center"`` (``cc``): the rule's centre ``RoundContext.center`` (m̃_{t−1}, zero at
  t = 1).  CC's clipped displacement of that row is zero (Eq. 6): CC runs on the
  finite rows, its step scaled by (number of finite rows)/k.

The number of rows never changes, so the screening is two passes over the matrix on
its device (row norms; the fill written into a buffer), with no host synchronisation
and no branch on a value.  ``"propagate"`` is the paper's plain behaviour: the
matrix reaches the rules as it is (a single NaN reply makes θ NaN under cm, tm, cc,
rfa, ...); ``non_finite`` still counts such rows when the diagnostics are on.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .kernels import column_blocks
from .registry import RoundContext, Rule, check_policy


#: per-round diagnostics, in this order (the simulator's results columns and Flower's metric names)
DIAGNOSTIC_COLUMNS = (
    "cos_delta",  # Table II: cos(Δ_t, Δ_{t-1}), Δ_t = m_byz - m̄_t
    "cos_ref_benign",  # Table III: mean cos(m̃_{t-1}, m_i) over benign clients
    "cos_ref_byz",  # Table III: mean cos(m̃_{t-1}, m_i) over Byzantine clients
    "clip_fraction",  # rules with a clip radius (CC, S-CC): share of rows with ‖m_i - m̃_{t-1}‖ > τ
    "agg_norm",  # ‖m̃_t‖
    "non_finite",  # reply rows screened (policy "drop") or found (policy "propagate") non-finite
)

_EPS = 1e-12


def row_sq_norms(x: torch.Tensor) -> torch.Tensor:
    """``(k,)`` ‖x_i‖² in x's precision: not finite exactly when a row is screened."""
    return torch.linalg.vector_norm(x, dim=1).square()


def screen(x: torch.Tensor, fill: str, center: torch.Tensor | None,
           out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(y, bad)``: ``x`` with each row of non-finite ‖x_i‖² replaced by the fill, and the ``(k,)`` mask of those rows.

    ``fill`` is ``"mean"`` (the mean of the other rows, zero if none) or ``"center"``
    (``center``; zeros when ``None``).  ``y`` is written into ``out`` when given (a
    ``(k, d)`` buffer reused across rounds); ``x`` is never modified.  One pass for
    the norms, one pass (column blocks) writing ``y``; no host synchronisation on CUDA.
    On CPU, where asking whether any row was screened costs nothing, a round with none
    returns ``x`` itself and skips the copy (a pass over the matrix: 6 ms of a cnn round).
    """
    bad = ~torch.isfinite(row_sq_norms(x))
    if x.device.type == "cpu" and not bool(bad.any()):
        return x, bad
    good = (~bad)[:, None]
    y = torch.empty_like(x) if out is None else out
    if fill == "center":
        ref = x.new_zeros(x.shape[1]) if center is None else center
        for sl in column_blocks(x):
            torch.where(good, x[:, sl], ref[sl], out=y[:, sl])
        return y, bad
    if fill != "mean":
        raise ValueError(f"fill: must be 'mean' or 'center', got {fill!r}")
    weight = good[:, 0].to(x.dtype)
    weight = weight / weight.sum().clamp_min(1.0)
    badf, zero = bad.to(x.dtype), x.new_zeros(())
    for sl in column_blocks(x):
        yb = y[:, sl]
        torch.where(good, x[:, sl], zero, out=yb)  # screened rows zeroed (a NaN times 0 would stay NaN)
        yb.addr_(badf, weight @ yb)  # ... then set to the mean of the others
    return y, bad


@dataclass
class RuleChain:
    """The server's rules in order — pre-aggregators, then the aggregator — with resolved parameters.

    ``non_finite`` is the policy of the module docstring.  Stateless itself: the rules'
    states live in a dict by role (``pre0``, ..., ``aggregator``) that the caller keeps
    across rounds and checkpoints, and passes to :meth:`aggregate`.
    """

    aggregator: Rule
    params: dict
    pre: tuple[Rule, ...] = ()
    pre_params: tuple[dict, ...] = ()
    non_finite: str = "drop"

    def __post_init__(self) -> None:
        check_policy(self.non_finite)
        self.pre, self.pre_params = tuple(self.pre), tuple(self.pre_params)
        if len(self.pre) != len(self.pre_params):
            raise ValueError("pre_params: one dict per pre-aggregator")

    @property
    def fill(self) -> str:
        """The fill of a screened row: the declaration of the first rule to see the matrix."""
        return (self.pre[0] if self.pre else self.aggregator).non_finite_fill

    @property
    def clip_radius(self) -> float | None:
        """The aggregator's clip radius (the parameter it declares, e.g. τ), or None.

        Only without pre-aggregators: the clip fraction is measured on the rows the
        aggregator receives, which are then the replies themselves."""
        name = self.aggregator.clip_radius
        return None if name is None or self.pre else float(self.params[name])

    def rows(self, k: int) -> int:
        """Rows the aggregator receives from ``k`` replies (each pre-aggregator declares its count)."""
        for rule, params in zip(self.pre, self.pre_params):
            k = rule.output_rows(k, params)
        return k

    def screen(self, x: torch.Tensor, ctx: RoundContext,
               out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(matrix the rules see, mask of screened rows or None)`` under the policy."""
        if self.non_finite == "propagate":
            return x, None
        return screen(x, self.fill, ctx.center, out)

    def aggregate(self, x: torch.Tensor, ctx: RoundContext, states: dict,
                  out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Lines 12-13 of Algorithm 1: ``(m̃_t, the screened matrix, mask of screened rows or None)``.

        ``states`` maps each role to its ``RoundContext.state`` dict (created on first
        use).  ``out``, a ``(k, d)`` buffer, receives the screened matrix (unless :func:`screen`
        returns ``x`` itself); an aggregate that aliases the matrix the rules saw (a rule returning a
        view of its input) is copied out of it, so that the next round's writes cannot change it.
        """
        y, bad = self.screen(x, ctx, out)
        inputs = y
        for i, (rule, params) in enumerate(zip(self.pre, self.pre_params)):
            inputs = call(rule, inputs, params, ctx, states, f"pre{i}")
        agg = call(self.aggregator, inputs, self.params, ctx, states, "aggregator")
        if agg.untyped_storage().data_ptr() == y.untyped_storage().data_ptr():
            agg = agg.clone()
        return agg, y, bad

    def trial(self, ctx: RoundContext, states: dict,
              out: torch.Tensor | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``RoundContext.aggregate``: this chain on a trial ``(k, d)`` matrix, on copies of the
        rules' states (the attack's own excepted) and of the RNG, so calling it changes nothing
        (but the scratch buffer ``out``, when given: the round's own aggregation rewrites it)."""
        def aggregate(x: torch.Tensor) -> torch.Tensor:
            copies = {role: copy.deepcopy(st) for role, st in states.items() if role != "attack"}
            gen = ctx.generator
            if gen is not None:
                gen = torch.Generator(device=ctx.generator.device)
                gen.set_state(ctx.generator.get_state())
            buf = out if out is not None and out.shape == x.shape and out.dtype == x.dtype else None
            return self.aggregate(x, dataclasses.replace(ctx, generator=gen), copies, buf)[0]
        return aggregate


def call(rule: Rule, first: torch.Tensor, params: dict, ctx: RoundContext, states: dict, role: str,
         chain: RuleChain | None = None, out: torch.Tensor | None = None) -> torch.Tensor:
    """Apply one rule with its per-role ``state``; an attack asking for ``aggregate`` gets ``chain``'s
    trial (screening into the scratch buffer ``out`` when given)."""
    if "state" in rule.context:
        ctx = dataclasses.replace(ctx, state=states.setdefault(role, {}))
    if "aggregate" in rule.context and chain is not None:
        ctx = dataclasses.replace(ctx, aggregate=chain.trial(ctx, states, out))
    return rule(first, params, ctx)


def diagnostics(y: torch.Tensor, k_b: int, aggregate: torch.Tensor, prev_aggregate: torch.Tensor | None,
                prev_delta: torch.Tensor | None, clip_radius: float | None = None,
                bad: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    r"""One row of :data:`DIAGNOSTIC_COLUMNS` on the device, and this round's Δ_t (None without Byzantine rows).

    ``y`` is the ``(k, d)`` matrix the rules saw, benign rows ``[0, k_b)`` first.
    cos(Δ_t, Δ_{t−1}) with Δ_t = m_byz − m̄_t (Table II; m_byz is the first Byzantine
    row, which every omniscient attack sends from all k_m); the mean cosine of the
    benign and of the Byzantine rows with m̃_{t−1} (Table III); with a ``clip_radius``
    τ, the share of rows farther than τ from the centre (m̃_{t−1}, zero at t = 1);
    ‖m̃_t‖; the rows screened (``bad``), or without a mask the rows of non-finite
    ‖x_i‖².  One pass over ``y`` in column blocks; NaN where a value is undefined.
    """
    k = y.shape[0]
    nan = torch.full((), float("nan"), dtype=y.dtype, device=y.device)
    ref = prev_aggregate
    sq = y.new_zeros(k)  # ‖y_i‖²
    dots = y.new_zeros(k)  # ⟨y_i, m̃_{t−1}⟩
    dist2 = y.new_zeros(k)  # ‖y_i − m̃_{t−1}‖²
    clip_on = clip_radius is not None
    delta = torch.empty_like(aggregate) if k > k_b else None
    for sl in column_blocks(y):
        yb = y[:, sl]
        if delta is not None:
            torch.sub(yb[k_b], yb[:k_b].mean(0), out=delta[sl])  # Δ_t = m_byz − m̄_t
        sq += torch.linalg.vector_norm(yb, dim=1).square_()
        if ref is not None:
            dots += yb @ ref[sl]
            if clip_on:
                dist2 += torch.linalg.vector_norm(yb - ref[sl], dim=1).square_()
    if clip_on and ref is None:  # t = 1: the centre is zero
        dist2 = sq
    cos_delta = cos_benign = cos_byz = clip = nan
    if delta is not None and prev_delta is not None:
        cos_delta = F.cosine_similarity(delta, prev_delta, dim=0, eps=_EPS)
    if ref is not None:
        cos_all = dots / (sq.sqrt().clamp_min(_EPS) * torch.linalg.vector_norm(ref).clamp_min(_EPS))
        if k_b:
            cos_benign = cos_all[:k_b].mean()
        if k > k_b:
            cos_byz = cos_all[k_b:].mean()
    if clip_on:
        clip = (dist2 > clip_radius ** 2).to(y.dtype).mean()
    n_bad = (~torch.isfinite(sq) if bad is None else bad).sum().to(y.dtype)
    return torch.stack([cos_delta, cos_benign, cos_byz, clip, torch.linalg.vector_norm(aggregate), n_bad]), delta
