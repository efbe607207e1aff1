"""The qualitative claims of the paper's Section VII, as data, and byzlab's verdict on each.

Each :class:`Claim` is a sentence of the paper and the comparisons of Table IV cells that
test it: "ROP degrades CC at every τ and β" is, for each τ, β and partition, *the no-attack
run's accuracy is higher than ROP's*.  :func:`comparisons_table` decides each comparison from a
tidy results table (one row per run: :func:`byzlab.running.tables.results_table`, or a sweep's
``results.csv``) and, when given, its curves (``curves.csv``: the trajectories), by the rule
:data:`RULE` (:mod:`byzlab.core.stats`), never by hand; :func:`claims_table` combines them per claim
and puts the paper's own numbers (``data_files/table4_paper.csv``) and verdict beside byzlab's.

>>> from byzlab.analysis import claims
>>> claims.claims_table(*claims.load_results_and_curves())  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from ..core import stats
from ..core.errors import ConfigError
from ..core.stats import FAILS, HOLDS, INCONCLUSIVE, NOT_RUN, UNDECIDED
from ..running.tables import (SHOWCASE_TABLE, TRAJECTORY_RULE, curves_table, in_experiment, paper_table4,
                              read_curves, read_results, trajectories)

__all__ = ["RULE", "Cell", "Comparison", "Claim", "CLAIMS", "SHOWCASE_TABLE", "PAPER_BLOCKS", "VERDICTS",
           "HOLDS", "FAILS", "UNDECIDED", "UNSTABLE", "INCONCLUSIVE", "NOT_RUN", "setting_label", "runs_frame",
           "comparisons_table", "claims_table", "summary_table", "load_results", "load_results_and_curves"]

#: how a verdict is reached; printed by the notebook and the README
RULE = (
    "Each comparison claims that cell A's final test accuracy exceeds cell B's by more than a margin m "
    "(0 unless stated; \"ALIE is as strong as ROP\" allows 5 points: m = −5). Runs with the same seed share the "
    "initial model, the partition and the batch order, so the comparison is judged on the per-seed differences "
    "A − B over the seeds both cells ran: their mean with a 95 % paired t interval (scipy.stats.t; "
    "mean ± t_{0.975,n−1}·s/√n, s the sample std of the differences). It holds when the interval lies above m; "
    "does not hold when it does not and its upper end lies below m + δ (δ = 1 point, the smallest difference "
    "that matters); it is undecided otherwise, with the seeds a decision would need if the mean and spread "
    "stayed as observed: the smallest n with t_{0.975,n−1}·s/√n < max(mean − m, m + δ − mean). "
    "A divergence claim (\"ALIE brings TM and RFA down\") is judged on how many seeds of the attacked cell "
    "collapsed (at most chance + 5 points at 2 or more consecutive evaluations after the first 20 % of the "
    "rounds): it holds when the exact (Clopper-Pearson) 95 % interval of the collapse rate lies above 1/2, "
    "does not hold when it lies below, undecided otherwise. A comparison with an attacked cell whose "
    "no-attack baselines (the no-attack runs at both cells' aggregator and β) collapsed or oscillated (fell 20 "
    "points or more below its best after the warm-up) in any seed is \"baseline unstable\": it measures the baseline's "
    "instability, not the attack. A claim holds when every comparison it could judge holds, does not hold "
    "when any does not, is undecided otherwise; \"baseline unstable\" when every comparison is. The paper's "
    "verdict has only Table IV's mean ± std (no per-seed numbers), so it keeps an unpaired rule: gap = "
    "mean(A) − mean(B) − m against s = √((s_A² + s_B²)/2): holds when gap > 2s, does not hold when gap < −2s, "
    "inconclusive otherwise.")

#: byzlab partition -> the paper's Table IV block quoted beside data sets the paper did not use
#: (its CNN blocks: FMNIST IID, Fig. 4; MNIST Dirichlet(1), Fig. 7 — closest to mnist5k + cnn)
PAPER_BLOCKS = {"iid": "fmnist", "dirichlet1": "mnist"}

#: ALIE's two rows: the paper's z_max and the as-run z = 1.2 (README "Fidelity"); claims about
#: ALIE are judged for each one present
ALIE_VARIANTS = {"alie": "ALIE z_max", "alie_z1.2": "ALIE z=1.2 (as run)"}

UNSTABLE = "baseline unstable"
#: the verdicts in the order the tables count them
VERDICTS = (HOLDS, FAILS, UNDECIDED, UNSTABLE, NOT_RUN)


@dataclass(frozen=True)
class Cell:
    """One Table IV cell within a setting: attack label, aggregator label, β."""
    attack: str
    aggregator: str
    beta: float

    def text(self) -> str:
        from .paper import AGGREGATOR_LABELS, ATTACK_LABELS

        return (f"{ATTACK_LABELS.get(self.attack, self.attack)} vs "
                f"{AGGREGATOR_LABELS.get(self.aggregator, self.aggregator)} β={self.beta:g}")


@dataclass(frozen=True)
class Comparison:
    """The claim that ``higher``'s accuracy exceeds ``lower``'s by more than ``margin`` points
    (a negative margin: "at most ``-margin`` points lower"), on ``partition``.  ``kind``:
    ``accuracy`` (the paired rule on the final accuracy) or ``collapse`` (``lower``'s runs collapse:
    the exact rule on its collapse count, the paired difference beside it)."""
    partition: str
    higher: Cell
    lower: Cell
    margin: float = 0.0
    kind: str = "accuracy"


@dataclass(frozen=True)
class Claim:
    id: str
    text: str
    source: str  # where the paper says it
    comparisons: tuple[Comparison, ...]

    @property
    def about_alie(self) -> bool:
        return any("alie" in (c.higher.attack, c.lower.attack) for c in self.comparisons)


def _each(partitions, aggregators, betas, make) -> tuple[Comparison, ...]:
    return tuple(make(p, a, b) for p in partitions for a in aggregators for b in betas)


CC = ("cc_tau0.1", "cc_tau1")
BOTH = ("iid", "dirichlet1")
BETAS = (0.0, 0.9, 0.99)

#: the claims of Section VII (and of Fig. 3), in the paper's order
CLAIMS: tuple[Claim, ...] = (
    Claim("rop_degrades_cc", "ROP degrades CC at every τ and β",
          "Sec. VII, last paragraph: \"ROP overcomes the robustness of CC regardless of τ and β\"",
          _each(BOTH, CC, BETAS, lambda p, a, b: Comparison(p, Cell("none", a, b), Cell("rop", a, b)))),
    Claim("rop_strongest_vs_cc_iid", "On IID data, with worker momentum, ROP beats ALIE against CC τ = 1",
          "Sec. VII, last paragraph: \"the most successful attack for the IID data distributions especially "
          "when local momentum is employed\"",
          _each(("iid",), ("cc_tau1",), (0.9, 0.99), lambda p, a, b: Comparison(p, Cell("alie", a, b),
                                                                             Cell("rop", a, b)))),
    Claim("rop_s_beats_rop", "ROP-S beats ROP against CC",
          "Sec. VII, Fig. 3: sparse ROP \"highly effective against the CC aggregator\"",
          _each(("iid",), CC, (0.0, 0.9), lambda p, a, b: Comparison(p, Cell("rop", a, b), Cell("rop_s", a, b)))),
    Claim("alie_breaks_tm_rfa_at_beta0", "Without worker momentum ALIE brings TM and RFA down",
          "Sec. VII, Fig. 4: \"Only on β = 0, ALIE ... resulting in divergence in RFA and TM\"",
          _each(BOTH, ("tm", "rfa"), (0.0,),
                lambda p, a, b: Comparison(p, Cell("none", a, b), Cell("alie", a, b), kind="collapse"))),
    Claim("momentum_protects_tm_rfa_vs_alie", "Worker momentum protects TM and RFA against ALIE",
          "Sec. VII, Figs. 4 and 7 (β = 0.9 against β = 0)",
          _each(BOTH, ("tm", "rfa"), (0.9,), lambda p, a, b: Comparison(p, Cell("alie", a, b), Cell("alie", a, 0.0)))),
    Claim("rop_degrades_tm_rfa", "ROP, configured against CC, also degrades TM and RFA",
          "Sec. VII, last paragraph: \"we use the same configuration on ... TM and ... RFA\"",
          _each(BOTH, ("tm", "rfa"), BETAS, lambda p, a, b: Comparison(p, Cell("none", a, b), Cell("rop", a, b)))),
    Claim("alie_matches_rop_noniid", "On non-IID data ALIE is as strong as ROP (at most 5 points weaker)",
          "Sec. VII, last paragraph: \"For the simulations in a non-IID manner, ALIE is also successful as "
          "the ROP\"",
          _each(("dirichlet1",), (*CC, "rfa", "tm"), (0.0,),
                lambda p, a, b: Comparison(p, Cell("rop", a, b), Cell("alie", a, b), margin=-5.0))),
    Claim("cc_tau01_not_robust_noniid", "CC τ = 0.1 is not robust: with worker momentum on non-IID data it "
          "falls below CC τ = 1 even without an attack",
          "Sec. VII, Fig. 7 and last paragraph: \"τ = 0.1 is not robust when the data distribution is non-IID "
          "and worker momentum is employed\"",
          _each(("dirichlet1",), ("none",), (0.9, 0.99),
                lambda p, a, b: Comparison(p, Cell(a, "cc_tau1", b), Cell(a, "cc_tau0.1", b)))),
)


# =========================================================================== the runs
#: what a comparison's cells share besides the cell itself: one table per data set, model and setting
GROUP = ("dataset", "model", "setting")


def setting_label(rounds, lr_decay=np.nan, lr_decay_at=np.nan) -> str:
    """``"500 rounds, η ×0.1 at round 375"``, ``"300 rounds, constant η"`` (``"300 rounds"`` when the table
    does not record the schedule)."""
    rounds = int(rounds)
    if not (np.isfinite(lr_decay) and np.isfinite(lr_decay_at)):
        return f"{rounds} rounds"
    if lr_decay_at >= 1 or lr_decay == 1:
        return f"{rounds} rounds, constant η"
    return f"{rounds} rounds, η ×{lr_decay:g} at round {int(round(lr_decay_at * rounds))}"


def runs_frame(results: pd.DataFrame, curves: pd.DataFrame | None = None, *,
               value: str = "final_accuracy") -> pd.DataFrame:
    """One row per run the claims read: the results table's labels, ``setting`` (:func:`setting_label`),
    ``value`` and the trajectory columns of :func:`byzlab.running.tables.trajectories` (from ``curves``; without
    curves a run has collapsed when its final accuracy is at most chance + 5 points, and ``unstable`` is
    the same).  A cell (data set, model, setting, partition, attack, aggregator, β) holds the seeds of one
    config: runs of several configs are narrowed to Table IV's, else refused."""
    need = ["dataset", "partition", "attack", "aggregator", "beta", "seed", value]
    if not isinstance(results, pd.DataFrame) or not len(results):
        raise ConfigError("results: an empty results table; run the profile first")
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise ConfigError(f"results: not a results table, it lacks columns {missing}")
    df = results.assign(beta=results["beta"].astype(float).round(6))
    if "model" not in df.columns:
        df["model"] = ""
    df["model"] = df["model"].fillna("").astype(str)
    if "rounds" in df.columns:
        col = lambda name: df[name] if name in df.columns else pd.Series(np.nan, index=df.index)  # noqa: E731
        df["setting"] = [setting_label(r, d, a) for r, d, a in zip(df["rounds"], col("lr_decay"), col("lr_decay_at"))]
    else:
        df["setting"] = ""
    keys = [*GROUP, "partition", "attack", "aggregator", "beta"]
    if "cell" in df.columns:  # one config per cell: prefer Table IV's runs over e.g. Fig. 12's other λ
        several = df.groupby(keys)["cell"].transform("nunique") > 1
        if several.any() and "experiments" in df.columns:
            df = df[~several | in_experiment(df, "table4")]
        mixed = df.groupby(keys)["cell"].nunique()
        if (mixed > 1).any():
            cell = dict(zip(keys, mixed[mixed > 1].index[0]))
            raise ConfigError(f"results: the cell {cell} holds runs of several configs (not only seeds); "
                              "filter the table first")
    if curves is not None and len(curves) and "key" in df.columns:
        traj = trajectories(curves.merge(df[["key", "dataset"]], on="key") if "dataset" not in curves.columns
                            else curves)
        df = df.merge(traj.drop(columns=["final_accuracy"]), on="key", how="left")
    if "collapsed" not in df.columns or df["collapsed"].isna().any():
        from ..core.data import DATASET_SPECS

        chance = df["dataset"].map(lambda d: 100.0 / DATASET_SPECS[d].num_classes if d in DATASET_SPECS else 10.0)
        low = df[value].astype(float) <= chance + TRAJECTORY_RULE["near"]
        for name in ("collapsed", "unstable"):
            df[name] = df[name].fillna(low) if name in df.columns else low
    df["collapsed"], df["unstable"] = df["collapsed"].astype(bool), df["unstable"].astype(bool)
    return df.reset_index(drop=True)


# =========================================================================== verdicts
def _combine(verdicts: Iterable[str]) -> str:
    run = [v for v in verdicts if v != NOT_RUN]
    if not run:
        return NOT_RUN
    judged = [v for v in run if v != UNSTABLE]
    if not judged:
        return UNSTABLE
    if any(v == FAILS for v in judged):
        return FAILS
    return HOLDS if all(v == HOLDS for v in judged) else UNDECIDED


def _paper_cells() -> pd.DataFrame:
    ref = paper_table4().rename(columns={"accuracy_mean": "mean", "accuracy_std": "std"})
    ref["beta"] = ref["beta"].astype(float).round(6)
    return ref


def _lookup(cells: pd.DataFrame, dataset: str, partition: str, cell: Cell) -> tuple[float, float]:
    row = cells[(cells["dataset"] == dataset) & (cells["partition"] == partition) & (cells["attack"] == cell.attack)
                & (cells["aggregator"] == cell.aggregator) & np.isclose(cells["beta"], cell.beta)]
    if not len(row):
        return np.nan, np.nan
    return float(row.iloc[0]["mean"]), float(row.iloc[0]["std"])


def _variant(comparison: Comparison, alie: str) -> Comparison:
    swap = lambda c: Cell(alie, c.aggregator, c.beta) if c.attack == "alie" else c  # noqa: E731
    return Comparison(comparison.partition, swap(comparison.higher), swap(comparison.lower), comparison.margin,
                      comparison.kind)


def _describe(c: Comparison) -> tuple[str, str, str]:
    """(where, A, B): ``("IID CC τ=0.1 β=0", "no attack", "ROP")`` — what the two cells share, and
    what tells them apart."""
    from .paper import AGGREGATOR_LABELS, ATTACK_LABELS

    part = "IID" if c.partition == "iid" else f"Dir(α={c.partition.removeprefix('dirichlet')})"
    att = lambda x: ATTACK_LABELS.get(x.attack, x.attack)  # noqa: E731
    agg = lambda x: AGGREGATOR_LABELS.get(x.aggregator, x.aggregator)  # noqa: E731
    a, b = c.higher, c.lower
    if (a.aggregator, a.beta) == (b.aggregator, b.beta):
        return f"{part} {agg(a)} β={a.beta:g}", att(a), att(b)
    if (a.attack, a.beta) == (b.attack, b.beta):
        return f"{part} {att(a)} β={a.beta:g}", agg(a), agg(b)
    if (a.attack, a.aggregator) == (b.attack, b.aggregator):
        return f"{part} {att(a)} vs {agg(a)}", f"β={a.beta:g}", f"β={b.beta:g}"
    return part, a.text(), b.text()


def _fmt(mean: float, std: float) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.1f} ± {std:.1f}" if np.isfinite(std) else f"{mean:.1f}"


def _cell_runs(group: pd.DataFrame, partition: str, cell: Cell) -> pd.DataFrame:
    """The runs of one cell, indexed by seed."""
    rows = group[(group["partition"] == partition) & (group["attack"] == cell.attack)
                 & (group["aggregator"] == cell.aggregator) & np.isclose(group["beta"], cell.beta)]
    return rows.drop_duplicates("seed").set_index("seed").sort_index()


def _judge(comp: Comparison, a: pd.DataFrame, b: pd.DataFrame, baselines: list[pd.DataFrame], value: str,
           delta: float) -> dict:
    """The numbers and the verdict of one comparison (see :data:`RULE`)."""
    seeds = a.index.intersection(b.index)
    diffs = (a.loc[seeds, value].astype(float) - b.loc[seeds, value].astype(float)).to_numpy()
    pi = stats.paired_interval(diffs)
    k, n = int(b["collapsed"].sum()), len(b)
    c_lo, c_hi = stats.collapse_interval(k, n)
    unstable = [(int(x["unstable"].sum()), len(x)) for x in baselines if len(x)]
    row = {"n_higher": len(a), "n_lower": len(b), "n_paired": pi.n,
           "higher_mean": float(a[value].mean()) if len(a) else np.nan, "higher_std": stats.sample_std(a[value]),
           "lower_mean": float(b[value].mean()) if len(b) else np.nan, "lower_std": stats.sample_std(b[value]),
           "diff_mean": pi.mean, "diff_std": pi.std, "ci_low": pi.lo, "ci_high": pi.hi,
           "lower_collapsed": k, "collapse_low": c_lo, "collapse_high": c_hi,
           "higher_unstable": int(a["unstable"].sum()), "lower_unstable": int(b["unstable"].sum()),
           "baseline_unstable": "; ".join(f"{u}/{m}" for u, m in unstable), "seeds_needed": np.nan}
    if not len(a) or not len(b):
        row["verdict"] = NOT_RUN
    elif any(u for u, _ in unstable):
        row["verdict"] = UNSTABLE
    elif comp.kind == "collapse":
        row["verdict"] = stats.decide_rate(k, n)
        if row["verdict"] == UNDECIDED:
            row["seeds_needed"] = stats.seeds_needed_rate(k, n)
    else:
        row["verdict"] = stats.decide(pi.lo, pi.hi, comp.margin, delta)
        if row["verdict"] == UNDECIDED:
            row["seeds_needed"] = stats.seeds_needed(pi.mean, pi.std, comp.margin, delta)
    return row


def comparisons_table(results: pd.DataFrame, claims: Iterable[Claim] = CLAIMS, *, curves: pd.DataFrame | None = None,
                      value: str = "final_accuracy", delta: float = stats.DELTA) -> pd.DataFrame:
    """One row per claim, ALIE variant, data set, model, setting and comparison: both cells' mean ± sample
    std over seeds, the paired mean difference A − B with its 95 % interval over the ``n_paired`` seeds,
    the collapse count of B with its exact interval, the instability of the baselines, the verdict by
    :data:`RULE` and the seeds a decision would need; beside them the paper's Table IV cells and its
    unpaired verdict (the same data set when the paper has it, else the block :data:`PAPER_BLOCKS` names)."""
    runs = runs_frame(results, curves, value=value)
    theirs = _paper_cells()
    paper_pairs = set(zip(theirs["dataset"], theirs["partition"]))
    variants = [a for a in ALIE_VARIANTS if a in set(runs["attack"])] or ["alie"]
    rows = []
    for claim in claims:
        for alie in (variants if claim.about_alie else [None]):
            for (dataset, model, setting), group in runs.groupby(list(GROUP), sort=False):
                for comp in claim.comparisons:
                    c = _variant(comp, alie) if alie else comp
                    paper_dataset = dataset if (dataset, c.partition) in paper_pairs else \
                        PAPER_BLOCKS.get(c.partition, "")
                    a, b = _cell_runs(group, c.partition, c.higher), _cell_runs(group, c.partition, c.lower)
                    # the no-attack runs an attacked cell is measured against (none when both cells are
                    # no-attack runs: then their instability is what the claim is about)
                    base = [] if c.higher.attack == c.lower.attack == "none" else \
                        [Cell("none", x.aggregator, x.beta) for x in (c.higher, c.lower)]
                    baselines = [_cell_runs(group, c.partition, x) for x in dict.fromkeys(base)]
                    pa, psa = _lookup(theirs, paper_dataset, c.partition, comp.higher)
                    pb, psb = _lookup(theirs, paper_dataset, c.partition, comp.lower)
                    paper_gap = pa - pb - c.margin
                    where, label_a, label_b = _describe(c)
                    rows.append({
                        "claim": claim.id, "alie": ALIE_VARIANTS.get(alie, "") if alie else "", "dataset": dataset,
                        "model": model, "setting": setting, "partition": c.partition, "where": where,
                        "higher": label_a, "lower": label_b, "kind": c.kind, "margin": c.margin,
                        "higher_cell": f"{c.higher.attack}|{c.higher.aggregator}|{c.higher.beta:g}",
                        "lower_cell": f"{c.lower.attack}|{c.lower.aggregator}|{c.lower.beta:g}",
                        **_judge(c, a, b, baselines, value, delta),
                        "paper_dataset": paper_dataset, "paper_higher": _fmt(pa, psa), "paper_lower": _fmt(pb, psb),
                        "paper_gap": paper_gap,
                        "paper_verdict": stats.unpaired_verdict(paper_gap, float(np.sqrt((psa ** 2 + psb ** 2) / 2))),
                    })
    return pd.DataFrame(rows)


def _numbers(r: pd.Series) -> str:
    """``"IID CC τ=0.1 β=0: no attack vs ROP +6.4 [4.1, 8.7] (3 seeds)"`` for one comparison."""
    if r["verdict"] == NOT_RUN:
        return f"{r['where']}: not run"
    d = f"{r['diff_mean']:+.1f}" + (f" [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}]" if np.isfinite(r["ci_low"]) else "")
    text = f"{r['where']}: {r['higher']} vs {r['lower']} {d} ({r['n_paired']} seeds)"
    if r["kind"] == "collapse":
        text += f", {r['lower']} collapsed in {r['lower_collapsed']} of {r['n_lower']}"
    if r["verdict"] == UNSTABLE:
        text += f", baseline unstable in {r['baseline_unstable']} seeds"
    return text


def claims_table(results: pd.DataFrame, claims: Iterable[Claim] = CLAIMS, *, curves: pd.DataFrame | None = None,
                 value: str = "final_accuracy", delta: float = stats.DELTA,
                 detail: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per claim (per ALIE variant for the claims about ALIE) and data set, model and setting:
    byzlab's verdict by :data:`RULE`, how many comparisons hold / do not hold / are undecided / have an
    unstable baseline / were not run, the seeds the undecided ones would need, the numbers behind it
    (paired mean difference [95 % interval] per comparison) and the paper's numbers and unpaired verdict.
    ``detail``: a :func:`comparisons_table` already computed for the same claims."""
    claims = tuple(claims)
    if detail is None:
        detail = comparisons_table(results, claims, curves=curves, value=value, delta=delta)
    texts = {c.id: (c.text, c.source) for c in claims}
    rows = []
    for (claim, alie, dataset, model, setting), g in detail.groupby(["claim", "alie", *GROUP], sort=False):
        run = g[g["verdict"] != NOT_RUN]

        def paper_numbers(frame: pd.DataFrame) -> str:
            parts = []
            for _, r in frame.iterrows():
                if r["paper_higher"] == r["paper_lower"] == "–":
                    continue
                diff = r["paper_gap"] + r["margin"]
                gap = f" ({diff:+.1f})" if np.isfinite(diff) else ""
                parts.append(f"{r['where']}: {r['higher']} {r['paper_higher']} vs {r['lower']} {r['paper_lower']}{gap}")
            return "; ".join(parts) if parts else "–"

        undecided = g[g["verdict"] == UNDECIDED]
        rows.append({
            "claim": claim, "text": texts[claim][0], "alie": alie, "dataset": dataset, "model": model,
            "setting": setting, "verdict": _combine(g["verdict"]),
            **{v.replace(" ", "_"): int((g["verdict"] == v).sum()) for v in VERDICTS},
            "n_seeds": f"{int(run['n_paired'].min())}–{int(run['n_paired'].max())}" if len(run) and
            run["n_paired"].min() != run["n_paired"].max() else (str(int(run["n_paired"].min())) if len(run) else "0"),
            "seeds_needed": float(undecided["seeds_needed"].max()) if len(undecided) else np.nan,
            "byzlab": "; ".join(_numbers(r) for _, r in g.iterrows()),
            "paper_dataset": "/".join(dict.fromkeys(g.loc[(g["paper_higher"] != "–") | (g["paper_lower"] != "–"),
                                                          "paper_dataset"])) or "–",
            "paper_verdict": _combine(g["paper_verdict"].replace(INCONCLUSIVE, UNDECIDED)).replace(
                UNDECIDED, INCONCLUSIVE) if np.isfinite(g["paper_gap"]).any() else "no Table IV numbers",
            "paper": paper_numbers(g),
            "source": texts[claim][1],
        })
    return pd.DataFrame(rows)


def summary_table(table: pd.DataFrame) -> pd.DataFrame:
    """Per claim (and ALIE variant) and setting, across the models of a :func:`claims_table`: the verdict
    per model and one line, "holds on both" / "holds on one (mlp)" / "holds on neither" (of the models
    that judged it; a model where the claim was not run is named as such)."""
    rows = []
    table = table.assign(alie=table["alie"].fillna(""))
    for (claim, alie, setting), g in table.groupby(["claim", "alie", "setting"], sort=False):
        judged = g[g["verdict"] != NOT_RUN]
        holds = judged[judged["verdict"] == HOLDS]["model"].tolist()
        n = len(judged)
        if n == 0:
            line = "not run"
        elif n == 1:
            line = f"{judged['verdict'].iloc[0]} on the only model that ran it ({judged['model'].iloc[0]})"
        elif len(holds) == n:
            line = "holds on both" if n == 2 else f"holds on all {n}"
        elif holds:
            line = f"holds on one ({', '.join(holds)})" if len(holds) == 1 else f"holds on {', '.join(holds)}"
        else:
            line = "holds on neither" if n == 2 else "holds on none"
        rows.append({"claim": claim, "text": g["text"].iloc[0], "alie": alie, "setting": setting,
                     **{f"verdict_{m}": v for m, v in zip(g["model"], g["verdict"])}, "summary": line})
    return pd.DataFrame(rows)


# =========================================================================== inputs
def load_results(table: str | os.PathLike | None = None, *, profile: str = "quick", store=None,
                 experiments: Iterable[str] | None = None) -> pd.DataFrame:
    """The results table the claims are judged on.

    ``table``: a results table file (``results.csv`` of a sweep, or ``.parquet``).  None, with
    ``profile`` ``quick`` (the default) or ``showcase``: the committed showcase table
    (:data:`SHOWCASE_TABLE`) when it exists.  Otherwise the runs of ``profile`` from the results
    store (:func:`byzlab.analysis.paper.results`; computed there only for a profile marked
    ``compute_in_notebook``, e.g. ``quick``): its ``experiments`` (None: ``table4`` for ``quick``,
    every experiment with an attack the claims compare for the others), only the runs of the
    attacks the claims compare (for ``quick``, one seed, only β ∈ {0, 0.9}: a quick demonstration,
    every verdict undecided).  The frame's ``attrs["source"]`` says which.
    """
    return _load(table, profile, store, experiments)[0]


def load_results_and_curves(table: str | os.PathLike | None = None, *, profile: str = "quick", store=None,
                            experiments: Iterable[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """:func:`load_results` and the curves of its runs (the trajectories): the ``curves.csv`` beside a
    results table (None when there is none; the trajectories then fall back to the final accuracy), or the
    histories of the runs read from the store."""
    results, runs, path = _load(table, profile, store, experiments)
    if path is not None:
        try:
            return results, read_curves(path, results)
        except ConfigError:
            return results, None
    return results, curves_table(runs)


def _load(table, profile, store, experiments) -> tuple[pd.DataFrame, list, str | os.PathLike | None]:
    """(results table, the runs read from the store or [], the results table file or None)."""
    from .paper import get_profile, results, runs_table

    prof = get_profile(profile)
    if table is None and prof.name in ("quick", "showcase") and SHOWCASE_TABLE.exists():
        table = SHOWCASE_TABLE
    if table is not None:
        return read_results(table), [], table
    attacks = sorted({c.attack for claim in CLAIMS for comp in claim.comparisons
                      for c in (comp.higher, comp.lower)})  # only the runs the claims read
    if experiments is None:
        experiments = ("table4",) if prof.name == "quick" else \
            [name for name in prof.experiments if prof.configs(name, attack=attacks)]
    experiments = [name for name in experiments if name in prof.experiments]
    if not experiments:
        raise ConfigError(f"experiments: profile {prof.name!r} has no experiment the claims read")
    # quick (one seed: every verdict undecided, a demonstration): β ∈ {0, 0.9}, 48 runs of seconds
    betas = [0.0, 0.9] if prof.name == "quick" else None
    runs = {r.config.key(): r for name in experiments
            for r in results(prof, name, store=store, progress=False, attack=attacks, beta=betas)}
    df = runs_table(list(runs.values()))
    member = prof.membership()
    df["experiments"] = [";".join(member.get(k, ())) for k in df["key"]]
    df.attrs["source"] = f"profile {prof.name!r}, experiments {', '.join(experiments)} ({len(df)} runs)"
    return df, list(runs.values()), None
