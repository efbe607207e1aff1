"""``byzlab sweep``: the command line of :func:`byzlab.running.sweep.run_sweep` and :func:`byzlab.running.sweep.dry_run`.

:func:`add_parser` is called by :mod:`byzlab.cli` (through ``byzlab.running.sweep.add_parser``).
The run options of ``byzlab run`` override every run of the profile; the sweep's own
options are generated from :class:`~byzlab.running.sweep.runner.SweepOptions`, as are
``byzlab bench``'s (:func:`add_sweep_options`).
"""
from __future__ import annotations

import argparse
import sys

from ...core.errors import ConfigError
from ...core.interrupts import interrupt_on_signals
from ..options import add_field_options, add_run_options, config_overrides, given
from .backends import BACKENDS
from .runner import SweepOptions, dry_run, run_sweep

#: the options ``byzlab bench`` shares with ``byzlab sweep`` (the bench has its own ``--out`` default)
SHARED = ("store", "resume", "backend", "address", "workers", "threads", "runs_per_job", "gpus_per_run",
          "checkpoint_every", "bad_checkpoint", "retries", "seeds", "progress")


def add_sweep_options(p: argparse.ArgumentParser, only=None, title: str = "sweep",
                      out: str = "sweeps/<profile>") -> argparse._ArgumentGroup:
    """The options of a sweep (:class:`SweepOptions`' fields with help; ``only`` some of them)."""
    g = p.add_argument_group(title)
    g.add_argument("--out", default=None, help=f"output folder (default {out})")
    g.add_argument("--dry-run", action="store_true", help="print the runs, what is done and the estimated time")
    add_field_options(g, SweepOptions, only=only)
    return g


def sweep_options(args: argparse.Namespace, **kw) -> SweepOptions:
    """The :class:`SweepOptions` the command line set (``kw`` added)."""
    return SweepOptions(**{**given(args, SweepOptions), **kw})


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``byzlab sweep``: registered by :mod:`byzlab.cli`."""
    p = subparsers.add_parser(
        "sweep", help="run a whole profile (the paper) resumably, then render the notebooks",
        description="Expand a profile's grid (Table IV with baselines, Figs. 1, 3, 12-14, over seeds), compute "
                    "the runs its results store lacks, write <out>/results.csv and render the notebooks. "
                    "Safe to interrupt: rerun (or --resume) to continue. Run options below override every run.",
        conflict_handler="resolve")
    add_run_options(p)  # --engine is the runs' gradient engine (auto, loop, vmap, fused), as in ``byzlab run``
    g = add_sweep_options(p)
    g.add_argument("--profile", default=None, help="quick (default), paper, or a .yaml file")
    g.add_argument("--grad-engine", dest="engine", default=None, help=argparse.SUPPRESS)  # the old spelling
    p.set_defaults(func=_cmd_sweep)
    return p


def _cmd_sweep(args: argparse.Namespace) -> int:
    overrides = config_overrides(args)
    overrides.pop("threads", None)  # --threads is the sweep's own (SweepOptions.threads), set on every run
    if overrides.get("engine") in BACKENDS:  # the option's meaning before the backend had its own name
        raise ConfigError(f"engine: {overrides['engine']!r} is a backend: pass --backend {overrides['engine']} "
                          "(--engine is the runs' gradient engine: auto, loop, vmap, fused)")
    options = sweep_options(args, overrides=overrides, plugins=tuple(args.plugin or ()))
    profile = args.profile or "quick"  # with --resume it only names the default --out
    if args.dry_run:
        dry_run(profile, args.out, options)
        return 0
    with interrupt_on_signals():
        summary = run_sweep(profile, args.out, options, print_fn=lambda line: print(line, file=sys.stderr))
    print(summary)
    for key, err in summary.failed.items():
        print(f"  failed {key}: {err}", file=sys.stderr)
    return 0 if summary.ok else 1
