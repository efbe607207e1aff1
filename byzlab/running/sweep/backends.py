"""Where a sweep's jobs run: in this process, in local worker processes, or as Ray tasks.

Every way of running jobs is a :class:`Backend`.  The driver (:func:`byzlab.running.sweep.run_sweep`)
makes one with :func:`make_backend` and calls :meth:`Backend.run`, the loop shared
by all backends::

    start(len(jobs))
    while jobs are queued or busy():
        while jobs are queued and has_room():  submit(next job)
        for outcome in wait():                 handle(outcome) → maybe a retry, queued at the end
    close(error)                               (also on an exception, which is then re-raised)

A backend implements these six methods:

``start(n_jobs)``
    Acquire what it needs (processes, a cluster connection) for ``n_jobs`` jobs.
    An exception here ends the sweep before anything runs (``close`` is not called).
``has_room() -> bool``
    Whether it takes another job now (a free worker; always, for a scheduler).
``busy() -> bool``
    Whether a submitted job has outcomes still to report.
``submit(job)``
    Start a job (a list of :class:`RunConfig`) with :func:`byzlab.running.sweep.worker.execute_job`
    on the backend's ``store_root`` and ``opts``.
``wait() -> Iterable[dict]``
    Block until at least one job reports; return (or yield) its outcomes
    (:mod:`byzlab.running.sweep.worker`).  A job lost without outcomes (its worker died, its task
    failed) is reported as one ``error`` outcome per run not yet reported, so that the
    tracker records it and retries it.
``close(error)``
    Release everything; ``error`` is the exception that ended the loop (None when every
    job reported).  On ``KeyboardInterrupt``, stop the runs still in progress (a local
    worker finishes its round and saves the run first).

and sets ``workers_write``: True when its workers write results into the store
themselves; False when outcomes carry the result back and the driver alone writes
it (the store may then be on the driver's disk only).  It decides ``opts["write"]``
and ``opts["keep_final_checkpoint"]`` (kept until the driver has stored the result).

A backend registers itself by name: ``class SlurmBackend(Backend, name="slurm")`` is all it
takes to make ``--backend slurm`` (and ``run_sweep(backend="slurm")``) exist.  What the driver
needs to know of a backend besides the six methods are class attributes and one class method:
``takes_address`` (it connects to a cluster at ``--address``), ``estimate_note`` (appended to
``--dry-run``'s estimate), :meth:`Backend.default_runs_per_job` and :meth:`Backend.create`.
"""
from __future__ import annotations

import contextlib
import os
import signal
import time
from collections import deque
from typing import Callable, Iterable, Iterator

from ...core.config import RunConfig
from ...core.errors import ConfigError, one_line
from ...core.interrupts import sigint_ignored, stop_at_round_boundaries
from .estimate import auto_batch
from .plan import Plan
from .worker import execute_job, load_plugins, ray_job, worker_main

#: the backends by name, in the order they were defined (each :class:`Backend` subclass given a ``name``)
BACKENDS: dict[str, type["Backend"]] = {}


class Backend:
    """Runs jobs and reports their outcomes; see the module docstring for the interface."""

    name = ""
    workers_write = True
    takes_address = False
    estimate_note = ""

    def __init_subclass__(cls, name: str | None = None, **kw):
        super().__init_subclass__(**kw)
        if name:
            cls.name = name
            BACKENDS[name] = cls

    def __init__(self, store_root: str, opts: dict, *, threads: int, plugins: list[str], workers: int = 1,
                 address: str | None = None, gpus_per_run: float = 0.0, max_retries: int = 3):
        self.store_root = store_root
        self.opts = {**opts, "write": self.workers_write, "keep_final_checkpoint": not self.workers_write}
        self.threads = threads
        self.plugins = plugins
        self.n_workers, self.address = workers, address
        self.gpus_per_run, self.max_retries = gpus_per_run, max_retries

    @classmethod
    def create(cls, **kw) -> "Backend":
        """The backend that runs a sweep (:func:`make_backend`'s keywords)."""
        return cls(**kw)

    @classmethod
    def default_runs_per_job(cls, plan: Plan, todo: list[RunConfig], threads: int, workers: int) -> int:
        """Runs per job when the sweep does not say (one, unless the backend batches runs itself)."""
        return 1

    def start(self, n_jobs: int) -> None:
        raise NotImplementedError

    def has_room(self) -> bool:
        raise NotImplementedError

    def busy(self) -> bool:
        raise NotImplementedError

    def submit(self, job: list[RunConfig]) -> None:
        raise NotImplementedError

    def wait(self) -> Iterable[dict]:
        raise NotImplementedError

    def close(self, error: BaseException | None) -> None:
        raise NotImplementedError

    def run(self, jobs: list[list[RunConfig]], handle: Callable[[dict], RunConfig | None]) -> None:
        """Run ``jobs`` to the end; ``handle`` books each outcome and returns a run to retry, or None."""
        queue = deque(jobs)
        self.start(len(jobs))
        error = None
        try:
            while queue or self.busy():
                while queue and self.has_room():
                    self.submit(queue.popleft())
                for outcome in self.wait():
                    again = handle(outcome)
                    if again is not None:
                        queue.append([again])
        except BaseException as e:
            error = e
            raise
        finally:
            self.close(error)


def make_backend(name: str, *, store_root: str, opts: dict, workers: int, threads: int, plugins: list[str],
                 address: str | None = None, gpus_per_run: float = 0.0, max_retries: int = 3) -> Backend:
    """The backend called ``name`` (:data:`BACKENDS`); ``local`` with ``workers=0`` runs jobs in this process."""
    if name not in BACKENDS:
        raise ConfigError(f"backend: unknown {name!r}; choose one of: {', '.join(BACKENDS)}")
    return BACKENDS[name].create(store_root=store_root, opts=opts, workers=workers, threads=threads, plugins=plugins,
                                 address=address, gpus_per_run=gpus_per_run, max_retries=max_retries)


class InlineBackend(Backend):
    """``workers=0``: every run in this process, one after the other (no isolation; for debugging)."""

    def start(self, n_jobs: int) -> None:
        import torch

        load_plugins(self.plugins)
        self._job: list[RunConfig] | None = None
        self._stack = contextlib.ExitStack()
        self._stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(self.threads)  # as in a worker: the same numbers, and no oversubscribed cores
        self._stack.enter_context(stop_at_round_boundaries(escalate=True))

    def has_room(self) -> bool:
        return self._job is None

    def busy(self) -> bool:
        return self._job is not None

    def submit(self, job: list[RunConfig]) -> None:
        self._job = job

    def wait(self) -> list[dict]:
        job, self._job = self._job, None
        return execute_job(job, self.store_root, self.opts)

    def close(self, error: BaseException | None) -> None:
        self._stack.close()


class LocalBackend(Backend, name="local"):
    """Up to ``workers`` long-lived worker processes, each given one job at a time.

    A hand-made pool rather than ``concurrent.futures``: the driver knows which job
    each process holds, so a process that dies (segfault, out-of-memory kill) is
    charged to exactly its own runs, and a fresh process replaces it.  With ``workers=0``
    the jobs run in this process instead (:class:`InlineBackend`).
    """

    @classmethod
    def create(cls, **kw) -> Backend:
        return InlineBackend(**kw) if kw.get("workers") == 0 else cls(**kw)

    @classmethod
    def default_runs_per_job(cls, plan: Plan, todo: list[RunConfig], threads: int, workers: int) -> int:
        """As many runs as fit on the GPU (:func:`~byzlab.running.sweep.estimate.auto_batch`; 1 on CPU)."""
        return auto_batch(plan, todo, threads, workers)

    def start(self, n_jobs: int) -> None:
        import multiprocessing as mp

        # Never fork this process (it may hold torch threads): workers come from a fork server
        # that has imported byzlab once (each worker then starts in milliseconds), else are spawned.
        if "forkserver" in mp.get_all_start_methods():
            from multiprocessing import forkserver

            self.ctx = mp.get_context("forkserver")
            self.ctx.set_forkserver_preload([worker_main.__module__])
            with sigint_ignored():  # inherited: a Ctrl-C never hits the fork server mid-import
                forkserver.ensure_running()
        else:
            self.ctx = mp.get_context("spawn")
        self.args = (self.threads, self.plugins, self.store_root, self.opts)
        self.workers = [self._start_worker() for _ in range(min(self.n_workers, n_jobs) or 1)]

    def _start_worker(self) -> dict:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=worker_main, args=(child, *self.args), daemon=True)
        if self.ctx.get_start_method() == "forkserver":
            proc.start()  # waits for the fork server; a Ctrl-C meanwhile must still stop this process
        else:
            with sigint_ignored():  # inherited until the worker installs its own handler
                proc.start()
        child.close()
        return {"proc": proc, "conn": parent, "job": None, "pending": set()}

    def has_room(self) -> bool:
        return any(w["job"] is None for w in self.workers)

    def busy(self) -> bool:
        return any(w["job"] is not None for w in self.workers)

    def submit(self, job: list[RunConfig]) -> None:
        worker = next(w for w in self.workers if w["job"] is None)
        worker["job"], worker["pending"] = job, {c.key() for c in job}
        worker["conn"].send(job)

    def wait(self) -> Iterator[dict]:
        """Block until a busy worker reports; yield its outcomes, and an error for each run of a dead worker."""
        from multiprocessing.connection import wait

        busy = [w for w in self.workers if w["job"] is not None]
        wait([w["conn"] for w in busy] + [w["proc"].sentinel for w in busy])
        for w in busy:
            try:
                while w["conn"].poll():
                    kind, payload = w["conn"].recv()
                    if kind == "outcome":
                        w["pending"].discard(payload["key"])
                        yield payload
                    else:
                        w["job"], w["pending"] = None, set()
            except (EOFError, OSError):
                pass
            if w["job"] is not None and not w["proc"].is_alive():
                lost = [c for c in w["job"] if c.key() in w["pending"]]
                code = w["proc"].exitcode
                self.workers[self.workers.index(w)] = self._start_worker()
                for cfg in lost:
                    yield {"key": cfg.key(), "status": "error", "error": _died_message(code)}

    def close(self, error: BaseException | None, timeout: float = 60.0) -> None:
        """Ask every worker to stop (busy ones save their run first), then make sure they are gone."""
        for w in self.workers:
            try:
                if w["job"] is None:
                    w["conn"].send(None)
                elif w["proc"].is_alive():
                    os.kill(w["proc"].pid, signal.SIGTERM)  # → saves at the end of the round, exits
            except (OSError, BrokenPipeError):
                pass
        deadline = time.monotonic() + timeout
        for w in self.workers:
            w["proc"].join(max(0.0, deadline - time.monotonic()))
            if w["proc"].is_alive():
                w["proc"].kill()
                w["proc"].join()


def _died_message(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"WorkerDied: worker process killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"WorkerDied: worker process exited with code {code}"


class RayBackend(Backend, name="ray"):
    """Ray tasks with CPU/GPU requests on the cluster at ``address`` (a local Ray instance without one).

    Ray retries a task whose worker dies (``max_retries``); results come back to the
    driver, which alone writes the store, so each run is stored exactly once.
    """

    workers_write = False
    takes_address = True
    estimate_note = " (on Ray: divide the compute by the runs the cluster holds at once)"

    @classmethod
    def create(cls, **kw) -> Backend:
        return cls(**{**kw, "workers": kw.get("workers") or 1})

    def start(self, n_jobs: int) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("backend: 'ray' needs the ray package (pip install 'byzlab[ray]')") from None
        self.ray, self.started = ray, False
        if not ray.is_initialized():
            import logging

            if self.address or os.environ.get("RAY_ADDRESS"):
                ray.init(address=self.address or None, logging_level=logging.ERROR)
            else:  # a local instance sized like the local backend
                ray.init(num_cpus=max(1, self.n_workers) * self.threads, include_dashboard=False,
                         logging_level=logging.ERROR)
                self.started = True
        self.task = ray.remote(ray_job)
        self.refs: dict = {}

    def has_room(self) -> bool:
        return True  # Ray's scheduler queues what the cluster cannot hold yet

    def busy(self) -> bool:
        return bool(self.refs)

    def submit(self, job: list[RunConfig]) -> None:
        ref = self.task.options(num_cpus=self.threads, num_gpus=self.gpus_per_run, max_retries=self.max_retries,
                                retry_exceptions=False).remote(job, self.store_root, self.opts, self.threads,
                                                               self.plugins)
        self.refs[ref] = job

    def wait(self) -> Iterator[dict]:
        ready, _ = self.ray.wait(list(self.refs), num_returns=1)
        for ref in ready:
            job = self.refs.pop(ref)
            try:
                outcomes = self.ray.get(ref)
            except Exception as e:  # noqa: BLE001 — the task failed beyond Ray's own retries
                outcomes = [{"key": c.key(), "status": "error", "error": one_line(e)} for c in job]
            yield from outcomes

    def close(self, error: BaseException | None) -> None:
        try:
            if isinstance(error, KeyboardInterrupt):
                for ref in self.refs:
                    self.ray.cancel(ref, force=False)
        finally:
            if self.started:
                self.ray.shutdown()
