"""The data behind the paper's figures and tables, as tidy pandas frames.

Each notebook in ``notebooks/`` is a few calls into this module and into
:mod:`byzlab.analysis.plots`:

>>> runs = results("quick", "fig1")  # doctest: +SKIP
>>> frame = curves(runs)  # doctest: +SKIP
>>> final_table(runs, index=["aggregator", "beta"], columns="attack")  # doctest: +SKIP

``results`` reads the runs of an experiment from the results store (computing the
missing ones), ``curves`` labels their histories, one row per run and evaluation.

Runs come from a profile (:mod:`byzlab.running.experiments`) and go through a
:class:`~byzlab.running.store.ResultStore` keyed by the full run config, so a run used
by several figures (Table IV and Figs. 4–11 share theirs) is computed once and
read everywhere.  The paper's own numbers — Table II and Table III from the
text, Table IV from ``data_files/table4_paper.csv`` — sit beside byzlab's.
"""
from __future__ import annotations

import os
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from ..core.config import RunConfig
from ..running.experiments import PROFILE_DIR as _SHIPPED
from ..running.experiments import Profile, load_profile
from ..core.results import RunResult
from ..running.store import ResultStore
from ..running.tables import (PAPER_ATTACK, SHOWCASE_TABLE, TABLE4_KEYS, aggregator_label, attack_label, knobs,
                              paper_table4, partition_label, read_curves, read_results, results_table, select,
                              table4)
from ..core.errors import ConfigError

__all__ = [
    "AGGREGATOR_LABELS", "ATTACK_LABELS", "PAPER_TABLE2", "PAPER_TABLE3", "METRICS",
    "get_profile", "open_store", "results", "frames", "runs_table", "curves", "settings", "describe",
    "figure_name", "figure_title", "final_table", "outline", "partition_counts", "table2", "table3",
    "table4", "table4_compare", "table4_wide", "table4_style",
]

#: display names, in the paper's order (Table IV's columns and rows)
AGGREGATOR_LABELS = {"cc_tau0.1": "CC τ=0.1", "cc_tau1": "CC τ=1", "rfa": "RFA", "tm": "TM"}
ATTACK_LABELS = {
    "rop": "ROP", "rop_s": "ROP-S", "alie": "ALIE", "alie_z1.2": "ALIE z=1.2 (as run)", "alie_alt": "ALIE ± (Eq. 19)",
    "ipm": "IPM",
    "label_flip": "label flip", "bit_flip": "bit flip", "minmax": "min-max", "minsum": "min-sum",
    "none": "no attack",
}
#: the paper's scale (Section VI): what a run must match for its numbers to be compared with Table IV's
PAPER_SCALE = {"epochs": 100, "k": 25, "k_m": 5}
PAPER_MODELS = {"mnist": "cnn", "fmnist": "cnn", "cifar10": "resnet20", "cifar100": "resnet9"}
DATASET_LABELS = {"mnist": "MNIST", "fmnist": "FMNIST", "cifar10": "CIFAR-10", "cifar100": "CIFAR-100",
                  "mnist5k": "mnist5k", "digits": "digits"}

#: per-evaluation columns a figure can plot
METRICS = ("test_accuracy", "train_loss", "cos_delta", "cos_ref_benign", "cos_ref_byz", "clip_fraction", "agg_norm")

#: Table II of the paper: mean cos(Δ_t, Δ_{t−1}) of ALIE over training, IID CIFAR-10, per β
PAPER_TABLE2 = {0.0: 0.94, 0.9: 0.995, 0.99: 0.999}

#: Table III of the paper: mean cosine of the benign and ROP momenta to CC's reference m̃_{t−1}, IID CIFAR-10
PAPER_TABLE3 = pd.DataFrame(
    [(tau, beta, benign, rop) for tau, row in (
        (0.1, ((0.0, 0.0, 0.94), (0.9, 0.2, 0.77), (0.99, 0.3, 0.75))),
        (1.0, ((0.0, -0.03, 0.48), (0.9, 0.07, 0.44), (0.99, 0.04, 0.27))),
    ) for beta, benign, rop in row],
    columns=["tau", "beta", "benign", "byzantine"],
)

#: (dataset, partition) -> the paper's figure of that setting, per kind of figure
PAPER_FIGURES = {
    "accuracy": {("fmnist", "iid"): 4, ("cifar10", "iid"): 5, ("cifar100", "iid"): 6,
                 ("mnist", "dirichlet1"): 7, ("fmnist", "dirichlet1"): 8, ("cifar10", "dirichlet1"): 9},
    "train_loss": {("cifar10", "iid"): 10, ("cifar10", "dirichlet1"): 11},
    "lambda": {("cifar10", "iid"): 12},
    "z": {("cifar10", "iid"): 13, ("cifar10", "dirichlet1"): 14},
}
#: the figures of each kind, for settings the paper has no figure of (file-name prefix, title)
_FIGURE_RANGE = {"accuracy": ("figs4-9", "Figs. 4–9"), "train_loss": ("figs10-11", "Figs. 10–11"),
                 "lambda": ("fig12", "Fig. 12"), "z": ("figs13-14", "Figs. 13–14")}


# =========================================================================== runs
def get_profile(profile: str | os.PathLike | Profile = "quick") -> Profile:
    """A :class:`Profile`, or the shipped profile of that name (``quick``, ``paper``), or a YAML file."""
    return profile if isinstance(profile, Profile) else load_profile(profile)


def open_store(store: str | os.PathLike | ResultStore | None = None) -> ResultStore:
    """The results store at ``store`` (None: ``$BYZLAB_CACHE`` or ``~/.cache/byzlab/results``)."""
    return store if isinstance(store, ResultStore) else ResultStore(store)


def results(profile: str | os.PathLike | Profile = "quick", experiment: str = "table4", *,
            store: str | os.PathLike | ResultStore | None = None, progress: bool = True,
            compute: bool | None = None, **filters: Any) -> list[RunResult]:
    """The results of an experiment of a profile (all seeds), computing only the runs the store lacks.

    ``filters`` keep the runs whose config field or rule parameter equals the value (or is in
    the list): ``results("quick", "table4", attack="alie", partition="iid")``; a filter set to
    None keeps every run (notebook parameters default to None).

    ``compute``: whether missing runs are computed here.  ``None`` (default) computes them
    only for a profile marked ``compute_in_notebook`` (``quick``); for the others (``paper``:
    hundreds of GPU-hours) missing runs raise a one-line :class:`ConfigError` that counts them
    and names the ``byzlab sweep`` command that computes them.  ``True`` computes anyway.
    """
    prof = get_profile(profile)
    filters = {k: v for k, v in filters.items() if v is not None}
    configs = prof.configs(experiment, **filters)
    if not configs:
        every = prof.configs(experiment)
        have = "; ".join(f"{name} in {sorted({str(_value(c, name)) for c in every})}" for name in filters)
        shown = ", ".join(f"{k}={v!r}" for k, v in filters.items())
        raise ConfigError(f"filters: no run of experiment {experiment!r} in profile {prof.name!r} matches {shown} "
                         f"(it has {have})")
    st = open_store(store)
    if not (prof.compute_in_notebook if compute is None else compute):
        missing = sum(not st.contains(c) for c in configs)
        if missing:
            where = prof.path if prof.path is not None and prof.path.parent != _SHIPPED else prof.name
            raise ConfigError(
                f"results: {missing} of the {len(configs)} runs of experiment {experiment!r} in profile "
                f"{prof.name!r} are not in the store {st.root}; compute them with "
                f"`byzlab sweep --profile {where} --store {st.root}` (or pass compute=True, or set "
                f"compute_in_notebook: true in the profile)")
    return st.run_many(configs, progress=progress)


def frames(profile: str | os.PathLike | Profile = "quick", experiment: str = "table4", *,
           store: str | os.PathLike | ResultStore | None = None, table: str | os.PathLike | None = None,
           curves_too: bool = True, **filters: Any) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The runs of an experiment as two tidy frames: ``(runs_table, curves)`` — what every notebook draws.

    ``table``: a results table file (a sweep's ``results.csv``, or the committed showcase table
    ``figures/showcase/results.csv``, whose ``curves.csv`` beside it holds the histories): the
    frames come from it and nothing is trained.  ``table=None`` with ``profile="showcase"``:
    the committed showcase table (so its notebooks render anywhere without retraining);
    otherwise the runs come from the results store, as :func:`results` (same ``filters``, which
    on a table match the labels: ``attack="alie"`` keeps ``alie`` and ``alie_z1.2``).
    ``curves_too=False`` skips the histories (the second frame is None).
    """
    name = profile.name if isinstance(profile, Profile) else str(profile)
    if table is None and name == "showcase" and SHOWCASE_TABLE.exists():
        table = SHOWCASE_TABLE
    if table is not None:
        df = read_results(table)
        rows = select(df, experiment, **filters)
        rows.attrs["source"] = f"{df.attrs['source']}: {len(rows)} runs of {experiment!r}"
        if not curves_too:
            return rows, None
        history = read_curves(table, df)
        return rows, history[history["key"].isin(rows["key"])].reset_index(drop=True)
    runs = results(profile, experiment, store=store, **filters)
    rows = runs_table(runs)
    rows.attrs["source"] = f"profile {get_profile(profile).name!r}: {len(rows)} runs of {experiment!r}"
    return rows, (curves(runs) if curves_too else None)


def _value(cfg: RunConfig, name: str) -> Any:
    """A config field or rule parameter of a run (what ``results`` filters on)."""
    if hasattr(cfg, name):
        return getattr(cfg, name)
    return cfg.aggregator_params.get(name, cfg.attack_params.get(name))


def _labels(cfg: RunConfig) -> dict:
    return {
        "dataset": cfg.dataset, "partition": partition_label(cfg), "attack": attack_label(cfg),
        "aggregator": aggregator_label(cfg), "beta": round(float(cfg.beta), 6), "seed": cfg.seed,
        **knobs(cfg), "epochs": cfg.epochs, "key": cfg.key(),
    }


def curves(runs: Iterable[RunResult]) -> pd.DataFrame:
    """One row per run and evaluation: the run's labels (dataset, partition, attack, aggregator,
    beta, seed, tau, z, lam) and its history (round, epoch, test_accuracy, train_loss, diagnostics)."""
    frames = []
    for r in runs:
        h = r.history.copy()
        for name, value in _labels(r.config).items():
            h[name] = value
        frames.append(h)
    if not frames:
        raise ConfigError("runs: no results to plot")
    return pd.concat(frames, ignore_index=True)


def settings(frame: pd.DataFrame) -> list[tuple[str, str]]:
    """The (dataset, partition) pairs of a :func:`curves` or :func:`results_table` frame, in order."""
    return list(dict.fromkeys(zip(frame["dataset"], frame["partition"])))


def describe(frame: pd.DataFrame) -> str:
    """``digits IID, 60 epochs, 1 seed`` — what a figure was computed from."""
    parts = []
    for dataset, partition in settings(frame):
        parts.append(f"{DATASET_LABELS.get(dataset, dataset)} {_partition_text(partition)}")
    epochs = sorted(frame["epochs"].unique()) if "epochs" in frame else []
    seeds = frame["seed"].nunique()
    return (f"{', '.join(parts)}, {'/'.join(str(e) for e in epochs)} epochs, "
            f"{seeds} seed{'s' if seeds != 1 else ''}")


def outline(table: pd.DataFrame) -> str:
    """What a table holds, without its values: its shape, the labels of its rows and
    columns, and how many values are finite.

    This is the part of a result that is the same on every platform and torch
    build, so the notebooks store it as their checked output; the values
    themselves differ between builds in the first decimal and are checked by the
    test suite with tolerances.
    """
    def axis(index: pd.Index) -> str:
        names = index.names if index.nlevels > 1 else [index.name]
        parts = []
        for level, name in enumerate(names):
            values = index.get_level_values(level).unique() if index.nlevels > 1 else index.unique()
            parts.append(f"{name or 'label'} ∈ {{{', '.join(_short_label(v) for v in values)}}}")
        return "; ".join(parts)

    values = table.select_dtypes("number").to_numpy(dtype=float)
    finite = int(np.isfinite(values).sum())
    rows, cols = table.shape
    return (f"{rows} row{'s' * (rows != 1)} x {cols} column{'s' * (cols != 1)}\n"
            f"rows: {axis(table.index)}\n"
            f"columns: {axis(table.columns)}\n"
            f"values: {finite} finite, {values.size - finite} missing or not finite")


def _short_label(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)


def _partition_text(partition: str) -> str:
    return "IID" if partition == "iid" else f"Dir(α={partition.removeprefix('dirichlet')})"


def figure_name(kind: str, dataset: str, partition: str) -> str:
    """File name of a per-setting figure: ``fig5_accuracy_cifar10_iid`` when the paper has that
    figure, else ``figs4-9_accuracy_digits_iid`` (the paper's layout on another setting)."""
    if kind not in PAPER_FIGURES:
        raise ConfigError(f"kind: unknown {kind!r}; choose one of: {', '.join(PAPER_FIGURES)}")
    number = PAPER_FIGURES[kind].get((dataset, partition))
    prefix = f"fig{number}" if number else _FIGURE_RANGE[kind][0]
    return f"{prefix}_{kind}_{dataset}_{partition}"


def figure_title(kind: str, frame: pd.DataFrame, what: str) -> str:
    """``Fig. 5 — test accuracy … (byzlab: CIFAR-10 IID, 100 epochs, 3 seeds)``."""
    if kind not in PAPER_FIGURES:
        raise ConfigError(f"kind: unknown {kind!r}; choose one of: {', '.join(PAPER_FIGURES)}")
    numbers = sorted({PAPER_FIGURES[kind][s] for s in settings(frame) if s in PAPER_FIGURES[kind]})
    head = "Fig. " + ", ".join(map(str, numbers)) if numbers else f"{_FIGURE_RANGE[kind][1]} layout"
    return f"{head} — {what} ({describe(frame)})"


def final_table(runs: Iterable[RunResult] | pd.DataFrame, index: Sequence[str] | str, columns: Sequence[str] | str,
                value: str = "final_accuracy") -> pd.DataFrame:
    """Mean over seeds of a final metric (``final_accuracy``, ``final_train_loss``, ``mean_cos_delta``…),
    pivoted: ``final_table(runs, index=["aggregator", "beta"], columns="attack")``; ``runs`` or their table."""
    df = runs if isinstance(runs, pd.DataFrame) else runs_table(runs)
    if value not in df.columns:
        raise ConfigError(f"value: unknown {value!r}; choose one of: "
                         f"{', '.join(c for c in df.columns if c.startswith(('final_', 'mean_', 'best_')))}")
    index = [index] if isinstance(index, str) else list(index)
    columns = [columns] if isinstance(columns, str) else list(columns)
    for name in (*index, *columns):
        if name not in df.columns:
            raise ConfigError(f"index/columns: unknown {name!r}; choose among: {', '.join(df.columns)}")
    return df.pivot_table(index=index, columns=columns, values=value, aggfunc="mean", sort=False)


def runs_table(runs: Iterable[RunResult]) -> pd.DataFrame:
    """:func:`byzlab.running.tables.results_table` of the runs, β rounded to 6 decimals (as the paper's table)."""
    runs = list(runs)
    if not runs:
        raise ConfigError("runs: no results")
    df = results_table(runs)
    df["beta"] = df["beta"].astype(float).round(6)
    return df


# =========================================================================== Fig. 2
def partition_counts(dataset: str | None = None, k: int | None = None, alpha: float | None = None,
                     seed: int = 0, *, profile: str | os.PathLike | Profile = "quick") -> dict[str, pd.DataFrame]:
    """Fig. 2: the per-client class counts of the training set, IID and Dirichlet(α).

    Returns ``{"iid": df, "dirichlet": df}``; each ``df`` has one row per client
    (``client`` 1..k) and one column per class — exactly the shards the simulator
    trains on for ``seed``.  ``dataset``, ``k`` and ``alpha`` left None are those of the
    profile's runs (its ``fig1`` experiment, else its first one).
    """
    from ..core.data import load_dataset
    from ..core.partition import class_counts, partition

    prof = get_profile(profile)
    cfg = prof.experiment_configs("fig1" if "fig1" in prof.experiments else next(iter(prof.experiments)))[0]
    dataset = cfg.dataset if dataset is None else dataset
    k = cfg.k if k is None else k
    alpha = cfg.alpha if alpha is None else alpha
    data = load_dataset(dataset, root=cfg.data_root, download=cfg.download)
    y = data.y_train.cpu().numpy()
    out = {}
    for kind in ("iid", "dirichlet"):
        parts = partition(y, k, kind, alpha=alpha, seed=seed)
        counts = class_counts(y, parts, data.num_classes)
        out[kind] = pd.DataFrame(counts, index=pd.RangeIndex(1, k + 1, name="client"),
                                 columns=[str(c) for c in range(data.num_classes)])
        out[kind].attrs.update(dataset=dataset, alpha=alpha, seed=seed)
    return out


# =========================================================================== Tables II-IV
def table2(runs: Iterable[RunResult] | pd.DataFrame) -> pd.DataFrame:
    """Table II: mean cos(Δ_t, Δ_{t−1}) of the attack's perturbation over training, per β.

    One row per (dataset, partition, aggregator) of ``runs`` (mean over seeds), and a
    last row with the paper's values (ALIE, IID CIFAR-10); columns are the β values.
    """
    df = runs if isinstance(runs, pd.DataFrame) else runs_table(runs)  # runs, or their table
    if "mean_cos_delta" not in df.columns:
        raise ConfigError("runs: no cos_delta diagnostic (run with diagnostics=True)")
    several = df["attack"].nunique() > 1  # e.g. ALIE at z_max and at z = 1.2: never averaged together
    index = ["dataset", "partition", "attack", "aggregator"] if several else ["dataset", "partition", "aggregator"]
    t = df.pivot_table(index=index, columns="beta", values="mean_cos_delta", aggfunc="mean", sort=False)
    paper = pd.DataFrame([PAPER_TABLE2], index=pd.MultiIndex.from_tuples(
        [("paper: cifar10", "iid", "alie", "") if several else ("paper: cifar10", "iid", "")], names=t.index.names))
    t = pd.concat([t, paper.reindex(columns=t.columns)])
    t.columns = pd.Index([f"β={b:g}" for b in t.columns], name=None)
    return t


def table3(runs: Iterable[RunResult] | pd.DataFrame) -> pd.DataFrame:
    """Table III: mean cosine of the benign and Byzantine momenta to CC's reference m̃_{t−1}.

    One row per (dataset, partition, τ, β) of ``runs`` (CC runs; mean over rounds, then
    seeds) with byzlab's ``benign`` and ``byzantine`` beside the paper's ``paper_benign``
    and ``paper_byzantine`` (ROP, IID CIFAR-10; NaN where the paper has no value).
    """
    df = runs if isinstance(runs, pd.DataFrame) else runs_table(runs)  # runs, or their table
    df = df[df["tau"].notna()]
    if not len(df):
        raise ConfigError("runs: Table III needs runs against CC (aggregator='cc')")
    missing = [c for c in ("mean_cos_ref_benign", "mean_cos_ref_byz") if c not in df.columns]
    if missing:
        raise ConfigError(f"runs: no {missing} diagnostics (run with diagnostics=True)")
    t = (df.groupby(["dataset", "partition", "tau", "beta"], sort=False)
         .agg(benign=("mean_cos_ref_benign", "mean"), byzantine=("mean_cos_ref_byz", "mean"))
         .reset_index())
    paper = PAPER_TABLE3.rename(columns={"benign": "paper_benign", "byzantine": "paper_byzantine"})
    t = t.merge(paper, on=["tau", "beta"], how="left")
    return t.set_index(["dataset", "partition", "tau", "beta"])


def table4_compare(runs: Iterable[RunResult] | pd.DataFrame, paper_dataset: str = "fmnist",
                   paper_partition: str = "iid") -> pd.DataFrame:
    """Table IV beside the paper's: byzlab's final accuracy mean ± std over seeds per cell beside the
    paper's ``paper_mean`` ± ``paper_std``.

    ``same_setting`` says whether a row's numbers are comparable: byzlab's data set and partition
    are the paper's and its scale too (100 epochs, k = 25, k_m = 5, the paper's model, where the
    table has those columns).  Only then is ``difference`` = byzlab − paper (percentage points)
    computed, to be read with both standard deviations (``accuracy_std``, ``paper_std``);
    elsewhere it is NaN and ``setting`` says what differs.

    When byzlab's data sets are the paper's (the ``paper`` profile), cells join on
    (dataset, partition, attack, aggregator, β).  Otherwise (``quick``: digits) byzlab's cells of
    partition ``paper_partition`` sit beside the paper's ``paper_dataset``/``paper_partition``
    cells, joined on (attack, aggregator, β), side by side and without a difference.
    ``alie_z1.2`` (ALIE at the authors' library's z = 1.2 of the time) sits beside the paper's ALIE
    row (``paper_attack``), as the paper's ALIE z_max row does.
    """
    ref = paper_table4()
    pairs = sorted(set(zip(ref["dataset"], ref["partition"])))
    if (paper_dataset, paper_partition) not in pairs:
        raise ConfigError(f"paper_dataset/paper_partition: the paper's Table IV has no {paper_dataset!r}/"
                         f"{paper_partition!r}; choose one of: {', '.join(f'{d}/{p}' for d, p in pairs)}")
    df = runs if isinstance(runs, pd.DataFrame) else runs_table(runs)
    ours = table4(df)
    ref = ref.rename(columns={"accuracy_mean": "paper_mean", "accuracy_std": "paper_std", "attack": "paper_attack",
                              "dataset": "paper_dataset", "partition": "paper_partition"})
    ref["beta"] = ref["beta"].astype(float).round(6)
    same = set(zip(ours["dataset"], ours["partition"])) & set(pairs)
    if same:  # the paper's data sets: cell by cell
        ours = ours.assign(paper_dataset=ours["dataset"], paper_partition=ours["partition"])
    else:  # other data sets: beside the chosen block of the paper's table
        have = sorted(set(ours["partition"]))
        ours = ours[ours["partition"] == paper_partition]
        if not len(ours):
            raise ConfigError(f"paper_partition: byzlab has no {paper_partition!r} runs to compare; "
                             f"it has {', '.join(have)}")
        ours = ours.assign(paper_dataset=paper_dataset, paper_partition=paper_partition)
    ours = ours.assign(paper_attack=ours["attack"].map(lambda a: PAPER_ATTACK.get(a, a)))
    out = ours.merge(ref, on=["paper_dataset", "paper_partition", "paper_attack", "aggregator", "beta"], how="left")
    notes = _setting_notes(df)
    out["setting"] = [notes.get((d, p), "") if (d, p) == (pd_, pp) else
                      f"not the paper's setting: byzlab {_setting_text(d, p)}{_scale_text(df, d, p)} beside the "
                      f"paper's {_setting_text(pd_, pp)}; no difference computed"
                      for d, p, pd_, pp in zip(out["dataset"], out["partition"], out["paper_dataset"],
                                               out["paper_partition"])]
    out["same_setting"] = out["setting"] == "same setting"
    out["difference"] = (out["accuracy_mean"] - out["paper_mean"]).where(out["same_setting"])
    out = _paper_order(out)
    cols = [*TABLE4_KEYS, "accuracy_mean", "accuracy_std", "n_seeds", "paper_dataset", "paper_partition",
            "paper_attack", "paper_mean", "paper_std", "same_setting", "difference", "setting"]
    return out[[c for c in cols if c in out.columns]].reset_index(drop=True)


def _setting_text(dataset: str, partition: str) -> str:
    return f"{DATASET_LABELS.get(dataset, dataset)} {_partition_text(partition)}"


def _scale_text(df: pd.DataFrame, dataset: str, partition: str) -> str:
    rows = df[(df["dataset"] == dataset) & (df["partition"] == partition)]
    if "epochs" not in rows.columns or not len(rows):
        return ""
    return f", {'/'.join(f'{e:g}' for e in sorted(rows['epochs'].unique()))} epochs"


def _setting_notes(df: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(dataset, partition) -> ``"same setting"``, or what differs from the paper's scale
    (epochs, k, k_m, model; columns the table lacks are not checked)."""
    out = {}
    for (dataset, partition), rows in df.groupby(["dataset", "partition"], sort=False):
        want = {**PAPER_SCALE, "model": PAPER_MODELS.get(dataset)}
        differ = []
        for name, value in want.items():
            if name in rows.columns and value is not None:
                have = sorted({str(v) for v in rows[name].dropna().unique()})
                if have and have != [str(value)]:
                    differ.append(f"{name} {'/'.join(have)} (paper {value})")
        out[(dataset, partition)] = ("same setting" if not differ else
                                     f"not the paper's scale: {', '.join(differ)}; no difference computed")
    return out


def _paper_order(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the paper's order: settings as in Table IV (IID before non-IID), attacks ROP, ALIE,
    IPM, label flip, bit flip (then the others), aggregators CC τ=0.1, CC τ=1, RFA, TM."""
    blocks = list(dict.fromkeys(zip(paper_table4()["dataset"], paper_table4()["partition"])))

    def setting_rank(dataset: str, partition: str) -> tuple:
        known = (dataset, partition) in blocks
        return (partition != "iid", 0 if known else 1, blocks.index((dataset, partition)) if known else 0, dataset)

    attack_rank = {a: i for i, a in enumerate(ATTACK_LABELS)}
    agg_rank = {a: i for i, a in enumerate(AGGREGATOR_LABELS)}
    ranks = sorted(set(zip(df["dataset"], df["partition"])), key=lambda s: setting_rank(*s))
    setting = pd.Series(list(zip(df["dataset"], df["partition"])), index=df.index).map(
        {s: i for i, s in enumerate(ranks)})
    return (df.assign(_s=setting, _a=df["attack"].map(attack_rank).fillna(len(attack_rank)),
                      _g=df["aggregator"].map(agg_rank).fillna(len(agg_rank)))
            .sort_values(["_s", "_a", "_g", "beta"], kind="stable").drop(columns=["_s", "_a", "_g"]))


def table4_wide(compare: pd.DataFrame, value: str = "accuracy_mean") -> pd.DataFrame:
    """A :func:`table4_compare` column laid out like the paper's Table IV: rows (dataset, partition,
    attack), columns (aggregator, β).  ``value="text"``: ``"mean ± std"`` strings."""
    df = _paper_order(compare)
    if value == "text":
        df["text"] = [f"{m:.2f} ± {s:.2f}" for m, s in zip(df["accuracy_mean"], df["accuracy_std"])]
    elif value not in df.columns:
        raise ConfigError(f"value: unknown {value!r}; choose 'text' or one of: {', '.join(df.columns)}")
    df["aggregator"] = df["aggregator"].map(lambda a: AGGREGATOR_LABELS.get(a, a))
    df["attack"] = df["attack"].map(lambda a: ATTACK_LABELS.get(a, a))
    rows, cols = ["dataset", "partition", "attack"], ["aggregator", "beta"]
    # the cells as they are (NaN kept: "no difference computed" is a value here), in the paper's order
    cells = df.groupby(rows + cols, sort=False)[value].first()
    order = lambda names: pd.MultiIndex.from_tuples(list(dict.fromkeys(zip(*(df[n] for n in names)))),  # noqa: E731
                                                    names=names)
    wide = cells.unstack(cols).reindex(index=order(rows), columns=order(cols))
    wide.columns = pd.MultiIndex.from_tuples([(a, f"β={b:g}") for a, b in wide.columns])
    return wide


def table4_style(compare: pd.DataFrame):
    """A pandas Styler of :func:`table4_compare`: two decimals, the difference coloured
    (red: byzlab's accuracy lower than the paper's, blue: higher; "–" where the settings differ and
    no difference is computed, the ``setting`` column saying why)."""
    shown = compare.assign(
        aggregator=compare["aggregator"].map(lambda a: AGGREGATOR_LABELS.get(a, a)),
        attack=compare["attack"].map(lambda a: ATTACK_LABELS.get(a, a)))

    def colour(v: float) -> str:
        if not isinstance(v, (int, float)) or not np.isfinite(v):
            return ""
        alpha = min(abs(v) / 40.0, 1.0) * 0.6
        rgb = "214, 39, 40" if v < 0 else "31, 119, 180"
        return f"background-color: rgba({rgb}, {alpha:.2f})"

    numbers = ["accuracy_mean", "accuracy_std", "paper_mean", "paper_std", "difference"]
    shown = shown.drop(columns=[c for c in ("same_setting", "paper_attack") if c in shown.columns])
    styler = shown.style.format({c: "{:.2f}" for c in numbers}, na_rep="–").format({"beta": "{:g}"})
    cellwise = getattr(styler, "map", None) or styler.applymap  # Styler.map: pandas >= 2.1
    return cellwise(colour, subset=["difference"]).hide(axis="index")
