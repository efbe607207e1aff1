"""byzlab.claims: the verdict rule on hand-made results tables, one branch at a time.

Two seeds per cell; a cell's accuracies are (m − d, m + d), so its sample std is d·√2 and the
pooled std of two such cells is d·√2 too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from byzlab import claims
from byzlab.claims import Cell, Claim, Comparison


def table(cells: dict, *, dataset: str = "mnist5k", seeds: int = 2) -> pd.DataFrame:
    """{(partition, attack, aggregator, beta): (mean, d)} -> a results table, one row per seed."""
    rows = []
    for (partition, attack, aggregator, beta), (mean, d) in cells.items():
        values = [mean - d, mean + d] if seeds == 2 else [mean]
        for seed, acc in enumerate(values):
            rows.append({"dataset": dataset, "partition": partition, "attack": attack, "aggregator": aggregator,
                         "beta": beta, "seed": seed, "final_accuracy": acc})
    return pd.DataFrame(rows)


ONE = Claim("one", "no attack beats ROP against CC τ = 0.1 at β = 0", "test",
            (Comparison("iid", Cell("none", "cc_tau0.1", 0.0), Cell("rop", "cc_tau0.1", 0.0)),))
TWO = Claim("two", "ROP hurts CC τ = 0.1 at β = 0 and 0.9", "test", tuple(
    Comparison("iid", Cell("none", "cc_tau0.1", b), Cell("rop", "cc_tau0.1", b)) for b in (0.0, 0.9)))


def one(none: tuple, rop: tuple, **kw) -> pd.Series:
    df = table({("iid", "none", "cc_tau0.1", 0.0): none, ("iid", "rop", "cc_tau0.1", 0.0): rop}, **kw)
    return claims.claims_table(df, [ONE]).iloc[0]


def test_verdict_rule_by_hand():
    assert claims.verdict(2.1, 1.0) == "holds"
    assert claims.verdict(2.0, 1.0) == "inconclusive"  # the gap must exceed 2 s
    assert claims.verdict(-2.1, 1.0) == "does not hold"
    assert claims.verdict(1.0, np.nan) == "inconclusive"  # one seed: no spread to judge by
    assert claims.verdict(np.nan, 1.0) == "not run"
    assert claims.verdict(0.5, 0.0) == "holds"  # identical seeds: any gap of the claimed sign


def test_holds_when_the_gap_exceeds_two_pooled_std():
    # gap 10, s = 1·√2 = 1.41: 10 > 2.83
    row = one(none=(96.0, 1.0), rop=(86.0, 1.0))
    assert (row["verdict"], row["holds"], row["does_not_hold"], row["inconclusive"]) == ("holds", 1, 0, 0)
    assert row["n_seeds"] == 2
    assert row["byzlab"] == (f"IID CC τ=0.1 β=0: no attack 96.0 ± {np.sqrt(2):.1f} vs ROP 86.0 ± "
                             f"{np.sqrt(2):.1f} (+10.0)")


def test_does_not_hold_when_the_gap_has_the_other_sign():
    row = one(none=(86.0, 1.0), rop=(96.0, 1.0))
    assert (row["verdict"], row["does_not_hold"]) == ("does not hold", 1)


def test_inconclusive_within_two_pooled_std_and_with_one_seed():
    # gap 3, s = 2·√2 = 2.83: |3| < 5.66
    assert one(none=(96.0, 2.0), rop=(93.0, 2.0))["verdict"] == "inconclusive"
    row = one(none=(96.0, 0.0), rop=(50.0, 0.0), seeds=1)  # a 46-point gap, but one seed
    assert (row["verdict"], row["n_seeds"]) == ("inconclusive", 1)


def test_a_claim_combines_its_comparisons():
    base = {("iid", "none", "cc_tau0.1", 0.0): (96.0, 0.5), ("iid", "rop", "cc_tau0.1", 0.0): (86.0, 0.5)}
    holds = {("iid", "none", "cc_tau0.1", 0.9): (97.0, 0.5), ("iid", "rop", "cc_tau0.1", 0.9): (90.0, 0.5)}
    fails = {("iid", "none", "cc_tau0.1", 0.9): (90.0, 0.5), ("iid", "rop", "cc_tau0.1", 0.9): (97.0, 0.5)}
    unsure = {("iid", "none", "cc_tau0.1", 0.9): (97.0, 3.0), ("iid", "rop", "cc_tau0.1", 0.9): (96.0, 3.0)}
    verdict = lambda cells: claims.claims_table(table(cells), [TWO]).iloc[0]["verdict"]  # noqa: E731
    assert verdict({**base, **holds}) == "holds"
    assert verdict({**base, **fails}) == "does not hold"  # any comparison that fails
    assert verdict({**base, **unsure}) == "inconclusive"
    row = claims.claims_table(table(base), [TWO]).iloc[0]  # β = 0.9 not run: judged on what was run
    assert (row["verdict"], row["holds"], row["not_run"]) == ("holds", 1, 1)
    other = table({("iid", "alie", "tm", 0.0): (50.0, 1.0)})
    assert claims.claims_table(other, [TWO]).iloc[0]["verdict"] == "not run"


def test_a_margin_claim_allows_the_stated_points():
    """"ALIE is as strong as ROP (at most 5 points weaker)": ROP − ALIE > −5."""
    claim = next(c for c in claims.CLAIMS if c.id == "alie_matches_rop_noniid")
    cells = {("dirichlet1", a, agg, 0.0): (m, 0.5) for agg in ("cc_tau0.1", "cc_tau1", "rfa", "tm")
             for a, m in (("rop", 80.0), ("alie", 83.0))}  # ALIE 3 points weaker: within 5
    assert claims.claims_table(table(cells), [claim]).iloc[0]["verdict"] == "holds"
    cells = {k: ((90.0, 0.5) if k[1] == "alie" else v) for k, v in cells.items()}  # 10 points weaker
    assert claims.claims_table(table(cells), [claim]).iloc[0]["verdict"] == "does not hold"


def test_claims_about_alie_are_judged_for_each_alie_and_quote_the_papers_numbers():
    claim = next(c for c in claims.CLAIMS if c.id == "alie_breaks_tm_rfa_at_beta0")
    cells = {}
    for agg in ("tm", "rfa"):
        cells[("iid", "none", agg, 0.0)] = (96.0, 0.5)
        cells[("iid", "alie", agg, 0.0)] = (95.5, 0.5)     # z_max: no collapse
        cells[("iid", "alie_z1.2", agg, 0.0)] = (10.0, 0.0)  # z = 1.2: collapse, as in Table IV
    t = claims.claims_table(table(cells), [claim])
    assert list(t["alie"]) == ["ALIE z_max", "ALIE z=1.2 (as run)"]
    assert list(t["verdict"]) == ["inconclusive", "holds"]  # the IID half; Dir(1) was not run
    assert list(t["not_run"]) == [2, 2]
    # the paper's Table IV has no baseline rows: its ALIE cells are quoted, no paper verdict
    assert t.iloc[0]["paper_dataset"] == "fmnist/mnist"  # the paper's CNN blocks, IID and Dir(1)
    assert t.iloc[0]["paper_verdict"] == "no Table IV numbers"
    assert "IID TM β=0: no attack – vs ALIE 10.0 ± 0.0" in t.iloc[0]["paper"]
    detail = claims.comparisons_table(table(cells), [claim])
    assert set(detail["paper_lower"]) >= {"10.0 ± 0.0"}


def test_the_papers_verdict_uses_the_same_rule_on_table4():
    claim = next(c for c in claims.CLAIMS if c.id == "rop_strongest_vs_cc_iid")
    cells = {("iid", a, "cc_tau1", b): (m, 0.5) for b in (0.9, 0.99) for a, m in (("alie", 90.0), ("rop", 80.0))}
    row = claims.claims_table(table(cells), [claim]).iloc[0]
    assert row["verdict"] == "holds"
    # FMNIST IID, CC τ=1: β=0.9 ALIE 90.55 ± 0.18 vs ROP 79.25 ± 7.8: gap 11.3 > 2 s = 11.04 (just);
    # β=0.99 ALIE 90.71 ± 0.2 vs ROP 83.8 ± 1.7: 6.9 > 2.4
    assert row["paper_verdict"] == "holds"
    weaker = claims.claims_table(table(cells).assign(final_accuracy=lambda d: d["final_accuracy"] * 0 + 85.0),
                                 [claim]).iloc[0]
    assert (weaker["verdict"], weaker["paper_verdict"]) == ("inconclusive", "holds")
    assert row["paper"].startswith("IID CC τ=1 β=0.9: ALIE 90.5 ± 0.2 vs ROP ")


def test_one_config_per_cell_and_bad_tables():
    df = table({("iid", "none", "cc_tau0.1", 0.0): (96.0, 0.5), ("iid", "rop", "cc_tau0.1", 0.0): (86.0, 0.5)})
    df["cell"] = ["a", "a", "b", "b"]
    df["experiments"] = ["table4"] * 4
    extra = df.iloc[2:].assign(cell="c", experiments="fig12", final_accuracy=10.0)  # Fig. 12's other λ
    assert claims.claims_table(pd.concat([df, extra]), [ONE]).iloc[0]["byzlab"].endswith("ROP 86.0 ± 0.7 (+10.0)")
    with pytest.raises(ValueError, match="^results: the cell .* holds runs of several configs"):
        claims.claims_table(pd.concat([df, extra.assign(experiments="table4")]), [ONE])
    with pytest.raises(ValueError, match="^results: not a results table"):
        claims.claims_table(df.drop(columns="seed"), [ONE])
    with pytest.raises(ValueError, match="^results: an empty results table"):
        claims.claims_table(df.iloc[:0], [ONE])


def test_every_claim_is_data_and_names_cells_of_the_showcase_profile():
    from byzlab.experiments import load_profile
    from byzlab.tables import aggregator_label, attack_label, partition_label

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


def test_showcase_outputs_draw_from_the_committed_tables_alone(tmp_path):
    """The README's showcase figures and claims come from results.csv + curves.csv, no store or training."""
    from byzlab import showcase

    cells = {("iid", "none", "cc_tau0.1", 0.0): (95.0, 0.5), ("iid", "rop", "cc_tau0.1", 0.0): (80.0, 0.5),
             ("iid", "alie", "tm", 0.0): (60.0, 1.0), ("iid", "none", "tm", 0.0): (96.0, 0.5)}
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
    md = (tmp_path / "claims.md").read_text().splitlines()
    import re
    head = re.fullmatch(r"Verdicts of the (\d+) rows: holds (\d+), does not hold (\d+), inconclusive (\d+), "
                        r"not run (\d+)\.", md[0])
    rows = [line for line in md if line.startswith("| ") and "**" in line]
    assert head and int(head[1]) == len(rows) == 8  # 8 claims; ALIE only at z_max here (z = 1.2 adds 4 rows)
    assert [int(head[i]) for i in range(2, 6)] == [sum(f"**{v}**" in line for line in rows)
                                                   for v in ("holds", "does not hold", "inconclusive", "not run")]
    rop_cc = next(line for line in md if line.startswith("| ROP degrades CC at every τ and β |"))
    # 95 ± 0.7 vs 80 ± 0.7: a 15-point gap, far beyond 2 pooled std: holds; its 11 other cells are not run
    assert "**holds**" in rop_cc and "| 1 / 0 / 0 / 11 |" in rop_cc and "(+15.0)" in rop_cc
    alie_tm = [line for line in md if line.startswith("| Without worker momentum ALIE brings TM and RFA down |")]
    assert any("**holds**" in line and "z_max" in line for line in alie_tm)  # 96 vs 60 on TM (RFA not run)
    with pytest.raises(claims.ConfigError, match="results.csv not found"):
        showcase.load(tmp_path / "elsewhere")


def test_showcase_command_bad_input_is_one_line_exit_2(tmp_path, capsys):
    from byzlab import showcase

    assert showcase.main(["--out", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("byzlab showcase: error: folder: ") and "results.csv not found" in err and "\n" not in err
    readme = tmp_path / "README.md"
    readme.write_text("# no generated block here\n")
    (tmp_path / "claims.md").write_text("| claim |\n")
    with pytest.raises(claims.ConfigError, match="^readme: .* has no block"):
        showcase.update_readme(readme, tmp_path)
    readme.write_text(f"before\n{showcase.README_START}\nold\n{showcase.README_END}\nafter\n")
    showcase.update_readme(readme, tmp_path)
    text = readme.read_text()
    assert text.startswith("before\n") and text.endswith("after\n") and "old" not in text and "| claim |" in text
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
    from byzlab import paper

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
    from byzlab import paper
    from byzlab.errors import ConfigError

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

    from byzlab import paper
    from byzlab.tables import SHOWCASE_TABLE

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
    from byzlab.tables import read_results

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
    from byzlab import paper

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
