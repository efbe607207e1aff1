"""The layers of docs/architecture.md ("Layers") held against every import in the package.

Every module belongs to exactly one layer (a package folder belongs as a whole); no import — at
module level or inside a function, absolute or relative — points from a layer to a higher one; and
no modules import each other in a circle, function-level imports included (a circle a late import
hides still fails on the day someone moves that import to the top of the file). The graph is read
from the source with :mod:`ast` (nothing is imported), and the reader itself is checked on a small
package written here, so a reader that sees no imports cannot pass.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "byzlab"
LAYERS = ("Core", "Running", "Analysis", "Front ends")


# --------------------------------------------------------------------------- reading
def documented_layers(text: str) -> dict[str, int]:
    """``{unit: layer index}`` from the numbered list of the "Layers" section (a unit: ``simulator``, ``sweep``)."""
    section = text.split("\n## Layers", 1)[1].split("\n## ", 1)[0]
    items = re.findall(r"^\d\. \*\*([^*]+)\*\*:(.*?)(?=^\d\. |^\S|\Z)", section, re.S | re.M)
    assert [name for name, _ in items] == list(LAYERS), [name for name, _ in items]
    units: dict[str, int] = {}
    for i, (_, body) in enumerate(items):
        for name in re.findall(r"`([\w/]+)`", body):
            unit = name.rstrip("/")
            assert unit not in units, f"{unit} is in two layers"
            units[unit] = i
    return units


def module_name(path: Path, package: Path) -> str:
    """``byzlab/sweep/cli.py`` -> ``sweep.cli``; a package's ``__init__.py`` -> its folder's name."""
    parts = list(path.relative_to(package).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over every ``.py`` file under ``package`` (names relative to it).

    ``from . import x`` is an import of the module ``x`` where one exists, else of the package;
    ``from .a.b import n`` of ``a.b``; ``import pkg.a`` / ``from pkg.a import n`` alike; imports
    from outside the package are left out; the package's own ``__init__`` is ``""``.
    """
    top = package.name
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        here = name.split(".") if name else []
        if path.name != "__init__.py":
            here = here[:-1]  # the package the module sits in
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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
    """The unit the layers list: the first part of the name (``sweep.cli`` -> ``sweep``)."""
    return module.split(".")[0]


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


def upward(graph: dict[str, set[str]], layers: dict[str, int]) -> list[str]:
    """``"a -> b (Core -> Running)"`` for each import from a lower layer to a higher one."""
    bad = []
    for src, targets in sorted(graph.items()):
        if not src:  # the package's face re-exports the public API of every layer
            continue
        for dst in sorted(targets):
            if dst and layers[unit(dst)] > layers[unit(src)]:
                bad.append(f"{src} -> {dst} ({LAYERS[layers[unit(src)]]} -> {LAYERS[layers[unit(dst)]]})")
    return bad


# --------------------------------------------------------------------------- the reader, on a known package
@pytest.fixture()
def toy(tmp_path):
    pkg = tmp_path / "toy"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .a import f\n",
        "a.py": "import os\nfrom . import b\n",
        "b.py": "def g():\n    from .sub.c import h  # a late import is an import\n",
        "sub/__init__.py": "",
        "sub/c.py": "from .. import a\nfrom ..b import g\nimport toy.sub\n",
        "d.py": "from toy.a import f\nfrom toy import b\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    return pkg


def test_the_reader_sees_every_kind_of_import(toy):
    graph = import_graph(toy)
    assert graph == {"": {"a"}, "a": {"b"}, "b": {"sub.c"}, "sub": set(), "sub.c": {"a", "b", "sub"},
                     "d": {"a", "b"}}
    assert circles(graph) == [["a", "b", "sub.c"]]
    layers = {"a": 0, "b": 0, "sub": 1, "d": 1}
    assert upward(graph, layers) == ["b -> sub.c (Core -> Running)"]
    assert documented_layers("x\n## Layers\n\n1. **Core**: `a`, `b`.\n2. **Running**: `sub/`\n"
                             "3. **Analysis**: `d`\n4. **Front ends**: none\n\nAfter.\n## Next\n") == \
        {"a": 0, "b": 0, "sub": 1, "d": 2}


# --------------------------------------------------------------------------- the package
GRAPH = import_graph(PACKAGE)
DOCUMENTED = documented_layers((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))


def test_every_module_is_in_one_layer():
    units = {unit(m) for m in GRAPH if m}
    assert sorted(units - set(DOCUMENTED)) == [], "modules in no layer of docs/architecture.md"
    assert sorted(set(DOCUMENTED) - units) == [], "layers name modules that do not exist"


def test_no_import_points_up_a_layer():
    assert upward(GRAPH, DOCUMENTED) == []


def test_no_circle_even_through_late_imports():
    assert circles(GRAPH) == []
