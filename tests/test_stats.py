"""byzlab.core.stats: each number against a hand computation and against scipy.stats called directly."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as st

from byzlab.core import stats
from byzlab.core.errors import ConfigError


def test_paired_interval_by_hand_and_by_scipy():
    d = [1.0, 2.0, 3.0, 6.0]
    # by hand: mean 3, sample std √((4 + 1 + 0 + 9) / 3) = √(14/3), t_{0.975, 3} = 3.182446
    sd = math.sqrt(14 / 3)
    half = 3.182446305284263 * sd / 2
    p = stats.paired_interval(d)
    assert (p.n, p.mean) == (4, 3.0) and p.std == pytest.approx(sd)
    assert (p.lo, p.hi) == (pytest.approx(3 - half), pytest.approx(3 + half))
    ci = st.ttest_1samp(d, 0.0).confidence_interval(0.95)
    assert (p.lo, p.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_paired_interval_degenerate_and_bad_input():
    one = stats.paired_interval([5.0])
    assert one.n == 1 and one.mean == 5.0 and math.isnan(one.lo) and math.isnan(one.hi)
    assert stats.paired_interval([]).n == 0
    same = stats.paired_interval([2.0, 2.0, 2.0])  # no spread: the interval is the point
    assert (same.lo, same.hi) == (2.0, 2.0)
    with pytest.raises(ConfigError, match="^diffs: must be a 1-d array of finite numbers"):
        stats.paired_interval([1.0, float("nan")])


def test_decide_each_branch():
    assert stats.decide(0.1, 5.0) == "holds"                      # lower end above m = 0
    assert stats.decide(-0.1, 0.9) == "does not hold"             # not above 0, upper end below 0 + δ
    assert stats.decide(-0.1, 1.0) == "undecided"                 # the upper end must be below m + δ
    assert stats.decide(0.0, 0.5) == "does not hold"              # lower end at m is not above it
    assert stats.decide(-6.0, -4.5, margin=-5.0) == "does not hold"  # "at most 5 points weaker": hi < −4
    assert stats.decide(-4.9, 3.0, margin=-5.0) == "holds"
    assert stats.decide(-3.0, 3.0, delta=5.0) == "does not hold"  # a wider δ: 3 < 0 + 5
    assert stats.decide(float("nan"), float("nan")) == "undecided"  # one seed: no interval
    with pytest.raises(ConfigError, match="^delta: "):
        stats.decide(0.0, 1.0, delta=0)


def _sample(mean: float, sd: float, n: int) -> np.ndarray:
    """n numbers with exactly this mean and sample std."""
    z = np.arange(n, dtype=float)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + sd * z


def test_seeds_needed_against_a_plain_search_with_scipy():
    # mean 0.5, sd 1, m 0, δ 1: h* = max(0.5, 0.5) = 0.5; t_{0.975,16}/√17 = 0.514, t_{0.975,17}/√18 = 0.497
    assert stats.seeds_needed(0.5, 1.0) == 18
    for mean, sd, margin in ((3.0, 4.0, 0.0), (-0.3, 2.0, 0.0), (-3.0, 1.5, -5.0), (10.0, 30.0, 0.0)):
        n = int(stats.seeds_needed(mean, sd, margin))
        # at n seeds a sample with this mean and spread is decided, at n - 1 it is not (scipy's interval)
        def decided(k):
            ci = st.ttest_1samp(_sample(mean, sd, k), 0.0).confidence_interval(0.95)
            return stats.decide(ci.low, ci.high, margin) != "undecided"
        assert decided(n) and (n == 2 or not decided(n - 1)), (mean, sd, margin, n)
    assert stats.seeds_needed(1.0, 0.0) == 2
    assert math.isnan(stats.seeds_needed(1.0, float("nan")))


def test_unpaired_rule_of_the_papers_column():
    assert stats.unpaired_verdict(2.1, 1.0) == "holds"
    assert stats.unpaired_verdict(2.0, 1.0) == "inconclusive"
    assert stats.unpaired_verdict(-2.1, 1.0) == "does not hold"
    assert stats.unpaired_verdict(1.0, float("nan")) == "inconclusive"
    assert stats.unpaired_verdict(float("nan"), 1.0) == "not run"


def test_collapse_interval_is_clopper_pearson():
    for k, n in ((7, 10), (0, 5), (5, 5), (1, 2)):
        lo, hi = stats.collapse_interval(k, n)
        ci = st.binomtest(k, n).proportion_ci(0.95, method="exact")
        assert (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
        # the Clopper-Pearson bounds as beta quantiles, by hand
        assert lo == pytest.approx(0.0 if k == 0 else st.beta.ppf(0.025, k, n - k + 1))
        assert hi == pytest.approx(1.0 if k == n else st.beta.ppf(0.975, k + 1, n - k))
    assert all(math.isnan(x) for x in stats.collapse_interval(0, 0))


def test_collapse_rule_and_the_seeds_it_needs():
    # 10 of 10: lower bound 0.025^(1/10) = 0.692 > 1/2
    assert stats.collapse_interval(10, 10)[0] == pytest.approx(0.025 ** 0.1)
    assert stats.decide_rate(10, 10) == "holds" and stats.decide_rate(0, 10) == "does not hold"
    assert stats.decide_rate(7, 10) == "undecided" and stats.decide_rate(0, 0) == "undecided"
    # 2 of 2: all n collapse while 0.025^(1/n) <= 1/2, i.e. n <= log(0.025)/log(0.5) = 5.3: 6 seeds
    assert stats.seeds_needed_rate(2, 2) == 6
    assert stats.seeds_needed_rate(1, 2) == math.inf  # a rate of exactly 1/2 never decides


def test_one_std_convention():
    assert stats.DDOF == 1
    assert stats.sample_std([40.0, 50.0]) == pytest.approx(math.sqrt(50))
    assert stats.sample_std([40.0, 50.0]) == pytest.approx(np.std([40.0, 50.0], ddof=1))
    assert math.isnan(stats.sample_std([1.0]))
