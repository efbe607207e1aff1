"""byzlab.analysis.claims: the paired rule, the trajectories and the unstable baselines on hand-made tables, one
branch at a time, each number against a hand computation and against scipy.stats called directly."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from byzlab.analysis import claims
from byzlab.core import stats
from byzlab.analysis.claims import Cell, Claim, Comparison
from byzlab.running.tables import trajectories


def table(cells: dict, *, dataset: str = "mnist5k", model: str = "cnn") -> pd.DataFrame:
    """{(partition, attack, aggregator, beta): [accuracy of seed 0, 1, …]} -> a results table, one row per seed."""
    rows = []
    for (partition, attack, aggregator, beta), values in cells.items():
        for seed, acc in enumerate(values):
            rows.append({"key": f"{partition}-{attack}-{aggregator}-{beta}-{seed}", "dataset": dataset,
                         "model": model, "partition": partition, "attack": attack, "aggregator": aggregator,
                         "beta": beta, "seed": seed, "final_accuracy": acc})
    return pd.DataFrame(rows)


def curves_of(results: pd.DataFrame, shapes: dict | None = None) -> pd.DataFrame:
    """Ten evaluations per run (rounds 10 … 100) climbing to its final accuracy, or ``shapes[key]``."""
    shapes = shapes or {}
    rows = []
    for key, final in zip(results["key"], results["final_accuracy"]):
        accs = shapes.get(key, list(np.linspace(20.0, final, 10)))
        rows += [{"key": key, "round": 10 * (i + 1), "test_accuracy": a} for i, a in enumerate(accs)]
    return pd.DataFrame(rows)


ONE = Claim("one", "no attack beats ROP against CC τ = 0.1 at β = 0", "test",
            (Comparison("iid", Cell("none", "cc_tau0.1", 0.0), Cell("rop", "cc_tau0.1", 0.0)),))
TWO = Claim("two", "ROP hurts CC τ = 0.1 at β = 0 and 0.9", "test", tuple(
    Comparison("iid", Cell("none", "cc_tau0.1", b), Cell("rop", "cc_tau0.1", b)) for b in (0.0, 0.9)))


def one(none: list, rop: list, claim: Claim = ONE, **kw) -> pd.Series:
    df = table({("iid", "none", "cc_tau0.1", 0.0): none, ("iid", "rop", "cc_tau0.1", 0.0): rop})
    return claims.comparisons_table(df, [claim], curves=curves_of(df), **kw).iloc[0]


# --------------------------------------------------------------------------- trajectories
def test_trajectories_by_hand():
    shapes = {"collapse": [10, 50, 90, 12, 14, 90, 95, 60, 94, 96],   # 12, 14 ≤ 10 + 5 twice after round 20
              "swing": [10, 40, 80, 85, 60, 88, 90, 91, 92, 93],     # 85 -> 60: a 25-point drop
              "once": [10, 50, 80, 14, 80, 85, 86, 87, 88, 89],      # near chance once: no collapse
              "warmup": [10, 11, 50, 60, 70, 80, 85, 86, 87, 88],    # at chance only in the warm-up
              "steady": [20, 40, 60, 70, 80, 85, 88, 89, 90, 91]}
    curves = pd.DataFrame([{"key": k, "round": 10 * (i + 1), "test_accuracy": a}
                           for k, accs in shapes.items() for i, a in enumerate(accs)])
    t = trajectories(curves).set_index("key")
    assert t.loc["collapse", ["final_accuracy", "best_accuracy", "lowest_after_warmup", "max_drop"]].tolist() == \
        [96, 96, 12, 78]
    assert t["collapsed"].to_dict() == {"collapse": True, "swing": False, "once": False, "warmup": False,
                                        "steady": False}
    assert t.loc["swing", "max_drop"] == 25 and t.loc["once", "max_drop"] == 66
    assert t["oscillates"].to_dict() == {"collapse": False, "swing": True, "once": True, "warmup": False,
                                         "steady": False}
    assert t["unstable"].to_dict() == {"collapse": True, "swing": True, "once": True, "warmup": False,
                                       "steady": False}
    assert trajectories(curves, drop=30.0).loc[lambda d: d["key"] == "swing", "unstable"].item() is False
    assert trajectories(curves, consecutive=1).set_index("key").loc["once", "collapsed"]
    with pytest.raises(ValueError, match="^warmup: "):
        trajectories(curves, warmup=1.0)
    with pytest.raises(ValueError, match="^curves: not a curves table"):
        trajectories(curves.drop(columns="round"))


# --------------------------------------------------------------------------- the paired rule
def test_holds_on_paired_seeds_by_hand_and_by_scipy():
    none, rop = [96.0, 95.0, 97.0], [86.0, 86.0, 88.0]
    row = one(none, rop)
    # diffs 10, 9, 9: mean 9.333, sample std 0.5774, t_{0.975,2} = 4.3027: half-width 1.434
    assert row["diff_mean"] == pytest.approx(28 / 3) and row["diff_std"] == pytest.approx(math.sqrt(1 / 3))
    half = 4.302652729911275 * math.sqrt(1 / 3) / math.sqrt(3)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(28 / 3 - half), pytest.approx(28 / 3 + half))
    ci = st.ttest_rel(none, rop).confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert (row["verdict"], row["n_paired"], row["higher_std"]) == ("holds", 3, pytest.approx(1.0))
    assert math.isnan(row["seeds_needed"])


def test_does_not_hold_when_any_advantage_is_below_delta():
    row = one([96.0, 95.0, 97.0, 96.5], [96.1, 95.2, 96.9, 96.4])  # diffs −0.1, −0.2, 0.1, 0.1
    ci = st.ttest_rel([96.0, 95.0, 97.0, 96.5], [96.1, 95.2, 96.9, 96.4]).confidence_interval(0.95)
    assert row["ci_high"] == pytest.approx(ci.high) and ci.high < 1.0 and ci.low < 0
    assert row["verdict"] == "does not hold"
    assert one([96.0, 95.0, 97.0, 96.5], [96.1, 95.2, 96.9, 96.4], delta=0.1)["verdict"] == "undecided"


def test_undecided_states_the_seeds_a_decision_needs():
    row = one([99.0, 95.0, 100.0], [96.0, 96.0, 95.0])  # diffs 3, −1, 5: mean 2.33, sd 3.06
    assert row["verdict"] == "undecided"
    sd = float(np.std([3.0, -1.0, 5.0], ddof=1))
    # a plain search: the first n whose t interval at this mean and sd clears 0 (the nearer bound)
    n = next(k for k in range(2, 100) if st.t.ppf(0.975, k - 1) * sd / math.sqrt(k) < 7 / 3)
    assert row["seeds_needed"] == n == stats.seeds_needed(7 / 3, sd)
    single = one([99.0], [96.0])  # one seed: no interval, no estimate
    assert (single["verdict"], single["n_paired"]) == ("undecided", 1) and math.isnan(single["seeds_needed"])


def test_paired_decides_where_the_unpaired_rule_cannot():
    """A common seed effect (seeds at 90, 70, 80) hides a constant 2-point gap from the unpaired rule."""
    a, b = [90.0, 70.0, 80.0], [88.0, 68.0, 78.0]
    row = one(a, b)
    assert (row["diff_mean"], row["ci_low"], row["ci_high"], row["verdict"]) == (2.0, 2.0, 2.0, "holds")
    pooled = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)  # 10
    assert stats.unpaired_verdict(np.mean(a) - np.mean(b), pooled) == "inconclusive"
    # only the seeds both cells ran are paired
    df = table({("iid", "none", "cc_tau0.1", 0.0): a, ("iid", "rop", "cc_tau0.1", 0.0): b})
    df = df[~((df["attack"] == "none") & (df["seed"] == 0)) & ~((df["attack"] == "rop") & (df["seed"] == 2))]
    assert claims.comparisons_table(df, [ONE]).iloc[0]["n_paired"] == 1


# --------------------------------------------------------------------------- collapse counts
def _alie_table(collapsed: int, n: int):
    claim = next(c for c in claims.CLAIMS if c.id == "alie_breaks_tm_rfa_at_beta0")
    df = table({("iid", "none", "tm", 0.0): [96.0] * n, ("iid", "alie", "tm", 0.0): [80.0] * n})
    down = [10, 40, 80, 11, 12, 13, 50, 70, 78, 80]  # at chance at rounds 40-60, back to 80 at the end
    shapes = {f"iid-alie-tm-0.0-{s}": down for s in range(collapsed)}
    return claims.comparisons_table(df, [claim], curves=curves_of(df, shapes)).iloc[0]


def test_divergence_is_judged_by_collapse_counts_with_the_exact_interval():
    row = _alie_table(6, 6)  # 6 of 6 collapsed (and recovered): lower bound 0.025^(1/6) = 0.54 > 1/2
    ci = st.binomtest(6, 6).proportion_ci(0.95, method="exact")
    assert (row["lower_collapsed"], row["n_lower"]) == (6, 6)
    assert (row["collapse_low"], row["collapse_high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert row["collapse_low"] == pytest.approx(0.025 ** (1 / 6)) and row["verdict"] == "holds"
    assert row["diff_mean"] == 16.0  # the final accuracy beside it: the runs recovered
    half = _alie_table(3, 6)
    assert (half["verdict"], half["seeds_needed"]) == ("undecided", math.inf)
    assert _alie_table(0, 6)["verdict"] == "does not hold"  # upper bound 1 − 0.025^(1/6) = 0.46 < 1/2
    few = _alie_table(2, 2)
    assert (few["verdict"], few["seeds_needed"]) == ("undecided", 6)


# --------------------------------------------------------------------------- unstable baselines
def test_an_unstable_baseline_is_its_own_verdict():
    df = table({("dirichlet1", "none", "cc_tau0.1", 0.9): [40.0, 36.0, 45.0],
                ("dirichlet1", "rop", "cc_tau0.1", 0.9): [44.0, 50.0, 52.0],
                ("dirichlet1", "none", "cc_tau1", 0.9): [96.0, 95.0, 96.0]})
    swing = [20, 60, 72, 30, 70, 25, 60, 40, 45, 40]  # 72 -> 25 after the warm-up
    shapes = {f"dirichlet1-none-cc_tau0.1-0.9-{s}": swing for s in range(3)}
    rop_cc = next(c for c in claims.CLAIMS if c.id == "rop_degrades_cc")
    tau01 = next(c for c in claims.CLAIMS if c.id == "cc_tau01_not_robust_noniid")
    d = claims.comparisons_table(df, [rop_cc, tau01], curves=curves_of(df, shapes))
    row = d[(d["claim"] == "rop_degrades_cc") & (d["where"] == "Dir(α=1) CC τ=0.1 β=0.9")].iloc[0]
    assert (row["verdict"], row["baseline_unstable"]) == ("baseline unstable", "3/3")
    # the claim that τ = 0.1 is not robust is about that very baseline: judged by the paired rule
    row = d[(d["claim"] == "cc_tau01_not_robust_noniid") & (d["where"] == "Dir(α=1) no attack β=0.9")].iloc[0]
    assert (row["verdict"], row["lower_unstable"], row["baseline_unstable"]) == ("holds", 3, "")
    t = claims.claims_table(df, [rop_cc], curves=curves_of(df, shapes))
    assert t.iloc[0]["verdict"] == "baseline unstable" and t.iloc[0]["baseline_unstable"] == 1
    # without curves the final accuracy stands in: a run ending at most 5 points above chance collapsed
    assert claims.comparisons_table(df.assign(final_accuracy=12.0), [rop_cc]).query(
        "where == 'Dir(α=1) CC τ=0.1 β=0.9'").iloc[0]["verdict"] == "baseline unstable"


# --------------------------------------------------------------------------- claims and summaries
def test_a_claim_combines_its_comparisons():
    base = {("iid", "none", "cc_tau0.1", 0.0): [96.0, 95.0, 97.0], ("iid", "rop", "cc_tau0.1", 0.0): [86.0, 86.0, 88.0]}
    holds = {("iid", "none", "cc_tau0.1", 0.9): [97.0, 96.0, 96.0], ("iid", "rop", "cc_tau0.1", 0.9): [90.0, 90.0, 91.0]}
    fails = {("iid", "none", "cc_tau0.1", 0.9): [90.0, 91.0, 92.0], ("iid", "rop", "cc_tau0.1", 0.9): [97.0, 97.0, 97.0]}
    unsure = {("iid", "none", "cc_tau0.1", 0.9): [97.0, 90.0, 96.0], ("iid", "rop", "cc_tau0.1", 0.9): [96.0, 96.0, 92.0]}
    verdict = lambda cells: claims.claims_table(table(cells), [TWO]).iloc[0]["verdict"]  # noqa: E731
    assert verdict({**base, **holds}) == "holds"
    assert verdict({**base, **fails}) == "does not hold"  # any comparison that fails
    assert verdict({**base, **unsure}) == "undecided"
    row = claims.claims_table(table(base), [TWO]).iloc[0]  # β = 0.9 not run: judged on what was run
    assert (row["verdict"], row["holds"], row["not_run"], row["n_seeds"]) == ("holds", 1, 1, "3")
    other = table({("iid", "alie", "tm", 0.0): [50.0, 51.0]})
    assert claims.claims_table(other, [TWO]).iloc[0]["verdict"] == "not run"


def test_a_margin_claim_allows_the_stated_points():
    """"ALIE is as strong as ROP (at most 5 points weaker)": ROP − ALIE > −5."""
    claim = next(c for c in claims.CLAIMS if c.id == "alie_matches_rop_noniid")
    cells = {("dirichlet1", a, agg, 0.0): [m, m + 1, m - 1] for agg in ("cc_tau0.1", "cc_tau1", "rfa", "tm")
             for a, m in (("rop", 80.0), ("alie", 83.0))}  # ALIE 3 points weaker: −3 > −5
    assert claims.claims_table(table(cells), [claim]).iloc[0]["verdict"] == "holds"
    cells = {k: ([90.0, 91.0, 89.0] if k[1] == "alie" else v) for k, v in cells.items()}  # 10 weaker: hi −10 < −4
    assert claims.claims_table(table(cells), [claim]).iloc[0]["verdict"] == "does not hold"


def test_claims_about_alie_are_judged_for_each_alie_and_the_paper_keeps_the_unpaired_rule():
    claim = next(c for c in claims.CLAIMS if c.id == "rop_strongest_vs_cc_iid")
    cells = {("iid", a, "cc_tau1", b): [m, m + 0.5, m - 0.5] for b in (0.9, 0.99)
             for a, m in (("alie", 90.0), ("alie_z1.2", 80.0), ("rop", 85.0))}
    t = claims.claims_table(table(cells), [claim])
    assert list(t["alie"]) == ["ALIE z_max", "ALIE z=1.2 (as run)"]
    assert list(t["verdict"]) == ["holds", "does not hold"]
    # FMNIST IID, CC τ=1 (Table IV mean ± std): β=0.9 ALIE 90.55 ± 0.18 vs ROP 79.31 ± 7.76: gap 11.24 > 2s = 10.98;
    # β=0.99 ALIE 90.71 ± 0.2 vs ROP 83.8 ± 1.7: 6.9 > 2.4 — the unpaired rule on the paper's numbers
    assert list(t["paper_verdict"]) == ["holds", "holds"]
    assert t.iloc[0]["paper"].startswith("IID CC τ=1 β=0.9: ALIE 90.5 ± 0.2 vs ROP ")
    d = claims.comparisons_table(table(cells), [claim])
    gap, s = 90.55 - 79.31, math.sqrt((0.18 ** 2 + 7.76 ** 2) / 2)
    assert stats.unpaired_verdict(gap, s) == "holds" and d.iloc[0]["paper_gap"] == pytest.approx(gap)


def test_summary_across_models():
    cells = {("iid", "none", "cc_tau0.1", 0.0): [96.0, 95.0, 97.0], ("iid", "rop", "cc_tau0.1", 0.0): [86.0, 86.0, 88.0]}
    weak = {("iid", "none", "cc_tau0.1", 0.0): [96.0, 95.0, 97.0], ("iid", "rop", "cc_tau0.1", 0.0): [96.0, 95.2, 96.8]}
    both = pd.concat([table(cells, model="mlp"), table(cells, model="cnn")])
    one_ = pd.concat([table(cells, model="mlp"), table(weak, model="cnn")])
    assert claims.summary_table(claims.claims_table(both, [ONE])).iloc[0]["summary"] == "holds on both"
    s = claims.summary_table(claims.claims_table(one_, [ONE])).iloc[0]
    assert (s["summary"], s["verdict_mlp"], s["verdict_cnn"]) == ("holds on one (mlp)", "holds", "does not hold")
    neither = pd.concat([table(weak, model="mlp"), table(weak, model="cnn")])
    assert claims.summary_table(claims.claims_table(neither, [ONE])).iloc[0]["summary"] == "holds on neither"


def test_one_config_per_cell_and_bad_tables():
    df = table({("iid", "none", "cc_tau0.1", 0.0): [95.5, 96.5], ("iid", "rop", "cc_tau0.1", 0.0): [85.5, 86.5]})
    df["cell"] = ["a", "a", "b", "b"]
    df["experiments"] = ["table4"] * 4
    extra = df.iloc[2:].assign(cell="c", experiments="fig12", final_accuracy=10.0)  # Fig. 12's other λ
    assert claims.comparisons_table(pd.concat([df, extra]), [ONE]).iloc[0]["diff_mean"] == 10.0
    with pytest.raises(ValueError, match="^results: the cell .* holds runs of several configs"):
        claims.claims_table(pd.concat([df, extra.assign(experiments="table4")]), [ONE])
    with pytest.raises(ValueError, match="^results: not a results table"):
        claims.claims_table(df.drop(columns="seed"), [ONE])
    with pytest.raises(ValueError, match="^results: an empty results table"):
        claims.claims_table(df.iloc[:0], [ONE])


def test_settings_are_told_apart():
    assert claims.setting_label(500, 0.1, 0.75) == "500 rounds, η ×0.1 at round 375"
    assert claims.setting_label(300, 0.1, 1.0) == "300 rounds, constant η"
    assert claims.setting_label(300) == "300 rounds"
    df = table({("iid", "none", "cc_tau0.1", 0.0): [96.0, 95.0, 97.0], ("iid", "rop", "cc_tau0.1", 0.0): [86.0, 86.0, 88.0]})
    both = pd.concat([df.assign(rounds=500, lr_decay=0.1, lr_decay_at=0.75),
                      df.assign(rounds=300, lr_decay=0.1, lr_decay_at=1.0, final_accuracy=90.0)])
    d = claims.comparisons_table(both, [ONE])
    assert d["setting"].tolist() == ["500 rounds, η ×0.1 at round 375", "300 rounds, constant η"]
    assert d["verdict"].tolist() == ["holds", "does not hold"]


def test_every_claim_is_data_and_names_cells_of_the_showcase_profile():
    from byzlab.running.experiments import load_profile
    from byzlab.running.tables import aggregator_label, attack_label, partition_label

    prof = load_profile("showcase")
    have = {(partition_label(c), attack_label(c), aggregator_label(c), round(c.beta, 6)) for c in prof.configs()}
    assert len(claims.CLAIMS) == len({c.id for c in claims.CLAIMS}) == 8
    for claim in claims.CLAIMS:
        complete = 0
        for comp in claim.comparisons:
            cells = [(comp.partition, c.attack, c.aggregator, c.beta) for c in (comp.higher, comp.lower)]
            # β < 0.99 everywhere; β = 0.99 only where it trains in 300 rounds (the rest: "not run")
            assert all(c in have for c in cells if c[3] < 0.99), (claim.id, cells)
            complete += all(c in have for c in cells)
        assert complete, claim.id
    assert prof.compute_in_notebook is False and len(prof.configs()) == 144
    # the claims profiles: the showcase's cells in both settings (the mlp without ROP-S: its mask, the first
    # and last layers, is the whole 2-layer mlp, so ROP-S would be ROP)
    for name, want in (("claims_mlp", {c for c in have if c[1] != "rop_s"}), ("claims_cnn", have)):
        cells = {(partition_label(c), attack_label(c), aggregator_label(c), round(c.beta, 6), c.lr_decay_at)
                 for c in load_profile(name).configs()}
        assert {x[:4] for x in cells} == want and {x[4] for x in cells} == {0.75, 1.0}
    showcase_keys = {c.key() for c in prof.configs()}
    assert showcase_keys <= {c.key() for c in load_profile("claims_cnn").configs()}


def test_showcase_outputs_draw_from_the_committed_tables_alone(tmp_path):
    """The README's showcase figures and claims come from results.csv + curves.csv, no store or training."""
    from byzlab.analysis import showcase

    cells = {("iid", "none", "cc_tau0.1", 0.0): [94.5, 95.5], ("iid", "rop", "cc_tau0.1", 0.0): [79.5, 80.5],
             ("iid", "alie", "tm", 0.0): [59.0, 61.0], ("iid", "none", "tm", 0.0): [95.5, 96.5]}
    results = table(cells)
    results["key"] = [f"{i:016x}" for i in range(len(results))]
    results["experiments"] = "table4"
    results["mean_cos_ref_benign"], results["mean_cos_ref_byz"] = 0.5, -0.2
    results["mean_cos_delta"], results["tau"] = 0.9, [0.1 if a.startswith("cc") else np.nan
                                                      for a in results["aggregator"]]
    results.to_csv(tmp_path / "results.csv", index=False)
    curves = pd.DataFrame([{"key": k, "round": r, "epoch": r / 5, "test_accuracy": acc * r / 10,
                            "train_loss": 2.0 / r} for k, acc in zip(results["key"], results["final_accuracy"])
                           for r in (5, 10)])
    curves.to_csv(tmp_path / "curves.csv", index=False)

    written = {p.name for p in showcase.draw(tmp_path)}
    assert {"figs4-9_accuracy_mnist5k_iid.html", "figs10-11_train_loss_mnist5k_iid.html",
            "table4_mnist5k_iid.html", "claims.md"} <= written
    md = (tmp_path / "claims.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| ") and "**" in line and "`" not in line]
    assert len(rows) == 8  # 8 claims; ALIE only at z_max here
    rop_cc = next(line for line in rows if line.startswith("| ROP degrades CC at every τ and β |"))
    # 95 ± 0.7 vs 80 ± 0.7, the same 15-point gap on both seeds: holds; its 11 other cells are not run
    assert "**holds**" in rop_cc and "| 1 / 0 / 0 / 0 / 11 |" in rop_cc
    assert "| `rop_degrades_cc` | – | IID CC τ=0.1 β=0 | no attack vs ROP | 2 | +15.0 [+15.0, +15.0] |" in md
    with pytest.raises(claims.ConfigError, match="results.csv not found"):
        showcase.load(tmp_path / "elsewhere")


def test_showcase_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from byzlab.analysis import showcase

    assert showcase.main(["--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byzlab showcase: error: folder: ") and "results.csv not found" in err and "\n" not in err
    with pytest.raises(SystemExit) as exit_:
        showcase.main(["--seeds", "0,x"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_.value.code == 2 and err.endswith("argument --seeds: expected comma-separated integers >= 0, got '0,x'")
    assert showcase.main(["--store", str(tmp_path / "empty"), "--seeds", "2", "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.startswith("byzlab showcase: error: store: no run of the showcase profile in ")


def _results_on_disk(folder, rows):
    """A results.csv + curves.csv pair with the given (attack, aggregator, partition, beta, seed, accuracy)."""
    results = pd.DataFrame([{"key": f"{i:016x}", "experiments": "table4" if i else "table4;fig3", "cell": f"c{i}",
                             "dataset": "mnist5k", "partition": p, "attack": a, "aggregator": g, "beta": b,
                             "seed": s, "epochs": 60, "final_accuracy": acc}
                            for i, (a, g, p, b, s, acc) in enumerate(rows)])
    results.to_csv(folder / "results.csv", index=False)
    pd.DataFrame([{"key": k, "round": r, "epoch": r / 5, "test_accuracy": r, "train_loss": 1 / r}
                  for k in results["key"] for r in (5, 10, 15)]).to_csv(folder / "curves.csv", index=False)
    return folder / "results.csv"


def test_frames_read_a_results_table_and_filter_it_as_the_store_filters_configs(tmp_path):
    """paper.frames on a table: the same filters as on configs (attack="alie" is both z; "rop" is not ROP-S),
    the curves of exactly the kept runs, and nothing trained (no store is opened)."""
    from byzlab.analysis import paper

    path = _results_on_disk(tmp_path, [
        ("rop", "cc_tau0.1", "iid", 0.0, 0, 80.0), ("rop_s", "cc_tau0.1", "iid", 0.0, 0, 70.0),
        ("alie", "tm", "iid", 0.9, 0, 90.0), ("alie_z1.2", "tm", "dirichlet1", 0.9, 1, 10.0),
        ("none", "cc_tau1", "dirichlet1", 0.0, 0, 96.0), ("none", "tm", "iid", 0.99, 1, 95.0)])
    results, curves = paper.frames("quick", "table4", table=path, store=tmp_path / "no-store", attack="alie")
    assert sorted(results["attack"]) == ["alie", "alie_z1.2"] and len(curves) == 2 * 3
    assert set(curves["key"]) == set(results["key"]) and {"attack", "beta", "seed"} <= set(curves.columns)
    rows, none = paper.frames("quick", table=path, curves_too=False, attack="rop")
    assert list(rows["attack"]) == ["rop"] and none is None
    assert list(paper.frames("quick", table=path, curves_too=False, aggregator="cc")[0]["aggregator"]) == \
        ["cc_tau0.1", "cc_tau0.1", "cc_tau1"]
    assert list(paper.frames("quick", table=path, curves_too=False, partition="dirichlet")[0]["final_accuracy"]) == \
        [10.0, 96.0]
    assert list(paper.frames("quick", table=path, curves_too=False, beta=0.9, seed=[1])[0]["attack"]) == ["alie_z1.2"]
    assert list(paper.frames("quick", "fig3", table=path, curves_too=False)[0]["attack"]) == ["rop"]
    # the notebooks' tables from it: Table IV's mean over seeds of a cell, by hand
    t4 = paper.table4(paper.frames("quick", table=path, curves_too=False, attack="none")[0])
    assert list(t4["accuracy_mean"]) == [96.0, 95.0]
    assert not (tmp_path / "no-store").exists()
    assert paper.final_table(results, index="aggregator", columns="attack").loc["tm", "alie_z1.2"] == 10.0


def test_frames_bad_filters_and_missing_curves_are_one_line_errors(tmp_path):
    from byzlab.analysis import paper
    from byzlab.core.errors import ConfigError

    path = _results_on_disk(tmp_path, [("rop", "cc_tau0.1", "iid", 0.0, 0, 80.0)])
    with pytest.raises(ConfigError, match=r"^filters: no run has attack='ipm' \(the table has \['rop'\]\)$"):
        paper.frames("quick", table=path, attack="ipm")
    with pytest.raises(ConfigError, match="^filters: the results table has no column 'colour'$"):
        paper.frames("quick", table=path, colour="red")
    with pytest.raises(ConfigError, match="^experiment: no run of 'fig12' in this results table$"):
        paper.frames("quick", "fig12", table=path)
    with pytest.raises(ConfigError, match="^table: file not found: "):
        paper.frames("quick", table=tmp_path / "nope.csv")
    (tmp_path / "curves.csv").unlink()
    with pytest.raises(ConfigError, match="^table: no curves.csv beside "):
        paper.frames("quick", table=path)
    assert len(paper.frames("quick", table=path, curves_too=False)[0]) == 1
    pd.DataFrame({"x": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(ConfigError, match=r"^table: .*other.csv is not a results table, it lacks columns"):
        paper.frames("quick", table=tmp_path / "other.csv")


def test_the_showcase_notebooks_render_the_committed_table(tmp_path):
    """profile "showcase" with no table: the committed results.csv + curves.csv; Table IV's cells agree with
    a plain mean over the csv rows, read with the csv module."""
    import csv

    from byzlab.analysis import paper
    from byzlab.running.tables import SHOWCASE_TABLE

    if not SHOWCASE_TABLE.exists():
        pytest.skip("no committed showcase table in this checkout")
    results, curves = paper.frames("showcase", "table4", store=tmp_path / "no-store", partition="iid")
    with SHOWCASE_TABLE.open() as f:
        rows = [r for r in csv.DictReader(f) if "table4" in r["experiments"].split(";") and r["partition"] == "iid"]
    assert len(results) == len(rows) and set(results["key"]) == {r["key"] for r in rows}
    t4 = paper.table4(results).set_index(["attack", "aggregator", "beta"])
    for (attack, aggregator, beta), got in t4["accuracy_mean"].items():
        accs = [float(r["final_accuracy"]) for r in rows
                if (r["attack"], r["aggregator"], round(float(r["beta"]), 6)) == (attack, aggregator, beta)]
        assert got == pytest.approx(sum(accs) / len(accs), abs=1e-9)
    last = curves.sort_values("round").groupby("key")["test_accuracy"].last()
    assert np.allclose(last.loc[results["key"]].to_numpy(), results["final_accuracy"].to_numpy(), atol=1e-4)
    assert not (tmp_path / "no-store").exists()


def test_a_results_table_without_the_knob_columns_gets_them_from_the_rule_parameters(tmp_path):
    """Tables written before tau/z/lam were columns: tau from aggregator.tau, z and lam from ROP's attack.z/lam only."""
    from byzlab.running.tables import read_results

    path = _results_on_disk(tmp_path, [("rop", "cc_tau0.1", "iid", 0.0, 0, 80.0), ("alie_z1.2", "tm", "iid", 0.0, 0, 9.0)])
    df = pd.read_csv(path)
    df["aggregator.tau"], df["attack.z"], df["attack.lam"] = [0.1, np.nan], [1.0, 1.2], [0.9, np.nan]
    df.to_csv(path, index=False)
    got = read_results(path)
    assert got["tau"].tolist()[0] == 0.1 and np.isnan(got["tau"].tolist()[1])
    assert got["z"].tolist()[0] == 1.0 and np.isnan(got["z"].tolist()[1])  # ALIE's z is in its label, not here
    assert got["lam"].tolist()[0] == 0.9 and got["beta"].dtype == float


def test_frames_from_the_store_compute_the_missing_runs_and_label_their_curves(tmp_path):
    """paper.frames with no table: the profile's runs from the store (computed, for a compute_in_notebook
    profile), one curve row per evaluation (digits, k = 10, b = 16: 1,437 // 10 // 16 = 8 rounds an
    epoch, 2 epochs, one evaluation an epoch), the last one the run's final accuracy."""
    from byzlab.analysis import paper

    prof = tmp_path / "tiny.yaml"
    prof.write_text("name: tiny\nseeds: [0]\ncompute_in_notebook: true\n"
                    "base: {dataset: digits, k: 10, k_m: 2, b: 16, epochs: 2, lr: 0.1}\n"
                    "experiments:\n  table4:\n    grid:\n      attack: [rop, none]\n"
                    "      aggregator: [{aggregator: cc, tau: 1.0}]\n      beta: [0.9]\n")
    rows, curves = paper.frames(prof, "table4", store=tmp_path / "store", attack="rop")
    assert list(rows["attack"]) == ["rop"] and rows["tau"].tolist() == [1.0] and rows["z"].tolist() == [1.0]
    assert curves["round"].tolist() == [8, 16] and set(curves["attack"]) == {"rop"}
    assert curves["test_accuracy"].iloc[-1] == pytest.approx(rows["final_accuracy"].iloc[0])
    assert (tmp_path / "store").exists()
    assert paper.frames(prof, "table4", store=tmp_path / "store", curves_too=False)[1] is None


TINY = """name: tiny_claims
seeds: [0, 1]
base: {dataset: digits, k: 10, k_m: 2, b: 16, epochs: 2, lr: 0.1, lr_decay_at: 1.0}
experiments:
  table4:
    grid:
      attack: [none, rop]
      aggregator: [{aggregator: cc, tau: 0.1}, {aggregator: tm}]
      beta: [0.0]
"""


def test_claims_command_adds_seeds_only_to_the_undecided_comparisons(tmp_path, capsys):
    """byzlab claims: the profile's 2 seeds through the sweep, then --until-decided runs a third seed for
    exactly the cells of the comparisons undecided at 2 seeds (a rerun computes nothing: the same store)."""
    from byzlab.cli import main

    prof = tmp_path / "tiny.yaml"
    prof.write_text(TINY)
    out = tmp_path / "out"
    common = ["claims", "--profile", str(prof), "--out", str(out), "--workers", "0", "-q"]
    assert main(common) == 0
    first = pd.read_csv(out / "claims" / "comparisons.csv", keep_default_na=False, na_values=[""])
    judged = first[first["verdict"] != "not run"]
    assert len(judged) == 2 and set(judged["n_paired"]) == {2}  # IID CC τ=0.1 and TM at β = 0, none vs ROP
    undecided = judged[judged["verdict"] == "undecided"]
    assert main([*common, "--until-decided", "--max-seeds", "3", "--export", str(tmp_path / "claims_tiny")]) == 0
    results = pd.read_csv(out / "claims" / "results.csv")
    seeds = results.groupby(["attack", "aggregator"])["seed"].nunique().to_dict()
    wanted = {(a, g) for _, r in undecided.iterrows()
              for a, g in ((r["higher_cell"].split("|")[0], r["higher_cell"].split("|")[1]),
                           (r["lower_cell"].split("|")[0], r["lower_cell"].split("|")[1]))}
    assert seeds == {cell: 3 if cell in wanted else 2 for cell in seeds}
    assert (tmp_path / "claims_tiny" / "claims.md").read_text().startswith(f"_{len(results)} runs of profile tiny_claims")
    assert "byzlab claims tiny_claims: holds" in capsys.readouterr().out
    # the README blocks: this profile's and the summary across the exported models
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- claims tiny_claims: generated by byzlab claims --readme -->\nold\n"
                      "<!-- end of claims tiny_claims -->\n<!-- claims summary: generated by byzlab claims --readme -->\n"
                      "<!-- end of claims summary -->\ny\n")
    assert main([*common, "--no-run", "--export", str(tmp_path / "claims_tiny"), "--readme", str(readme)]) == 0
    # the tables from what is stored keep the further seeds' runs (not only the profile's own seeds)
    assert len(pd.read_csv(tmp_path / "claims_tiny" / "results.csv")) == len(results)
    text = readme.read_text()
    assert "\nold\n" not in text and "| claim | ALIE z | verdict |" in text and "across the models" in text
    assert text.startswith("x\n") and text.endswith("y\n")


def test_claims_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from byzlab.cli import main

    for argv, message in ((["--until-decided", "--max-seeds", "1"], "max_seeds: must be an integer >= 2, got 1"),
                          (["--readme", "README.md"], "readme: needs --export DIR"),
                          (["--table", str(tmp_path / "nope.csv")], "table: file not found: "),
                          (["--profile", "nope"], "profile: unknown 'nope'"),
                          (["--threads", "0"], "threads: must be"),
                          (["--workers", "-1"], "workers: must be an integer >= 0, got -1")):
        assert main(["claims", "--out", str(tmp_path / "o"), "--no-run", *argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"byzlab: error: {message}") and err.count("\n") == 1, err
    with pytest.raises(SystemExit) as exit_:
        main(["claims", "--setting", "weekly"])
    assert exit_.value.code == 2 and "invalid choice: 'weekly'" in capsys.readouterr().err


def test_cc_trace_agrees_with_the_runs_diagnostics_and_eq6():
    """The trace behind the CC τ figure: ‖m̃‖ is the run's agg_norm diagnostic, the step is η‖m̃‖, and when
    every client is clipped the centre moves at most τ (Eq. 6, one iteration: a mean of vectors of norm ≤ τ)."""
    from byzlab import run
    from byzlab.analysis.cc_dynamics import trace
    from byzlab.core.config import RunConfig

    cfg = RunConfig.make(dataset="digits", k=10, k_m=0, b=16, epochs=3, lr=0.1, lr_decay_at=1.0, beta=0.9,
                         attack="none", aggregator="cc", tau=0.1)
    t = trace(cfg)
    rounds = run(cfg).rounds
    assert len(t) == len(rounds) == 24
    np.testing.assert_allclose(t["norm"], rounds["agg_norm"], rtol=1e-4)
    np.testing.assert_allclose(t["step"], 0.1 * t["norm"], rtol=1e-6)
    np.testing.assert_allclose(t["clip_fraction"], rounds["clip_fraction"])
    clipped = t[(t["clip_fraction"] == 1.0) & t["centre_move"].notna()]
    assert len(clipped) and (clipped["centre_move"] <= 0.1 + 1e-5).all()
    assert t["cos_mean"].between(-1, 1).all() and t["test_accuracy"].notna().sum() == 3
    with pytest.raises(ValueError, match="^aggregator: the trace follows CC"):
        trace(RunConfig.make(cfg, aggregator="tm"))


def test_seeds_target_plans_collapse_counts_beyond_a_degenerate_estimate():
    """Which paired seeds an undecided comparison asks for (hand-made rows): 3 while fewer than 3; a collapse
    count of 2 in 4 (rate exactly 1/2, so its estimate is "never") up to 10 seeds; an accuracy comparison
    whose estimate is infinite or beyond --max-seeds nothing; otherwise its estimate, capped at --max-seeds."""
    from byzlab.claims_cli import RATE_MIN_SEEDS, seeds_target

    def row(n, need, kind="accuracy"):
        return pd.Series({"n_paired": n, "seeds_needed": need, "kind": kind})

    assert RATE_MIN_SEEDS == 10
    assert seeds_target(row(2, math.nan), 25) == 3
    assert seeds_target(row(4, math.inf, "collapse"), 25) == 10
    assert seeds_target(row(4, math.inf, "collapse"), 6) == 6  # capped
    assert seeds_target(row(9, math.inf, "collapse"), 25) == 10
    assert seeds_target(row(10, math.inf, "collapse"), 25) is None
    assert seeds_target(row(10, 14.0, "collapse"), 25) == 14
    assert seeds_target(row(4, math.inf), 25) is None
    assert seeds_target(row(7, 12.0), 25) == 12
    assert seeds_target(row(7, 30.0), 25) is None
    assert seeds_target(row(12, 12.0), 12) is None  # at --max-seeds already
    assert seeds_target(row(7, 5.0), 25) == 8  # at least one more than it has
