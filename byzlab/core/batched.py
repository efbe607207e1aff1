"""Batched runs: several runs of the same model and data advanced together.

One small run does not fill a GPU.  :class:`BatchedSimulation` holds R ordinary
:class:`~byzlab.core.simulator.Simulation` objects (each with its own seed, θ,
momenta, attack, aggregator and β) and computes the client gradients of all R
runs in **one** call, ``vmap`` over runs of ``vmap`` over clients of
``grad(functional_call)``; then each run finishes its round (lines 8–15 of
Algorithm 1: momentum, attack, aggregation, server step) on its own tensors.
Every run gives exactly the numbers it gives alone (same seed, same sampling),
up to floating-point reassociation in the batched kernels.

Runs can be batched when they share the data set, model, normalisation, k, b,
number of clients computing gradients (``k_b``, plus the Byzantine clients for
data attacks), device and precision — :func:`batch_key` says which.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import torch

from .config import RunConfig, resolve_device
from .data import Dataset, load_dataset
from .errors import ConfigError
from .results import RunResult
from .engines import autocast_for, client_grad_fn, precision_scope
from .interrupts import one_round
from .simulator import Simulation


def batch_key(config: RunConfig) -> tuple:
    """Runs with equal keys can share one batched gradient call."""
    return (config.dataset, config.model, config.norm, config.k, config.b, config.n_compute,
            str(resolve_device(config.device)), config.precision, config.data_root)


class BatchedSimulation:
    """R runs of one model and data set, their client gradients computed in one batched call."""

    def __init__(self, configs: Iterable[RunConfig | dict], *, dataset: Dataset | None = None):
        cfgs = [RunConfig.make(c) for c in configs]
        if not cfgs:
            raise ConfigError("configs: need at least one run")
        keys = {batch_key(c) for c in cfgs}
        if len(keys) != 1:
            raise ConfigError("configs: runs in one batch must share dataset, model, norm, k, b, "
                              "the number of clients computing gradients, device and precision")
        c0 = cfgs[0]
        data = dataset if dataset is not None else load_dataset(c0.dataset, root=c0.data_root, download=c0.download)
        self.sims = [Simulation(c, dataset=data) for c in cfgs]  # their own engines stay unused
        s0 = self.sims[0]
        self.n, self.k_b = s0.n_compute, s0.k_b
        self.fn = torch.func.vmap(client_grad_fn(s0.model, autocast_for(c0.precision, s0.device.type)),
                                  in_dims=(0, 0, 0, 0))
        self.buffer_names = [n for n, _ in s0.model.named_buffers()]

    @property
    def done(self) -> bool:
        return all(s.done for s in self.sims)

    def step(self, active: list[Simulation] | None = None) -> None:
        """One round of every run in ``active`` (default: every unfinished run)."""
        active = [s for s in self.sims if not s.done] if active is None else active
        t0 = time.perf_counter()
        batches = [s.sample(s.t + 1) for s in active]
        n = self.n
        x = torch.stack([b[0].view(n, -1, *b[0].shape[1:]) for b in batches])
        y = torch.stack([b[1].view(n, -1) for b in batches])
        theta = torch.stack([s.theta for s in active])
        server = [dict(s.model.named_buffers()) for s in active]
        bufs = {name: torch.stack([sb[name] for sb in server]).unsqueeze(1)
                .repeat(1, n, *([1] * server[0][name].dim())) for name in self.buffer_names}
        with precision_scope(self.sims[0].config.precision):
            grads, losses = self.fn(theta, bufs, x, y)  # (R, n, d), (R, n)
            for r, sb in enumerate(server):  # server statistics: mean over the benign clients
                for name, v in sb.items():
                    v.copy_(bufs[name][r, : self.k_b].mean(0) if v.is_floating_point() else bufs[name][r, 0])
            for r, s in enumerate(active):
                s.finish_round(grads[r], losses[r])
                s.threads_seen.add(torch.get_num_threads())
        dt = (time.perf_counter() - t0) / len(active)
        for s in active:
            s.elapsed += dt

    def advance(self, rounds: int | None = None, callback: Callable[[int, dict], Any] | None = None) -> None:
        """Run ``rounds`` more rounds (None → to the end); each run evaluates at its own cadence.

        ``callback(run_index, row)`` is called after every evaluation.
        """
        target = [s.total_rounds if rounds is None else min(s.total_rounds, s.t + rounds) for s in self.sims]
        while True:
            # runs that reached their target in this call wait; the others take one more round together
            active = [s for s, tgt in zip(self.sims, target) if s.t < tgt and not s.diverged]
            if not active:
                return
            with one_round():  # a deferred Ctrl-C is raised after the round and its evaluations
                self.step(active)
                for i, s in enumerate(self.sims):
                    if s in active and s.evaluation_due:
                        row = s.record()
                        if callback is not None:
                            callback(i, row)

    def results(self) -> list[RunResult]:
        return [s.result() for s in self.sims]


def run_batched(configs: Iterable[RunConfig | dict], *, dataset: Dataset | None = None) -> list[RunResult]:
    """Run several compatible configs together (see :func:`batch_key`) and return their results in order."""
    sim = BatchedSimulation(configs, dataset=dataset)
    sim.advance()
    return sim.results()
