"""The one scanner behind whole texts and streams: every pattern (a PII recogniser or a deny rule) runs over a
text with the `regex` engine, and a scan says which part of the text is decided, the values to mask in it and
the first deny match.

A stream is scanned with the end of its text unknown. For each pattern a second form, the pattern followed by
a character class that matches nothing, is searched with `partial=True`: its first partial match is the first
position where some path of the pattern reads up to the end of the text (a value that may go on, a keyword cut
in two, a lookahead that needs the next character), so from there on nothing is decided; everything before it
is. A whole text is the same scan with the end known, so a stream masks what the whole text masks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import regex

# A class no character belongs to: matching it needs one more character, so a path that completes the pattern
# at the very end of the text still reads past it (and `[^\s\S]` is not empty in `regex`).
NEVER = r"[^\x00-\U0010ffff]"
# A stream gives up a candidate that has grown longer than this without completing (no PII value is this long;
# a deny regex match longer than this is not caught in a stream).
WINDOW = 1024
# Checks one raw match: the spans (relative to the match) that are values to mask; None masks the whole match.
Validator = Callable[[str], Sequence[tuple[int, int]]]


class ScanTimeout(Exception):
    """A pattern ran longer than the scan's time limit on this text (the caller refuses: fail closed)."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


@dataclass(frozen=True)
class Matcher:
    """One compiled pattern: an entity to mask (`deny` False) or a deny rule (`label` is the rule's name)."""

    label: str
    deny: bool
    find: Any  # regex.Pattern (the `regex` module ships no type stubs)
    hold: Any  # the same pattern followed by NEVER
    validate: Validator | None = None
    priority: int = 0  # breaks ties between overlapping values of equal start and length (lower wins)


def compile_matcher(label: str, pattern: str, *, deny: bool = False, ignore_case: bool = False,
                    validate: Validator | None = None, priority: int = 0) -> Matcher:
    """Compile `pattern` both ways (raises `regex.error` for a bad pattern)."""
    flags = regex.V0 | (regex.IGNORECASE if ignore_case else 0)
    return Matcher(label, deny, regex.compile(pattern, flags), regex.compile(f"(?:{pattern}){NEVER}", flags),
                   validate, priority)


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    label: str
    priority: int = 0


@dataclass(frozen=True)
class Scan:
    """`text[start:boundary]` is decided: `spans` are the values in it to mask; `denied` is the first deny
    match (the boundary is at or before its start), or None."""

    boundary: int
    spans: tuple[Span, ...]
    denied: Span | None


def _hold(m: Matcher, text: str, start: int, timeout: float | None) -> int:
    """The first position from which `m`'s outcome can still change with more text (len(text): none)."""
    end = len(text)
    found = m.hold.search(text, start, partial=True, timeout=timeout)
    at = found.start() if found is not None else end
    if end - at > WINDOW:  # a candidate this long is no value: look for one that starts within the window
        found = m.hold.search(text, max(start, end - WINDOW), partial=True, timeout=timeout)
        at = found.start() if found is not None else end
    return int(at)


def _uncross(boundary: int, raws: list[tuple[int, int, Matcher]]) -> int:
    """Move the boundary back to the start of any raw match that spans it (a failed candidate too: the whole
    text's scan resumes after it, so a stream must not resume inside it)."""
    moved = True
    while moved:
        moved = False
        for start, end, _ in raws:
            if start < boundary < end:
                boundary, moved = start, True
    return boundary


def resolve(spans: list[Span]) -> tuple[Span, ...]:
    """Overlapping values: the earliest start wins, then the longest, then the lower priority number. Greedy from
    the left, so a value's fate depends only on values that start before it (a stream decides it the same way)."""
    kept: list[Span] = []
    for span in sorted(spans, key=lambda s: (s.start, s.start - s.end, s.priority)):
        if not kept or span.start >= kept[-1].end:
            kept.append(span)
    return tuple(kept)


def _validated(raw: tuple[int, int, Matcher], text: str) -> list[Span]:
    start, end, m = raw
    if m.validate is None:
        return [Span(start, end, m.label, m.priority)]
    return [Span(start + a, start + b, m.label, m.priority) for a, b in m.validate(text[start:end])]


def _inside(raw: tuple[int, int, Matcher], spans: Sequence[Span]) -> bool:
    return any(s.start <= raw[0] and raw[1] <= s.end for s in spans)


def _values(raws: list[tuple[int, int, Matcher]], text: str, boundary: int) -> tuple[Span, ...]:
    """The values among the decided raw matches, resolved. A candidate inside a value already found by a
    matcher of higher priority is validated only if that value does not survive the resolution (it would lose
    to it otherwise): a card number is not also asked of `phonenumbers` in 16 regions."""
    found: list[Span] = []
    deferred = []
    for raw in sorted((r for r in raws if not r[2].deny and r[1] <= boundary), key=lambda r: r[2].priority):
        if _inside(raw, found):
            deferred.append(raw)
        else:
            found.extend(_validated(raw, text))
    kept = resolve(found)
    late = [raw for raw in deferred if not _inside(raw, kept)]
    if late:
        kept = resolve(found + [span for raw in late for span in _validated(raw, text)])
    return kept


def scan(text: str, start: int, matchers: Sequence[Matcher], *, final: bool,
         timeout: float | None = None) -> Scan:
    """Scan `text[start:]` (what comes before `start` is context for lookbehinds). `final`: the text ends here.

    Raises ScanTimeout naming the pattern that ran longer than `timeout` seconds."""
    end = len(text)
    boundary = end
    raws: list[tuple[int, int, Matcher]] = []
    for m in matchers:
        try:
            hold = end if final else _hold(m, text, start, timeout)
            for found in m.find.finditer(text, start, timeout=timeout):
                if found.start() >= hold:
                    break
                raws.append((found.start(), found.end(), m))
        except TimeoutError:
            raise ScanTimeout(m.label) from None
        boundary = min(boundary, hold)
    denials = [(s, e, m) for s, e, m in raws if m.deny]
    denied = None
    if denials:
        s, e, m = min(denials, key=lambda r: r[0])
        denied = Span(s, e, m.label)
        boundary = min(boundary, s)
    boundary = _uncross(boundary, raws)
    return Scan(boundary, _values(raws, text, boundary), denied)


def mask(text: str, start: int, end: int, spans: Sequence[Span]) -> str:
    """`text[start:end]` with each span replaced by `[LABEL]` (spans inside it, sorted, not overlapping)."""
    parts, at = [], start
    for span in spans:
        parts.append(text[at:span.start])
        parts.append(f"[{span.label}]")
        at = span.end
    parts.append(text[at:end])
    return "".join(parts)
