"""Command line: ``byzlab run``, ``byzlab list`` (and ``sweep`` / ``figures`` from their modules).

Bad input prints one line ``byzlab: error: <parameter>: <what is allowed>`` and exits
with status 2, without a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Any, Sequence

from .core import checkpoint
from .core.errors import ConfigError, one_line
from .running.options import add_run_options, config_overrides

#: modules that add their own sub-commands through ``add_parser(subparsers)``
SUBCOMMAND_MODULES = ("byzlab.running.sweep", "byzlab.running.figures", "byzlab.bench", "byzlab.claims_cli")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"byzlab: error: {message}\n")


def _cmd_run(args: argparse.Namespace) -> int:
    import os

    from .core.config import RunConfig
    from .core.interrupts import RoundInterrupt
    from .running.driver import run

    cfg = RunConfig.make(**config_overrides(args))
    if args.out and os.path.exists(args.out) and os.listdir(args.out) and not args.overwrite:
        raise ConfigError(f"--out: {args.out} exists and is not empty; pass --overwrite or another folder")
    ckpt = None
    if args.out:  # saved on Ctrl-C (and every --checkpoint-every rounds); rerunning resumes
        out = os.path.abspath(args.out)
        ckpt = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.ckpt")
    try:
        result = run(cfg, progress=not args.quiet, checkpoint=ckpt, checkpoint_every=args.checkpoint_every,
                     bad_checkpoint=args.bad_checkpoint)
    except RoundInterrupt:  # stopped at the end of a round: the saved state resumes bit for bit
        if ckpt:
            print(f"byzlab: interrupted; state saved to {ckpt}; rerun the same command to resume", file=sys.stderr)
        raise
    if args.out:
        result.save(args.out)
    line = result.summary()
    if args.baseline and cfg.attack != "none":
        line = _with_baseline(line, result, cfg, args)
    print(line + (f" -> {args.out}" if args.out else ""))
    return 0


def _with_baseline(line: str, result: Any, cfg: Any, args: argparse.Namespace) -> str:
    """``… test accuracy 84.10% (no attack 91.20%: −7.1 points) after …``: the no-attack run of the
    same setting and seed (k_m = 0), read from the results store or computed there once."""
    import re

    from .core.config import NO_ATTACK
    from .running.store import ResultStore

    store = ResultStore(args.store)
    base_cfg = cfg.replace(attack=NO_ATTACK, attack_params={})
    base = store.get(base_cfg)
    if base is None:
        print(f"byzlab: computing the no-attack baseline of this setting once (stored in {store.root}) ...",
              file=sys.stderr)
        base = store.run(base_cfg, progress=not args.quiet)
    if not len(result.history) or not len(base.history):
        return line
    ours = float(result.history["test_accuracy"].iloc[-1])
    theirs = float(base.history["test_accuracy"].iloc[-1])
    gap = ours - theirs
    note = f" (no attack {theirs:.2f}%: {'−' if gap < 0 else '+'}{abs(gap):.1f} points)"
    return re.sub(r"(test accuracy [0-9.]+%)", lambda m: m.group(1) + note, line, count=1)


def _cmd_list(args: argparse.Namespace) -> int:
    from .core.config import available

    kinds = available()
    if args.json:
        print(json.dumps(kinds, indent=2))
        return 0
    for kind, entries in kinds.items():
        print(f"{kind}:")
        width = max(len(n) for n in entries)
        for name, desc in entries.items():
            print(f"  {name:<{width}}  {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="byzlab", description="Byzantine attacks and robust aggregation in federated learning.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("run", help="run Algorithm 1 once", description="Run Algorithm 1 once and print a one-line summary.")
    add_run_options(p)
    p.add_argument("--out", default=None, help="folder for config.json, history.csv, rounds.csv, meta.json")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                   help="with --out: also save the state every N rounds (it is always saved on Ctrl-C); "
                        "rerunning the same command resumes")
    p.add_argument("--bad-checkpoint", choices=checkpoint.ON_BAD, default="error",
                   help="a saved state that cannot be used: fail naming the file (error, default) "
                        "or move it aside and start afresh (move)")
    p.add_argument("--baseline", action="store_true",
                   help="also print the no-attack accuracy of the same setting and seed beside the result "
                        "(computed once, then read from the results store)")
    p.add_argument("--store", default=None, metavar="DIR",
                   help="results store of --baseline (default: $BYZLAB_CACHE or ~/.cache/byzlab/results)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("list", help="every dataset, model, aggregator and attack with its parameters")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_list)

    for modname in SUBCOMMAND_MODULES:
        try:
            mod = importlib.import_module(modname)
        except ImportError as e:
            if e.name != modname:
                raise
            continue
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as e:  # bad input: one line, no traceback (a bug keeps its traceback, exit 1)
        if os.environ.get("BYZLAB_DEBUG"):
            raise
        print(f"byzlab: error: {one_line(e, typed=False)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("byzlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
