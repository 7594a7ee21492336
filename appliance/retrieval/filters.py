"""Attribute filters as OpenAI's (`ComparisonFilter`: key, type eq|ne|gt|gte|lt|lte|in|nin, value;
`CompoundFilter`: type and|or, filters), and how they are judged against a file's attributes.

One meaning for every backend: a key the file lacks satisfies `ne` and `nin` and nothing else; gt/gte/lt/lte
compare numbers only (a non-number on either side does not match); `in`/`nin` take a list; eq on a number
matches the same number whatever its type (1 == 1.0). The Qdrant backend translates a filter to a payload
filter with the same meaning (`qdrant_filters.py`); the sqlite-vec backend judges each file with `matches`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from appliance.retrieval.models import Attributes

Scalar = str | float | bool
Comparison = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin"]
MAX_DEPTH = 8


class ComparisonFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Comparison
    key: str = Field(..., min_length=1, max_length=64)
    value: Scalar | list[str | float]

    @model_validator(mode="after")
    def _value_fits(self) -> ComparisonFilter:
        listed = isinstance(self.value, list)
        if self.type in ("in", "nin") and not listed:
            raise ValueError(f"a {self.type!r} filter takes a list of values")
        if self.type not in ("in", "nin") and listed:
            raise ValueError(f"a {self.type!r} filter takes one value, not a list")
        if self.type in ("gt", "gte", "lt", "lte") and not _number(self.value):
            raise ValueError(f"a {self.type!r} filter compares numbers; {self.value!r} is not one")
        return self


class CompoundFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["and", "or"]
    filters: list[Annotated[ComparisonFilter | CompoundFilter, Field(union_mode="left_to_right")]] = Field(
        ..., min_length=1, max_length=64)


Filter = ComparisonFilter | CompoundFilter


def parse_filter(raw: dict[str, Any] | Filter | None) -> Filter | None:
    """A filter from a request body (`type` picks comparison or compound). Raises pydantic's ValidationError."""
    if raw is None or isinstance(raw, ComparisonFilter | CompoundFilter):
        return raw
    if raw.get("type") in ("and", "or"):
        found: Filter = CompoundFilter.model_validate(raw)
    else:
        found = ComparisonFilter.model_validate(raw)
    if depth(found) > MAX_DEPTH:
        raise ValueError(f"filters nest deeper than {MAX_DEPTH}")
    return found


def depth(flt: Filter) -> int:
    if isinstance(flt, ComparisonFilter):
        return 1
    return 1 + max(depth(f) for f in flt.filters)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _number(a) and _number(b):
        return float(a) == float(b)
    return bool(type(a) is type(b) and a == b)


def _compare(flt: ComparisonFilter, attributes: Attributes) -> bool:
    if flt.key not in attributes:
        return flt.type in ("ne", "nin")
    have, want = attributes[flt.key], flt.value
    if flt.type == "eq":
        return _equal(have, want)
    if flt.type == "ne":
        return not _equal(have, want)
    if flt.type in ("in", "nin"):
        inside = any(_equal(have, w) for w in want) if isinstance(want, list) else False
        return inside if flt.type == "in" else not inside
    if not (_number(have) and _number(want)):
        return False
    a, b = float(have), float(want)  # type: ignore[arg-type]
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[flt.type]


def matches(flt: Filter | None, attributes: Attributes) -> bool:
    """Whether a file with these attributes passes the filter (None passes everything)."""
    if flt is None:
        return True
    if isinstance(flt, ComparisonFilter):
        return _compare(flt, attributes)
    results = (matches(f, attributes) for f in flt.filters)
    return all(results) if flt.type == "and" else any(results)
