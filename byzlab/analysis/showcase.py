"""The ``showcase`` profile's committed outputs: its tidy tables, the README's figures and claims.

The showcase (``byzlab/profiles/showcase.yaml``: mnist5k, the paper's cnn, 300 rounds,
2 seeds) is the profile whose runs carry the paper's effects on a laptop CPU.  Its
results live in ``figures/showcase/`` so that they render anywhere without retraining:

``results.csv``
    one row per run (:func:`byzlab.running.sweep.collect`: :func:`byzlab.running.tables.results_table` plus the
    experiments it belongs to);
``curves.csv``
    one row per run and evaluation (round, epoch, test accuracy, train loss);
``claims.md``, ``*.png`` / ``*.html``
    the claims table (:mod:`byzlab.analysis.claims`) and the figures, drawn from the two tables.

Commands::

    python -m byzlab.analysis.showcase --store sweeps/showcase/store   # export the tables from a sweep's store, then draw
    python -m byzlab.analysis.showcase                                  # draw again from the committed tables only

Runs the store lacks are simply absent (a sweep stopped early); ``status.txt`` says how
many of the profile's runs the tables hold.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from . import claims, claims_report, paper, plots
from ..core.errors import ConfigError, one_line
from ..running.experiments import load_profile
from ..core.files import write_atomic
from ..running.store import ResultStore
from ..running.options import parse_seeds
from ..running.tables import SHOWCASE_TABLE, curves_table, in_experiment, read_curves, read_results

FOLDER = SHOWCASE_TABLE.parent


def export(store: str | Path, out: Path = FOLDER, seeds: list[int] | None = None) -> pd.DataFrame:
    """Write ``results.csv`` and ``curves.csv`` of the showcase runs held by ``store``; return the results.

    ``seeds``: the seeds of the grid (None: the profile's, 0 and 1), as the sweep's ``--seeds``."""
    from ..running.sweep import collect, make_plan, stored_runs

    prof = load_profile("showcase")
    plan = make_plan(prof if seeds is None else prof.with_seeds(seeds), ResultStore(store))
    runs = stored_runs(plan)
    if not runs:
        raise ConfigError(f"store: no run of the showcase profile in {store}")
    df = collect(plan, runs)
    curves = curves_table(runs)
    write_atomic(out / "results.csv", lambda tmp: df.round(6).to_csv(tmp, index=False))
    write_atomic(out / "curves.csv", lambda tmp: curves.round(5).to_csv(tmp, index=False))
    status = (f"{len(runs)} of the {plan.total} runs of the showcase profile"
              f"{'' if seeds is None else ' over seeds ' + ', '.join(map(str, seeds))} "
              f"(exported {time.strftime('%Y-%m-%d')}; {machine()}, torch {_torch_version()})\n")
    write_atomic(out / "status.txt", lambda tmp: tmp.write_text(status))
    return df


def _torch_version() -> str:
    import torch

    return torch.__version__


def machine() -> str:
    """``2-core AMD EPYC 7B13`` (the CPU model where the OS says it), else the architecture."""
    try:
        models = [line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")]
    except OSError:
        models = []
    return f"{os.cpu_count()}-core {models[0] if models else platform.machine()}"


def load(folder: Path = FOLDER) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The committed ``results.csv`` and ``curves.csv``, the curves labelled like :func:`byzlab.analysis.paper.curves`."""
    for name in ("results.csv", "curves.csv"):
        if not (folder / name).exists():
            raise ConfigError(f"folder: {folder / name} not found; export it with "
                              "`python -m byzlab.analysis.showcase --store <showcase store>`")
    results = read_results(folder / "results.csv")
    return results, read_curves(folder / "results.csv", results)


def _in(frame: pd.DataFrame, experiment: str) -> pd.DataFrame:
    return frame[in_experiment(frame, experiment)]


def draw(folder: Path = FOLDER) -> list[Path]:
    """Draw the README's figures and write ``claims.md`` from the tables in ``folder``."""
    results, curves = load(folder)
    written: list[Path] = []
    t4 = _in(curves, "table4")
    for partition in sorted(t4["partition"].unique()):
        part = t4[t4["partition"] == partition]
        what = f"mnist5k, {'IID' if partition == 'iid' else 'Dirichlet(α = 1)'}, cnn, 300 rounds, 2 seeds"
        written += plots.save(plots.accuracy_grid(part, title=f"Figs. 4–9 layout: test accuracy ({what})"),
                              f"figs4-9_accuracy_mnist5k_{partition}", folder)
        written += plots.save(plots.accuracy_grid(part, "train_loss",
                                                  title=f"Figs. 10–11 layout: benign train loss ({what})"),
                              f"figs10-11_train_loss_mnist5k_{partition}", folder)
        compare = paper.table4_compare(_in(results, "table4"), paper_partition=partition)
        written += plots.save(plots.table4_heatmap(compare, title=f"Table IV: byzlab mnist5k ({partition}) beside "
                                                   "the paper's FMNIST (different data: no difference)"),
                              f"table4_mnist5k_{partition}", folder)
    fig3 = _in(curves, "fig3")
    if fig3["attack"].nunique() > 1:
        written += plots.save(plots.accuracy_grid(fig3, title="Fig. 3 layout: ROP-S vs ROP against CC (mnist5k, IID)"),
                              "fig3_rop_sparse_mnist5k", folder)
    table = results.assign(beta=results["beta"].astype(float).round(6))
    try:
        written += plots.save(plots.table3_bars(paper.table3(table[table["attack"] == "rop"])),
                              "table3_rop_cosine_mnist5k", folder)
        written += plots.save(plots.table2_bars(paper.table2(table[table["attack"].str.startswith("alie")])),
                              "table2_alie_cosine_mnist5k", folder)
    except ConfigError as e:  # no run of that attack yet
        print(f"Tables II/III not drawn: {one_line(e, typed=False)}", file=sys.stderr)
    md = folder / "claims.md"
    text = claims_markdown(results, curves)
    write_atomic(md, lambda tmp: tmp.write_text(text))
    return [*written, md]


def claims_markdown(results: pd.DataFrame, curves: pd.DataFrame | None = None) -> str:
    """The claims of the showcase's runs alone (2 seeds) as Markdown (:mod:`byzlab.analysis.claims_report`); the
    README's claims tables come from ``byzlab claims``, which adds seeds to these runs."""
    detail = claims.comparisons_table(results, curves=curves)
    return claims_report.claims_markdown(claims.claims_table(results, curves=curves, detail=detail), detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m byzlab.analysis.showcase", description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None, help="a showcase sweep's results store: export its runs first")
    ap.add_argument("--seeds", default=None, type=parse_seeds,
                    help="export these seeds of the grid, e.g. 0,1,2 after `byzlab sweep --seeds 0,1,2` (default: 0,1)")
    ap.add_argument("--out", default=str(FOLDER), help=f"folder of the tables and figures (default {FOLDER})")
    args = ap.parse_args(argv)
    try:
        if args.store is not None:
            export(args.store, Path(args.out), args.seeds)
        for path in draw(Path(args.out)):
            print(path)
    except ConfigError as e:
        print(f"byzlab showcase: error: {one_line(e, typed=False)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
