"""Turn validation errors into the one-line reasons that rejects files carry."""

from __future__ import annotations

from pydantic import ValidationError


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}" if loc else msg)
        return "; ".join(parts)
    text = str(exc).strip().replace("\n", " ")
    return text or type(exc).__name__
