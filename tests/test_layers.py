"""The layers of docs/architecture.md ("Layers") held against the package's folders and every import.

The first three layers are folders (``byzlab/core``, ``byzlab/running``, ``byzlab/analysis``), the
front ends sit at the top of the package. Every module lies in the folder of the layer the page
puts it in; no import — at module level or inside a function, absolute or relative — points from
a layer to a higher one; and no modules import each other in a circle, function-level imports
included (a circle a late import hides still fails on the day someone moves that import to the
top of the file). The graph is read from the source with :mod:`ast` (nothing is imported), and
the reader itself is checked on a small package written here, so a reader that sees no imports
cannot pass.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "byzlab"
LAYERS = ("Core", "Running", "Analysis", "Front ends")
#: the folders of the first three layers (the front ends sit at the top of the package)
FOLDERS = ("core", "running", "analysis")


# --------------------------------------------------------------------------- reading
def documented_layers(text: str) -> dict[str, tuple[int, str]]:
    """``{unit: (layer index, folder)}`` from the numbered list of the "Layers" section.

    An item reads ``N. **Name** (`folder/`): ... `unit`, `unit/` ...``; a unit is a module or a subpackage.
    """
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d\. \*\*([^*]+)\*\* \(`([\w/]+)`\):(.*?)(?=^\d\. |^\S|\Z)", section, re.S | re.M)
    assert [name for name, _, _ in items] == list(LAYERS), [name for name, _, _ in items]
    units: dict[str, tuple[int, str]] = {}
    for i, (_, folder, body) in enumerate(items):
        for name in re.findall(r"`([\w/]+)`", body):
            unit = name.rstrip("/")
            assert unit not in units, f"{unit} is in two layers"
            units[unit] = (i, folder.rstrip("/"))
    return units


def module_name(path: Path, package: Path) -> str:
    """``byzlab/running/sweep/cli.py`` -> ``sweep.cli``; a package's ``__init__.py`` -> its folder's name."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over every ``.py`` file under ``package`` (names relative to it).

    ``from . import x`` is an import of the module ``x`` where one exists, else of the package;
    ``from .a.b import n`` of ``a.b``; ``import pkg.a`` / ``from pkg.a import n`` alike; a string
    that is exactly a module's dotted name (``"pkg.a.b"``, what ``importlib.import_module`` is
    given) counts as an import of it; imports from outside the package are left out; the
    package's own ``__init__`` is ``""``.
    """
    top = package.name
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    dotted = {f"{top}.{m}" for m in modules if m}  # ``"pkg.a.b"``, as importlib is given it
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if name else []
        if path.name != "__init__.py":
            here = here[:-1]  # the package the module sits in
        edges: set[str] = set()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        loggers = {id(a) for n in ast.walk(tree) if isinstance(n, ast.Call)  # getLogger("pkg.a") names a log
                   and getattr(n.func, "attr", getattr(n.func, "id", None)) == "getLogger" for a in n.args}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == top]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here[: len(here) - (node.level - 1)] if node.level > 1 else list(here)
                elif node.module and node.module.split(".")[0] == top:
                    base = []
                else:
                    continue
                mod = (node.module or "").split(".") if node.module else []
                if not node.level:
                    mod = mod[1:]
                target = base + mod  # ``from . import x``: the module x where it is one, else the package
                targets = [target + [a.name] if ".".join(target + [a.name]) in modules else target
                           for a in node.names]
            elif isinstance(node, ast.Constant) and node.value in dotted and id(node) not in loggers:
                targets = [node.value.split(".")[1:]]  # a module named in a string: loaded by name
            else:
                continue
            for t in targets:
                while t and ".".join(t) not in modules:  # ``from .a import name``: name is no module
                    t = t[:-1]
                if ".".join(t) != name:
                    edges.add(".".join(t))
        graph[name] = edges
    return graph


def unit(module: str) -> str:
    """The unit the page lists: ``core.simulator`` -> ``simulator``, ``running.sweep.cli`` -> ``sweep``,
    ``dashboard.view`` -> ``dashboard``; a layer's own ``__init__`` (``core``) is no unit."""
    parts = module.split(".")
    return parts[1] if parts[0] in FOLDERS and len(parts) > 1 else parts[0]


def layer(module: str) -> int:
    """The layer a module is in, by where it lies: a layer's folder, else the front ends at the top."""
    top = module.split(".")[0]
    return FOLDERS.index(top) if top in FOLDERS else len(FOLDERS)


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def upward(graph: dict[str, set[str]]) -> list[str]:
    """``"a -> b (Core -> Running)"`` for each import from a lower layer to a higher one."""
    bad = []
    for src, targets in sorted(graph.items()):
        if not src:  # the package's face re-exports the public API of every layer
            continue
        for dst in sorted(targets):
            if dst and layer(dst) > layer(src):
                bad.append(f"{src} -> {dst} ({LAYERS[layer(src)]} -> {LAYERS[layer(dst)]})")
    return bad


def misplaced(graph: dict[str, set[str]], documented: dict[str, tuple[int, str]]) -> list[str]:
    """Modules whose folder disagrees with the page, modules the page lacks, units it names that do not exist."""
    bad = []
    units = {}
    for m in graph:
        if m and m not in FOLDERS:
            units.setdefault(unit(m), set()).add(layer(m))
    for u, found in sorted(units.items()):
        if u not in documented:
            bad.append(f"{u}: in no layer of the page")
        elif found != {documented[u][0]}:
            bad.append(f"{u}: the page puts it in {LAYERS[documented[u][0]]}, it lies in "
                       f"{', '.join(LAYERS[i] for i in sorted(found))}")
    bad += [f"{u}: named by the page, no such module" for u in sorted(set(documented) - set(units))]
    return bad


# --------------------------------------------------------------------------- the reader, on a known package
@pytest.fixture()
def toy(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "core").mkdir(parents=True)
    files = {
        "__init__.py": "from .core.a import f\n",
        "cli.py": "import os\nfrom .core import b\n",
        "core/__init__.py": "",
        "core/a.py": "from . import b\nimport logging\nlog = logging.getLogger('toy.cli')  # a log's name\n",
        "core/b.py": "def g():\n    from ..running.c import h  # a late import is an import\n",
        "running/__init__.py": "",
        "core/d.py": "NAME = 'toy.cli'\n",
        "running/c.py": "from ..core import a\nfrom ..core.b import g\nimport toy.running\nfrom toy import cli\n",
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(exist_ok=True)
        (pkg / name).write_text(text)
    return pkg


def test_the_reader_sees_every_kind_of_import(toy):
    graph = import_graph(toy)
    assert graph == {"": {"core.a"}, "cli": {"core.b"}, "core": set(), "core.a": {"core.b"}, "core.d": {"cli"},
                     "core.b": {"running.c"}, "running": set(), "running.c": {"core.a", "core.b", "running", "cli"}}
    assert circles(graph) == [["cli", "core.a", "core.b", "running.c"]]
    assert upward(graph) == ["core.b -> running.c (Core -> Running)", "core.d -> cli (Core -> Front ends)",
                             "running.c -> cli (Running -> Front ends)"]
    page = ("x\n## Layers\n\n1. **Core** (`core/`): `a`, `b`, `d`.\n2. **Running** (`running/`): `c`\n"
            "3. **Analysis** (`analysis/`): none\n4. **Front ends** (`toy/`): `cli`, `gone/`\n\nAfter.\n## Next\n")
    documented = documented_layers(page)
    assert documented == {"a": (0, "core"), "b": (0, "core"), "d": (0, "core"), "c": (1, "running"),
                          "cli": (3, "toy"), "gone": (3, "toy")}
    assert misplaced(graph, documented) == ["gone: named by the page, no such module"]
    documented["c"] = (0, "core")
    assert misplaced(graph, documented)[0] == "c: the page puts it in Core, it lies in Running"


# --------------------------------------------------------------------------- the package
GRAPH = import_graph(PACKAGE)
DOCUMENTED = documented_layers((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))


def test_every_module_lies_in_the_folder_of_its_layer():
    assert misplaced(GRAPH, DOCUMENTED) == []
    assert {folder for _, folder in DOCUMENTED.values()} == {*(f"byzlab/{f}" for f in FOLDERS), "byzlab"}


def test_no_import_points_up_a_layer():
    assert upward(GRAPH) == []


def test_no_circle_even_through_late_imports():
    assert circles(GRAPH) == []
