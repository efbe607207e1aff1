"""``byzlab sweep``: the command line of :func:`byzlab.sweep.run_sweep` and :func:`byzlab.sweep.dry_run`.

:func:`add_parser` is called by :mod:`byzlab.cli` (through ``byzlab.sweep.add_parser``);
the run options of ``byzlab run`` override every run of the profile.
"""
from __future__ import annotations

import argparse
import sys

from .. import checkpoint
from ..errors import ConfigError
from ..interrupts import interrupt_on_signals
from .backends import BACKENDS


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2``: comma-separated integers >= 0 (an argparse ``type``; also used by ``byzlab bench``)."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 0, got {text!r}")
    return seeds


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``byzlab sweep``: registered by :mod:`byzlab.cli`."""
    from ..cli import add_run_options

    p = subparsers.add_parser(
        "sweep", help="run a whole profile (the paper) resumably, then render the notebooks",
        description="Expand a profile's grid (Table IV with baselines, Figs. 1, 3, 12-14, over seeds), compute "
                    "the runs its results store lacks, write <out>/results.csv and render the notebooks. "
                    "Safe to interrupt: rerun (or --resume) to continue. Run options below override every run.",
        conflict_handler="resolve")
    add_run_options(p)  # --engine is the runs' gradient engine (auto, loop, vmap), as in ``byzlab run``
    g = p.add_argument_group("sweep")
    g.add_argument("--profile", default=None, help="quick (default), paper, or a .yaml file")
    g.add_argument("--out", default=None, help="output folder (default sweeps/<profile>)")
    g.add_argument("--store", default=None, help="results store folder (default <out>/store)")
    g.add_argument("--resume", action="store_true", help="continue the sweep in --out as it was started")
    g.add_argument("--dry-run", action="store_true", help="print the runs, what is done and the estimated time")
    g.add_argument("--backend", choices=BACKENDS, default="local",
                   help="where runs execute: local processes (default) or Ray tasks")
    g.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray instance)")
    g.add_argument("--workers", type=int, default=None,
                   help="runs at once (default: CPU cores / threads; 2 on CUDA; 0 = in this process)")
    g.add_argument("--threads", type=int, default=1, help="torch threads per run (1)")
    g.add_argument("--runs-per-job", "--batch", dest="runs_per_job", type=int, default=None,
                   help="runs computed together in one batched job (default: as many as fit on CUDA, 1 on CPU)")
    g.add_argument("--gpus-per-run", type=float, default=0.0, help="GPUs each Ray task requests, e.g. 0.25")
    g.add_argument("--bad-checkpoint", choices=checkpoint.ON_BAD, default="error",
                   help="a run whose checkpoint cannot be used: fail naming the file (error, default) "
                        "or move the file aside and start that run afresh (move)")
    g.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="save runs in progress every N rounds (default: a tenth of the run; also every 10 min)")
    g.add_argument("--retries", type=int, default=1, help="retries of a run that crashed (1)")
    g.add_argument("--experiment", action="append", default=None, metavar="NAME",
                   help="only this experiment of the profile (table4, fig1, ...); repeatable")
    g.add_argument("--seeds", type=parse_seeds, default=None, metavar="LIST",
                   help="seeds replacing the profile's, e.g. 0,1,2")
    g.add_argument("--grad-engine", dest="engine", default=None, help=argparse.SUPPRESS)  # the old spelling
    g.add_argument("--no-calibrate", action="store_true", help="--dry-run: do not time rounds on this machine")
    g.add_argument("--no-render", action="store_true", help="do not render the notebooks")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_sweep)
    return p


def _cmd_sweep(args: argparse.Namespace) -> int:
    from ..cli import config_overrides
    from . import dry_run, run_sweep  # the package imports this module: not at the top

    overrides = config_overrides(args)
    if overrides.get("engine") in BACKENDS:  # the option's meaning before the backend had its own name
        raise ConfigError(f"engine: {overrides['engine']!r} is a backend: pass --backend {overrides['engine']} "
                          "(--engine is the runs' gradient engine: auto, loop, vmap)")
    plugins = list(args.plugin or ())
    profile = args.profile or "quick"  # with --resume it only names the default --out
    if args.dry_run:
        if args.address is not None and args.backend != "ray":
            raise ConfigError("address: only with backend 'ray' (--backend ray --address HOST:PORT)")
        dry_run(profile, args.out, store=args.store, resume=args.resume, experiments=args.experiment,
                workers=args.workers, threads=args.threads, backend=args.backend,
                calibrate_missing=not args.no_calibrate, overrides=overrides, seeds=args.seeds)
        return 0
    with interrupt_on_signals():
        summary = run_sweep(profile, args.out, store=args.store, resume=args.resume, backend=args.backend,
                            address=args.address, workers=args.workers, threads=args.threads, runs_per_job=args.runs_per_job,
                            gpus_per_run=args.gpus_per_run, checkpoint_every=args.checkpoint_every,
                            bad_checkpoint=args.bad_checkpoint, retries=args.retries,
                            experiments=args.experiment, overrides=overrides,
                            seeds=args.seeds, plugins=plugins, render=not args.no_render,
                            progress=not args.quiet, print_fn=lambda line: print(line, file=sys.stderr))
    print(summary)
    for key, err in summary.failed.items():
        print(f"  failed {key}: {err}", file=sys.stderr)
    return 0 if summary.ok else 1
