"""``byzlab figures`` / byzlab.running.figures.render: the figure notebooks executed by papermill with a tiny profile."""
from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
import yaml

from byzlab.cli import main
from byzlab.running.figures import RenderError, find_notebooks, notebooks_dir, render
from byzlab.running.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """Fig. 1's experiment on digits for 3 epochs at β = 0: two runs."""
    path = tmp_path_factory.mktemp("profile") / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "compute_in_notebook": True, "seeds": [0],
        "base": {"dataset": "digits", "epochs": 3, "k": 10, "k_m": 2},
        "experiments": {"fig1": {"base": {"partition": "iid", "aggregator": "tm"},
                                 "grid": {"attack": ["alie", "alie_alt"], "beta": [0.0]}}},
        "notebook_parameters": {"seed": 1},
    }))
    return path


def outputs(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)


def injected(path: Path) -> str:
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    return cells[0].source


def test_render_executes_the_notebooks_with_the_profile(tiny, tmp_path):
    store = tmp_path / "store"
    paths = render(profile=str(tiny), store=store, out=tmp_path / "out", notebooks=["fig1", "02"], progress=False)
    assert paths == [tmp_path / "out" / "01_fig1_alie_alternating.ipynb", tmp_path / "out" / "02_fig2_partition.ipynb"]
    fig1, fig2 = paths
    assert outputs(fig1).startswith("2 runs; final test accuracy (%) per β and attack\n1 row x 2 columns\n")
    assert len(ResultStore(store).keys()) == 2  # the runs went into the given store
    params = injected(fig1)
    assert f'profile = "{tiny}"' in params and f'store = "{store}"' in params
    assert f'figures_dir = "{tmp_path / "out" / "figures"}"' in params
    # Fig. 2 declares no store but the profile's notebook parameter `seed`; k comes from the profile
    assert "store" not in injected(fig2) and "seed = 1" in injected(fig2)
    assert "client totals: 144 144 144 144 144 144 144 143 143 143" in outputs(fig2)  # 1,437 images, k = 10
    figures = sorted(p.name for p in (tmp_path / "out" / "figures").iterdir())
    assert {"fig1_alie_alternating.html", "fig2_partition.html"} <= set(figures)


def test_a_failing_notebook_is_reported_and_the_others_still_run(tiny, tmp_path, capsys):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    broken = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Broken"),
        nbformat.v4.new_code_cell('profile = "quick"\nfigures_dir = None', metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('raise ValueError("tau: must be > 0, got -1")'),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(broken, str(folder / "01_broken.ipynb"))
    shutil.copy(notebooks_dir() / "02_fig2_partition.ipynb", folder / "02_fig2_partition.ipynb")
    code = main(["figures", "--profile", str(tiny), "--notebooks-dir", str(folder), "--out", str(tmp_path / "out"),
                 "--figures-dir", str(tmp_path / "figs"), "-q"])
    err = capsys.readouterr().err
    assert code == 1
    assert "byzlab figures: 01_broken failed: ValueError: tau: must be > 0, got -1" in err
    assert "byzlab: error: figures: 1 of 2 notebooks failed: 01_broken" in err
    assert "client totals:" in outputs(tmp_path / "out" / "02_fig2_partition.ipynb")  # ran after the failure
    assert (tmp_path / "figs" / "fig2_partition.html").exists()

    with pytest.raises(RenderError) as info:  # the same through the function
        render(profile=str(tiny), out=tmp_path / "out2", notebooks=[str(folder / "01_broken.ipynb")], progress=False)
    assert info.value.failed == {"01_broken": "ValueError: tau: must be > 0, got -1"}
    assert info.value.paths == [tmp_path / "out2" / "01_broken.ipynb"]


def test_find_notebooks_by_name_number_word_or_path(tmp_path):
    everything = find_notebooks()
    assert everything[0].name == "01_fig1_alie_alternating.ipynb" and len(everything) == 10
    assert all(p.parent == ROOT / "notebooks" for p in everything)
    assert [p.stem for p in find_notebooks(["04", "table4", "fig1", "10_table4"])] == \
        ["04_figs4-9_accuracy", "10_table4", "01_fig1_alie_alternating"]
    assert find_notebooks(["00_explore"])[0].stem == "00_explore"  # only when named
    with pytest.raises(ValueError, match=r"^notebooks: no notebook 'fig99' in .*; choose among: 00_explore, 01_fig1"):
        find_notebooks(["fig99"])
    with pytest.raises(ValueError, match=f"^notebooks: no notebooks folder at {tmp_path / 'none'}; pass --notebooks-dir"):
        find_notebooks(None, tmp_path / "none")
    with pytest.raises(ValueError, match="^notebooks: must be a list"):
        find_notebooks("fig1")


@pytest.mark.parametrize("args, message", [
    (["--profile", "nope"], "profile: unknown 'nope'"),
    (["--profile", "nope.yaml"], "profile: file not found: nope.yaml"),
    (["--notebooks", "fig99"], "notebooks: no notebook 'fig99'"),
    (["--notebooks-dir", "/nonexistent/notebooks"], "notebooks: no notebooks folder at /nonexistent/notebooks"),
    (["-p", "profile=paper"], "parameters: profile cannot be a notebook parameter here; it is set by the profile"),
    (["-p", "colour=red"], "parameters: colour not declared by any of the notebooks"),
    (["-p", "colour"], "-p/--param: expected NAME=VALUE, got 'colour'"),
])
def test_bad_input_is_a_one_line_error(args, message, tmp_path, capsys):
    assert main(["figures", "--out", str(tmp_path / "out"), "-q", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("byzlab: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()  # nothing ran


def test_render_rejects_parameters_that_are_not_a_mapping(tmp_path):
    with pytest.raises(ValueError, match="^parameters: must be a mapping"):
        render(out=tmp_path, parameters=[("paper_dataset", "cifar10")])


def test_stored_notebooks_declare_what_render_injects():
    import papermill

    for path in find_notebooks():
        declared = papermill.inspect_notebook(str(path))
        assert {"profile", "figures_dir"} <= set(declared), path.name
        assert path.stem == "02_fig2_partition" or "store" in declared, path.name


def test_figures_help_lists_the_options(capsys):
    with pytest.raises(SystemExit) as info:
        main(["figures", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--profile", "--store", "--out", "--figures-dir", "--notebooks", "--notebooks-dir", "--param"):
        assert option in out


def test_render_signature_is_the_one_the_sweep_calls():
    import inspect

    sig = inspect.signature(render)
    assert list(sig.parameters) == ["profile", "store", "out", "figures_dir", "notebooks", "parameters", "progress"]
    assert [p.default for p in sig.parameters.values()] == ["quick", None, "figures-out", None, None, None, True]
