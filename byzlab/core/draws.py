"""A run's random numbers: one seeded CPU generator, whatever device the run computes on.

Every random choice of a run (its clients' mini-batches and their augmentation, the
rules' permutations and noise) is drawn from :func:`run_generator` (a CPU
``torch.Generator``) by :func:`draw`, and only then moved to the run's device.  A
seed therefore means the same draws on CPU and on CUDA, and the two runs of one
config differ by floating-point rounding alone (which is why the device is not part
of a run's key, :meth:`byzlab.RunConfig.key`).  Drawing on the device instead would
give other numbers: CUDA's generator (Philox) and the CPU's (Mersenne Twister) are
different streams, so the two runs would train on different batches from round 1.
This is also where PyTorch's own ``DataLoader`` draws its samplers' indices.

On CUDA a draw reaches the device by a non-blocking copy from pinned memory, so a
round still never waits for the host (``tests/test_simulator.py``'s sync tests).
The draws are small (``k`` × shard keys once an epoch; 3 × ``k·b`` augmentation
offsets a round; DnC's ``b`` coordinates, :func:`subset`) except Fang's ``(k_m, d)``
uniforms, 3–7 ns each with the copy to a GPU (a Mersenne Twister draws one number at a time): on an
H200 Fang's call took 7.5 ms at the cnn's d and 250 ms at resnet9's (6.6 M), against 0.2 and
1.5 ms with CUDA's own generator (``benchmarks/RESULTS.md``, 2026-12-04).
"""
from __future__ import annotations

from typing import Callable

import torch

__all__ = ["run_generator", "to_device", "draw", "subset"]


def run_generator(seed: int) -> torch.Generator:
    """The generator of a run seeded ``seed``: on the CPU, for every device."""
    return torch.Generator().manual_seed(int(seed))


def to_device(t: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """``t`` on ``device``: itself when already there; from the CPU to CUDA without a host wait."""
    device = torch.device(device)
    if t.device == device or (device.type == t.device.type and device.index is None):
        return t
    if t.device.type == "cpu" and device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def draw(generator: torch.Generator | None, fn: Callable[..., torch.Tensor], *args,
         device: torch.device | str, **kwargs) -> torch.Tensor:
    """``fn(*args, **kwargs)`` (``torch.rand``, ``randint``, ``randperm``, ...) drawn from ``generator``
    on the generator's own device (the CPU for ``None``: torch's default generator), then on ``device``."""
    where = generator.device if generator is not None else torch.device("cpu")
    return to_device(fn(*args, generator=generator, device=where, **kwargs), device)


def subset(generator: torch.Generator | None, n: int, size: int, *, device: torch.device | str) -> torch.Tensor:
    """``min(size, n)`` distinct integers of ``range(n)``, a uniformly random subset, in increasing order.

    Drawn in time of order ``size``, not ``n`` (DnC's b = 10,000 of resnet9's n = 6.6 M by
    ``torch.randperm(n)[:size]`` made its call 3.1–3.4× slower on one CPU core,
    ``benchmarks/rule_calls.py``): integers are drawn with replacement, the repeats
    dropped, and the missing ones drawn again until ``size`` are distinct.  Every step treats the
    ``n`` labels alike, so every subset of ``size`` is equally likely.  When ``size`` is a large part
    of ``n`` (repeats would be many) the first ``size`` of a permutation are taken instead.  All of it
    on ``generator``'s device (the CPU for a run's generator), the result on ``device``.
    """
    where = generator.device if generator is not None else torch.device("cpu")
    if size >= n:
        return torch.arange(n, device=device)
    if 4 * size >= n:
        chosen = torch.randperm(n, generator=generator, device=where)[:size].sort().values
    else:
        chosen = torch.empty(0, dtype=torch.long, device=where)
        while chosen.numel() < size:
            more = torch.randint(0, n, (size - chosen.numel(),), generator=generator, device=where)
            chosen = torch.unique(torch.cat([chosen, more]))  # sorted, repeats dropped
    return to_device(chosen, device)
