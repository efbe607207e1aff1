"""The whole paper in one command: ``byzlab sweep --profile paper --out sweeps/paper``.

A sweep expands a profile (:mod:`byzlab.experiments`: Table IV with its
no-attack baselines, Figs. 1, 3 and 12–14, over several seeds) into run
configs, computes the ones its results store lacks, writes one tidy table of
all results (``<out>/results.csv``, and ``results.parquet`` when pyarrow is
installed) and renders the figure notebooks from the stored results.

Layout of ``<out>``::

    profile.yaml    the profile as swept (CLI overrides included): reloading it
                    gives exactly these runs, for the notebooks and --resume
    sweep.json      how the sweep was started (profile source, store, backend)
    store/          the results store (:class:`~byzlab.store.ResultStore`), one
                    folder per run, keyed by RunConfig.key()
    results.csv     one row per run of the profile (+ results.parquet)
    table4.csv      Table IV: mean ± std over seeds, beside the paper's numbers
    notebooks/, figures/   rendered by byzlab.figures

Why it survives faults
----------------------
* A run is stored only when it is complete, by writing a temporary folder and
  renaming it (:meth:`RunResult.save`): killing the sweep at any instant leaves
  either the whole run or nothing, never half of one, and the key (a hash of
  the full config) makes a second copy impossible.
* A run in progress saves its state every ``checkpoint_every`` rounds and every
  ``checkpoint_seconds`` (atomically, at a round boundary); the next sweep
  continues from there, bit for bit.  Ctrl-C is deferred to the end of the
  current round so that the state saved on interrupt is consistent.
* Rerunning the same command (or ``--resume``) recomputes only what is missing.
  One sweep at a time per output folder (a lock file, released by the OS even
  on SIGKILL).
* A run that diverges (NaN/inf) is a result, not an error: the simulator stops
  it and records the chance-level accuracy the paper reports.  A run that
  raises, or whose worker process dies, is recorded in the store's
  ``.errors/`` and retried (``retries``, once by default); the sweep goes on.

Parallelism
-----------
``backend="local"`` runs ``workers`` processes, each computing one run (or one
batch) at a time with ``threads`` torch threads.  On CUDA, compatible runs
(:func:`byzlab.batched.batch_key`) are grouped into batches of
:class:`~byzlab.batched.BatchedSimulation` sized from the measured memory of
one run, so that one GPU is filled.  ``backend="ray"`` submits the same jobs as
Ray tasks with CPU/GPU requests (fractional GPUs pack small runs); Ray retries
a task whose worker dies, and only the driver writes results into the store,
so each run is stored exactly once.

Time estimates
--------------
``byzlab sweep --dry-run`` prints the runs, what is already done and the
estimated time.  The per-round cost is *measured*: from runs of the same
group (data set, model, clients computing gradients, …) already in the store,
or else by a short timed calibration on this machine (a few rounds plus one
evaluation, with the sweep's thread count), cached in ``<store>/.calibration.json``.
A data set that is not on disk is timed on random stand-in data of the same
shape — the cost of a round does not depend on the pixel values.

Modules
-------
This package holds :func:`run_sweep`, :func:`dry_run` and :class:`SweepSummary`;
the parts they put together are

* :mod:`~byzlab.sweep.plan`: the runs of a profile, what the store holds, the jobs;
* :mod:`~byzlab.sweep.estimate`: calibration and time estimates, GPU batch sizes;
* :mod:`~byzlab.sweep.worker`: what a worker process or Ray task computes;
* :mod:`~byzlab.sweep.backends`: how jobs are run (in this process, local
  processes, Ray), behind one small interface;
* :mod:`~byzlab.sweep.progress`: the driver's bookkeeping of outcomes and retries;
* :mod:`~byzlab.sweep.output`: ``results.csv``/``.parquet``, ``table4.csv``;
* :mod:`~byzlab.sweep.cli`: the ``byzlab sweep`` command.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import pandas as pd

from ..config import resolve_device
from ..errors import ConfigError
from ..experiments import Profile, load_profile
from .. import checkpoint
from ..registry import load_plugin
from ..interrupts import interrupt_on_signals
from ..store import ResultStore
from ..tables import table4
from .backends import BACKENDS, make_backend
from .cli import add_parser, parse_seeds
from .estimate import Estimate, auto_batch, calibrate, estimate, format_duration
from .output import collect, read_json, stored_runs, write_json, write_results
from .plan import Plan, make_jobs, make_plan
from .progress import Tracker
from .worker import execute_job

__all__ = [
    "Plan",
    "SweepSummary",
    "make_plan",
    "Estimate",
    "estimate",
    "calibrate",
    "run_sweep",
    "dry_run",
    "collect",
    "stored_runs",
    "write_results",
    "table4",
    "add_parser",
    "parse_seeds",
    "BACKENDS",
    "execute_job",
    "interrupt_on_signals",
]


@dataclass
class SweepSummary:
    """What a sweep did: counts, the failures, and the results table (``table``)."""

    profile: str
    out: Path
    total: int
    done_before: int
    computed: int
    diverged: int
    failed: dict[str, str]
    table: pd.DataFrame
    seconds: float
    rendered: bool | None = None

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def done(self) -> int:
        return len(self.table)

    def __str__(self) -> str:
        s = (f"sweep {self.profile}: {self.done}/{self.total} runs stored ({self.done_before} before, "
             f"{self.computed} computed now, {self.diverged} diverged), {len(self.failed)} failed, "
             f"{format_duration(self.seconds)}; results: {self.out / 'results.csv'}")
        return s

    __repr__ = __str__

    def _repr_html_(self) -> str:
        counts = pd.DataFrame([{"runs": self.total, "stored": self.done, "computed now": self.computed,
                                "diverged": self.diverged, "failed": len(self.failed),
                                "time": format_duration(self.seconds)}])
        return f"<b>sweep {self.profile}</b> → {self.out}" + counts.to_html(index=False)


# =========================================================================== the sweep
def _check_int(name: str, value: Any, lo: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{name}: must be an integer >= {lo}, got {value!r}")


@contextlib.contextmanager
def _out_lock(out: Path) -> Iterator[None]:
    """One sweep at a time in ``out`` (the lock dies with its process, SIGKILL included)."""
    try:
        import fcntl
    except ImportError:  # no advisory locks on this platform
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".sweep.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ConfigError(f"out: another sweep is running in {out}; wait for it or choose another --out") \
                from None
        yield


def _resolve_profile(profile: str | os.PathLike | Profile, out: Path, resume: bool,
                     overrides: dict, seeds: list[int] | None) -> tuple[Profile, str]:
    """The profile to sweep and a description of where it came from."""
    swept = out / "profile.yaml"
    if resume:  # ``profile`` only located ``out``; the grid is the one written when the sweep started
        if not swept.exists():
            raise ConfigError(f"resume: no sweep to resume in {out} (no profile.yaml); "
                              "start one with --profile NAME --out DIR")
        if overrides or seeds:
            raise ConfigError("resume: continues the sweep as it was started; drop the run options "
                              "(or rerun without --resume to change the grid)")
        return load_profile(swept), read_json(out / "sweep.json").get("profile_source", str(swept))
    prof = profile if isinstance(profile, Profile) else load_profile(profile)
    source = str(profile.path if isinstance(profile, Profile) else profile)
    if seeds is not None:
        prof = prof.with_seeds(list(seeds))
    if overrides:
        prof = prof.with_overrides(**overrides)
    return prof, source


def dry_run(profile: str | os.PathLike | Profile = "quick", out: str | os.PathLike | None = None, *,
            store: str | os.PathLike | None = None, resume: bool = False, experiments: Iterable[str] | None = None,
            workers: int | None = None, threads: int = 1, backend: str = "local", calibrate_missing: bool = True,
            overrides: dict | None = None, seeds: list[int] | None = None,
            print_fn: Callable[[str], None] = print) -> tuple[Plan, Estimate]:
    """Print the runs of the sweep, what is already done and the estimated time; run nothing."""
    out, prof, _, plan, workers = _prepare(profile, out, store, resume, experiments, workers, threads, backend,
                                           overrides or {}, seeds)
    counts = ", ".join(f"{k} {v}" for k, v in plan.counts().items())
    print_fn(f"profile {prof.name}: {plan.total} runs ({counts}; a run shared by experiments counts once), "
             f"seeds {prof.seeds}")
    print_fn(f"store {plan.store.root}: {len(plan.done)} done, {len(plan.todo)} to run"
             + (f" ({len(plan.failed)} failed before, retried)" if plan.failed else ""))
    est = estimate(plan, threads=threads, calibrate_missing=calibrate_missing, log=print_fn)
    g = est.groups.copy()
    if len(g):
        g["s/round"] = g["seconds_per_round"].map(lambda v: "?" if v is None or pd.isna(v) else f"{v:.3g}")
        g["time/run"] = [format_duration(None if pd.isna(v) else v * 3600) for v in g["hours_per_run"]]
        cols = ["dataset", "model", "clients", "device", "runs", "to_run", "rounds_per_run", "s/round",
                "time/run", "source"]
        print_fn(f"measured speed ({threads} thread{'s' * (threads != 1)} per run; s/round includes evaluations):")
        print_fn(g[cols].to_string(index=False))
    left, unknown = est.total(c.key() for c in plan.todo)
    parallel = max(1, workers)  # workers=0 runs them one by one in this process
    line = (f"estimate for the {len(plan.todo)} runs to do: {format_duration(left)} of compute, about "
            f"{format_duration(left / parallel)} with {parallel} parallel run{'s' * (parallel != 1)}")
    if backend == "ray":
        line += " (on Ray: divide the compute by the runs the cluster holds at once)"
    if unknown:
        line += f"; {unknown} runs without an estimate"
    print_fn(line)
    return plan, est


def _prepare(profile, out, store, resume, experiments, workers, threads, backend, overrides, seeds):
    """Check the arguments shared by :func:`run_sweep` and :func:`dry_run`; build the plan."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend: unknown {backend!r}; choose one of: {', '.join(BACKENDS)}")
    _check_int("threads", threads, 1)
    if workers is not None:
        _check_int("workers", workers, 0)
    if out is None:
        name = profile.name if isinstance(profile, Profile) else Path(str(profile)).stem
        out = Path("sweeps") / name
    out = Path(out)
    prof, source = _resolve_profile(profile, out, resume, overrides, seeds)
    if store is not None:
        root = Path(store)
    else:  # rerunning a sweep started with --store keeps using that store
        root = Path(read_json(out / "sweep.json").get("store") or out / "store")
    plan = make_plan(prof, ResultStore(root), experiments)
    if workers is None:
        on_cuda = bool(plan.configs) and resolve_device(plan.configs[0].device).type == "cuda"
        workers = 2 if on_cuda else max(1, (os.cpu_count() or 1) // threads)
    return out, prof, source, plan, workers


def run_sweep(profile: str | os.PathLike | Profile = "quick", out: str | os.PathLike | None = None, *,
              store: str | os.PathLike | None = None, resume: bool = False, backend: str = "local",
              address: str | None = None, workers: int | None = None, threads: int = 1, runs_per_job: int | None = None,
              gpus_per_run: float = 0.0, checkpoint_every: int | None = None, checkpoint_seconds: float = 600.0,
              bad_checkpoint: str = "error",
              retries: int = 1, experiments: Iterable[str] | None = None, overrides: dict | None = None,
              seeds: list[int] | None = None, plugins: Iterable[str] = (), render: bool = True,
              progress: bool = True, ray_max_retries: int = 3,
              print_fn: Callable[[str], None] = print) -> SweepSummary:
    """Compute every missing run of a profile, write the results table, render the notebooks.

    Parameters
    ----------
    profile
        ``quick``, ``paper``, a YAML path or a :class:`~byzlab.experiments.Profile`.
    out
        Output folder (default ``sweeps/<profile name>``); see the module docstring.
    store
        Results store folder (default ``<out>/store``); share one between sweeps to reuse runs.
    resume
        Continue the sweep in ``out`` exactly as it was started (its ``profile.yaml``);
        simply calling again with the same arguments also resumes.
    backend, address
        ``local`` (processes on this machine) or ``ray`` (tasks on the Ray cluster at
        ``address``; a local Ray instance without one).
    workers, threads
        Runs at once (default: CPU cores / threads; 2 on CUDA; 0 = in this process) and
        torch threads per run (also the CPUs a Ray task requests).
    runs_per_job
        Runs per job, batched with :class:`~byzlab.batched.BatchedSimulation` (default:
        as many as fit on CUDA, 1 on CPU).
    gpus_per_run
        GPUs a Ray task requests (fractions pack several runs on one GPU).
    checkpoint_every, checkpoint_seconds
        Save a run in progress every N rounds (default: a tenth of the run) or
        every so many seconds, whichever comes first.
    bad_checkpoint
        ``error`` (a run whose checkpoint cannot be used fails with a message naming
        the file) or ``move`` (the file is moved aside and the run starts afresh).
    retries
        Times a run that raised (or whose worker died) is tried again.
    experiments, overrides, seeds, plugins
        Only these experiments; config fields applied to every run; seeds replacing
        the profile's; modules registering extra rules (also loaded in the workers).
    render
        Render the notebooks with ``byzlab.figures.render`` once the runs are done.

    Returns a :class:`SweepSummary`; its ``table`` is the tidy results table.
    """
    t_start = time.monotonic()
    overrides = dict(overrides or {})
    _check_int("retries", retries, 0)
    _check_int("ray_max_retries", ray_max_retries, 0)
    if runs_per_job is not None:
        _check_int("runs_per_job", runs_per_job, 1)
    if checkpoint_every is not None:
        _check_int("checkpoint_every", checkpoint_every, 1)
    if not isinstance(checkpoint_seconds, (int, float)) or not checkpoint_seconds > 0:
        raise ConfigError(f"checkpoint_seconds: must be > 0, got {checkpoint_seconds!r}")
    if bad_checkpoint not in checkpoint.ON_BAD:
        raise ConfigError(f"bad_checkpoint: must be one of {', '.join(checkpoint.ON_BAD)}, got {bad_checkpoint!r}")
    if not isinstance(gpus_per_run, (int, float)) or isinstance(gpus_per_run, bool) or gpus_per_run < 0:
        raise ConfigError(f"gpus_per_run: must be a number >= 0, got {gpus_per_run!r}")
    if address is not None and backend != "ray":
        raise ConfigError("address: only with backend 'ray' (--backend ray --address HOST:PORT)")
    # files as absolute paths: the profile written into ``out`` must find them from there
    plugins = [str(Path(p).resolve()) if p.endswith(".py") or os.sep in p else p for p in plugins]
    for p in plugins:
        load_plugin(p)
    out, prof, source, plan, workers = _prepare(profile, out, store, resume, experiments, workers, threads,
                                                backend, overrides, seeds)
    if plugins:
        prof = dataclasses.replace(prof, plugins=list(dict.fromkeys([*prof.plugins, *plugins])))
    plugins = prof.plugins
    with _out_lock(out):
        if not resume:
            prof.save(out / "profile.yaml")
        write_json(out / "sweep.json", {
            "profile_source": source, "store": str(plan.store.root.resolve()), "backend": backend, "address": address,
            "updated": time.strftime("%Y-%m-%d %H:%M:%S")})
        plan.store.clean_temporaries()
        if runs_per_job is None:
            runs_per_job = auto_batch(plan, plan.todo, threads, workers) if backend == "local" else 1
        jobs = make_jobs(plan.todo, runs_per_job)
        est = estimate(plan, threads=threads, calibrate_missing=False)
        parallel = workers if backend == "local" else max(1, workers)
        tracker = Tracker(plan, retries, est, max(1, parallel), progress)
        opts = {"checkpoint_every": checkpoint_every, "checkpoint_seconds": float(checkpoint_seconds),
                "bad_checkpoint": bad_checkpoint}
        try:
            if jobs:
                runner = make_backend(backend, store_root=str(plan.store.root), opts=opts, workers=workers,
                                       threads=threads, plugins=plugins, address=address,
                                       gpus_per_run=gpus_per_run, max_retries=ray_max_retries)
                runner.run(jobs, tracker.handle)
        except KeyboardInterrupt:
            tracker.close()
            stored = len(plan.done) + tracker.computed + tracker.cached
            print_fn(f"byzlab sweep: interrupted; {stored}/{plan.total} runs stored, runs in progress saved at "
                     f"their last round; continue with: byzlab sweep --resume --out {out}")
            raise
        tracker.close()
        df = write_results(plan, out)
    summary = SweepSummary(prof.name, out, plan.total, len(plan.done), tracker.computed, tracker.diverged,
                           dict(tracker.failed), df, time.monotonic() - t_start)
    if render:
        summary.rendered = _render(out, plan.store.root, print_fn)
    return summary


def _render(out: Path, store_root: Path, print_fn: Callable[[str], None]) -> bool:
    """Render the figure notebooks from the stored results (byzlab.figures, imported only now)."""
    import importlib

    name = f"{__package__.rpartition('.')[0]}.figures"  # byzlab.figures, beside this package
    try:
        figures = importlib.import_module(name)
    except ImportError as e:
        if e.name != name:  # figures itself failed to import something: show it
            raise
        print_fn("byzlab sweep: byzlab.figures is not available; skipping the notebooks")
        return False
    figures.render(profile=str(out / "profile.yaml"), store=str(store_root), out=str(out / "notebooks"),
                   figures_dir=str(out / "figures"))
    return True


# =========================================================================== command line
