"""A pydantic validation error as one sentence an operator can act on: where (the field path) and what."""

from __future__ import annotations

from pydantic import ValidationError


def where_and_why(exc: ValidationError, root: str = "") -> tuple[str, str]:
    """The first problem's dotted field path (`root` when it has none) and pydantic's message for it."""
    errors = exc.errors()
    if not errors:
        return root, "invalid"
    first = errors[0]
    return ".".join(str(p) for p in first["loc"]) or root, str(first["msg"])


def first_problem(exc: ValidationError, root: str = "") -> str:
    """`path: message` of the first problem (the caller adds its own context)."""
    where, why = where_and_why(exc, root)
    return f"{where}: {why}" if where else why


def all_problems(exc: ValidationError, root: str = "(root)") -> str:
    """Every problem, `path: message` joined by `; ` (for a whole file checked at once)."""
    return "; ".join(f"{'.'.join(str(p) for p in err['loc']) or root}: {err['msg']}" for err in exc.errors())
