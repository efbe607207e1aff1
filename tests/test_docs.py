"""The reference site builds strictly and covers every rule, RunConfig field and CLI command.

The site is built once (``mkdocs build --strict`` into a temporary folder) and its
HTML is checked against the code's own lists: the registry's rules, the dataclass
fields of ``RunConfig``, the sub-commands and options of ``byzlab``'s argparse
parser, and the notebooks in ``notebooks/``.  Skipped only where mkdocs is not
installed (CI installs it with the ``docs`` extra).
"""
from __future__ import annotations

import argparse
import dataclasses
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")

from byzlab.core import registry  # noqa: E402
from byzlab.cli import build_parser  # noqa: E402
from byzlab.core.config import RunConfig  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return out


def _page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def _ids(text: str) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', text))


def _rules():
    # the rules byzlab ships; other tests of the same process register their own
    for kind, table in (("aggregator", registry.AGGREGATORS), ("pre_aggregator", registry.PRE_AGGREGATORS),
                        ("attack", registry.ATTACKS)):
        for name, rule in table.items():
            if rule.fn.__module__.partition(".")[0] == "byzlab":
                yield kind, name, rule


def test_every_registered_rule_is_in_the_rule_tables(site):
    text = html.unescape(_page(site, "rules.html"))
    missing = [name for _, name, _ in _rules() if f"<code>{name}</code>" not in text]
    assert not missing, f"rules missing from rules.html: {missing}"


def test_every_public_rule_function_has_its_api_entry_with_a_formula(site):
    ids = set().union(*(_ids(_page(site, p)) for p in ("aggregators.html", "defences.html", "attacks.html")))
    missing, no_formula = [], []
    for _, name, rule in _rules():
        fn = rule.fn
        if fn.__qualname__.startswith("_"):  # a registration wrapper around a public function
            continue
        if f"{fn.__module__}.{fn.__qualname__}" not in ids:
            missing.append(name)
        if "$" not in (fn.__doc__ or ""):
            no_formula.append(name)
    assert not missing, f"rule functions without an API entry: {missing}"
    assert not no_formula, f"rule docstrings without a formula: {no_formula}"


def test_formulas_are_rendered_as_math(site):
    # pymdownx.arithmatex wraps every $...$ / $$...$$ of the docstrings for MathJax;
    # a docstring's raw LaTeX left unwrapped would show as text
    text = _page(site, "aggregators.html")
    assert text.count('class="arithmatex"') >= 20
    body = re.sub(r'<(span|div) class="arithmatex">.*?</\1>|<details.*?</details>|<pre.*?</pre>', "", text,
                  flags=re.S)  # the formulas and the shown source code
    assert "\\frac" not in body and "\\lVert" not in body


def test_every_runconfig_field_is_documented(site):
    page = _page(site, "configuration.html")
    ids = _ids(page)
    missing = [f.name for f in dataclasses.fields(RunConfig) if f"byzlab.core.config.RunConfig.{f.name}" not in ids]
    assert not missing, f"RunConfig fields missing from configuration.html: {missing}"
    # each field's help (the command line's too) is shown under its name
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    helps = {f.name: " ".join(f.metadata["help"].split()) for f in dataclasses.fields(RunConfig) if "help" in f.metadata}
    assert len(helps) >= 20
    no_help = [name for name, h in helps.items() if h[1:] not in text]
    assert not no_help, f"RunConfig fields shown without their help: {no_help}"


def test_every_cli_command_and_option_is_on_the_cli_page(site):
    text = html.unescape(_page(site, "cli.html"))
    ids = _ids(text)
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 5
    for name, p in sub.choices.items():
        assert f"byzlab-{name}" in ids, f"sub-command {name!r} missing from cli.html"
        options = [s for a in p._actions for s in a.option_strings if s not in ("-h", "--help")]
        missing = [s for s in options if f"<code>{s}</code>" not in text]
        assert not missing, f"options of {name!r} missing from cli.html: {missing}"


def test_every_notebook_is_rendered(site):
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for stem in notebooks:
        page = site / "notebooks" / f"{stem}.html"
        assert page.is_file(), f"notebook {stem} not rendered"
        assert "jp-Notebook" in page.read_text(encoding="utf-8")


def test_readme_sections_and_links_resolve(site):
    # every page built from a README section carries its text; links between sections
    # point at the page that holds the target (the strict build checks the anchors exist)
    index = _page(site, "index.html")
    assert "What is in the box" in index
    assert 'href="sweep.html#the-whole-paper-byzlab-sweep"' in index
    assert (site / "figures" / "dashboard.png").is_file()


# --------------------------------------------------------------------------- the site's own helpers
def _load(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"byzlab_docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_field_help_is_read_from_the_field_declaration():
    pytest.importorskip("griffe")
    field_help = _load("griffe_rst").field_help
    assert field_help('_field(0.1, "learning rate η", flag="--lr")') == ("0.1", "learning rate η")
    assert field_help("_field(None, 'model')") == ("None", "model")
    assert field_help("field(default_factory=dict)") is None
    assert field_help("_field(1)") is None


def test_rst_markup_becomes_markdown():
    pytest.importorskip("griffe")
    rst = _load("griffe_rst").rst_to_markdown
    assert rst(":func:`~byzlab.core.kernels.rank_network` and :class:`byzlab.core.config.RunConfig`") == \
        "`rank_network` and `byzlab.core.config.RunConfig`"
    assert rst("norm :math:`\\lVert x\\rVert` here") == "norm $\\lVert x\\rVert$ here"
    assert rst("    .. math:: a = b\n              + c\n\n    next") == "    $$a = b + c$$\n\n    next"
    assert rst("Layout of ``out``::\n\n    out/\n      store/") == "Layout of ``out``:\n\n    out/\n      store/"


def test_readme_links_are_rewritten_for_the_site():
    hooks = _load("hooks")
    links = hooks._Links({"live-dashboard": "dashboard.md", "python": "getting-started.md"}, "getting-started.md")

    def sub(text):
        return hooks._LINK.sub(links, text)

    assert sub("[the dashboard](#live-dashboard)") == "[the dashboard](dashboard.md#live-dashboard)"
    assert sub("[above](#python)") == "[above](#python)"  # a section of the same page
    assert sub("[map](docs/architecture.md)") == "[map](architecture.md)"
    assert sub("[all tables](benchmarks/RESULTS.md)") == "[all tables](benchmarks.md)"
    assert sub("![fig](figures/fig1_alie_alternating.png)") == "![fig](figures/fig1_alie_alternating.png)"
    assert sub("[Flower](https://flower.ai)") == "[Flower](https://flower.ai)"
    assert sub("[the CLI](byzlab/cli.py)") == "the CLI (`byzlab/cli.py`)"  # not on the site: kept as text
    assert sub("[`x.csv`](byzlab/data_files/x.csv)") == "`x.csv`"
    assert sub("[gone](#no-such-heading)") == "gone (`#no-such-heading`)"


def test_readme_headings_slug_and_sections():
    hooks = _load("hooks")
    # GitHub's anchors, as the README's own links spell them
    assert hooks._slug("The whole paper: `byzlab sweep`") == "the-whole-paper-byzlab-sweep"
    assert hooks._slug("The paper's claims, checked") == "the-papers-claims-checked"
    assert hooks._slug("Bench: which defence survives?") == "bench-which-defence-survives"
    text = "# T\nintro\n## A\na\n```bash\n# not a heading\n```\n### A1\nx\n## B\nb"
    assert [(lv, t, s, e) for lv, t, s, e in hooks._sections(text)] == \
        [(1, "T", 0, 11), (2, "A", 2, 9), (3, "A1", 7, 9), (2, "B", 9, 11)]
    assert hooks._shift("## A\n```\n## code\n```\n### A1", 1) == "# A\n```\n## code\n```\n## A1"


def test_readme_links_point_at_existing_sections_and_files():
    hooks = _load("hooks")
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    anchors = {hooks._slug(title) for _, title, _, _ in hooks._sections(text)}
    links = [m.group(3) for m in hooks._LINK.finditer(text)]
    assert len(links) >= 20
    dangling = [u for u in links if u.startswith("#") and u[1:] not in anchors]
    missing = [u for u in links if not re.match(r"^([a-z]+:|#)", u) and not (ROOT / u.split("#")[0]).exists()]
    assert not dangling, f"README links to sections that do not exist: {dangling}"
    assert not missing, f"README links to files that do not exist: {missing}"
