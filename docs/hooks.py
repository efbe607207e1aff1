"""MkDocs hooks that build parts of the reference site from their one home, at build time.

- The notebooks (``notebooks/*.ipynb``, rendered by mkdocs-jupyter without being
  executed), the figures (``figures/``) and ``benchmarks/RESULTS.md`` are added to
  the site from where they live; the nav entry ``notebooks/`` lists every notebook.
- ``cli.md`` is generated from the argparse parser of ``byzlab`` (``byzlab.cli.build_parser``).
- ``<!-- readme: Heading -->`` in a page is replaced by that section of ``README.md``
  (its heading the page's title, or a level-2 heading below one; links rewritten for
  the site; ``(intro)``: the text above its first section); ``<!-- file: path -->`` by a whole Markdown file of the repository.
- ``<!-- registry: kind -->`` is replaced by a table of the registered rules of that
  kind (``aggregator``, ``pre_aggregator``, ``attack``) read from ``byzlab.core.registry``.

So a rule, an option or a sub-command added to the code appears in the reference
without anyone editing the site.
"""
from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

import mkdocs.plugins
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: repository folders published as they are (with the file types kept)
PUBLISHED = {"figures": (".png", ".svg", ".html", ".csv"), "notebooks": (".ipynb",)}
#: repository files that are a page of the site
PAGES = {"docs/architecture.md": "architecture.md", "benchmarks/RESULTS.md": "benchmarks.md",
         "README.md": "index.md"}
NOTEBOOKS_NAV = "notebooks/"
#: the README's title and opening paragraphs, for ``<!-- readme: (intro) -->``
INTRO = "(intro)"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(([^)\s]+)\)")
_MARKER = re.compile(r"<!--\s*(readme|file|registry):\s*(.*?)\s*-->")


# --------------------------------------------------------------------------- files and nav
def _published(rel: str) -> bool:
    top, _, rest = rel.partition("/")
    return bool(rest) and top in PUBLISHED and rel.endswith(PUBLISHED[top])


def _repo_files() -> list[str]:
    out = []
    for top in PUBLISHED:
        for p in sorted((ROOT / top).rglob("*")):
            rel = p.relative_to(ROOT).as_posix()
            if p.is_file() and _published(rel):
                out.append(rel)
    return out


def on_config(config):
    """Expand the ``notebooks/`` nav entry into one entry per notebook."""
    notebooks = sorted(p for p in _repo_files() if p.startswith("notebooks/"))

    def expand(items):
        out = []
        for item in items:
            if isinstance(item, dict):
                (title, value), = item.items()
                if value == NOTEBOOKS_NAV:
                    value = notebooks
                elif isinstance(value, list):
                    value = expand(value)
                out.append({title: value})
            else:
                out.append(item)
        return out

    config["nav"] = expand(config["nav"] or [])
    return config


@mkdocs.plugins.event_priority(100)  # before mkdocs-jupyter turns the notebooks into pages
def on_files(files: Files, config) -> Files:
    for rel in _repo_files():
        files.append(File(rel, src_dir=str(ROOT), dest_dir=config["site_dir"],
                          use_directory_urls=config["use_directory_urls"]))
    files.append(File.generated(config, "cli.md", content=cli_markdown()))
    return files


# --------------------------------------------------------------------------- the CLI page
def _option_row(action: argparse.Action) -> str:
    flags = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.dest}`"
    if action.metavar and action.option_strings:
        flags += f" `{action.metavar}`"
    text = (action.help or "").replace("%%", "%")
    if "%(" in text:
        text = text % {**vars(action), "default": action.default}
    if action.choices and not isinstance(action.choices, dict):
        text += " Choices: " + ", ".join(f"`{c}`" for c in action.choices) + "."
    if action.option_strings and action.default not in (None, argparse.SUPPRESS, False) \
            and "default" not in text.lower():
        text += f" Default: `{action.default}`."
    return f"| {flags} | {text.replace('|', '&#124;').replace(chr(10), ' ')} |"


def _parser_markdown(parser: argparse.ArgumentParser, name: str, level: int) -> list[str]:
    out = [f"{'#' * level} `{name}`", ""]
    if parser.description:
        out += [parser.description, ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    rows = [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
    if rows:
        out += ["| argument | meaning |", "|---|---|", *[_option_row(a) for a in rows], ""]
    return out


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The sub-command parsers of ``parser``, by name (aliases left out)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen, out = set(), {}
            for name, sub in action.choices.items():
                if id(sub) not in seen:
                    seen.add(id(sub))
                    out[name] = sub
            return out
    return {}


def cli_markdown() -> str:
    """The CLI reference page, generated from ``byzlab.cli.build_parser()``."""
    from byzlab.cli import build_parser

    parser = build_parser()
    parser.prog = "byzlab"
    subs = subcommands(parser)
    out = ["# Command line", "",
           "Generated from the argparse parser of `byzlab` when the site is built. "
           "`byzlab COMMAND --help` prints the same. Bad input exits with status 2 and a "
           "one-line error naming the parameter; a bug exits with status 1 and its traceback.", "",
           "```text", parser.format_usage().strip(), "```", "",
           "| command | what it does |", "|---|---|"]
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    summary = {c.dest: c.help for c in choices._choices_actions}
    for name in subs:
        out.append(f"| [`byzlab {name}`](#byzlab-{name}) | {summary.get(name) or ''} |")
    out.append("")
    for name, sub in subs.items():
        out += _parser_markdown(sub, f"byzlab {name}", 2)
    return "\n".join(out)


# --------------------------------------------------------------------------- the rule tables
def _param(name: str, value, symbols: dict) -> str:
    sym = symbols.get(name)
    shown = f"{name} ({sym})" if sym and sym != name else name
    return f"`{shown}={value!r}`"


def public_functions(fn) -> list[str]:
    """The public function a rule is registered as, or, for a private registration
    wrapper, the public functions of its module that the wrapper calls."""
    module = sys.modules[fn.__module__]
    if not fn.__qualname__.startswith("_"):
        return [fn.__qualname__]
    public = set(getattr(module, "__all__", ()))
    tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    called = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    return list(dict.fromkeys(c for c in called if c in public))


def registry_markdown(kind: str) -> str:
    """A table of the registered rules of ``kind``: name, aliases, function, parameters, description."""
    from byzlab.core import registry

    table = {"aggregator": registry.AGGREGATORS, "pre_aggregator": registry.PRE_AGGREGATORS,
             "attack": registry.ATTACKS}[kind]
    out = ["| name | aliases | function | parameters (defaults) | round context | description |",
           "|---|---|---|---|---|---|"]
    for name in sorted(table):
        rule = table[name]
        fn = rule.fn
        path = f"{fn.__module__}.{fn.__qualname__}"
        func = ", ".join(f"[`{name}`][{fn.__module__}.{name}]" for name in public_functions(fn)) or f"`{path}`"
        params = ", ".join(_param(p, v, getattr(rule, "symbols", None) or {}) for p, v in rule.params.items())
        out.append(f"| `{name}` | {', '.join(f'`{a}`' for a in rule.aliases) or '–'} | {func} | "
                   f"{params or '–'} | {', '.join(f'`{c}`' for c in rule.context) or '–'} | "
                   f"{(rule.description or '').replace('|', '&#124;')} |")
    return "\n".join(out)


# --------------------------------------------------------------------------- README sections
def _slug(text: str) -> str:
    """GitHub's heading anchor: lower case, markup and punctuation dropped, spaces to '-'."""
    text = re.sub(r"[`*_]|<[^>]+>", "", text).strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _sections(text: str) -> list[tuple[int, str, int, int]]:
    """(level, title, start line, end line) of every heading of a Markdown text, outside code blocks."""
    lines = text.split("\n")
    heads, fence = [], False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        if m:
            heads.append((len(m.group(1)), m.group(2), i))
    out = []
    for j, (level, title, start) in enumerate(heads):
        end = next((s for lv, _, s in heads[j + 1:] if lv <= level), len(lines))
        out.append((level, title, start, end))
    return out


def readme_section(title: str) -> tuple[int, str]:
    """The README section under the heading ``title`` (its heading level and text);
    ``(intro)``: the title and the text above the first ``##`` heading."""
    text = README.read_text(encoding="utf-8")
    lines = text.split("\n")
    if title == INTRO:
        end = next((s for lv, _, s, _ in _sections(text) if lv == 2), len(lines))
        return 1, "\n".join(lines[:end])
    for level, head, start, end in _sections(text):
        if head == title:
            return level, "\n".join(lines[start:end])
    raise KeyError(f"README.md has no section titled {title!r} (a docs page includes it)")


class _Links:
    """Rewrites README links for a page of the site: anchors to the page holding that
    section, repository files to their page or published copy, anything else to code."""

    def __init__(self, anchors: dict[str, str], page_src: str):
        self.anchors = anchors
        self.page_src = page_src

    def target(self, url: str) -> str | None:
        if re.match(r"^[a-z]+:", url):
            return url
        path, _, frag = url.partition("#")
        if not path:
            page = self.anchors.get(frag)
            if page is None:
                return None
            return f"#{frag}" if page == self.page_src else f"{page}#{frag}"
        if path in PAGES:
            return PAGES[path] + (f"#{frag}" if frag else "")
        if _published(path):
            return url
        return None

    def __call__(self, m: re.Match) -> str:
        bang, text, url = m.groups()
        new = self.target(url)
        if new is not None:
            return f"{bang}[{text}]({new})"
        return text if text.startswith("`") else f"{text} (`{url}`)"


def _shift(section: str, by: int) -> str:
    out, fence = [], False
    for line in section.split("\n"):
        if line.startswith("```"):
            fence = not fence
        m = None if fence else _HEADING.match(line)
        out.append(f"{'#' * min(6, len(m.group(1)) - by)} {m.group(2)}" if m else line)
    return "\n".join(out)


_ANCHORS: dict[str, str] = {}


def on_pre_build(config):
    """Which page of the site holds each README heading (for links between sections)."""
    _ANCHORS.clear()
    text = README.read_text(encoding="utf-8")
    docs = Path(config["docs_dir"])
    for page in sorted(docs.glob("*.md")):
        for kind, arg in _MARKER.findall(page.read_text(encoding="utf-8")):
            if kind != "readme":
                continue
            lines = text.split("\n")
            for level, head, start, end in _sections(text):
                if head == arg:
                    for _, sub, _, _ in _sections("\n".join(lines[start:end])):
                        _ANCHORS.setdefault(_slug(sub), page.name)


def on_page_markdown(markdown: str, page, config, files) -> str:
    def top_level(m: re.Match) -> int:
        """1 for a section that opens the page, 2 below the page's own title."""
        return 2 if any(_HEADING.match(ln) for ln in markdown[:m.start()].split("\n")) else 1

    def include(m: re.Match) -> str:
        kind, arg = m.groups()
        if kind == "registry":
            return registry_markdown(arg)
        if kind == "file":
            text = _shift((ROOT / arg).read_text(encoding="utf-8"), -1)  # under the page's own title
            return _LINK.sub(_Links(_ANCHORS, page.file.src_uri), text)
        level, section = readme_section(arg)
        return _LINK.sub(_Links(_ANCHORS, page.file.src_uri), _shift(section, level - top_level(m)))

    return _MARKER.sub(include, markdown)


