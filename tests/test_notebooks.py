"""The notebooks as stored: a parameters cell with the quick defaults, no outputs, a header naming
their figure or table; thin (all logic in byzlab).  nbval executes them (see pyproject.toml)."""
from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from byzlab.running.experiments import load_profile
from byzlab.running.figures import CHECK_MARK, clean_notebook, find_notebooks
from byzlab.running.store import default_root

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FIGURE_NOTEBOOKS = [p for p in NOTEBOOKS if not p.stem.startswith("00_")]

#: notebook -> what its title must name
TITLES = {
    "01_fig1_alie_alternating": "Fig. 1 ",
    "02_fig2_partition": "Fig. 2 ",
    "03_fig3_rop_sparse": "Fig. 3 ",
    "04_figs4-9_accuracy": "Figs. 4–9 ",
    "05_figs10-11_train_loss": "Figs. 10–11 ",
    "06_fig12_lambda": "Fig. 12 ",
    "07_figs13-14_z": "Figs. 13–14 ",
    "08_table2_alie_cosine": "Table II ",
    "09_table3_rop_cosine": "Table III ",
    "10_table4": "Table IV ",
    "11_bench": "Bench — ",
    "12_flower": "Flower ",
    "13_claims": "Claims ",
}


def read(path: Path):
    return nbformat.read(str(path), as_version=4)


def source(cell) -> str:
    return cell.source if isinstance(cell.source, str) else "".join(cell.source)


def test_one_notebook_per_figure_and_table():
    assert [p.stem for p in FIGURE_NOTEBOOKS] == list(TITLES)
    # what `byzlab figures` runs by default: the paper's figures and tables (01-10)
    assert [p.stem for p in find_notebooks()] == [n for n in TITLES if n[:2] <= "10"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_without_outputs_except_nbval_references(path):
    nb = read(path)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if source(cell).lstrip().startswith(CHECK_MARK):
            # nbval's reference: printed text only, stored as executed (nbval skips unexecuted cells)
            assert cell.outputs, f"{path.name}: checked cell without a reference output"
            assert all(o.output_type == "stream" and o.name == "stdout" for o in cell.outputs)
            assert cell.execution_count == 1
        else:
            assert cell.outputs == [], f"{path.name}: stored with outputs: {source(cell)[:60]!r}"
            assert cell.execution_count is None
    assert "widgets" not in nb.metadata and "papermill" not in nb.metadata


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_the_quick_defaults(path):
    import papermill

    nb = read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0].cell_type == "code"
    assert nb.cells.index(tagged[0]) == 1  # right after the header
    if path in FIGURE_NOTEBOOKS:
        params = papermill.inspect_notebook(str(path))
        assert params["profile"]["default"] == '"quick"'
        assert params["figures_dir"]["default"] == "None"
        if "store" in params:
            assert params["store"]["default"] == "None"


@pytest.mark.parametrize("path", FIGURE_NOTEBOOKS, ids=lambda p: p.stem)
def test_header_names_the_figure_and_how_to_run_it_at_paper_scale(path):
    header = read(path).cells[0]
    assert header.cell_type == "markdown"
    text = source(header)
    assert text.startswith(f"# {TITLES[path.stem]}")
    assert "Byzantines can also Learn from History" in text
    assert f"papermill notebooks/{path.name} out.ipynb -p profile paper" in text
    assert "byzlab figures --profile paper" in text


@pytest.mark.parametrize("path", FIGURE_NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_thin(path):
    """Logic lives in byzlab: no function or class definitions, no imports but byzlab's, short cells."""
    for cell in read(path).cells:
        if cell.cell_type != "code":
            continue
        code = source(cell)
        assert not re.search(r"^\s*(def|class|lambda)\b", code, re.M), f"{path.name}: logic in the notebook"
        for line in code.splitlines():
            if line.startswith(("import ", "from ")):
                assert line.startswith(("from byzlab import", "from byzlab.")), f"{path.name}: {line}"
        assert len(code.splitlines()) <= 8


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_experiments_used_by_the_notebooks_exist_in_the_shipped_profiles(profile):
    used = set()
    for path in FIGURE_NOTEBOOKS:
        used |= set(re.findall(r'paper\.(?:results|frames)\(profile, "(\w+)"', "".join(source(c) for c in read(path).cells)))
    assert used == {"fig1", "fig3", "table4", "fig12", "fig13_14"}
    assert used <= set(load_profile(profile).experiments)


def test_the_test_session_uses_a_temporary_results_cache():
    cache = Path(os.environ["BYZLAB_CACHE"])
    assert cache.is_relative_to(Path(tempfile.gettempdir()))
    assert not cache.is_relative_to(Path.home() / ".cache")
    assert default_root() == cache


def test_pytest_runs_every_notebook_under_nbval():
    if sys.version_info < (3, 11):
        pytest.skip("tomllib")
    import tomllib

    opts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert "notebooks" in opts["testpaths"]
    assert "--nbval-lax" in opts["addopts"].split()


def test_clean_notebook_keeps_only_the_reference_outputs():
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("fig", execution_count=3, outputs=[
            out("display_data", data={"text/plain": "figure"})]),
        nbformat.v4.new_code_cell(f"{CHECK_MARK}\nprint(2)", execution_count=4, outputs=[
            out("stream", name="stdout", text="2\n"), out("stream", name="stderr", text="warning\n")]),
        nbformat.v4.new_code_cell("print(3)", execution_count=5, outputs=[out("stream", name="stdout", text="3\n")],
                                  metadata={"tags": [], "papermill": {"duration": 1.0}}),
    ], metadata={"papermill": {}, "language_info": {"name": "python", "version": "3.11.2"}})
    clean = clean_notebook(nb)
    assert len(clean.cells) == 3  # the injected parameters are gone
    assert [c.outputs for c in clean.cells] == [[], [out("stream", name="stdout", text="2\n")], []]
    assert [c.execution_count for c in clean.cells] == [None, 1, None]
    assert clean.cells[2].metadata == {}
    assert clean.metadata == {"language_info": {"name": "python"}}
    assert nb.cells[1].outputs  # the input is left alone
