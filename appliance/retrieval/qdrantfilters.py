"""OpenAI attribute filters as Qdrant payload filters, with `filters.matches`' meaning: attributes sit under
the payload's `attributes` key; a missing key satisfies `ne` and `nin` only (they are `must_not` conditions);
eq on a float is a closed range (Qdrant matches exact values for strings, integers and booleans only); a string
or boolean in a list of `in` / `nin` values matches by value, numbers by range."""

from __future__ import annotations

from typing import Any

from appliance.retrieval.filters import ComparisonFilter, CompoundFilter, Filter


def _models() -> Any:
    from qdrant_client import models

    return models


def _equals(key: str, value: Any) -> Any:
    m = _models()
    if isinstance(value, bool | str) or (isinstance(value, int) and not isinstance(value, bool)):
        condition = m.FieldCondition(key=key, match=m.MatchValue(value=value))
        if isinstance(value, int) and not isinstance(value, bool):  # 1 matches 1.0 too
            return m.Filter(should=[condition, m.FieldCondition(key=key, range=m.Range(gte=value, lte=value))])
        return condition
    if isinstance(value, float) and value.is_integer():
        return _equals(key, int(value))
    return m.FieldCondition(key=key, range=m.Range(gte=value, lte=value))


def _any_of(key: str, values: list[Any]) -> Any:
    return _models().Filter(should=[_equals(key, v) for v in values] or [_never()])


def _never() -> Any:
    m = _models()
    return m.Filter(must=[m.IsEmptyCondition(is_empty=m.PayloadField(key="store_id"))])  # every point has one


def _comparison(flt: ComparisonFilter) -> Any:
    m = _models()
    key = f"attributes.{flt.key}"
    if flt.type == "eq":
        return _equals(key, flt.value)
    if flt.type == "ne":
        return m.Filter(must_not=[_equals(key, flt.value)])
    if flt.type in ("in", "nin"):
        values = flt.value if isinstance(flt.value, list) else [flt.value]
        inside = _any_of(key, values)
        return inside if flt.type == "in" else m.Filter(must_not=[inside])
    bound = {flt.type: flt.value}
    return m.FieldCondition(key=key, range=m.Range(**bound))


def to_qdrant(flt: Filter) -> Any:
    """The Qdrant condition (a `Filter` or a `FieldCondition`) of an attribute filter."""
    m = _models()
    if isinstance(flt, ComparisonFilter):
        return _comparison(flt)
    assert isinstance(flt, CompoundFilter)
    parts = [to_qdrant(f) for f in flt.filters]
    return m.Filter(must=parts) if flt.type == "and" else m.Filter(should=parts)


def store_filter(store_id: str, flt: Filter | None = None, file_id: str | None = None) -> Any:
    m = _models()
    must: list[Any] = [m.FieldCondition(key="store_id", match=m.MatchValue(value=store_id))]
    if file_id is not None:
        must.append(m.FieldCondition(key="file_id", match=m.MatchValue(value=file_id)))
    if flt is not None:
        must.append(to_qdrant(flt))
    return m.Filter(must=must)
