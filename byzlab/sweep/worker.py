"""What a worker computes: one job (a run, or compatible runs batched), in a local process or a Ray task.

:func:`execute_job` runs a job and reports one *outcome* per run, a dict with

* ``key``: the run's :meth:`RunConfig.key`;
* ``status``: ``done``, ``diverged`` (a result too), ``cached`` (already in the
  store, not recomputed) or ``error``;
* for ``done``/``diverged``: ``accuracy``, ``wall_seconds``, ``rounds_computed``,
  and ``result`` (the :class:`RunResult`) when the worker does not write the
  store itself (``opts["write"]`` false: the driver stores it);
* for ``error``: ``error`` (one line) and ``traceback``.

A run continues from its checkpoint and saves one every ``checkpoint_every``
rounds / ``checkpoint_seconds``, and on a stop at a round boundary
(:class:`~byzlab.interrupts.RoundInterrupt`), which is re-raised.
:func:`worker_main` is the loop of a local worker process and :func:`ray_job`
the function of a Ray task (see :mod:`byzlab.sweep.backends`).
"""
from __future__ import annotations

import platform
import time
import traceback
from typing import Any, Callable, Iterable

from .. import checkpoint
from ..config import RunConfig, resolve_device
from ..data import cached_dataset
from ..errors import one_line
from ..interrupts import stop_at_round_boundaries
from ..registry import load_plugin
from ..store import ResultStore


_LOADED_PLUGINS: set[str] = set()


def load_plugins(plugins: Iterable[str]) -> None:
    """Load each plugin module once per process (the registries it fills are per process)."""
    for p in plugins:
        if p not in _LOADED_PLUGINS:
            load_plugin(p)
            _LOADED_PLUGINS.add(p)


def _finish(result, t0: float, start: int, sim, batch: int = 1) -> Any:
    import torch

    result.meta.update(wall_seconds=(time.perf_counter() - t0) / batch, rounds_computed=sim.t - start,
                       resumed_from_round=start, threads=torch.get_num_threads(), host=platform.node(),
                       batch=batch)
    return result


def _outcome(cfg: RunConfig, result=None, error: BaseException | None = None, attach: bool = False) -> dict:
    if error is not None:
        return {"key": cfg.key(), "status": "error", "error": one_line(error),
                "traceback": "".join(traceback.format_exception(type(error), error, error.__traceback__))}
    out = {"key": cfg.key(), "status": "diverged" if result.diverged else "done",
           "accuracy": result.final_accuracy, "wall_seconds": result.meta.get("wall_seconds"),
           "rounds_computed": result.meta.get("rounds_computed")}
    if attach:
        out["result"] = result
    return out


def _run_single(cfg: RunConfig, store: ResultStore, opts: dict) -> Any:
    """Run one config to the end, continuing from and saving to its checkpoint."""
    from ..interrupts import RoundInterrupt
    from ..simulator import Simulation

    t0 = time.perf_counter()
    data = cached_dataset(cfg.dataset, cfg.data_root, cfg.download, resolve_device(cfg.device))
    sim = Simulation(cfg, dataset=data)
    ckpt = store.checkpoint_path(cfg)
    start = checkpoint.restore(sim, ckpt, opts.get("bad_checkpoint", "error"))
    saver = checkpoint.Checkpointer(sim, ckpt, opts["checkpoint_every"], opts["checkpoint_seconds"])
    try:
        while not sim.done:
            sim.advance(1)
            if not sim.done:
                saver.maybe()
    except RoundInterrupt:  # stopped at a round boundary: the state is consistent
        saver.save()
        raise
    if opts["keep_final_checkpoint"]:  # the driver stores the result, then removes the file
        saver.save()
    return _finish(sim.result(), t0, start, sim)


def _run_batch(cfgs: list[RunConfig], store: ResultStore, opts: dict, emit: Callable[[dict], None]) -> None:
    """Run compatible configs together in one :class:`BatchedSimulation`; emit each as it finishes."""
    from ..batched import BatchedSimulation
    from ..interrupts import RoundInterrupt

    t0 = time.perf_counter()
    bsim = BatchedSimulation(cfgs, dataset=cached_dataset(cfgs[0].dataset, cfgs[0].data_root, cfgs[0].download,
                                                         resolve_device(cfgs[0].device)))
    paths = [store.checkpoint_path(c) for c in cfgs]
    starts = [checkpoint.restore(s, p, opts.get("bad_checkpoint", "error")) for s, p in zip(bsim.sims, paths)]
    savers = [checkpoint.Checkpointer(s, p, opts["checkpoint_every"], opts["checkpoint_seconds"])
              for s, p in zip(bsim.sims, paths)]
    emitted = [False] * len(cfgs)
    while True:
        for i, s in enumerate(bsim.sims):
            if s.done and not emitted[i]:
                if opts["keep_final_checkpoint"]:
                    savers[i].save()
                emit(_handle_result(cfgs[i], _finish(s.result(), t0, starts[i], s, len(cfgs)), store, opts))
                emitted[i] = True
        if bsim.done:
            return
        try:
            bsim.advance(1)
        except RoundInterrupt:  # stopped at a round boundary: every run's state is consistent
            for s, saver in zip(bsim.sims, savers):
                if not s.done:
                    saver.save()
            raise
        for s, saver in zip(bsim.sims, savers):
            if not s.done:
                saver.maybe()


def _handle_result(cfg: RunConfig, result, store: ResultStore, opts: dict) -> dict:
    if opts["write"]:  # stored by the process that computed it, so nothing finished waits in memory
        store.put(result)
        store.checkpoint_path(cfg).unlink(missing_ok=True)
    return _outcome(cfg, result, attach=not opts["write"])


def execute_job(cfgs: list[RunConfig], store_root: str, opts: dict,
                emit: Callable[[dict], None] | None = None) -> list[dict]:
    """Compute a job (one run, or several compatible runs batched) and report one outcome per run.

    ``opts``: ``checkpoint_every``, ``checkpoint_seconds``, ``write`` (store results here,
    or return them in the outcome for the driver to store), ``keep_final_checkpoint``.
    A run already in the store is reported ``cached`` and not recomputed.  Exceptions
    become ``error`` outcomes (with the traceback) — except KeyboardInterrupt.
    """
    store = ResultStore(store_root)
    outcomes: list[dict] = []

    def out(o: dict) -> None:
        outcomes.append(o)
        if emit is not None:
            emit(o)

    pending = []
    for cfg in cfgs:
        if opts["write"] and store.contains(cfg):
            out({"key": cfg.key(), "status": "cached"})
        else:
            pending.append(cfg)
    if len(pending) == 1:
        cfg = pending[0]
        try:
            out(_handle_result(cfg, _run_single(cfg, store, opts), store, opts))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001 — any failure of a run is recorded, the sweep goes on
            out(_outcome(cfg, error=e))
    elif pending:
        done: set[str] = set()

        def emit_batched(o: dict) -> None:
            done.add(o["key"])
            out(o)

        try:
            _run_batch(pending, store, opts, emit_batched)
        except KeyboardInterrupt:
            raise
        except Exception as e:  # noqa: BLE001
            for cfg in pending:
                if cfg.key() not in done:
                    out(_outcome(cfg, error=e))
    return outcomes


def worker_main(conn, threads: int, plugins: list[str], store_root: str, opts: dict) -> None:
    """A local worker process: receive jobs, stream back one message per finished run, then ``idle``."""
    import torch

    torch.set_num_threads(threads)
    try:
        load_plugins(plugins)
        with stop_at_round_boundaries(escalate=False):
            while True:
                job = conn.recv()
                if job is None:
                    return
                execute_job(job, store_root, opts, emit=lambda o: conn.send(("outcome", o)))
                conn.send(("idle", None))
    except (KeyboardInterrupt, EOFError, BrokenPipeError):
        return


def ray_job(cfgs: list[RunConfig], store_root: str, opts: dict, threads: int, plugins: list[str]) -> list[dict]:
    """A Ray task: one job, its results returned to the driver (which alone writes the store)."""
    import torch

    torch.set_num_threads(max(1, int(threads)))
    load_plugins(plugins)
    return execute_job(cfgs, store_root, opts)
