"""What a sweep writes besides the store: the results tables, and small JSON files written atomically.

:func:`write_results` writes ``<out>/results.csv`` (one row per stored run of the
plan, from :func:`collect`) and ``<out>/curves.csv`` (one row per run and evaluation, what
the figures draw; both also as parquet when pyarrow is installed) and,
when the profile has Table IV, ``<out>/table4.csv``.  Every file is written to a
temporary name and renamed, so that a sweep killed meanwhile never leaves half a
file.  :func:`read_json` and :func:`write_json` serve ``<out>/sweep.json`` and the
calibration cache (:mod:`byzlab.running.sweep.estimate`).
"""
from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from ...core.files import write_atomic
from ...core.results import RunResult
from ..tables import curves_table, in_experiment, results_table, table4
from .plan import Plan


def read_json(path: Path) -> dict:
    """The JSON object in ``path``; ``{}`` when the file is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` to ``path`` as JSON, through a temporary file renamed into place."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str)
    write_atomic(path, lambda tmp: tmp.write_text(text))


def stored_runs(plan: Plan) -> list[RunResult]:
    """The runs of the plan its store holds (finished runs only)."""
    return [r for r in (plan.store.get(c) for c in plan.configs) if r is not None]


def collect(plan: Plan, runs: list[RunResult] | None = None) -> pd.DataFrame:
    """One tidy row per stored run of the plan (or per run of ``runs``), with the experiments it
    belongs to (``a;b``)."""
    df = results_table(stored_runs(plan) if runs is None else runs)
    if len(df):
        df.insert(1, "experiments", df["key"].map(lambda k: ";".join(plan.experiments.get(k, ()))))
    return df


def _write_table(df: pd.DataFrame, path: Path) -> list[Path]:
    """CSV (and parquet when pyarrow is installed), each written to a temporary file and renamed."""
    written = [write_atomic(path, lambda tmp: df.to_csv(tmp, index=False))]
    try:
        importlib.import_module("pyarrow")  # installed?
    except ImportError:
        return written
    written.append(write_atomic(path.with_suffix(".parquet"), lambda tmp: df.to_parquet(tmp, index=False)))
    return written


def write_results(plan: Plan, out: Path) -> pd.DataFrame:
    """``<out>/results.csv`` and ``<out>/curves.csv`` (+ parquet) and, when the profile has Table IV,
    ``<out>/table4.csv``."""
    runs = stored_runs(plan)
    df = collect(plan, runs)
    _write_table(df, out / "results.csv")
    _write_table(curves_table(runs), out / "curves.csv")
    if len(df) and "experiments" in df and in_experiment(df, "table4").any():
        t4 = table4(df, paper=True)
        write_atomic(out / "table4.csv", lambda tmp: t4.to_csv(tmp, index=False))
    return df
