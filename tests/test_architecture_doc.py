"""docs/architecture.md (the module map, a page of the reference site) against the code.

Every module of the package is named in it (by file, or by its package folder), every
module it names exists, and every dotted name it quotes (`data.DATASET_SPECS`, `RunConfig.schedule()`, ...) exists.
"""
from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import byzlab

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
QUOTED = set(re.findall(r"`([^`\n]+)`", TEXT))


def _modules() -> dict[str, object]:
    mods = {"byzlab": byzlab}
    for info in pkgutil.walk_packages(byzlab.__path__, "byzlab."):
        mods[info.name] = importlib.import_module(info.name)
    return mods


def test_every_module_is_on_the_map():
    package = ROOT / "byzlab"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.name == "__init__.py":
            continue
        names = {rel.name, rel.as_posix(), f"byzlab/{rel.as_posix()}"}
        folders = {f"{p.as_posix()}/" for p in rel.parents if p != Path(".")}
        if not (names | folders) & QUOTED:
            missing.append(rel.as_posix())
    assert not missing, f"modules not named in docs/architecture.md: {missing}"


def test_every_quoted_dotted_name_exists():
    mods = _modules()
    public = {}  # a bare public name (Simulation, RunConfig, ...) -> the object
    for mod in mods.values():
        for name in getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]:
            if hasattr(mod, name):
                public.setdefault(name, getattr(mod, name))
    dotted = [q for q in QUOTED if re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_]\w*)+(\(\))?", q)
              and not re.search(r"\.(py|csv|md|json|yaml|ipynb|parquet)$", q)]  # file names
    assert len(dotted) >= 10
    broken = []
    for q in dotted:
        parts = q.removesuffix("()").split(".")
        if parts[0] == "byzlab":
            parts = parts[1:]
        # the longest prefix that is a module of the package, else a public name
        for i in range(len(parts), 0, -1):
            if "byzlab." + ".".join(parts[:i]) in mods:
                obj, rest = mods["byzlab." + ".".join(parts[:i])], parts[i:]
                break
        else:
            if parts[0] not in public:
                broken.append(q)
                continue
            obj, rest = public[parts[0]], parts[1:]
        for p in rest:
            if not hasattr(obj, p) and not (isinstance(obj, type) and p in getattr(obj, "__dataclass_fields__", {})):
                broken.append(q)
                break
            obj = getattr(obj, p, None)
    assert not broken, f"names quoted in docs/architecture.md that do not exist: {sorted(broken)}"


def test_every_module_on_the_map_exists():
    package = ROOT / "byzlab"
    files = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    names = {Path(f).name for f in files}
    quoted = {q.removeprefix("byzlab/") for q in QUOTED if q.endswith(".py")}
    assert len(quoted) >= 20
    gone = sorted(q for q in quoted if q not in files and q not in names and not (ROOT / q).is_file())
    assert not gone, f"modules named in docs/architecture.md that do not exist: {gone}"
