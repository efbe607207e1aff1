"""The whole paper in one command: ``byzlab sweep --profile paper --out sweeps/paper``.

A sweep expands a profile (:mod:`byzlab.running.experiments`: Table IV with its
no-attack baselines, Figs. 1, 3 and 12–14, over several seeds) into run
configs, computes the ones its results store lacks, writes one tidy table of
all results (``<out>/results.csv``, and ``results.parquet`` when pyarrow is
installed) and renders the figure notebooks from the stored results.

Layout of ``<out>``::

    profile.yaml    the profile as swept (CLI overrides included): reloading it
                    gives exactly these runs, for the notebooks and --resume
    sweep.json      how the sweep was started (profile source, store, backend)
    store/          the results store (:class:`~byzlab.running.store.ResultStore`), one
                    folder per run, keyed by RunConfig.key()
    results.csv     one row per run of the profile (+ results.parquet)
    table4.csv      Table IV: mean ± std over seeds, beside the paper's numbers
    notebooks/, figures/   rendered by byzlab.running.figures

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
(:func:`byzlab.core.batched.batch_key`) are grouped into batches of
:class:`~byzlab.core.batched.BatchedSimulation` sized from the measured memory of
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
This package's face hands on the names below; the parts are

* :mod:`~byzlab.running.sweep.runner`: :func:`run_sweep`, :func:`dry_run`, :class:`SweepOptions`
  (how a sweep runs, declared once for Python and the command line) and :class:`SweepSummary`;

* :mod:`~byzlab.running.sweep.plan`: the runs of a profile, what the store holds, the jobs;
* :mod:`~byzlab.running.sweep.estimate`: calibration and time estimates, GPU batch sizes;
* :mod:`~byzlab.running.sweep.worker`: what a worker process or Ray task computes;
* :mod:`~byzlab.running.sweep.backends`: how jobs are run (in this process, local
  processes, Ray), one registered :class:`~byzlab.running.sweep.backends.Backend` subclass each;
* :mod:`~byzlab.running.sweep.progress`: the driver's bookkeeping of outcomes and retries;
* :mod:`~byzlab.running.sweep.output`: ``results.csv``/``.parquet``, ``table4.csv``;
* :mod:`~byzlab.running.sweep.cli`: the ``byzlab sweep`` command.
"""
from __future__ import annotations

from ...core.interrupts import interrupt_on_signals
from ..options import parse_seeds
from ..tables import table4
from .backends import BACKENDS
from .cli import add_parser
from .estimate import Estimate, calibrate, estimate
from .output import collect, stored_runs, write_results
from .plan import Plan, make_plan
from .runner import SweepOptions, SweepSummary, dry_run, run_sweep
from .worker import execute_job

__all__ = ["Plan", "SweepOptions", "SweepSummary", "make_plan", "Estimate", "estimate", "calibrate", "run_sweep",
           "dry_run", "collect", "stored_runs", "write_results", "table4", "add_parser", "parse_seeds", "BACKENDS",
           "execute_job", "interrupt_on_signals"]
