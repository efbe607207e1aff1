"""byzlab works after a plain, non-editable install of its wheel.

The wheel is built from this checkout and installed into a fresh virtual
environment; its dependencies come from the environment running the tests (a
``.pth`` file points at its site-packages, so nothing is downloaded but the
build backend).  Then, from a folder outside the repository, ``byzlab
figures`` must find the notebooks shipped inside the package and render one.
"""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kw)
    assert p.returncode == 0, f"{' '.join(map(str, cmd))}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def test_the_built_wheel_ships_the_notebooks_and_byzlab_figures_runs(tmp_path):
    wheels = tmp_path / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)])
    [wheel] = wheels.glob("byzlab-*.whl")

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    deps = {sysconfig.get_paths()["purelib"], *site.getsitepackages()}
    Path(purelib, "_test_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = _run([str(py), "-c", "import byzlab, byzlab.running.figures as f; print(byzlab.__file__); "
                  "print(f.notebooks_dir())"], cwd=elsewhere, env=env).stdout.split()
    assert where[0].startswith(str(venv)), where  # the installed copy, not this checkout
    assert Path(where[1]) == Path(where[0]).parent / "notebooks"
    assert len(list(Path(where[1]).glob("*.ipynb"))) == len(list((ROOT / "notebooks").glob("*.ipynb")))

    _run([str(venv / "bin" / "byzlab"), "figures", "--notebooks", "02", "--out", "out"], cwd=elsewhere, env=env)
    [executed] = (elsewhere / "out").glob("02_fig2_partition*.ipynb")
    cells = json.loads(executed.read_text())["cells"]
    assert any("client totals:" in "".join(o.get("text", "")) for c in cells for o in c.get("outputs", []))
