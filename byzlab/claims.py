"""The qualitative claims of the paper's Section VII, as data, and byzlab's verdict on each.

Each :class:`Claim` is a sentence of the paper and the comparisons of Table IV cells that
test it: "ROP degrades CC at every τ and β" is, for each τ, β and partition, *the no-attack
run's accuracy is higher than ROP's*.  :func:`claims_table` computes a verdict per claim
from a tidy results table (one row per run: :func:`byzlab.tables.results_table`, or a
sweep's ``results.csv``) by the rule :data:`RULE`, never by hand, and puts the paper's own
numbers (``data_files/table4_paper.csv``) beside byzlab's.

>>> from byzlab import claims
>>> claims.claims_table(claims.load_results())  # doctest: +SKIP
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import ConfigError
from .tables import SHOWCASE_TABLE, in_experiment, paper_table4, read_results

__all__ = ["RULE", "Cell", "Comparison", "Claim", "CLAIMS", "SHOWCASE_TABLE", "PAPER_BLOCKS", "verdict",
           "comparisons_table", "claims_table", "load_results"]

#: how a verdict is reached; printed by the notebook and the README
RULE = (
    "Each comparison claims that cell A's final test accuracy exceeds cell B's by more than a margin "
    "(0 unless stated; \"ALIE is as strong as ROP\" allows 5 points). gap = mean(A) − mean(B) − margin, "
    "s = pooled std = √((s_A² + s_B²)/2), s the sample std over seeds. A comparison holds when "
    "gap > 2s, does not hold when gap < −2s, and is inconclusive otherwise, or when a cell has "
    "fewer than 2 seeds (no spread to judge by). A claim holds when every comparison whose cells "
    "were run holds, does not hold when any does not, and is inconclusive otherwise; \"not run\" "
    "when none of its cells is in the results. The paper's verdict applies the same rule to its "
    "Table IV mean ± std.")

#: byzlab partition -> the paper's Table IV block quoted beside data sets the paper did not use
#: (its CNN blocks: FMNIST IID, Fig. 4; MNIST Dirichlet(1), Fig. 7 — closest to mnist5k + cnn)
PAPER_BLOCKS = {"iid": "fmnist", "dirichlet1": "mnist"}

#: ALIE's two rows: the paper's z_max and the as-run z = 1.2 (README "Fidelity"); claims about
#: ALIE are judged for each one present
ALIE_VARIANTS = {"alie": "ALIE z_max", "alie_z1.2": "ALIE z=1.2 (as run)"}

HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"


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
    (a negative margin: "at most ``-margin`` points lower"), on ``partition``."""
    partition: str
    higher: Cell
    lower: Cell
    margin: float = 0.0


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
          _each(BOTH, ("tm", "rfa"), (0.0,), lambda p, a, b: Comparison(p, Cell("none", a, b), Cell("alie", a, b)))),
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
    Claim("cc_tau01_not_robust_noniid", "CC τ = 0.1 is not robust: with β = 0.99 on non-IID data it falls "
          "below CC τ = 1 even without an attack",
          "Sec. VII, Fig. 7 and last paragraph: \"τ = 0.1 is not robust when the data distribution is non-IID "
          "and worker momentum is employed\"",
          (Comparison("dirichlet1", Cell("none", "cc_tau1", 0.99), Cell("none", "cc_tau0.1", 0.99)),)),
)


# =========================================================================== verdicts
def verdict(gap: float, spread: float) -> str:
    """:data:`RULE` for one comparison: ``gap`` beyond ± 2 ``spread`` (NaN spread: inconclusive)."""
    if not np.isfinite(gap):
        return NOT_RUN
    if not np.isfinite(spread):
        return INCONCLUSIVE
    if gap > 2 * spread:
        return HOLDS
    if gap < -2 * spread:
        return FAILS
    return INCONCLUSIVE


def _combine(verdicts: Iterable[str]) -> str:
    run = [v for v in verdicts if v != NOT_RUN]
    if not run:
        return NOT_RUN
    if any(v == FAILS for v in run):
        return FAILS
    return HOLDS if all(v == HOLDS for v in run) else INCONCLUSIVE


def _cells(results: pd.DataFrame, value: str) -> pd.DataFrame:
    """mean, sample std and count of ``value`` over seeds per (dataset, partition, attack, aggregator, β)."""
    need = ["dataset", "partition", "attack", "aggregator", "beta", "seed", value]
    missing = [c for c in need if c not in results.columns]
    if missing:
        raise ConfigError(f"results: not a results table, it lacks columns {missing}")
    df = results.assign(beta=results["beta"].astype(float).round(6))
    keys = ["dataset", "partition", "attack", "aggregator", "beta"]
    if "cell" in df.columns:  # one config per cell: prefer Table IV's runs over e.g. Fig. 12's other λ
        several = df.groupby(keys)["cell"].transform("nunique") > 1
        if several.any() and "experiments" in df.columns:
            in_table4 = in_experiment(df, "table4")
            df = df[~several | in_table4]
        mixed = df.groupby(keys)["cell"].nunique()
        if (mixed > 1).any():
            cell = dict(zip(keys, mixed[mixed > 1].index[0]))
            raise ConfigError(f"results: the cell {cell} holds runs of several configs (not only seeds); "
                              "filter the table first")
    return (df.groupby(keys)[value].agg(mean="mean", std=lambda x: float(x.std(ddof=1)) if len(x) > 1 else np.nan,
                                        n="count").reset_index())


def _paper_cells() -> pd.DataFrame:
    ref = paper_table4().rename(columns={"accuracy_mean": "mean", "accuracy_std": "std"})
    ref["beta"] = ref["beta"].astype(float).round(6)
    return ref


def _lookup(cells: pd.DataFrame, dataset: str, partition: str, cell: Cell) -> tuple[float, float, int]:
    row = cells[(cells["dataset"] == dataset) & (cells["partition"] == partition) & (cells["attack"] == cell.attack)
                & (cells["aggregator"] == cell.aggregator) & np.isclose(cells["beta"], cell.beta)]
    if not len(row):
        return np.nan, np.nan, 0
    r = row.iloc[0]
    return float(r["mean"]), float(r["std"]), int(r.get("n", 0) or 0)


def _variant(comparison: Comparison, alie: str) -> Comparison:
    swap = lambda c: Cell(alie, c.aggregator, c.beta) if c.attack == "alie" else c  # noqa: E731
    return Comparison(comparison.partition, swap(comparison.higher), swap(comparison.lower), comparison.margin)


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


def comparisons_table(results: pd.DataFrame, claims: Iterable[Claim] = CLAIMS, *,
                      value: str = "final_accuracy") -> pd.DataFrame:
    """One row per claim, ALIE variant, data set and comparison: both cells' mean ± std over seeds,
    the gap, the pooled std, the verdict by :data:`RULE`, and the same for the paper's Table IV
    (the same data set when the paper has it, else the block :data:`PAPER_BLOCKS` names)."""
    if not isinstance(results, pd.DataFrame) or not len(results):
        raise ConfigError("results: an empty results table; run the profile first")
    ours, theirs = _cells(results, value), _paper_cells()
    paper_pairs = set(zip(theirs["dataset"], theirs["partition"]))
    variants = [a for a in ALIE_VARIANTS if a in set(ours["attack"])] or ["alie"]
    rows = []
    for claim in claims:
        for alie in (variants if claim.about_alie else [None]):
            for dataset in dict.fromkeys(ours["dataset"]):
                for comp in claim.comparisons:
                    c = _variant(comp, alie) if alie else comp
                    paper_dataset = dataset if (dataset, c.partition) in paper_pairs else \
                        PAPER_BLOCKS.get(c.partition, "")
                    ha, sa, na = _lookup(ours, dataset, c.partition, c.higher)
                    hb, sb, nb = _lookup(ours, dataset, c.partition, c.lower)
                    pa, psa, _ = _lookup(theirs, paper_dataset, c.partition, comp.higher)
                    pb, psb, _ = _lookup(theirs, paper_dataset, c.partition, comp.lower)
                    gap = ha - hb - c.margin
                    spread = float(np.sqrt((sa ** 2 + sb ** 2) / 2))
                    paper_gap = pa - pb - c.margin
                    where, label_a, label_b = _describe(c)
                    rows.append({
                        "claim": claim.id, "alie": ALIE_VARIANTS.get(alie, "") if alie else "", "dataset": dataset,
                        "partition": c.partition, "where": where, "higher": label_a, "lower": label_b,
                        "margin": c.margin, "higher_mean": ha, "higher_std": sa, "lower_mean": hb, "lower_std": sb,
                        "n_seeds": min(na, nb), "gap": gap, "pooled_std": spread, "verdict": verdict(gap, spread),
                        "paper_dataset": paper_dataset, "paper_higher": _fmt(pa, psa), "paper_lower": _fmt(pb, psb),
                        "paper_gap": paper_gap,
                        "paper_verdict": verdict(paper_gap, float(np.sqrt((psa ** 2 + psb ** 2) / 2))),
                    })
    return pd.DataFrame(rows)


def claims_table(results: pd.DataFrame, claims: Iterable[Claim] = CLAIMS, *,
                 value: str = "final_accuracy") -> pd.DataFrame:
    """One row per claim (per ALIE variant for the claims about ALIE, per data set): byzlab's verdict
    by :data:`RULE`, how many comparisons hold / do not hold / are inconclusive, the numbers behind
    it (``A ± s vs B ± s`` per comparison) and the paper's numbers and verdict by the same rule."""
    claims = tuple(claims)
    detail = comparisons_table(results, claims, value=value)
    texts = {c.id: (c.text, c.source) for c in claims}
    rows = []
    for (claim, alie, dataset), g in detail.groupby(["claim", "alie", "dataset"], sort=False):
        run = g[g["verdict"] != NOT_RUN]

        def numbers(frame: pd.DataFrame, paper: bool) -> str:
            parts = []
            for _, r in frame.iterrows():
                a = r["paper_higher"] if paper else _fmt(r["higher_mean"], r["higher_std"])
                b = r["paper_lower"] if paper else _fmt(r["lower_mean"], r["lower_std"])
                if paper and a == b == "–":
                    continue
                diff = (r["paper_gap"] if paper else r["gap"]) + r["margin"]  # A − B, points
                gap = f" ({diff:+.1f})" if np.isfinite(diff) else ""
                parts.append(f"{r['where']}: {r['higher']} {a} vs {r['lower']} {b}{gap}")
            return "; ".join(parts) if parts else "–"

        paper_run = g[(g["paper_higher"] != "–") | (g["paper_lower"] != "–")]
        rows.append({
            "claim": claim, "text": texts[claim][0], "alie": alie, "dataset": dataset,
            "verdict": _combine(g["verdict"]),
            "holds": int((g["verdict"] == HOLDS).sum()), "does_not_hold": int((g["verdict"] == FAILS).sum()),
            "inconclusive": int((g["verdict"] == INCONCLUSIVE).sum()), "not_run": int((g["verdict"] == NOT_RUN).sum()),
            "n_seeds": int(run["n_seeds"].min()) if len(run) else 0,
            "byzlab": numbers(run, paper=False),
            "paper_dataset": "/".join(dict.fromkeys(paper_run["paper_dataset"])) or "–",
            "paper_verdict": _combine(g["paper_verdict"]) if np.isfinite(g["paper_gap"]).any()
            else "no Table IV numbers",
            "paper": numbers(paper_run, paper=True),
            "source": texts[claim][1],
        })
    return pd.DataFrame(rows)


# =========================================================================== inputs
def load_results(table: str | os.PathLike | None = None, *, profile: str = "quick", store=None,
                 experiments: Iterable[str] | None = None) -> pd.DataFrame:
    """The results table the claims are judged on.

    ``table``: a results table file (``results.csv`` of a sweep, or ``.parquet``).  None, with
    ``profile`` ``quick`` (the default) or ``showcase``: the committed showcase table
    (:data:`SHOWCASE_TABLE`) when it exists.  Otherwise the runs of ``profile`` from the results
    store (:func:`byzlab.paper.results`; computed there only for a profile marked
    ``compute_in_notebook``, e.g. ``quick``): its ``experiments`` (None: ``table4`` for ``quick``,
    every experiment with an attack the claims compare for the others), only the runs of the
    attacks the claims compare (for ``quick``, one seed, only β ∈ {0, 0.9}: a quick demonstration,
    every verdict inconclusive).  The frame's ``attrs["source"]`` says which.
    """
    from .paper import get_profile, results, runs_table

    prof = get_profile(profile)
    if table is None and prof.name in ("quick", "showcase") and SHOWCASE_TABLE.exists():
        table = SHOWCASE_TABLE
    if table is not None:
        return read_results(table)
    attacks = sorted({c.attack for claim in CLAIMS for comp in claim.comparisons
                      for c in (comp.higher, comp.lower)})  # only the runs the claims read
    if experiments is None:
        experiments = ("table4",) if prof.name == "quick" else \
            [name for name in prof.experiments if prof.configs(name, attack=attacks)]
    experiments = [name for name in experiments if name in prof.experiments]
    if not experiments:
        raise ConfigError(f"experiments: profile {prof.name!r} has no experiment the claims read")
    # quick (one seed: every verdict inconclusive, a demonstration): β ∈ {0, 0.9}, 48 runs of seconds
    betas = [0.0, 0.9] if prof.name == "quick" else None
    runs = {r.config.key(): r for name in experiments
            for r in results(prof, name, store=store, progress=False, attack=attacks, beta=betas)}
    df = runs_table(list(runs.values()))
    member = prof.membership()
    df["experiments"] = [";".join(member.get(k, ())) for k in df["key"]]
    df.attrs["source"] = f"profile {prof.name!r}, experiments {', '.join(experiments)} ({len(df)} runs)"
    return df
