"""Client partitions of a training set (Section VI of the paper, Fig. 2).

Section VI of the paper distributes the training set over the ``k`` clients
either IID (equal, homogeneous random shards) or non-IID, by drawing for every
class the share of each client from a Dirichlet(α = 1) distribution (Fig. 2 shows
the resulting per-client class histograms, see :func:`class_counts`).  Unlike the
reference implementation, whose Dirichlet split can duplicate or drop samples when
class counts differ, :func:`partition` always returns disjoint shards that cover
the training set exactly once.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .errors import ConfigError

__all__ = ["PARTITIONS", "partition", "class_counts"]

PARTITIONS = ("dirichlet", "iid")


def _as_label_array(labels) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise ConfigError(f"labels: expected a 1-D array of class labels, got shape {arr.shape}")
    return arr


def partition(labels, k: int, kind: str = "iid", alpha: float = 1.0, seed: int = 0, *,
              min_size: int = 2, max_tries: int = 100) -> list[np.ndarray]:
    """Split the training set over ``k`` clients (Section VI of the paper).

    Parameters
    ----------
    labels:
        1-D array (or tensor) of the training labels; only its length matters for ``iid``.
    k:
        Number of clients, ``1 <= k <= len(labels)``.
    kind:
        ``"iid"``: a random permutation cut into ``k`` near-equal shards (sizes differ
        by at most one) -- the paper's equal, homogeneous shards.
        ``"dirichlet"``: non-IID.  For each class ``c`` the proportions
        ``p_c ~ Dir(alpha * 1_k)`` are drawn and the class's shuffled indices are cut
        at ``round(cumsum(p_c) * n_c)``, so every sample goes to exactly one client
        (the paper uses ``alpha = 1``, Fig. 2; smaller alpha is more heterogeneous).
    alpha:
        Dirichlet concentration, ``> 0`` (ignored for ``iid``).
    seed:
        Seed of ``numpy.random.default_rng``; the result is a deterministic
        function of ``(labels, k, kind, alpha, seed, min_size)``.
    min_size:
        ``dirichlet`` only: the whole draw is repeated (up to ``max_tries`` times)
        until every client holds at least ``min_size`` samples; then ``ValueError``.

    Returns
    -------
    list of ``k`` sorted int64 index arrays, pairwise disjoint, whose union is
    ``range(len(labels))``.
    """
    y = _as_label_array(labels)
    n = len(y)
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ConfigError(f"k: must be an integer with 1 <= k <= {n} (number of samples), got {k!r}")
    if kind not in PARTITIONS:
        raise ConfigError(f"kind: unknown {kind!r}; choose one of: {', '.join(PARTITIONS)}")
    k = int(k)
    rng = np.random.default_rng(seed)

    if kind == "iid":
        return [np.sort(p).astype(np.int64) for p in np.array_split(rng.permutation(n), k)]

    try:
        alpha_ok = float(alpha) > 0 and np.isfinite(float(alpha))
    except (TypeError, ValueError):
        alpha_ok = False
    if not alpha_ok:
        raise ConfigError(f"alpha: must be a finite number > 0, got {alpha!r}")
    if isinstance(min_size, bool) or not isinstance(min_size, (int, np.integer)) or min_size < 0:
        raise ConfigError(f"min_size: must be an integer >= 0, got {min_size!r}")
    if min_size * k > n:
        raise ConfigError(f"min_size: {k} clients x min_size={min_size} exceeds the {n} samples")
    alpha = float(alpha)

    by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
    for _ in range(max(1, int(max_tries))):
        shards: list[list[np.ndarray]] = [[] for _ in range(k)]
        for idx in by_class:
            p = rng.dirichlet(np.full(k, alpha))
            if not np.all(np.isfinite(p)):  # degenerate draw for tiny alpha: make it one-hot
                p = np.zeros(k)
                p[rng.integers(k)] = 1.0
            cuts = np.rint(np.cumsum(p) * len(idx)).astype(np.int64)
            cuts = np.clip(cuts, 0, len(idx))
            cuts[-1] = len(idx)
            for i, part in enumerate(np.split(rng.permutation(idx), cuts[:-1])):
                shards[i].append(part)
        parts = [np.sort(np.concatenate(s)).astype(np.int64) for s in shards]
        if min(len(p) for p in parts) >= min_size:
            return parts
    raise ConfigError(f"alpha: Dirichlet(alpha={alpha:g}) split left a client with fewer than min_size={min_size} "
                     f"samples in {max_tries} draws; raise alpha, lower k or lower min_size")


def class_counts(labels, parts: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Per-client class histogram, shape ``(k, num_classes)`` int64 (the data of Fig. 2)."""
    y = _as_label_array(labels).astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= num_classes):
        raise ConfigError(f"num_classes: labels span {y.min()}..{y.max()}, not within 0..{num_classes - 1}")
    return np.stack([np.bincount(y[np.asarray(p, dtype=np.int64)], minlength=num_classes) for p in parts]) \
        if len(parts) else np.zeros((0, num_classes), dtype=np.int64)
