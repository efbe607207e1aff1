"""``byzlab figures``: execute the figure notebooks (one per figure or table of the paper) with papermill.

>>> render("quick", out="figures-out")                          # doctest: +SKIP
>>> render("paper", store="sweeps/paper/store", notebooks=["table4"])   # doctest: +SKIP

Each notebook of the repository's ``notebooks/`` folder (all but
``00_explore``, the live dashboard) has a ``parameters`` cell; :func:`render`
injects ``profile``, ``store`` and ``figures_dir`` there (plus the profile's
``notebook_parameters`` and the caller's ``parameters``, for the notebooks that
declare them), writes the executed notebooks into ``out`` and the figures
(``<name>.html`` and ``<name>.png``) into ``figures_dir``.  All notebooks read
their runs through one results store, so a run shared by several figures is
computed once.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError, one_line
from .experiments import load_profile
from .options import parse_value

__all__ = ["render", "notebooks_dir", "find_notebooks", "clean_notebook", "RenderError", "add_parser",
           "CHECK_MARK"]

#: the first line of a cell whose output nbval compares (its stored output is the reference)
CHECK_MARK = "# NBVAL_CHECK_OUTPUT"
#: notebooks left out unless named: the live dashboard (trains in the background, renders no figure),
#: and the notebooks beyond the paper's figures: the bench (rendered by ``byzlab bench``), Flower
#: (needs the ``flower`` extra) and the claims table (from a committed results table)
SKIPPED = ("00_explore", "11_bench", "12_flower", "13_claims")
#: parameters every figure notebook declares and :func:`render` sets itself
RESERVED = ("profile", "store", "figures_dir")


class RenderError(ValueError):
    """Some notebooks failed; ``paths`` are all executed notebooks, ``failed`` maps a name to its error."""

    def __init__(self, message: str, paths: list[Path], failed: dict[str, str]):
        super().__init__(message)
        self.paths = paths
        self.failed = failed


def notebooks_dir() -> Path:
    """The figure notebooks: ``byzlab/notebooks`` of an installed wheel, else the repository's ``notebooks/``."""
    here = Path(__file__).resolve().parents[1]  # the package folder
    shipped = here / "notebooks"
    if shipped.is_dir() and any(shipped.glob("*.ipynb")):
        return shipped
    return here.parent / "notebooks"


def find_notebooks(notebooks: list[str] | None = None, folder: str | os.PathLike | None = None) -> list[Path]:
    """The notebooks to execute, in order.

    ``notebooks`` entries are paths to ``.ipynb`` files or folders, or names looked up in
    ``folder`` (default :func:`notebooks_dir`): a file stem (``04_figs4-9_accuracy``), its
    number (``04``) or one of its words (``fig1``, ``table4``, ``figs4-9``).  None: every
    notebook of ``folder`` but the dashboard.
    """
    base = Path(folder) if folder is not None else notebooks_dir()

    def listing(where: Path) -> list[Path]:
        if not where.is_dir():
            raise ConfigError(f"notebooks: no notebooks folder at {where}; pass --notebooks-dir (the repository's "
                             "notebooks/ folder)")
        found = sorted(p for p in where.glob("*.ipynb") if p.stem not in SKIPPED)
        if not found:
            raise ConfigError(f"notebooks: no .ipynb files in {where}")
        return found

    if notebooks is None:
        return listing(base)
    if isinstance(notebooks, (str, os.PathLike)) or not all(isinstance(n, (str, os.PathLike)) for n in notebooks):
        raise ConfigError(f"notebooks: must be a list of names or paths, got {notebooks!r}")
    out: list[Path] = []
    for entry in notebooks:
        path = Path(entry)
        if path.suffix == ".ipynb" and path.is_file():
            hits = [path]
        elif path.is_dir():
            hits = listing(path)
        else:
            available = sorted(p for p in base.glob("*.ipynb")) if base.is_dir() else listing(base)
            name = str(entry).removesuffix(".ipynb")
            hits = [p for p in available if p.stem == name or name in p.stem.split("_")]
            if not hits:
                raise ConfigError(f"notebooks: no notebook {str(entry)!r} in {base}; choose among: "
                                 f"{', '.join(p.stem for p in available)}")
        out += [p for p in hits if p not in out]
    return out


def _declared(path: Path) -> dict:
    import papermill

    return papermill.inspect_notebook(str(path))


def render(profile: str = "quick", store: str | os.PathLike | None = None, out: str | os.PathLike = "figures-out",
           figures_dir: str | os.PathLike | None = None, notebooks: list[str] | None = None,
           parameters: dict | None = None, progress: bool = True) -> list[Path]:
    """Execute the figure notebooks with papermill; returns the executed notebooks' paths.

    Parameters
    ----------
    profile
        ``quick`` (embedded digits, minutes on a CPU), ``paper`` (full scale, a GPU) or a
        profile YAML file (e.g. a sweep's ``profile.yaml``).
    store
        The results store the notebooks read and fill (None: ``$BYZLAB_CACHE`` or the default cache).
    out
        Folder of the executed notebooks (``<out>/<name>.ipynb``).
    figures_dir
        Folder of the figures (``.html`` and ``.png``); None: ``<out>/figures``.
    notebooks
        Which notebooks (see :func:`find_notebooks`); None: all but the dashboard.
    parameters
        More notebook parameters (``{"paper_dataset": "cifar10"}``), given to every notebook
        that declares them; they override the profile's ``notebook_parameters``.
    progress
        Show papermill's progress bar.

    A notebook that fails is reported in one line (its name and error) and the others
    still run; then :class:`RenderError` (a ValueError) names the failed ones.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    prof = load_profile(profile)
    if parameters is not None and not isinstance(parameters, dict):
        raise ConfigError(f"parameters: must be a mapping of notebook parameters, got {parameters!r}")
    given = dict(parameters or {})
    clash = sorted(set(given) & set(RESERVED))
    if clash:
        raise ConfigError(f"parameters: {', '.join(clash)} cannot be a notebook parameter here; "
                         "it is set by the profile/store/figures_dir options")
    paths = find_notebooks(notebooks)
    out = Path(out).resolve()
    figures = Path(figures_dir).resolve() if figures_dir is not None else out / "figures"
    profile_arg = str(prof.path) if prof.path is not None and Path(str(profile)).suffix else str(profile)
    common = {"profile": profile_arg, "store": str(Path(store).resolve()) if store is not None else None,
              "figures_dir": str(figures)}
    shared = {**(prof.notebook_parameters or {}), **given}
    declared = {p: _declared(p) for p in paths}
    unknown = sorted(set(given) - set().union(*declared.values()))
    if unknown:
        raise ConfigError(f"parameters: {', '.join(unknown)} not declared by any of the notebooks "
                         f"({', '.join(p.stem for p in paths)})")
    out.mkdir(parents=True, exist_ok=True)
    executed, failed = [], {}
    for path in paths:
        params = {k: v for k, v in {**common, **shared}.items() if k in declared[path]}
        target = out / path.name
        try:
            papermill.execute_notebook(str(path), str(target), parameters=params, progress_bar=progress,
                                       cwd=str(path.parent))
        except PapermillExecutionError as e:
            failed[path.stem] = f"{e.ename}: {(str(e.evalue).strip().splitlines() or [''])[0]}"
        except Exception as e:  # kernel died, notebook unreadable …: report it, go on with the others
            failed[path.stem] = one_line(e)
        if path.stem in failed:
            print(f"byzlab figures: {path.stem} failed: {failed[path.stem]} (see {target})", file=sys.stderr)
        executed.append(target)
    if failed:
        raise RenderError(f"figures: {len(failed)} of {len(paths)} notebooks failed: {', '.join(failed)} "
                          f"(executed notebooks in {out})", executed, failed)
    return executed


# =========================================================================== maintenance
def clean_notebook(nb: Any) -> Any:
    """A copy of a notebook (nbformat node or dict) as stored in the repository: no execution
    counts, no outputs — except the printed output of cells marked ``# NBVAL_CHECK_OUTPUT``, which
    is nbval's reference (stored with execution count 1, as nbval compares only executed cells).
    Used by ``byzlab figures --update-reference``."""
    nb = copy.deepcopy(nb)
    nb["cells"] = [c for c in nb["cells"] if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb["cells"]:
        meta = cell.setdefault("metadata", {})
        for key in ("execution", "papermill"):
            meta.pop(key, None)
        if not meta.get("tags", True):
            del meta["tags"]
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if source.lstrip().startswith(CHECK_MARK):
            cell["outputs"] = [o for o in cell["outputs"] if o.get("output_type") == "stream"
                               and o.get("name") == "stdout"]
        else:
            cell["outputs"] = []
        # nbval compares only cells stored as executed: a count on the reference cells, None elsewhere
        cell["execution_count"] = 1 if cell["outputs"] else None
    for key in ("papermill", "widgets"):
        nb["metadata"].pop(key, None)
    if "language_info" in nb["metadata"]:  # keep the file independent of the Python that ran it
        nb["metadata"]["language_info"] = {"name": nb["metadata"]["language_info"].get("name", "python")}
    return nb


def update_reference(notebooks: list[str] | None = None, store: str | os.PathLike | None = None) -> list[Path]:
    """Execute notebooks with their defaults (the ``quick`` profile) and store them cleaned
    (:func:`clean_notebook`): refreshes the nbval reference outputs after a deliberate change."""
    import tempfile

    import nbformat

    paths = find_notebooks(notebooks)
    with tempfile.TemporaryDirectory() as tmp:
        import papermill

        for path in paths:
            target = Path(tmp) / path.name
            papermill.execute_notebook(str(path), str(target), parameters={"store": store} if store else {},
                                       progress_bar=False, cwd=str(path.parent))
            nb = clean_notebook(nbformat.read(str(target), as_version=4))
            nbformat.write(nb, str(path))
    return paths


# =========================================================================== command line
def _cmd_figures(args: argparse.Namespace) -> int:
    notebooks = list(args.notebooks) if args.notebooks else None
    if args.notebooks_dir is not None:
        notebooks = find_notebooks(notebooks, args.notebooks_dir)
    else:
        find_notebooks(notebooks)  # a missing folder or an unknown name: one line before anything runs
    if args.update_reference:
        for path in update_reference(notebooks, args.store):
            print(f"updated {path}")
        return 0
    params = {}
    for item in args.param or ():
        if "=" not in item:
            raise ConfigError(f"-p/--param: expected NAME=VALUE, got {item!r}")
        name, value = item.split("=", 1)
        params[name.strip()] = parse_value(value)
    try:
        paths = render(profile=args.profile, store=args.store, out=args.out, figures_dir=args.figures_dir,
                       notebooks=notebooks, parameters=params or None, progress=not args.quiet)
    except RenderError as e:
        print(f"byzlab: error: {e}", file=sys.stderr)
        return 1
    for path in paths:
        print(path)
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``byzlab figures``: registered by :mod:`byzlab.cli`."""
    p = subparsers.add_parser(
        "figures", help="execute the figure notebooks (every figure and table of the paper)",
        description="Execute the notebooks of every figure and table of the paper with papermill, "
                    "writing executed notebooks into --out and <name>.html/.png figures into --figures-dir.")
    p.add_argument("--profile", default="quick",
                   help="quick (embedded digits, minutes on a CPU), paper (full scale, GPU) or a profile .yaml")
    p.add_argument("--store", default=None, help="results store folder (default: $BYZLAB_CACHE or ~/.cache/byzlab/results)")
    p.add_argument("--out", default="figures-out", help="folder of the executed notebooks (figures-out)")
    p.add_argument("--figures-dir", default=None, help="folder of the figures (default: <out>/figures)")
    p.add_argument("--notebooks", nargs="+", default=None, metavar="NAME",
                   help="only these notebooks: numbers (04), words (fig1, table4) or paths")
    p.add_argument("--notebooks-dir", default=None, help="folder of the notebooks (default: the ones shipped with byzlab)")
    p.add_argument("-p", "--param", action="append", metavar="NAME=VALUE",
                   help="a notebook parameter for the notebooks that declare it, e.g. paper_dataset=cifar10; repeatable")
    p.add_argument("--update-reference", action="store_true",
                   help="maintainers: re-execute the notebooks with their defaults and store them with only the "
                        "reference outputs of their '# NBVAL_CHECK_OUTPUT' cells")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_figures)
    return p
