"""The one error type for bad input, and how any error is shown in one line."""
from __future__ import annotations


class ConfigError(ValueError):
    """A bad parameter value.  The message is one line naming the parameter and the allowed range."""


def one_line(e: BaseException, *, typed: bool = True, limit: int | None = None) -> str:
    """The first non-empty line of ``e``'s message, whitespace collapsed.

    ``typed`` prefixes the exception's type (``"OSError: disk full"``); ``limit`` cuts the
    message to that many characters (ending in ``...``).  An empty message gives the type name.
    """
    lines = [" ".join(line.split()) for line in str(e).splitlines()]
    text = next((line for line in lines if line), "")
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    if not typed:
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
