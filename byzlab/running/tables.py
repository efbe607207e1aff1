"""Tables from results: one tidy row per run, and Table IV (mean ± std over seeds) beside the paper's.

:func:`results_table` turns :class:`~byzlab.core.results.RunResult` objects (from a
:class:`~byzlab.running.store.ResultStore`, a sweep, a bench) into one row per run, labelled as
the paper's Table IV (``table4_paper.csv``) so the two merge on
``dataset, partition, attack, aggregator, beta``; :func:`table4` groups the seeds of a
cell; :func:`paper_table4` is the paper's table as data.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..core.config import RunConfig
from ..core.data import DATASET_SPECS
from ..core.errors import ConfigError
from ..core.provenance import COLUMNS as PROVENANCE_COLUMNS
from ..core.results import RunResult
from ..core.stats import DDOF

#: the columns that identify a cell of Table IV (``table4_paper.csv``, :func:`table4`)
TABLE4_KEYS = ("dataset", "partition", "attack", "aggregator", "beta")


def aggregator_label(cfg: RunConfig) -> str:
    """``cc_tau0.1``, ``cc_tau1``, ``rfa``, ``tm`` … as in Table IV's columns (``table4_paper.csv``)."""
    name = "+".join([*cfg.pre_aggregators, cfg.aggregator])
    if cfg.aggregator == "cc":
        return f"{name}_tau{cfg.aggregator_params['tau']:g}"
    return name


#: byzlab's attack label -> the paper's Table IV row it reproduces.  ``alie_z1.2`` is ALIE with the
#: authors' library's default z = 1.2 of the time (README "Fidelity"; that the paper's table was run
#: with it is an inference), so it sits beside the paper's ALIE row too.
PAPER_ATTACK = {"alie_z1.2": "alie"}


def attack_label(cfg: RunConfig) -> str:
    """``rop``, ``alie`` … as in Table IV's rows; an ALIE whose ``z`` is set explicitly is another row,
    ``alie_z1.2`` (the authors' library's historical default, see README "Fidelity"), so the paper's
    z_max row and the as-run z = 1.2 row are never averaged together."""
    if cfg.attack in ("alie", "alie_alt") and cfg.attack_params.get("z") is not None:
        return f"{cfg.attack}_z{float(cfg.attack_params['z']):g}"
    return cfg.attack


def cell_key(config: RunConfig) -> str:
    """Id of the run's config *without its seed*: the runs averaged into one table cell share it."""
    identity = config.identity()
    identity.pop("seed", None)
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def partition_label(cfg: RunConfig) -> str:
    """``iid`` or ``dirichlet<α>`` (``dirichlet1`` for the paper's α = 1), as in ``table4_paper.csv``."""
    return cfg.partition if cfg.partition == "iid" else f"dirichlet{cfg.alpha:g}"


def knobs(cfg: RunConfig) -> dict:
    """The paper's knobs of a run as plain columns: CC's ``tau``, ROP's ``z`` and ``lam`` (NaN where
    the run has none; ALIE's z is in its ``attack`` label, :func:`attack_label`)."""
    rop = cfg.attack.startswith("rop")
    return {"tau": cfg.aggregator_params.get("tau", np.nan),
            "z": cfg.attack_params.get("z", np.nan) if rop else np.nan,
            "lam": cfg.attack_params.get("lam", np.nan) if rop else np.nan}


def results_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run: its identifying config columns, the paper's knobs (:func:`knobs`) and final metrics.

    ``dataset, partition, attack, aggregator, beta`` are labelled as in the paper's
    Table IV (``table4_paper.csv``), so the two merge on those columns; ``cell``
    groups the seeds of one config (see :func:`cell_key`).  The run's provenance (engine,
    precision, threads, torch version, CPU; :mod:`byzlab.core.provenance`) is in its columns too.
    """
    rows = []
    for r in results:
        c = r.config
        h = r.history
        rows.append({
            "key": c.key(), "cell": cell_key(c), "dataset": c.dataset, "partition": partition_label(c),
            "attack": attack_label(c), "aggregator": aggregator_label(c), "beta": c.beta, "seed": c.seed,
            "k": c.k, "k_m": c.n_byzantine, "epochs": c.epochs, "model": c.model,
            "lr": c.lr, "lr_decay": c.lr_decay, "lr_decay_at": c.lr_decay_at,
            **{f"attack.{k}": v for k, v in c.attack_params.items()},
            **{f"aggregator.{k}": v for k, v in c.aggregator_params.items()},
            "final_accuracy": r.final_accuracy, "best_accuracy": float(h["test_accuracy"].max()) if len(h) else float("nan"),
            "final_train_loss": float(h["train_loss"].iloc[-1]) if len(h) else float("nan"),
            "diverged": r.diverged, "rounds": int(h["round"].iloc[-1]) if len(h) else 0,
            "seconds_per_round": r.meta.get("seconds_per_round"),
            "wall_seconds": r.meta.get("wall_seconds"),
            **{col: r.meta.get(col) for col in PROVENANCE_COLUMNS},  # engine, precision, threads, torch, cpu
            **{f"mean_{col}": float(r.rounds[col].mean()) for col in ("cos_delta", "cos_ref_benign", "cos_ref_byz", "clip_fraction") if col in r.rounds},
            **knobs(c),
        })
    return pd.DataFrame(rows)


#: the columns of a curves table (:func:`curves_table`, ``curves.csv``)
CURVE_COLUMNS = ("key", "round", "epoch", "test_accuracy", "train_loss")


def curves_table(results: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run and evaluation: the run's ``key`` and its round, epoch, test accuracy and benign
    train loss — what the figures of a results table need (``curves.csv`` beside ``results.csv``)."""
    frames = [r.history.assign(key=r.config.key()) for r in results]
    if not frames:
        return pd.DataFrame(columns=list(CURVE_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(CURVE_COLUMNS)]


#: how a trajectory is read (:func:`trajectories`): the warm-up (a fraction of the run's rounds), what
#: "near chance" means (accuracy ≤ chance + ``near`` points), how many consecutive evaluations at or
#: near chance make a collapse, and the drop below the best so far that makes a run oscillate
TRAJECTORY_RULE = {"warmup": 0.2, "near": 5.0, "consecutive": 2, "drop": 20.0}


def trajectories(curves: pd.DataFrame, *, chance: float | None = None, warmup: float = TRAJECTORY_RULE["warmup"],
                 near: float = TRAJECTORY_RULE["near"], consecutive: int = TRAJECTORY_RULE["consecutive"],
                 drop: float = TRAJECTORY_RULE["drop"]) -> pd.DataFrame:
    """Per run (``key``) of a curves table (:func:`curves_table`), what its test-accuracy curve did.

    The warm-up is the first ``warmup`` of the run's rounds (0.2: 100 of 500 rounds, 60 of 300);
    ``chance`` is 100 / classes (from the ``dataset`` column and ``DATASET_SPECS``; 10 % without one).

    ``final_accuracy``, ``best_accuracy``
        the last evaluation and the best one;
    ``lowest_after_warmup``
        the lowest evaluation after the warm-up;
    ``collapsed``
        at or near chance (≤ chance + ``near`` points) at ≥ ``consecutive`` consecutive evaluations
        after the warm-up (a run that recovers later has still collapsed);
    ``max_drop``
        the largest fall after the warm-up below the best accuracy reached before it (points);
    ``oscillates``
        ``max_drop`` ≥ ``drop`` points without collapsing; ``unstable``: it collapsed or oscillates.
    """
    if not 0 <= warmup < 1:
        raise ConfigError(f"warmup: must be a fraction of the rounds in [0, 1), got {warmup!r}")
    if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
        raise ConfigError(f"consecutive: must be an integer >= 1, got {consecutive!r}")
    missing = [c for c in ("key", "round", "test_accuracy") if c not in curves.columns]
    if missing:
        raise ConfigError(f"curves: not a curves table, it lacks columns {missing}")
    rows = []
    for key, g in curves.sort_values(["key", "round"]).groupby("key", sort=False):
        acc = g["test_accuracy"].to_numpy(dtype=float)
        rounds = g["round"].to_numpy()
        level = chance
        if level is None:
            spec = DATASET_SPECS.get(g["dataset"].iloc[0]) if "dataset" in g.columns else None
            level = 100.0 / spec.num_classes if spec is not None else 10.0
        after = rounds > warmup * rounds[-1]
        low = acc <= level + near
        run = longest = 0
        for is_low in low[after]:
            run = run + 1 if is_low else 0
            longest = max(longest, run)
        best_so_far = np.maximum.accumulate(acc)
        max_drop = float((best_so_far - acc)[after].max()) if after.any() else 0.0
        collapsed = longest >= consecutive
        rows.append({"key": key, "final_accuracy": acc[-1], "best_accuracy": acc.max(),
                     "lowest_after_warmup": float(acc[after].min()) if after.any() else float("nan"),
                     "collapsed": bool(collapsed), "max_drop": max_drop,
                     "oscillates": bool(not collapsed and max_drop >= drop),
                     "unstable": bool(collapsed or max_drop >= drop)})
    return pd.DataFrame(rows, columns=["key", "final_accuracy", "best_accuracy", "lowest_after_warmup", "collapsed",
                                       "max_drop", "oscillates", "unstable"])


def in_experiment(df: pd.DataFrame, experiment: str) -> pd.Series:
    """Which rows of a results table belong to ``experiment`` (its ``experiments`` column: ``a;b``)."""
    return df["experiments"].fillna("").str.split(";").map(lambda names: experiment in names).astype(bool)


def paper_table4() -> pd.DataFrame:
    """The paper's Table IV: mean and std of the test accuracy (%) over its seeds, one row per cell."""
    from importlib import resources

    with resources.files("byzlab").joinpath("data_files/table4_paper.csv").open() as f:
        return pd.read_csv(f)


def table4(df: pd.DataFrame, *, ddof: int = DDOF, paper: bool = False) -> pd.DataFrame:
    """Table IV from a results table: final accuracy mean ± std over seeds per cell.

    ``df`` is :func:`results_table` output (or a sweep's ``results.csv``).  When it has
    an ``experiments`` column (sweeps write one), only the runs of the ``table4``
    experiment are used, so Fig. 12's other λ values never leak into a cell.  A cell
    must hold the seeds of a single config: rows that differ in anything else
    (e.g. z, epochs) raise ValueError rather than being averaged together.
    ``ddof=1``: the sample std over seeds, byzlab's one convention (:data:`byzlab.core.stats.DDOF`: the
    figure, the claims and the leaderboard print the same spread); ``ddof=0`` gives the population std.  ``paper=True`` adds the paper's
    ``paper_mean`` and ``paper_std`` (merge on dataset, partition, attack, aggregator, beta).
    """
    if df is None or not len(df):
        raise ConfigError("df: empty results table; run the sweep first")
    missing = [c for c in (*TABLE4_KEYS, "final_accuracy", "seed") if c not in df.columns]
    if missing:
        raise ConfigError(f"df: not a results table, it lacks columns {missing}")
    if not isinstance(ddof, int) or isinstance(ddof, bool) or ddof < 0:
        raise ConfigError(f"ddof: must be an integer >= 0, got {ddof!r}")
    rows = df
    if "experiments" in rows.columns:
        rows = rows[in_experiment(rows, "table4")]
        if not len(rows):
            raise ConfigError("df: no run of the 'table4' experiment in this results table")
    rows = rows.assign(beta=rows["beta"].astype(float).round(6))
    keys = list(TABLE4_KEYS)
    if "cell" in rows.columns:
        mixed = rows.groupby(keys)["cell"].nunique()
        mixed = mixed[mixed > 1]
        if len(mixed):
            cell = dict(zip(keys, mixed.index[0]))
            raise ConfigError(f"df: the Table IV cell {cell} holds runs of {mixed.iloc[0]} different configs "
                             "(not only different seeds); filter the table first")
    grouped = rows.groupby(keys, sort=True)
    out = grouped["final_accuracy"].agg(
        accuracy_mean="mean",
        accuracy_std=lambda x: float(x.std(ddof=ddof)) if len(x) > ddof else float("nan"),
        n_seeds="count",
    ).reset_index()
    if "diverged" in rows.columns:
        out = out.merge(grouped["diverged"].sum().astype(int).rename("n_diverged").reset_index(), on=keys)
    if paper:  # alie_z1.2 (ALIE as run) sits beside the paper's ALIE row too
        ref = paper_table4().rename(columns={"accuracy_mean": "paper_mean", "accuracy_std": "paper_std",
                                             "attack": "_paper_attack"})
        ref["beta"] = ref["beta"].astype(float).round(6)
        out["_paper_attack"] = out["attack"].map(lambda a: PAPER_ATTACK.get(a, a))
        on = [k if k != "attack" else "_paper_attack" for k in keys]
        out = out.merge(ref, on=on, how="left").drop(columns="_paper_attack")
    return out


# ------------------------------------------------------------------ results tables on disk
#: the committed results table of the ``showcase`` profile (one row per run), beside its
#: ``curves.csv`` (one row per run and evaluation) and the README's figures
SHOWCASE_TABLE = Path(__file__).resolve().parents[2] / "figures" / "showcase" / "results.csv"


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """A results table file (``results.csv`` of a sweep or of the showcase, or ``.parquet``)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"table: file not found: {path}")
    df = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in ("key", *TABLE4_KEYS, "seed", "final_accuracy") if c not in df.columns]
    if missing:
        raise ConfigError(f"table: {path} is not a results table, it lacks columns {missing}")
    df["beta"] = df["beta"].astype(float).round(6)
    if "tau" not in df.columns:  # a table written before the knobs were columns of results_table
        rop = df["attack"].astype(str).str.startswith("rop")
        for name, column, only_rop in (("tau", "aggregator.tau", False), ("z", "attack.z", True),
                                       ("lam", "attack.lam", True)):
            values = df[column] if column in df.columns else pd.Series(np.nan, index=df.index)
            df[name] = values.where(rop) if only_rop else values
    df.attrs["source"] = f"results table {path.name} ({len(df)} runs)"
    return df


def read_curves(path: str | os.PathLike, results: pd.DataFrame) -> pd.DataFrame:
    """The ``curves.csv`` beside the results table ``path`` (one row per run and evaluation: key,
    round, epoch, test_accuracy, train_loss), labelled with each run's columns of ``results``."""
    curves = Path(path).with_name("curves.csv")
    if not curves.exists():
        raise ConfigError(f"table: no curves.csv beside {path}: the figures need the runs' histories "
                          "(export them with `python -m byzlab.analysis.showcase --store <store>`), or read the runs "
                          "from the results store (table=None)")
    labels = [c for c in ("experiments", *TABLE4_KEYS, "seed", "tau", "z", "lam", "epochs") if c in results.columns]
    return pd.read_csv(curves).merge(results[["key", *labels]], on="key")


def _matches(column: str, labels: pd.Series, value) -> pd.Series:
    """Whether each label of a results-table column matches a filter value given as a config value
    (``attack="alie"`` keeps ``alie`` and ``alie_z1.2``, ``aggregator="cc"`` both τ, ``partition=
    "dirichlet"`` every α), as :func:`byzlab.analysis.paper.results` filters configs."""
    values = value if isinstance(value, (list, tuple, set)) else [value]
    keep = pd.Series(False, index=labels.index)
    for v in values:
        if column in ("attack", "aggregator", "partition", "dataset", "model"):
            s = labels.astype(str)
            suffix = {"attack": r"_z[-0-9.e]+", "aggregator": r"_tau[-0-9.e]+", "partition": r"[0-9.e]+"}.get(column)
            keep |= (s == str(v)) | (s.str.fullmatch(re.escape(str(v)) + suffix) if suffix else False)
        else:
            keep |= np.isclose(pd.to_numeric(labels, errors="coerce"), float(v), equal_nan=False) \
                if isinstance(v, (int, float)) and not isinstance(v, bool) else labels == v
    return keep


def select(df: pd.DataFrame, experiment: str | None = None, **filters) -> pd.DataFrame:
    """The rows of a results (or curves) table in ``experiment`` whose columns match ``filters``
    (None: no filter); a filter naming a column the table lacks, or matching nothing, is a ConfigError."""
    rows = df[in_experiment(df, experiment)] if experiment is not None and "experiments" in df.columns else df
    if not len(rows):
        raise ConfigError(f"experiment: no run of {experiment!r} in this results table")
    for name, value in filters.items():
        if value is None:
            continue
        if name not in rows.columns:
            raise ConfigError(f"filters: the results table has no column {name!r}")
        kept = rows[_matches(name, rows[name], value)]
        if not len(kept):
            raise ConfigError(f"filters: no run has {name}={value!r} (the table has "
                              f"{sorted(map(str, rows[name].dropna().unique()))})")
        rows = kept
    return rows
