"""The statistics the claims are decided by (:mod:`byzlab.analysis.claims`): paired seeds, a verdict rule that
can end both ways, exact intervals for collapse counts, and one convention for the spread.

Paired differences
    Runs with the same seed share the initial model, the client partition and the batch order, so
    a comparison "A beats B by more than m" is judged on the per-seed differences
    d_s = A_s − B_s over the seeds both cells ran.  :func:`paired_interval` gives their mean d̄ with
    a 95 % **paired t interval**, d̄ ± t_{0.975, n−1} · s_d / √n (s_d the sample std of the d_s,
    ddof = 1), the interval of ``scipy.stats.ttest_1samp(d).confidence_interval(0.95)``.

Decision rule (:func:`decide`), with margin m and δ the smallest difference that matters (1 point
by default, :data:`DELTA`):
    **holds** when the interval's lower end is above m; **does not hold** when it is not and its
    upper end is below m + δ (any advantage beyond the margin is smaller than δ); **undecided**
    otherwise.

Seeds a decision would need (:func:`seeds_needed`)
    With d̄ and s_d as observed, a decision needs a half-width h(n) = t_{0.975, n−1} · s_d / √n
    below h* = max(d̄ − m, m + δ − d̄) (the distance from d̄ to the nearer decision bound; h* ≥ δ/2):
    n* = min{n ≥ 2 : t_{0.975, n−1} s_d / √n < h*}, a plug-in estimate (about (1.96 s_d / h*)² for
    large n) that assumes the mean and spread stay as observed; it is no power guarantee.

Unpaired rule (:func:`unpaired_verdict`)
    Only for the paper's own verdict column: its Table IV gives mean ± std per cell and no per-seed
    numbers, so gap = mean(A) − mean(B) − m against s = √((s_A² + s_B²)/2): holds when gap > 2s,
    does not hold when gap < −2s, inconclusive otherwise.

Collapse counts (:func:`collapse_interval`)
    k collapsed runs of n seeds: the exact (Clopper–Pearson) 95 % interval of the collapse rate,
    ``scipy.stats.binomtest(k, n).proportion_ci(0.95, method="exact")``.

Spread
    Every std byzlab prints over seeds is the sample std (ddof = 1, :data:`DDOF`): Table IV, its
    figure and the claims.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

from .errors import ConfigError

__all__ = ["DDOF", "DELTA", "LEVEL", "HOLDS", "FAILS", "UNDECIDED", "INCONCLUSIVE", "NOT_RUN", "Paired",
           "paired_interval", "decide", "seeds_needed", "unpaired_verdict", "collapse_interval",
           "decide_rate", "seeds_needed_rate", "sample_std"]

#: the std convention everywhere: the sample std over seeds
DDOF = 1
#: the smallest difference that matters, in accuracy points
DELTA = 1.0
#: the confidence level of every interval
LEVEL = 0.95

HOLDS, FAILS, UNDECIDED, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "undecided", "inconclusive", "not run"


def sample_std(values) -> float:
    """The sample std (ddof = 1) of ``values``; NaN for fewer than 2."""
    x = np.asarray(values, dtype=float)
    return float(x.std(ddof=DDOF)) if len(x) > DDOF else float("nan")


@dataclass(frozen=True)
class Paired:
    """The paired t interval of per-seed differences: n, mean, sample std, interval [lo, hi]."""
    n: int
    mean: float
    std: float
    lo: float
    hi: float


def _t(n: int, level: float = LEVEL) -> float:
    return float(_st.t.ppf(0.5 + level / 2, n - 1))


def paired_interval(diffs, level: float = LEVEL) -> Paired:
    """Mean of the per-seed differences with the paired t interval (NaN bounds for fewer than 2)."""
    d = np.asarray(diffs, dtype=float)
    if d.ndim != 1 or not np.isfinite(d).all():
        raise ConfigError(f"diffs: must be a 1-d array of finite numbers, got {diffs!r}")
    n = len(d)
    if n == 0:
        return Paired(0, math.nan, math.nan, math.nan, math.nan)
    mean, sd = float(d.mean()), sample_std(d)
    if n < 2:
        return Paired(n, mean, sd, math.nan, math.nan)
    half = _t(n, level) * sd / math.sqrt(n)
    return Paired(n, mean, sd, mean - half, mean + half)


def _check_delta(delta: float) -> None:
    if not (isinstance(delta, (int, float)) and not isinstance(delta, bool) and delta > 0):
        raise ConfigError(f"delta: the smallest difference that matters must be a number > 0, got {delta!r}")


def decide(lo: float, hi: float, margin: float = 0.0, delta: float = DELTA) -> str:
    """The rule of this module: holds if lo > m; does not hold if not and hi < m + δ; else undecided
    (also when the interval is undefined: fewer than 2 seeds)."""
    _check_delta(delta)
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return UNDECIDED
    if lo > margin:
        return HOLDS
    if hi < margin + delta:
        return FAILS
    return UNDECIDED


def seeds_needed(mean: float, std: float, margin: float = 0.0, delta: float = DELTA, *, level: float = LEVEL,
                 limit: int = 10_000) -> float:
    """n* = min{n ≥ 2 : t_{(1+level)/2, n−1} · std / √n < max(mean − m, m + δ − mean)}: the seeds a decision
    would take if the mean and the sample std stayed as observed (NaN when the std is unknown; inf beyond
    ``limit``)."""
    _check_delta(delta)
    if not (np.isfinite(mean) and np.isfinite(std)):
        return math.nan
    target = max(mean - margin, margin + delta - mean)
    if std == 0:
        return 2.0
    for n in range(2, limit + 1):
        if _t(n, level) * std / math.sqrt(n) < target:
            return float(n)
    return math.inf


def unpaired_verdict(gap: float, spread: float) -> str:
    """The paper's column: ``gap`` (mean(A) − mean(B) − m) beyond ± 2 ``spread`` (the pooled std)."""
    if not np.isfinite(gap):
        return NOT_RUN
    if not np.isfinite(spread):
        return INCONCLUSIVE
    if gap > 2 * spread:
        return HOLDS
    if gap < -2 * spread:
        return FAILS
    return INCONCLUSIVE


def collapse_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact (Clopper–Pearson) interval of a rate seen ``k`` times in ``n`` (NaN for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    ci = _st.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def decide_rate(k: int, n: int, share: float = 0.5, level: float = LEVEL) -> str:
    """"Runs collapse": holds when the exact interval of the collapse rate lies above ``share`` (most runs
    collapse), does not hold when it lies below, undecided otherwise."""
    lo, hi = collapse_interval(k, n, level)
    if not np.isfinite(lo):
        return UNDECIDED
    if lo > share:
        return HOLDS
    if hi < share:
        return FAILS
    return UNDECIDED


def seeds_needed_rate(k: int, n: int, share: float = 0.5, level: float = LEVEL, limit: int = 1000) -> float:
    """The seeds that would decide :func:`decide_rate` if the observed rate k/n held (k' = round(rate · n'));
    inf when the rate equals ``share`` or no n' ≤ ``limit`` decides; NaN for n = 0."""
    if n == 0:
        return math.nan
    rate = k / n
    for m in range(max(n, 1), limit + 1):
        if decide_rate(round(rate * m), m, share, level) != UNDECIDED:
            return float(m)
    return math.inf
