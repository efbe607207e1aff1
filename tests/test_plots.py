"""byzlab.analysis.paper (the data behind the figures and tables) and byzlab.analysis.plots (the figures), on tiny
digits runs in a temporary results store; and the store's guard against bad or stale entries."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import yaml

from byzlab.analysis import paper, plots
from byzlab.core.config import RunConfig
from byzlab.core.data import load_dataset
from byzlab.core.results import RunResult
from byzlab.running.store import ResultStore

EPOCHS = 3  # digits, k = 25, b = 32: one round per epoch


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """A tiny profile: two attacks × CC τ=0.1 / TM × β ∈ {0, 0.9} × two seeds, and a λ sweep."""
    path = tmp_path_factory.mktemp("profile") / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "compute_in_notebook": True, "seeds": [0, 1],
        "base": {"dataset": "digits", "epochs": EPOCHS, "partition": "iid"},
        "experiments": {
            "table4": {"grid": {
                "attack": ["rop", "alie"],
                "aggregator": [{"aggregator": "cc", "tau": 0.1}, {"aggregator": "tm"}],
                "beta": [0.0, 0.9]}},
            "fig12": {"base": {"attack": "rop", "aggregator": "cc", "tau": 1.0}, "seeds": [0],
                      "grid": {"lam": [0.0, 1.0], "beta": [0.0]}},
        }}))
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> ResultStore:
    return ResultStore(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def runs(profile, store) -> list[RunResult]:
    return paper.results(profile, "table4", store=store, progress=False)


@pytest.fixture(scope="module")
def frame(runs) -> pd.DataFrame:
    return paper.curves(runs)


# =========================================================================== byzlab.analysis.paper
def test_results_come_from_the_store_and_are_computed_once(profile, store, runs):
    assert len(runs) == 2 * 2 * 2 * 2
    assert len(store.keys()) == len(runs)
    again = paper.results(profile, "table4", store=store, progress=False)
    assert [r.key for r in again] == [r.key for r in runs]
    assert [r.meta["seconds_per_round"] for r in again] == [r.meta["seconds_per_round"] for r in runs]
    assert len(store.keys()) == len(runs)


def test_results_filters_none_keeps_all_and_nothing_matching_is_an_error(profile, store, runs):
    alie = paper.results(profile, "table4", store=store, progress=False, attack="alie", partition=None)
    assert len(alie) == len(runs) // 2 and {r.config.attack for r in alie} == {"alie"}
    with pytest.raises(ValueError, match=r"^filters: no run of experiment 'table4' in profile 'tiny' matches "
                                         r"attack='ipm', partition='dirichlet1' \(it has attack in \['alie', 'rop'\]; "
                                         r"partition in \['iid'\]\)$"):
        paper.results(profile, "table4", store=store, progress=False, attack="ipm", partition="dirichlet1")
    with pytest.raises(ValueError, match="experiment: unknown 'fig99'"):
        paper.results(profile, "fig99", store=store, progress=False)


def test_curves_is_one_labelled_row_per_run_and_evaluation(runs, frame):
    assert len(frame) == sum(len(r.history) for r in runs) == len(runs) * EPOCHS
    assert set(frame["aggregator"]) == {"cc_tau0.1", "tm"}
    assert set(frame["attack"]) == {"rop", "alie"} and set(frame["seed"]) == {0, 1}
    assert set(frame["beta"]) == {0.0, 0.9} and set(frame["partition"]) == {"iid"}
    rop = frame[frame["attack"] == "rop"]
    assert (rop["z"] == 1.0).all() and (rop["lam"] == 0.9).all()
    assert frame[frame["attack"] == "alie"]["lam"].isna().all()
    assert (frame[frame["aggregator"] == "cc_tau0.1"]["tau"] == 0.1).all()
    r = runs[0]
    mine = frame[frame["key"] == r.key]
    np.testing.assert_array_equal(mine["test_accuracy"].to_numpy(), r.history["test_accuracy"].to_numpy())
    assert paper.settings(frame) == [("digits", "iid")]
    assert paper.describe(frame) == f"digits IID, {EPOCHS} epochs, 2 seeds"


def test_final_table_is_the_mean_over_seeds(runs):
    t = paper.final_table(runs, index=["aggregator", "beta"], columns="attack")
    assert t.shape == (4, 2)
    want = np.mean([r.final_accuracy for r in runs if r.config.attack == "rop" and r.config.aggregator == "tm"
                    and r.config.beta == 0.9])
    assert t.loc[("tm", 0.9), "rop"] == pytest.approx(want)
    with pytest.raises(ValueError, match="^value: unknown 'accuracy'"):
        paper.final_table(runs, "beta", "attack", value="accuracy")
    with pytest.raises(ValueError, match="^index/columns: unknown 'colour'"):
        paper.final_table(runs, "colour", "attack")


def test_figure_names_and_titles_follow_the_paper():
    assert paper.figure_name("accuracy", "cifar10", "iid") == "fig5_accuracy_cifar10_iid"
    assert paper.figure_name("accuracy", "mnist", "dirichlet1") == "fig7_accuracy_mnist_dirichlet1"
    assert paper.figure_name("train_loss", "cifar10", "dirichlet1") == "fig11_train_loss_cifar10_dirichlet1"
    assert paper.figure_name("z", "cifar10", "iid") == "fig13_z_cifar10_iid"
    assert paper.figure_name("accuracy", "digits", "iid") == "figs4-9_accuracy_digits_iid"
    with pytest.raises(ValueError, match="^kind: unknown 'loss'"):
        paper.figure_name("loss", "digits", "iid")
    df = pd.DataFrame({"dataset": ["cifar10"], "partition": ["iid"], "seed": [0], "epochs": [100]})
    assert paper.figure_title("accuracy", df, "test accuracy") == \
        "Fig. 5 — test accuracy (CIFAR-10 IID, 100 epochs, 1 seed)"
    assert paper.figure_title("accuracy", df.assign(dataset="digits"), "x").startswith("Figs. 4–9 layout — x")


def test_partition_counts_cover_the_training_set(profile):
    y = load_dataset("digits").y_train.numpy()
    counts = paper.partition_counts(k=25, profile=profile)
    assert set(counts) == {"iid", "dirichlet"}
    for kind, df in counts.items():
        assert df.shape == (25, 10) and list(df.index) == list(range(1, 26))
        np.testing.assert_array_equal(df.sum(axis=0).to_numpy(), np.bincount(y, minlength=10))
        assert df.attrs == {"dataset": "digits", "alpha": 1.0, "seed": 0}
    sizes = counts["iid"].sum(axis=1)
    assert sizes.max() - sizes.min() <= 1
    assert counts["dirichlet"].sum(axis=1).std() > sizes.std()  # non-IID shards differ in size
    again = paper.partition_counts(k=25, profile=profile)
    pd.testing.assert_frame_equal(again["dirichlet"], counts["dirichlet"])
    with pytest.raises(ValueError, match="^alpha"):
        paper.partition_counts(k=25, alpha=0.0, profile=profile)
    with pytest.raises(ValueError, match="^k: must be an integer"):
        paper.partition_counts(k=0, profile=profile)
    with pytest.raises(ValueError, match="^dataset: unknown 'imagenet'"):
        paper.partition_counts("imagenet", profile=profile)


def test_table2_is_the_mean_cos_delta_beside_the_paper(runs):
    alie = [r for r in runs if r.config.attack == "alie"]
    t = paper.table2(alie)
    assert list(t.columns) == ["β=0", "β=0.9"]
    assert t.loc[("digits", "iid", "tm"), "β=0.9"] == pytest.approx(np.mean(
        [r.rounds["cos_delta"].mean() for r in alie if r.config.aggregator == "tm" and r.config.beta == 0.9]))
    paper_row = t.loc[("paper: cifar10", "iid", "")]
    assert paper_row.tolist() == [0.94, 0.995]  # the paper's Table II (β = 0.99 is not in these runs)
    assert ((t.to_numpy() >= -1) & (t.to_numpy() <= 1)).all()


def test_table3_is_the_cosine_to_the_cc_reference_beside_the_paper(runs):
    cc_rop = [r for r in runs if r.config.attack == "rop" and r.config.aggregator == "cc"]
    t = paper.table3(cc_rop)
    assert list(t.index) == [("digits", "iid", 0.1, 0.0), ("digits", "iid", 0.1, 0.9)]
    assert t.loc[("digits", "iid", 0.1, 0.9), "benign"] == pytest.approx(np.mean(
        [r.rounds["cos_ref_benign"].mean() for r in cc_rop if r.config.beta == 0.9]))
    assert t["paper_benign"].tolist() == [0.0, 0.2] and t["paper_byzantine"].tolist() == [0.94, 0.77]
    with pytest.raises(ValueError, match="^runs: Table III needs runs against CC"):
        paper.table3([r for r in runs if r.config.aggregator == "tm"])
    assert paper.PAPER_TABLE3.set_index(["tau", "beta"]).loc[(1.0, 0.99)].tolist() == [0.04, 0.27]


def test_table4_beside_a_block_of_the_paper_when_the_data_sets_differ(runs):
    c = paper.table4_compare(runs, "fmnist", "iid")
    assert len(c) == 2 * 2 * 2  # attack × aggregator × β cells
    assert set(c["paper_dataset"]) == {"fmnist"} and set(c["dataset"]) == {"digits"}
    assert (c["n_seeds"] == 2).all()
    row = c[(c["attack"] == "rop") & (c["aggregator"] == "cc_tau0.1") & (c["beta"] == 0.0)].iloc[0]
    assert (row["paper_mean"], row["paper_std"]) == (68.52, 0.73)  # Table IV, FMNIST, ROP, CC τ=0.1, β=0
    finals = [r.final_accuracy for r in runs if r.config.attack == "rop" and r.config.aggregator == "cc"
              and r.config.beta == 0.0]
    assert row["accuracy_mean"] == pytest.approx(np.mean(finals))
    assert row["accuracy_std"] == pytest.approx(np.std(finals, ddof=1))  # the sample std over seeds
    # another data set and scale: side by side, labelled, and no difference
    assert not c["same_setting"].any() and c["difference"].isna().all()
    assert set(c["setting"]) == {"not the paper's setting: byzlab digits IID, 3 epochs beside the paper's "
                                 "FMNIST IID; no difference computed"}
    assert list(c["attack"].unique()) == ["rop", "alie"]  # the paper's row order
    with pytest.raises(ValueError, match="^paper_dataset/paper_partition: .* no 'mnist'/'iid'"):
        paper.table4_compare(runs, "mnist", "iid")
    with pytest.raises(ValueError, match="^paper_partition: byzlab has no 'dirichlet1' runs"):
        paper.table4_compare(runs, "fmnist", "dirichlet1")


def test_table4_joins_cell_by_cell_when_the_data_sets_are_the_papers():
    ref = paper.paper_table4()
    cells = ref[(ref["dataset"] == "cifar10") & (ref["partition"] == "dirichlet1")].head(4)
    rows = []
    for seed in (0, 1):
        for i, (_, cell) in enumerate(cells.iterrows()):
            rows.append({**cell[["dataset", "partition", "attack", "aggregator", "beta"]].to_dict(),
                         "seed": seed, "final_accuracy": 50.0 + i + seed, "epochs": 100, "k": 25, "k_m": 5,
                         "model": "resnet20"})
    c = paper.table4_compare(pd.DataFrame(rows), "fmnist", "iid")  # the block argument is not needed here
    assert len(c) == 4 and set(c["paper_dataset"]) == {"cifar10"}
    np.testing.assert_allclose(c["paper_mean"], cells["accuracy_mean"])
    np.testing.assert_allclose(c["accuracy_mean"], 50.5 + np.arange(4))
    assert c["same_setting"].all() and set(c["setting"]) == {"same setting"}
    np.testing.assert_allclose(c["difference"], c["accuracy_mean"] - c["paper_mean"])
    # both std are there to read the difference with; byzlab's is the sample std of 50 + i and 51 + i
    np.testing.assert_allclose(c["accuracy_std"], np.sqrt(0.5))
    np.testing.assert_allclose(c["paper_std"], cells["accuracy_std"])
    heat = plots.table4_heatmap(c)
    assert len(heat.data) == 3 and not any(a.text.startswith("not the paper") for a in heat.layout.annotations)
    ours, theirs, diff = (np.array(t.z, dtype=float) for t in heat.data)
    np.testing.assert_allclose(diff[np.isfinite(diff)], (ours - theirs)[np.isfinite(diff)])
    first = cells.iloc[0]
    assert heat.data[2].text[0][0] == f"{50.5 - first['accuracy_mean']:+.1f}<br>±0.7 / ±{first['accuracy_std']:.1f}"
    # the same data set at a smaller scale is not the paper's setting: no difference
    short = paper.table4_compare(pd.DataFrame(rows).assign(epochs=30), "fmnist", "iid")
    assert short["difference"].isna().all() and not short["same_setting"].any()
    assert set(short["setting"]) == {"not the paper's scale: epochs 30 (paper 100); no difference computed"}
    assert len(plots.table4_heatmap(short).data) == 2


def test_table4_keeps_alie_at_z_max_and_the_as_run_z_apart():
    """``alie_z1.2`` (the library's default z of the time) is its own row, beside the paper's ALIE row."""
    from byzlab import RunConfig
    from byzlab.running.tables import attack_label

    assert attack_label(RunConfig.make(dataset="digits", attack="alie")) == "alie"
    assert attack_label(RunConfig.make(dataset="digits", attack="alie", z=1.2)) == "alie_z1.2"
    assert attack_label(RunConfig.make(dataset="digits", attack="rop", z=1.0)) == "rop"
    base = {"dataset": "fmnist", "partition": "iid", "aggregator": "tm", "beta": 0.0, "epochs": 100,
            "k": 25, "k_m": 5, "model": "cnn"}
    rows = [{**base, "attack": a, "seed": s, "final_accuracy": acc + s}
            for a, acc in (("alie", 80.0), ("alie_z1.2", 10.0)) for s in (0, 1)]
    c = paper.table4_compare(pd.DataFrame(rows))
    assert list(c["attack"]) == ["alie", "alie_z1.2"] and list(c["paper_attack"]) == ["alie", "alie"]
    assert list(c["paper_mean"]) == [10.0, 10.0]  # Table IV, FMNIST IID, ALIE vs TM, β = 0
    np.testing.assert_allclose(c["difference"], [70.5, 0.5])
    assert list(paper.table4_wide(c).index.get_level_values("attack")) == ["ALIE", "ALIE z=1.2 (as run)"]


def test_table4_wide_and_styled(runs):
    c = paper.table4_compare(runs, "cifar10", "iid")
    wide = paper.table4_wide(c)
    assert wide.shape == (2, 4)
    assert list(wide.index.get_level_values("attack")) == ["ROP", "ALIE"]
    assert list(wide.columns) == [("CC τ=0.1", "β=0"), ("CC τ=0.1", "β=0.9"), ("TM", "β=0"), ("TM", "β=0.9")]
    text = paper.table4_wide(c, "text")
    m, s = c.iloc[0][["accuracy_mean", "accuracy_std"]]
    assert text.iloc[0, 0] == f"{m:.2f} ± {s:.2f}"
    html = paper.table4_style(c).to_html()
    assert f"{c['paper_mean'].iloc[0]:.2f}" in html and "no difference computed" in html
    assert "background-color: rgba(" not in html  # digits beside CIFAR-10: nothing to colour
    with pytest.raises(ValueError, match="^value: unknown 'median'"):
        paper.table4_wide(c, "median")


# =========================================================================== byzlab.analysis.plots
def curve_traces(fig: go.Figure) -> list:
    return [t for t in fig.data if t.fill != "toself"]


def test_accuracy_grid_layout_colours_and_values(frame):
    fig = plots.accuracy_grid(frame, title="t")
    # rows: aggregators in the paper's order; columns: β
    titles = [a.text for a in fig.layout.annotations]
    assert titles == ["β = 0", "β = 0.9", "CC τ=0.1", "TM"]
    lines = curve_traces(fig)
    assert len(lines) == 2 * 2 * 2  # (aggregator, β) subplots × attacks
    for t in lines:
        attack = {"ROP": "rop", "ALIE": "alie"}[t.name]
        assert t.line.color == plots.ATTACK_COLORS[attack]  # the same colour in every panel and figure
    assert sorted(t.name for t in lines if t.showlegend) == ["ALIE", "ROP"]  # one legend entry per attack
    assert len([t for t in fig.data if t.fill == "toself"]) == len(lines)  # two seeds: min-max bands
    # the curve is the mean over seeds
    sub = frame[(frame["aggregator"] == "tm") & (frame["beta"] == 0.9) & (frame["attack"] == "rop")]
    want = sub.groupby("epoch")["test_accuracy"].mean()
    tm_09 = [t for t in lines if t.name == "ROP" and t.xaxis == "x4"][0]
    np.testing.assert_allclose(tm_09.y, want.to_numpy())
    assert fig.layout.yaxis.range == (0, 100)
    # a variant is dashed over its original (ROP-S equals ROP where the mask covers the whole model)
    variant = plots.accuracy_grid(frame.replace({"attack": {"alie": "rop_s"}}))
    assert {(t.name, t.line.dash) for t in curve_traces(variant)} == {("ROP", "solid"), ("ROP-S", "dash")}


def test_train_loss_grid_is_log_scale_and_bad_metric_is_an_error(frame):
    fig = plots.accuracy_grid(frame, "train_loss")
    assert fig.layout.yaxis.type == "log"
    with pytest.raises(ValueError, match="^metric: unknown 'loss'; choose one of: test_accuracy"):
        plots.accuracy_grid(frame, "loss")
    with pytest.raises(ValueError, match=r"^frame: lacks columns \['aggregator'\]"):
        plots.accuracy_grid(frame.drop(columns="aggregator"))
    with pytest.raises(ValueError, match="^frame: expected a non-empty DataFrame"):
        plots.accuracy_grid(frame.iloc[:0])


def test_curves_by_a_parameter(profile, store, frame):
    lam = paper.curves(paper.results(profile, "fig12", store=store, progress=False))
    fig = plots.curves_by(lam, "lam")
    assert sorted(t.name for t in fig.data) == ["λ = 0", "λ = 1"]
    assert len({t.line.color for t in fig.data}) == 2
    with pytest.raises(ValueError, match="^hue: column 'lam' holds no values"):
        plots.curves_by(frame[frame["attack"] == "alie"], "lam")


def test_partition_bars_stack_the_class_counts(profile):
    counts = paper.partition_counts(k=5, profile=profile)
    fig = plots.partition_bars(counts)
    assert fig.layout.barmode == "stack"
    assert len(fig.data) == 2 * 10  # a bar trace per class, per partition
    assert [a.text for a in fig.layout.annotations] == ["IID", "non-IID, Dirichlet(α=1)"]
    iid = [t for t in fig.data if t.xaxis == "x"]
    assert np.sum([t.y for t in iid], axis=0).tolist() == counts["iid"].sum(axis=1).tolist()
    with pytest.raises(ValueError, match="^counts: expected"):
        plots.partition_bars({})


def test_table_figures(runs):
    t2 = plots.table2_bars(paper.table2([r for r in runs if r.config.attack == "alie"]))
    assert [t.name for t in t2.data] == ["digits · iid · CC τ=0.1", "digits · iid · TM", "paper: cifar10 · iid"]
    assert t2.data[-1].marker.pattern.shape == "/"
    t3 = plots.table3_bars(paper.table3([r for r in runs if r.config.aggregator == "cc"]))
    assert [t.name for t in t3.data] == ["benign", "Byzantine", "paper: benign", "paper: Byzantine (ROP)"]
    assert list(t3.data[3].y) == [0.94, 0.77]
    with pytest.raises(ValueError, match="^table: expected a DataFrame with columns"):
        plots.table3_bars(pd.DataFrame({"x": [1]}))
    c = paper.table4_compare(runs, "cifar10", "iid")
    heat = plots.table4_heatmap(c)
    assert len(heat.data) == 2  # digits beside CIFAR-10: side by side, no difference panel
    ours, theirs = (np.array(t.z, dtype=float) for t in heat.data)
    assert ours.shape == theirs.shape == (2, 4)
    assert list(heat.data[1].y) == ["cifar10 iid · ROP", "cifar10 iid · ALIE"]
    assert "not the paper's setting: byzlab digits IID, 3 epochs" in heat.layout.annotations[-1].text
    assert not any(a.text.startswith("difference") for a in heat.layout.annotations)
    with pytest.raises(ValueError, match="^compare: lacks columns"):
        plots.table4_heatmap(c.drop(columns="paper_mean"))


def test_save_writes_small_html_and_a_png_or_says_why_not(frame, tmp_path, capsys):
    fig = plots.accuracy_grid(frame)
    assert plots.save(fig, "grid", None) == []
    written = plots.save(fig, "grid", tmp_path / "figs")
    html = tmp_path / "figs" / "grid.html"
    assert written[0] == html and "cdn.plot.ly" in html.read_text()
    assert html.stat().st_size < 200_000  # plotly.js itself is not embedded
    if len(written) == 2:
        assert written[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert "grid.png not written (static export unavailable" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == sorted(p.name for p in written)
    with pytest.raises(ValueError, match="^name: must be a file name"):
        plots.save(fig, "../up", tmp_path)


def test_save_survives_a_broken_static_exporter(frame, tmp_path, capsys, monkeypatch):
    def broken(self, *a, **kw):
        raise RuntimeError("Kaleido requires Google Chrome to be installed.\nmore detail")

    monkeypatch.setattr(go.Figure, "write_image", broken)
    written = plots.save(plots.accuracy_grid(frame), "grid", tmp_path)
    assert written == [tmp_path / "grid.html"]
    assert capsys.readouterr().out == ("grid.png not written (static export unavailable: RuntimeError: "
                                       "Kaleido requires Google Chrome to be installed.)\n")


# =========================================================================== the results store
def test_store_recomputes_a_partially_written_entry(tmp_path):
    store = ResultStore(tmp_path)
    cfg = RunConfig.make(dataset="digits", attack="alie", aggregator="tm", beta=0.0, epochs=2)
    first = store.run(cfg)
    entry = store.path(cfg)
    (entry / "history.csv").unlink()  # a folder without all its files
    assert not store.contains(cfg)
    assert store.get(cfg) is None
    assert not entry.exists() and len(list((tmp_path / ".bad").iterdir())) == 1  # moved aside, kept for a look
    again = store.run_many([cfg], progress=False)[0]
    assert store.contains(cfg)
    pd.testing.assert_frame_equal(again.history.drop(columns="wall_time"), first.history.drop(columns="wall_time"))


def test_store_never_reuses_an_entry_of_another_config(tmp_path):
    store = ResultStore(tmp_path)
    cfg = RunConfig.make(dataset="digits", attack="alie", aggregator="tm", beta=0.0, epochs=2)
    other = RunConfig.make(cfg, beta=0.9)
    store.run(other)
    shutil.copytree(store.path(other), store.path(cfg))  # stale: cfg's key holds other's result
    stored = json.loads((store.path(cfg) / "config.json").read_text())
    assert stored["beta"] == 0.9
    assert not store.contains(cfg)
    assert store.get(cfg) is None
    result = store.run_many([cfg], progress=False)[0]
    assert result.config == cfg and result.config.beta == 0.0
    assert json.loads((store.path(cfg) / "config.json").read_text())["beta"] == 0.0
    assert store.get(other).config == other  # the other entry is untouched
