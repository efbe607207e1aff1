"""Blocked CPU kernels behind the robust aggregators, defences and attacks.

A round aggregates k = 25 vectors of d ≈ 0.3–5 M coordinates.  These helpers let
every rule work in a few passes over its ``(k, d)`` input without building another
``(k, d)`` tensor: differences are formed one block of columns at a time
(:func:`column_blocks`), so the temporary stays in cache, and coordinate-wise
order statistics on CPU run a comparator network over whole rows
(:func:`rank_network`, :func:`apply_rank_network_`), and on large matrices the
network with the sum of the ranks a rule keeps runs as one compiled loop over the
columns (:func:`rank_sum`).  All of them are exact reformulations of the textbook
formulas (up to the order of additions).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from typing import Iterator

import torch

from .errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "CPU_BLOCK",
    "column_blocks",
    "row_distances",
    "centered_matvec",
    "clipped_sum",
    "rank_network",
    "apply_rank_network_",
    "rank_sum",
    "COMPILED_MIN_NUMEL",
    "compiling",
    "compiled_networks",
    "window_around_median_mean",
]

#: Columns per block for the CPU kernels.  A (25, 65536) float32 block is 6.5 MB: it
#: stays in the last-level cache, and temporaries of that size are reused by the
#: allocator instead of being mapped afresh (a fresh (25, 431,080) temporary costs more
#: in page faults than the arithmetic done on it).  65536 was the fastest of 2^13..2^17
#: for TM, CM, CC, RFA and ALIE at d = 431,080 (2-core AMD EPYC, 2026-11-24).  On other
#: devices a block is the whole matrix.
CPU_BLOCK = 65536


def column_blocks(x: torch.Tensor) -> list[slice]:
    """Slices of the last dimension of ``x`` that the blocked kernels work on, in order."""
    d = x.shape[-1]
    step = CPU_BLOCK if x.device.type == "cpu" else max(d, 1)
    return [slice(i, min(i + step, d)) for i in range(0, max(d, 1), step)]


def row_distances(x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(k,)`` Euclidean distances ‖x_i − v‖, the difference formed one column block at a time."""
    sq = x.new_zeros(x.shape[0])
    for sl in column_blocks(x):
        sq += torch.linalg.vector_norm(x[:, sl] - v[sl], dim=1).square_()
    return sq.sqrt_()


def centered_matvec(w: torch.Tensor, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``(d,)`` vector Σ_i w_i (x_i − v), the difference formed one column block at a time."""
    out = torch.empty_like(v)
    for sl in column_blocks(x):
        out[sl] = w @ (x[:, sl] - v[sl])
    return out


def clipped_sum(x: torch.Tensor, v: torch.Tensor, tau: float) -> torch.Tensor:
    """``(d,)`` vector Σ_i min(1, τ/‖x_i − v‖)(x_i − v), distances below 1e-12 counted as zero.

    When the matrix is one column block (every device but the CPU, and d ≤ :data:`CPU_BLOCK`
    there) the differences are formed once and serve both the distances and the sum; else
    they are formed block by block twice (:func:`row_distances`, then :func:`centered_matvec`),
    as the weights need every block's distance first.  The same operations either way, so the
    same numbers.
    """
    blocks = column_blocks(x)
    if len(blocks) > 1:
        scale = (tau / row_distances(x, v).clamp_min(1e-12)).clamp(max=1.0)
        return centered_matvec(scale, x, v)
    diff = x - v
    dist = torch.linalg.vector_norm(diff, dim=1).square_().sqrt_()
    return (tau / dist.clamp_min(1e-12)).clamp(max=1.0) @ diff


@functools.lru_cache(maxsize=None)
def rank_network(k: int, cuts: tuple[int, ...]) -> tuple[tuple[int, int, int, int], ...]:
    """A comparator network that sorts k values into rank groups, as strided row blocks.

    After the network, for every column, rows ``[0, c_1)`` hold the c_1 smallest
    values, rows ``[c_1, c_2)`` the next ones, ..., rows ``[c_last, k)`` the largest
    (``cuts`` = (c_1, ..., c_last), increasing); inside a group the order is
    unspecified.  ``cuts = tuple(range(1, k))`` gives a full sort.

    Construction: Batcher's odd–even merge sort on the next power of two (its
    comparators touching the padding wires never swap and are dropped); then,
    walking backwards, comparators whose two outputs are not compared again and
    fall in the same group are removed (for k = 25 and TM's cuts (5, 20): 117
    comparators of 140).  The comparators are scheduled in layers of disjoint
    pairs, and each layer's pairs (i, i + dist) with i in an arithmetic progression
    become one block ``(start, step, count, dist)``: the rows
    ``start, start + step, ...`` (``count`` of them) against the same rows + dist.
    """
    if k < 1 or list(cuts) != sorted(set(cuts)) or any(not 0 < c < k for c in cuts):
        raise ValueError(f"cuts: need increasing values in (0, {k}), got {cuts}")
    n = 1 << max(0, (k - 1).bit_length())
    comps = []
    p = 1
    while p < n:
        dist = p
        while dist >= 1:
            for j in range(dist % p, n - dist, 2 * dist):
                for i in range(min(dist, n - j - dist)):
                    if (i + j) // (2 * p) == (i + j + dist) // (2 * p):
                        comps.append((i + j, i + j + dist))
            dist //= 2
        p *= 2
    comps = [(a, b) for a, b in comps if b < k]

    group = [sum(r >= c for c in cuts) for r in range(k)]
    kept: list[tuple[int, int]] = []
    touched: set[int] = set()
    for a, b in reversed(comps):
        if a not in touched and b not in touched and group[a] == group[b]:
            continue
        kept.append((a, b))
        touched.update((a, b))
    kept.reverse()

    depth = [0] * k
    layers: list[list[tuple[int, int]]] = []
    for a, b in kept:
        level = max(depth[a], depth[b])
        if level == len(layers):
            layers.append([])
        layers[level].append((a, b))
        depth[a] = depth[b] = level + 1
    blocks = []
    for layer in layers:
        by_dist: dict[int, list[int]] = {}
        for a, b in sorted(layer):
            by_dist.setdefault(b - a, []).append(a)
        for dist, starts in sorted(by_dist.items()):
            i = 0
            while i < len(starts):
                j = i + 1
                step = starts[j] - starts[i] if j < len(starts) else 1
                while j < len(starts) and starts[j] - starts[j - 1] == step:
                    j += 1
                blocks.append((starts[i], step, j - i, dist))
                i = j
    return tuple(blocks)


def apply_rank_network_(w: torch.Tensor, network: tuple[tuple[int, int, int, int], ...]) -> torch.Tensor:
    """Run a :func:`rank_network` in place on the rows of ``w`` (every column at once); returns ``w``.

    Each block is one compare-exchange of two sets of rows: ``minimum`` to the
    lower rows, ``maximum`` to the upper ones.  Exact (values are only moved);
    a NaN in a column spreads to every group of that column.
    """
    for start, step, count, dist in network:
        stop = start + step * (count - 1) + 1
        lo = w[start:stop:step]
        hi = w[start + dist: stop + dist: step]
        low = torch.minimum(lo, hi)
        torch.maximum(lo, hi, out=hi)
        lo.copy_(low)
    return w


#: On CPU, where compiling is on (:func:`compiling`), matrices of at least this many entries run
#: :func:`rank_sum` compiled (the mlp's 25 × 50,890 and larger); smaller ones the eager network.
COMPILED_MIN_NUMEL = 2 ** 20

_COMPILING = [False]  # the process's default when the environment does not decide


def compiling() -> bool:
    """Whether :func:`rank_sum` compiles its network: ``BYZLAB_COMPILE=1`` yes, ``=0`` no, unset as
    :func:`compiled_networks` set it (on inside a sweep's jobs, off elsewhere).

    Off by default because a process pays ≈ 3–5 s for its first compilation (importing the
    compiler stack, tracing, loading the kernel from inductor's on-disk cache: 2.7–4.0 s in
    ``benchmarks/compile_check.py``, 3.3–4.5 s more for a showcase cell's process in
    ``benchmarks/showcase_e2e.sh``; 13 s with an empty cache), while the eager network costs 23 ms more a cnn round (TM, d = 431,080) and
    2.4 ms more an mlp round: a sweep's worker, which runs many runs, wins; a single short
    run may not.
    """
    env = os.environ.get("BYZLAB_COMPILE", "").strip()
    if env not in ("", "0", "1"):
        raise ConfigError(f"BYZLAB_COMPILE: must be 0 or 1 (or unset), got {env!r}")
    return _COMPILING[0] if env == "" else env == "1"


@contextlib.contextmanager
def compiled_networks(on: bool = True) -> Iterator[None]:
    """Within the block, :func:`rank_sum` compiles (``on``) or not, unless ``BYZLAB_COMPILE`` decides."""
    saved, _COMPILING[0] = _COMPILING[0], on
    try:
        yield
    finally:
        _COMPILING[0] = saved


def rank_sum(x: torch.Tensor, cuts: tuple[int, ...], lo: int, hi: int) -> torch.Tensor:
    """``(d,)``: per column of ``x`` ``(k, d)``, the sum of its values of ranks ``lo .. hi − 1`` (0-based, increasing).

    The rows ``lo .. hi − 1`` must be a union of the rank groups that ``cuts`` defines
    (:func:`rank_network`): the network moves each column's values into their groups and
    those rows are added, in row order.  Two paths, the same operations in the same order
    (``tests/test_aggregators.py`` checks them bit for bit against each other):

    * eager: :func:`apply_rank_network_` block by block (:func:`column_blocks`);
    * compiled, on CPU for ``x.numel() >= COMPILED_MIN_NUMEL`` where :func:`compiling` is on
      (a sweep's jobs, or ``BYZLAB_COMPILE=1``): the network and the sum
      written out as straight-line code, one ``torch.minimum``/``torch.maximum`` pair per
      comparator, and compiled by ``torch.compile`` (inductor) into one loop over the columns
      that reads each column once and writes one value — the eager path makes ~120 passes over
      the matrix.  TM at k = 25, f = 5, one thread: d = 431,080 27.5 → 4.3 ms, d = 50,890
      2.9 → 0.54 ms
      (``benchmarks/compile_check.py``); the first call of a process compiles (seconds), and
      any failure to compile falls back to the eager path with one warning.
    """
    k = x.shape[0]
    if not 0 <= lo < hi <= k:
        raise ValueError(f"lo, hi: need 0 <= lo < hi <= k (k={k}), got {lo}, {hi}")
    bounds = {0, k, *cuts}
    if lo not in bounds or hi not in bounds:
        raise ValueError(f"lo, hi: must be 0, k or one of the cuts {cuts}, got {lo}, {hi}")
    if x.device.type == "cpu" and x.numel() >= COMPILED_MIN_NUMEL and compiling():
        fn = _compiled_rank_sum(k, tuple(cuts), lo, hi)
        if fn is not None:
            try:
                return fn(x.contiguous())
            except Exception as e:  # noqa: BLE001 -- any compiler failure: the eager path, said once
                _compile_failed((k, tuple(cuts), lo, hi), e)
    net = rank_network(k, tuple(cuts))
    out = x.new_empty(x.shape[1])
    for sl in column_blocks(x):
        w = apply_rank_network_(x[:, sl].clone(), net)
        acc = w[lo].clone()
        for i in range(lo + 1, hi):
            acc += w[i]
        out[sl] = acc
    return out


#: (k, cuts, lo, hi) -> the compiled network + sum, or None where compiling failed
_COMPILED: dict = {}


def _compile_failed(key, error: Exception) -> None:
    _COMPILED[key] = None
    log.warning("rank_sum: torch.compile failed (%s: %s); the eager comparator network runs instead",
                type(error).__name__, str(error).strip().splitlines()[0] if str(error).strip() else "")


def _compiled_rank_sum(k: int, cuts: tuple[int, ...], lo: int, hi: int):
    """The compiled straight-line network + sum for one (k, cuts, lo, hi), or None after a failure."""
    key = (k, cuts, lo, hi)
    if key not in _COMPILED:
        rows = [f"r{i}" for i in range(k)]
        lines = ["def network_sum(x):", f"    {', '.join(rows)}, = x.unbind(0)"]
        for start, step, count, dist in rank_network(k, cuts):
            for j in range(count):
                a, b = start + j * step, start + j * step + dist
                lines.append(f"    r{a}, r{b} = torch.minimum(r{a}, r{b}), torch.maximum(r{a}, r{b})")
        lines.append(f"    return {' + '.join(rows[lo:hi])}")
        scope: dict = {"torch": torch}
        exec(compile("\n".join(lines), f"<byzlab rank_sum k={k} cuts={cuts} rows {lo}..{hi - 1}>", "exec"), scope)
        _COMPILED[key] = _first_call_single_threaded_compile(
            torch.compile(scope["network_sum"], dynamic=False, fullgraph=True))
    return _COMPILED[key]


def _first_call_single_threaded_compile(fn):
    """``fn``, whose first call (which compiles) runs without a pool of compiler processes."""
    first = [True]

    def call(x: torch.Tensor) -> torch.Tensor:
        if not first[0]:
            return fn(x)
        import torch._inductor.config as inductor_config

        # the compiler's import says "No CUDA runtime is found" on a CPU-only machine: not news here
        quiet = logging.getLogger("torch.utils.cpp_extension")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with inductor_config.patch(compile_threads=1):
                out = fn(x)
        finally:
            quiet.setLevel(level)
        first[0] = False
        return out
    return call


def window_around_median_mean(s: torch.Tensor, beta: int) -> torch.Tensor:
    """Per column of ``s`` (sorted along dim 0), the mean of the ``beta`` values closest to its median."""
    n, c = s.shape
    h = n // 2
    if n % 2:
        med, total, taken, lo0, hi0 = s[h], s[h].clone(), 1, h, h
    else:
        med, total, taken, lo0, hi0 = 0.5 * (s[h - 1] + s[h]), torch.zeros_like(s[0]), 0, h, h - 1
    lo = torch.full((c,), lo0, dtype=torch.long, device=s.device)  # window = rows lo..hi
    hi = torch.full((c,), hi0, dtype=torch.long, device=s.device)
    for _ in range(beta - taken):
        left = s.gather(0, (lo - 1).clamp_min(0)[None])[0]
        right = s.gather(0, (hi + 1).clamp_max(n - 1)[None])[0]
        take_left = torch.where(lo > 0, med - left, float("inf")) <= torch.where(hi < n - 1, right - med, float("inf"))
        total += torch.where(take_left, left, right)
        lo -= take_left.long()
        hi += (~take_left).long()
    return total / beta
