"""Turn validation errors into the one-line reasons that rejects files and config errors carry."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import ValidationError


def loc_text(loc: Iterable[object]) -> str:
    """``sources.0.fraction``; a key with a space, a dot or an unprintable character (``"\\n"``)
    in it is quoted, so a hostile key in a config cannot break the message over lines."""
    return ".".join(repr(p) if isinstance(p, str) and _needs_quotes(p) else str(p) for p in loc)


def _needs_quotes(key: str) -> bool:
    return not key or "." in key or not key.isprintable() or any(c.isspace() for c in key)


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = loc_text(err["loc"])
            msg = " ".join(err["msg"].removeprefix("Value error, ").splitlines())
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__
