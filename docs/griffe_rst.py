"""Griffe extension for the reference site: byzlab's docstrings mix reStructuredText
markup (``:func:`x```, ``.. math::``, ``Text::`` literal blocks) into otherwise
Markdown-friendly numpy-style text.  This rewrites those few constructs into the
Markdown that mkdocstrings renders, on the loaded copy only (the sources keep
their docstrings as written):

- ``:role:`~a.b.c``` → ``c`` and ``:role:`a.b``` → ``a.b`` as inline code;
  ``:math:`E``` → ``$E$``;
- a ``.. math:: E`` directive (with its indented continuation lines) → ``$$E$$``;
- ``Text::`` before an indented block → ``Text:`` (the block stays a code block).

A function whose docstring is extended at import (the adaptive attacks append their
shared paragraph) gets its docstring as imported.  A dataclass field declared as
``name: T = _field(default, "help")`` (``RunConfig``'s fields, whose help is also the
command line's) is shown with ``help`` as its docstring and ``default`` as its value.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import re

import griffe

_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_ROLE = re.compile(r":(?:py:)?[a-z]+:`(~?)([^`]+)`")


def _role(m: re.Match) -> str:
    target = m.group(2)
    if m.group(1):
        target = target.rsplit(".", 1)[-1]
    return f"`{target}`"


def rst_to_markdown(text: str) -> str:
    """The docstring ``text`` with the reStructuredText constructs above rewritten."""
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(_role, text)
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(stripped)]
            body = [stripped[len(".. math::"):].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(indent)):
                if lines[i].strip():
                    body.append(lines[i].strip())
                i += 1
            out.append(f"{indent}$${' '.join(b for b in body if b)}$$")
            out.append("")
            continue
        if line.rstrip().endswith("::") and not stripped.startswith(".."):
            line = line.rstrip()[:-1]
        out.append(line)
        i += 1
    return "\n".join(out)


def _imported_doc(obj: griffe.Object) -> str | None:
    """The docstring of ``obj`` as Python sees it after importing its module."""
    try:
        target = importlib.import_module(obj.module.path)
        for part in obj.path[len(obj.module.path) + 1:].split("."):
            target = getattr(target, part)
    except Exception:  # a module that cannot be imported here keeps its source docstring
        return None
    return inspect.getdoc(target)


def field_help(value: str) -> tuple[str, str] | None:
    """``(default, help)`` of a ``_field(default, "help", ...)`` expression, else None."""
    try:
        call = ast.parse(value, mode="eval").body
    except SyntaxError:
        return None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "_field"
            and len(call.args) >= 2 and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str)):
        return None
    return ast.unparse(call.args[0]), call.args[1].value


class RstToMarkdown(griffe.Extension):
    """Rewrite every loaded object's docstring with :func:`rst_to_markdown`."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.is_attribute and obj.docstring is None and obj.value is not None:
            parsed = field_help(str(obj.value))
            if parsed:
                obj.value, help_text = parsed
                obj.docstring = griffe.Docstring(help_text[:1].upper() + help_text[1:] + ".", parent=obj)
        if obj.docstring is None:
            return
        if obj.is_function:
            imported = _imported_doc(obj)
            if imported and imported != obj.docstring.value and imported.startswith(obj.docstring.value.strip()):
                obj.docstring.value = imported
        obj.docstring.value = rst_to_markdown(obj.docstring.value)
