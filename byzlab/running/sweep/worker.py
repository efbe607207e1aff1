"""What a worker computes: one job (a run, or compatible runs batched), in a local process or a Ray task.

:func:`execute_job` runs a job and reports one *outcome* per run, a dict with

* ``key``: the run's :meth:`RunConfig.key`;
* ``status``: ``done``, ``diverged`` (a result too), ``cached`` (already in the
  store, not recomputed) or ``error``;
* for ``done``/``diverged``: ``accuracy``, ``wall_seconds``, ``rounds_computed``,
  and ``result`` (the :class:`RunResult`) when the worker does not write the
  store itself (``opts["write"]`` false: the driver stores it);
* for ``error``: ``error`` (one line) and ``traceback``.

A job is driven by :class:`byzlab.running.driver.Driver`: each run continues from its checkpoint
in the store and saves one every ``checkpoint_every`` rounds / ``checkpoint_seconds``, and
on a stop at a round boundary (:class:`~byzlab.core.interrupts.RoundInterrupt`), which is re-raised.
:func:`worker_main` is the loop of a local worker process and :func:`ray_job`
the function of a Ray task (see :mod:`byzlab.running.sweep.backends`).
"""
from __future__ import annotations

import platform
import time
import traceback
from typing import Any, Callable, Iterable

from ...core.batched import BatchedSimulation
from ...core.config import RunConfig, resolve_device
from ...core.data import cached_dataset
from ..driver import Driver, default_checkpoint_every
from ...core.errors import one_line
from ...core.kernels import compiled_networks
from ...core.interrupts import stop_at_round_boundaries
from ...core.registry import load_plugin
from ...core.simulator import Simulation
from ..store import ResultStore


_LOADED_PLUGINS: set[str] = set()


def load_plugins(plugins: Iterable[str]) -> None:
    """Load each plugin module once per process (the registries it fills are per process)."""
    for p in plugins:
        if p not in _LOADED_PLUGINS:
            load_plugin(p)
            _LOADED_PLUGINS.add(p)


def _finish(result, t0: float, start: int, sim, batch: int = 1) -> Any:
    result.meta.update(wall_seconds=(time.perf_counter() - t0) / batch, rounds_computed=sim.t - start,
                       resumed_from_round=start, host=platform.node(), batch=batch)
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


def _driver(runner, cfgs: list[RunConfig], store: ResultStore, opts: dict):
    """The :class:`~byzlab.running.driver.Driver` of a job: each run's checkpoint in the store, the sweep's cadence."""
    sims = getattr(runner, "sims", [runner])
    every = opts["checkpoint_every"] or default_checkpoint_every(max(s.total_rounds for s in sims))
    return Driver(runner, [store.checkpoint_path(c) for c in cfgs], every=every,
                  seconds=opts["checkpoint_seconds"], on_bad=opts.get("bad_checkpoint", "error"))


def _run_single(cfg: RunConfig, store: ResultStore, opts: dict) -> Any:
    """Run one config to the end, continuing from and saving to its checkpoint."""
    t0 = time.perf_counter()
    sim = Simulation(cfg, dataset=cached_dataset(cfg.dataset, cfg.data_root, cfg.download, resolve_device(cfg.device)))
    driver = _driver(sim, [cfg], store, opts)
    driver.run()
    # with keep_final_checkpoint the driver stores the result, then removes the file
    return _finish(driver.result(keep_checkpoint=opts["keep_final_checkpoint"]), t0, driver.starts[0], sim)


def _run_batch(cfgs: list[RunConfig], store: ResultStore, opts: dict, emit: Callable[[dict], None]) -> None:
    """Run compatible configs together in one :class:`BatchedSimulation`; emit each as it finishes."""
    t0 = time.perf_counter()
    c0 = cfgs[0]
    bsim = BatchedSimulation(cfgs, dataset=cached_dataset(c0.dataset, c0.data_root, c0.download,
                                                         resolve_device(c0.device)))
    driver = _driver(bsim, cfgs, store, opts)

    def finished(i: int) -> None:
        result = driver.result(i, keep_checkpoint=opts["keep_final_checkpoint"])
        emit(_handle_result(cfgs[i], _finish(result, t0, driver.starts[i], bsim.sims[i], len(cfgs)), store, opts))

    driver.run(on_finished=finished)


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
    become ``error`` outcomes (with the traceback) — except KeyboardInterrupt.  The rules'
    comparator networks are compiled within a job (:func:`byzlab.core.kernels.compiling`).
    """
    with compiled_networks():  # a worker runs many runs: its first compilation pays off (kernels.compiling)
        return _execute_job(cfgs, store_root, opts, emit)


def _execute_job(cfgs: list[RunConfig], store_root: str, opts: dict,
                 emit: Callable[[dict], None] | None) -> list[dict]:
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
