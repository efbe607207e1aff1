"""byzlab.core.draws.subset: a uniformly random subset of range(n), in time of order its size."""
from __future__ import annotations

import itertools

import pytest
import torch
from scipy import stats

from byzlab.core.draws import run_generator, subset


@pytest.mark.parametrize("n,size", [(431_080, 10_000), (300, 40), (300, 100), (10, 10), (10, 25), (1, 1), (50, 1)])
def test_a_subset_is_distinct_sorted_in_range_and_of_its_size(n, size):
    got = subset(run_generator(3), n, size, device="cpu")
    assert got.dtype == torch.long and got.device.type == "cpu"
    assert got.numel() == min(n, size)
    assert torch.unique(got).numel() == got.numel()  # distinct
    assert torch.equal(got, got.sort().values)
    assert int(got.min()) >= 0 and int(got.max()) < n
    if size >= n:
        assert torch.equal(got, torch.arange(n))


def test_one_seed_one_subset_and_the_generator_moves_on():
    g1, g2 = run_generator(7), run_generator(7)
    a, b = subset(g1, 10_000, 100, device="cpu"), subset(g2, 10_000, 100, device="cpu")
    assert torch.equal(a, b)
    assert not torch.equal(subset(g1, 10_000, 100, device="cpu"), a)


@pytest.mark.parametrize("n,size", [(9, 2), (12, 3), (6, 2), (5, 3)])  # drawn with repeats / from a permutation
def test_every_subset_is_equally_likely(n, size):
    """Chi-square of the subsets' counts against the uniform law over all C(n, size) of them."""
    g = run_generator(11)
    names = {c: i for i, c in enumerate(itertools.combinations(range(n), size))}
    draws = 60 * len(names)
    counts = [0] * len(names)
    for _ in range(draws):
        counts[names[tuple(subset(g, n, size, device="cpu").tolist())]] += 1
    assert stats.chisquare(counts).pvalue > 1e-4, counts


def test_a_first_come_sampler_would_fail_the_uniformity_test():
    """The test above can fail: the first ``size`` distinct values of a draw with repeats, kept in
    draw order and padded with the smallest unused labels, is not uniform, and the chi-square says so."""
    g = run_generator(11)
    n, size = 9, 2
    names = {c: i for i, c in enumerate(itertools.combinations(range(n), size))}
    counts = [0] * len(names)
    for _ in range(60 * len(names)):
        first = torch.randint(0, n, (size,), generator=g).unique().tolist()
        first += [v for v in range(n) if v not in first][: size - len(first)]
        counts[names[tuple(sorted(first))]] += 1
    assert stats.chisquare(counts).pvalue < 1e-4
