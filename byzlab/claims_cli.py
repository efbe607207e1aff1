"""``byzlab claims``: a claims profile's runs, further seeds until the comparisons are decided, the tables.

::

    byzlab claims --profile claims_mlp --out sweeps/claims_mlp                        # the profile's seeds, then the tables
    byzlab claims --profile claims_mlp --until-decided --max-seeds 10 --out sweeps/claims_mlp
    byzlab claims --profile claims_cnn --table figures/showcase/results.csv --setting constant \\
        --until-decided --max-seeds 5 --export figures/claims_cnn --readme README.md

The runs go through the sweep machinery (:func:`byzlab.running.sweep.run_sweep`: resumable, local processes or
Ray, the same results store ``<out>/store``); rerunning the command continues where it stopped.
``--until-decided`` then repeats: judge every comparison (:mod:`byzlab.analysis.claims`), and for each one still
undecided with fewer than ``--max-seeds`` paired seeds, run its two cells on further seeds — up to 3 while
fewer than 3 (two seeds' spread is too rough to plan by), a collapse count up to 10 seeds while it has
fewer (:func:`seeds_target`), else up to the seeds a decision is estimated to
need (:func:`byzlab.core.stats.seeds_needed`) when that is within ``--max-seeds``; a comparison estimated to
need more is left undecided with its estimate.  It stops when no comparison asks for seeds.

``--table``: results tables computed elsewhere (e.g. the committed showcase runs, with their
``curves.csv``) whose runs are runs of this profile (the same keys): read, never recomputed.
Writes ``<out>/claims/`` (``results.csv``, ``curves.csv``, ``comparisons.csv``, ``claims.csv``,
``claims.md``); ``--export DIR`` copies the small tables and the Markdown there, ``--readme`` rewrites
the README's block of this profile and the summary across the exported models.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path

import pandas as pd

from .analysis import claims
from .core import stats
from .analysis.claims_report import claims_markdown, summary_markdown
from .core.config import RunConfig
from .core.errors import ConfigError
from .running.experiments import Profile, load_profile
from .core.interrupts import interrupt_on_signals
from .analysis.showcase import machine
from .running.store import ResultStore
from .running.options import add_field_options, given
from .running.sweep import run_sweep
from .running.sweep.cli import SHARED
from .running.sweep.runner import SweepOptions
from .running.tables import (aggregator_label, attack_label, cell_key, curves_table, partition_label, read_curves,
                             read_results, results_table)

#: ``--setting``: which schedule a config follows
SETTINGS = ("decay", "constant")
#: files written beside each other in ``<out>/claims`` and in ``--export``
OUTPUTS = ("results.csv", "curves.csv", "comparisons.csv", "claims.csv", "claims.md", "status.txt")
#: ``byzlab sweep``'s options that ``byzlab claims`` takes (it always resumes: no --resume)
SWEEP_OPTIONS = tuple(o for o in SHARED if o != "resume")


def setting_id(cfg: RunConfig) -> str:
    """``constant`` (η never decays within the run) or ``decay`` (the paper's ×0.1 at 75 %)."""
    return "constant" if cfg.lr_decay_at >= 1 or cfg.lr_decay == 1 else "decay"


def _cell(cfg: RunConfig) -> tuple:
    rounds = cfg.schedule().total_rounds
    return (claims.setting_label(rounds, cfg.lr_decay, cfg.lr_decay_at), partition_label(cfg), attack_label(cfg),
            aggregator_label(cfg), round(cfg.beta, 6))


#: a collapse rate seen on fewer seeds is too rough to plan by (2 of 4 has the exact interval [0.07, 0.93])
RATE_MIN_SEEDS = 10


def seeds_target(r, max_seeds: int) -> int | None:
    """The paired seeds an undecided comparison ``r`` (a row of the comparisons table) asks for, or None.

    Up to 3 while fewer than 3 (two seeds' spread is too rough to plan by); a collapse comparison
    (``kind`` "collapse") up to :data:`RATE_MIN_SEEDS` while it has fewer, whatever its estimate (a
    rate of exactly 1/2 estimates "never"); else up to the estimate when that is within ``max_seeds``.
    Never beyond ``max_seeds``, always at least one more than it has."""
    n, need = int(r["n_paired"]), float(r["seeds_needed"])
    if n >= max_seeds:
        return None
    if n < 3:
        target = 3
    elif r.get("kind") == "collapse" and n < RATE_MIN_SEEDS:
        target = RATE_MIN_SEEDS
    elif math.isfinite(need) and need <= max_seeds:
        target = int(need)
    else:
        return None
    return min(max_seeds, max(target, n + 1))


class Claims:
    """A claims profile over seeds ``0 … max_seeds − 1`` (its own seeds first), narrowed to ``settings``."""

    def __init__(self, profile: str | Profile, out: Path, *, store: str | None = None, settings=SETTINGS,
                 max_seeds: int | None = None, tables=(), seeds: list[int] | None = None):
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        if seeds is not None:
            self.profile = self.profile.with_seeds(seeds)
        if max_seeds is not None and (isinstance(max_seeds, bool) or not isinstance(max_seeds, int) or max_seeds < 2):
            raise ConfigError(f"max_seeds: must be an integer >= 2, got {max_seeds!r}")
        bad = [s for s in settings if s not in SETTINGS]
        if bad or not settings:
            raise ConfigError(f"setting: must be one of {', '.join(SETTINGS)}, got {', '.join(bad) or 'none'}")
        self.out, self.settings = Path(out), tuple(settings)
        self.store = ResultStore(store or self.out / "store")
        top = max(self.profile.seeds) + 1
        self.max_seeds = max(top, max_seeds or top)
        every = self.profile.with_seeds(list(range(self.max_seeds)))
        self.member = every.membership()
        self.configs = [c for c in every.configs() if setting_id(c) in self.settings]
        self.by_cell: dict[tuple, dict[int, RunConfig]] = {}
        for c in self.configs:  # a cell label with several configs (another λ …): Table IV's first
            seeds = self.by_cell.setdefault(_cell(c), {})
            if c.seed not in seeds or "table4" in self.member.get(c.key(), ()):
                seeds[c.seed] = c
        self.tables = [Path(t) for t in tables]
        for t in self.tables:
            if not t.exists():
                raise ConfigError(f"table: file not found: {t}")

    # ------------------------------------------------------------------ runs
    def initial(self) -> list[RunConfig]:
        """The profile's own seeds, minus the runs a ``--table`` holds."""
        have = self._table_keys()
        return [c for c in self.configs if c.seed in self.profile.seeds and c.key() not in have]

    def _table_keys(self) -> set[str]:
        return {k for t in self.tables for k in read_results(t)["key"]}

    def run(self, configs: list[RunConfig], **sweep) -> None:
        """Compute those of ``configs`` the store lacks, through the sweep (resumable, same store)."""
        todo = [c for c in configs if not self.store.contains(c)]
        if not todo:
            return
        cells: dict[tuple, list[RunConfig]] = {}
        for c in todo:
            cells.setdefault(cell_key(c), []).append(c)
        experiments = {}
        for i, group in enumerate(cells.values()):
            base = {k: v for k, v in group[0].to_dict().items() if k != "seed"}
            experiments[f"cell{i}"] = {"base": base, "seeds": sorted(c.seed for c in group)}
        sub = Profile(name=f"{self.profile.name}_runs", base={}, seeds=sorted({c.seed for c in todo}),
                      experiments=experiments, plugins=list(self.profile.plugins))
        want = {c.key() for c in todo}
        if {c.key() for c in sub.configs()} != want:  # the same runs, so the same keys in the store
            raise RuntimeError("claims: the runs to compute do not reproduce the profile's keys")
        run_sweep(sub, self.out / "runs", store=self.store.root, render=False, **sweep)

    # ------------------------------------------------------------------ tables
    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(results, curves) of every stored run of the configs, plus the runs of ``--table`` files."""
        runs = [r for r in (self.store.get(c) for c in self.configs) if r is not None]
        results = results_table(runs) if runs else pd.DataFrame()
        curves = curves_table(runs)
        keys = {c.key(): c for c in self.configs}
        stored = set(results["key"]) if len(results) else set()
        for t in self.tables:
            extra = read_results(t)
            extra = extra[extra["key"].isin(set(keys) - stored)].drop(columns=["experiments"], errors="ignore")
            for name in ("lr", "lr_decay", "lr_decay_at"):  # tables written before these were columns
                extra[name] = [getattr(keys[k], name) for k in extra["key"]]
            curves = pd.concat([curves, read_curves(t, extra)[list(curves.columns)]], ignore_index=True)
            results = pd.concat([results, extra[[c for c in extra.columns if c in results.columns or not len(results)]]],
                                ignore_index=True)
            stored |= set(extra["key"])
        if not len(results):
            raise ConfigError(f"store: no run of profile {self.profile.name!r} in {self.store.root} (nor in --table)")
        results.insert(1, "experiments", results["key"].map(lambda k: ";".join(self.member.get(k, ()))))
        return results, curves

    def wanted(self, detail: pd.DataFrame) -> list[RunConfig]:
        """The further seeds the undecided comparisons ask for (see the module docstring)."""
        out: dict[str, RunConfig] = {}
        for _, r in detail[detail["verdict"] == stats.UNDECIDED].iterrows():
            target = seeds_target(r, self.max_seeds)
            if target is None:
                continue
            for side in ("higher_cell", "lower_cell"):
                attack, aggregator, beta = r[side].split("|")
                seeds = self.by_cell.get((r["setting"], r["partition"], attack, aggregator, round(float(beta), 6)), {})
                for s in range(target):
                    if s in seeds:
                        out[seeds[s].key()] = seeds[s]
        have = self._table_keys()
        return [c for c in out.values() if c.key() not in have and not self.store.contains(c)]

    def judge(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        results, curves = self.frames()
        detail = claims.comparisons_table(results, curves=curves)
        return results, curves, detail, claims.claims_table(results, curves=curves, detail=detail)


def _compute(results: pd.DataFrame) -> str:
    """``", 2.1 h of compute (median 41 s a run, one thread)"``: the runs' own wall times, from their metadata."""
    if "wall_seconds" not in results.columns or not results["wall_seconds"].notna().any():
        return ""
    secs = results["wall_seconds"].astype(float)
    return f", {secs.sum() / 3600:.1f} h of compute (median {secs.median():.0f} s a run, one thread)"


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- claims {name}: generated by byzlab claims --readme -->", f"<!-- end of claims {name} -->"


def replace_block(readme: Path, name: str, body: str) -> None:
    """Replace the README's block ``claims <name>`` (between its two markers) by ``body``."""
    start, end = _markers(name)
    text = readme.read_text()
    if start not in text or end not in text:
        raise ConfigError(f"readme: {readme} has no block {start!r} ... {end!r}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    readme.write_text(f"{head}{start}\n\n{body}\n{end}{tail}")


def write(folder: Path, results, curves, detail, table, status: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    results.round(6).to_csv(folder / "results.csv", index=False)
    curves.round(5).to_csv(folder / "curves.csv", index=False)
    detail.round(4).to_csv(folder / "comparisons.csv", index=False)
    table.round(4).to_csv(folder / "claims.csv", index=False)
    (folder / "claims.md").write_text(claims_markdown(table, detail, status))
    (folder / "status.txt").write_text(status + "\n")


# =========================================================================== command
def add_parser(subparsers) -> argparse.ArgumentParser:
    """``byzlab claims``: registered by :mod:`byzlab.cli`."""
    p = subparsers.add_parser("claims", help="decide the paper's claims: runs, seeds until decided, tables",
                              description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="claims_mlp", help="a claims profile (claims_mlp, claims_cnn) or .yaml")
    p.add_argument("--out", default=None, help="output folder (default sweeps/<profile>)")
    p.add_argument("--table", action="append", default=[], metavar="CSV",
                   help="a results table (with curves.csv beside it) holding runs of this profile; repeatable")
    p.add_argument("--setting", action="append", choices=SETTINGS, default=None,
                   help="only this schedule: decay (the paper's, ×0.1 at 75 %%) or constant η; repeatable")
    p.add_argument("--until-decided", action="store_true", help="add seeds to the undecided comparisons")
    p.add_argument("--max-seeds", type=int, default=10,
                   help="at most this many seeds per cell (10): --until-decided runs up to it; the tables read "
                        "every stored run of seeds below it")
    p.add_argument("--no-run", action="store_true", help="compute nothing: tables from what is stored")
    p.add_argument("--export", default=None, metavar="DIR", help="copy the small tables and claims.md here")
    p.add_argument("--readme", default=None, help="a README whose claims blocks are rewritten (needs --export)")
    # the options shared with ``byzlab sweep``, declared once (SweepOptions); --store is the results store,
    # --seeds the profile's own seeds (the further seeds of --until-decided come on top)
    add_field_options(p.add_argument_group("running (as byzlab sweep)"), SweepOptions, only=SWEEP_OPTIONS)
    p.set_defaults(func=_cmd)
    return p


def _cmd(args: argparse.Namespace) -> int:
    if args.readme is not None and args.export is None:
        raise ConfigError("readme: needs --export DIR (the README links the exported tables)")
    name = Path(str(args.profile)).stem
    out = Path(args.out or Path("sweeps") / name)
    sweep = given(args, SweepOptions)
    SweepOptions(**sweep).checked()  # a bad value fails here, in one line, before any table is read
    store, seeds = sweep.pop("store", None), sweep.pop("seeds", None)
    job = Claims(args.profile, out, store=store, settings=args.setting or SETTINGS,
                 max_seeds=args.max_seeds, tables=args.table, seeds=seeds)
    sweep["print_fn"] = lambda line: print(line, file=sys.stderr)
    t0, computed = time.monotonic(), 0
    with interrupt_on_signals():
        if not args.no_run:
            todo = job.initial()
            computed += sum(not job.store.contains(c) for c in todo)
            job.run(todo, **sweep)
        results, curves, detail, table = job.judge()
        while args.until_decided and not args.no_run:
            more = job.wanted(detail)
            if not more:
                break
            print(f"byzlab claims: {len(more)} further runs for the undecided comparisons", file=sys.stderr)
            job.run(more, **sweep)
            stored = sum(job.store.contains(c) for c in more)
            computed += stored
            if not stored:  # the runs failed (see the store's .errors/): asking again would loop
                print(f"byzlab claims: none of the {len(more)} runs could be stored; see {job.store.root}/.errors",
                      file=sys.stderr)
                break
            results, curves, detail, table = job.judge()
    wall = time.monotonic() - t0
    undecided = int((detail["verdict"] == stats.UNDECIDED).sum())
    status = (f"{len(results)} runs of profile {job.profile.name}{_compute(results)}; {computed} computed by this "
              f"command in {wall / 60:.0f} min; {time.strftime('%Y-%m-%d')}, {machine()}")
    write(out / "claims", results, curves, detail, table, status)
    if args.export is not None:
        write(Path(args.export), results, curves, detail, table, status)
    if args.readme is not None:
        export = Path(args.export)
        replace_block(Path(args.readme), job.profile.name, (export / "claims.md").read_text())
        tables = [pd.read_csv(f, keep_default_na=False, na_values=[""]) for f in
                  sorted(export.parent.glob("claims_*/claims.csv"))]
        replace_block(Path(args.readme), "summary", summary_markdown(tables))
    counts = detail["verdict"].value_counts()
    print(f"byzlab claims {job.profile.name}: " + ", ".join(f"{v} {counts.get(v, 0)}" for v in claims.VERDICTS)
          + f" comparisons ({undecided} undecided); tables in {out / 'claims'}")
    return 0
