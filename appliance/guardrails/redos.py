"""Refusing regular expressions that backtrack catastrophically, when an operator creates them.

Two checks, both needed: a static one over the parse tree finds the exponential shapes (a variable quantifier
inside a repeated group whose characters can also follow it, so one text splits many ways: `(a+)+$`,
`(.*a){12}`; a repeated alternation whose branches can start alike: `(a|aa)*b`); a timed one runs the pattern,
both ways the scanner does, on adversarial texts of `PROBE_LENGTH` characters built from its own characters and
refuses it if one search takes longer than `PROBE_BUDGET_S` (the polynomial ones: `.*a.*a.*b`, `(\\w+\\.)+com`).
A possessive quantifier or an atomic group never backtracks into what it matched, so the static check trusts it.
At run time every scan has a time limit as well (a refusal when it runs out)."""

from __future__ import annotations

import contextlib
import importlib
import itertools
import re
import time
from typing import Any

from appliance.guardrails.scan import Matcher

_parser: Any = importlib.import_module("re._parser")  # the stdlib's own regex parser (no public name)
MAXREPEAT = _parser.MAXREPEAT
PROBE_LENGTH = 4096
PROBE_BUDGET_S = 0.015
# Characters standing for every character class in the set algebra below.
ALPHABET = frozenset(chr(c) for c in range(128)) | frozenset("éßЖ中\u00a0\u2028😀")
_CATEGORIES = {name: re.compile(rx) for name, rx in (
    ("CATEGORY_DIGIT", r"\d"), ("CATEGORY_NOT_DIGIT", r"\D"), ("CATEGORY_SPACE", r"\s"),
    ("CATEGORY_NOT_SPACE", r"\S"), ("CATEGORY_WORD", r"\w"), ("CATEGORY_NOT_WORD", r"\W"))}
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT")
_ZERO_WIDTH = ("AT", "ASSERT", "ASSERT_NOT")

Chars = frozenset[str]


class UnsafePattern(ValueError):
    """The pattern may take exponential or very long time on some text: the message says where and why."""


def _in_set(items: list[tuple[Any, Any]]) -> Chars:
    chars: set[str] = set()
    negate = False
    for op, av in items:
        name = str(op)
        if name == "NEGATE":
            negate = True
        elif name == "LITERAL":
            chars.add(chr(av))
        elif name == "RANGE":
            chars.update(c for c in ALPHABET if av[0] <= ord(c) <= av[1])
        elif name == "CATEGORY":
            rx = _CATEGORIES.get(str(av))
            chars.update(ALPHABET if rx is None else {c for c in ALPHABET if rx.match(c)})
    return ALPHABET - chars if negate else frozenset(chars)


def _atom(name: str, av: Any) -> Chars | None:
    """The characters one single-character item matches (None: not such an item)."""
    if name == "LITERAL":
        return frozenset({chr(av), chr(av).lower(), chr(av).upper()})
    if name == "NOT_LITERAL":
        return ALPHABET - {chr(av)}
    if name == "ANY":
        return ALPHABET
    if name == "IN":
        return _in_set(av)
    return None


def _children(name: str, av: Any) -> list[Any]:
    if name in _REPEATS or name == "POSSESSIVE_REPEAT":
        return [av[2]]
    if name == "SUBPATTERN":
        return [av[3]]
    if name in ("ASSERT", "ASSERT_NOT"):
        return [av[1]]
    if name == "ATOMIC_GROUP":
        return [av]
    if name == "BRANCH":
        return list(av[1])
    return []


def chars_of(seq: Any) -> Chars:
    """Every character some part of `seq` can match."""
    found: set[str] = set()
    for op, av in seq:
        atom = _atom(str(op), av)
        found |= atom if atom is not None else set().union(*(chars_of(c) for c in _children(str(op), av)))
    return frozenset(found)


def first_of(seq: Any) -> tuple[Chars, bool]:
    """The characters a match of `seq` can start with, and whether it can match empty text."""
    first: set[str] = set()
    for op, av in seq:
        name = str(op)
        atom = _atom(name, av)
        if atom is not None:
            return frozenset(first | atom), False
        if name in _ZERO_WIDTH:
            continue
        if name == "GROUPREF":
            return ALPHABET, True
        parts = [first_of(c) for c in _children(name, av)]
        first.update(*(p[0] for p in parts))
        if name == "BRANCH":
            empty = any(p[1] for p in parts)
        else:
            empty = all(p[1] for p in parts) or (name in (*_REPEATS, "POSSESSIVE_REPEAT") and av[0] == 0)
        if not empty:
            return frozenset(first), False
    return frozenset(first), True


def _follows(seq: Any, after: Chars) -> list[Chars]:
    """For each item of `seq`, the characters that can come right after it (`after`: what follows `seq`)."""
    out: list[Chars] = []
    follow = after
    for op, av in reversed(list(seq)):
        out.append(follow)
        first, empty = first_of([(op, av)])
        follow = first | follow if empty else first
    return out[::-1]


def _check_repeat(av: Any, follow: Chars, repeated: bool) -> str | None:
    low, high, body = av
    if repeated and high != low and chars_of(body) & follow:
        return "a quantifier inside a repeated group, followed by what it can match itself"
    return None


def _check_branch(av: Any, follow: Chars, repeated: bool) -> str | None:
    if not repeated:
        return None
    firsts = [first_of(b)[0] for b in av[1]]
    if any(a & b for a, b in itertools.combinations(firsts, 2)):
        return "an alternation inside a repeated group whose branches can start with the same character"
    # The parser factors `a|aa` into `a(?:|a)`: branches of different lengths act like a quantifier.
    if len({b.getwidth() for b in av[1]}) > 1 and chars_of([x for b in av[1] for x in b]) & follow:
        return "an alternation of different lengths inside a repeated group, followed by what it can match itself"
    return None


def find_nested(seq: Any, after: Chars = frozenset(), repeated: bool = False) -> str | None:
    """The first exponential shape in a parsed pattern, in words (None: none found)."""
    for (op, av), follow in zip(seq, _follows(seq, after), strict=True):
        name = str(op)
        problem = None
        if name in _REPEATS:
            problem = _check_repeat(av, follow, repeated)
            if problem is None and (av[1] > 1 or av[1] == MAXREPEAT):
                problem = find_nested(av[2], first_of(av[2])[0] | follow, True)
            elif problem is None:
                problem = find_nested(av[2], follow, repeated)
        elif name == "BRANCH":
            problem = _check_branch(av, follow, repeated) or next(
                (p for b in av[1] if (p := find_nested(b, follow, repeated))), None)
        elif name == "SUBPATTERN":
            problem = find_nested(av[3], follow, repeated)
        elif name in ("ATOMIC_GROUP", "POSSESSIVE_REPEAT", "ASSERT", "ASSERT_NOT"):
            problem = find_nested(_children(name, av)[0], frozenset(), False)
        if problem:
            return problem
    return None


def parse(pattern: str, ignore_case: bool) -> Any:
    """The stdlib's parse tree of `pattern` (raises re.error)."""
    return _parser.parse(pattern, re.IGNORECASE if ignore_case else 0)


def probe_texts(tree: Any) -> list[str]:
    """Adversarial texts: long runs of each character the pattern names, of pairs of them, of its literal runs."""
    chars = sorted(c for c in chars_of(tree) if c.isprintable())
    named = sorted({c for c in "a0 .@-_A"} | set(chars[:16]))
    literals = [m for m in re.findall(r"[^\x00]{2,}", "\x00".join(_literal_runs(tree))) if m.strip()]
    units = named + ["".join(p) for p in itertools.combinations(named[:8], 2)] + literals + [s + " " for s in literals]
    return [(unit * (PROBE_LENGTH // len(unit) + 1))[:PROBE_LENGTH] for unit in dict.fromkeys(units)]


def _literal_runs(tree: Any) -> list[str]:
    runs, current = [], ""
    for op, av in tree:
        if str(op) == "LITERAL":
            current += chr(av)
            continue
        runs.append(current)
        current = ""
        for child in _children(str(op), av):
            runs.extend(_literal_runs(child))
    return [*runs, current]


def _timed(matcher: Matcher, text: str, partial: bool) -> float:
    # CPU time of this thread, not wall time: on a busy box (a suite, a training job) other processes take the
    # cores away and wall time would refuse a harmless pattern. The search's own timeout is wall time: generous.
    began = time.thread_time()
    with contextlib.suppress(TimeoutError):
        if partial:
            matcher.hold.search(text, partial=True, timeout=PROBE_BUDGET_S * 20)
        else:
            matcher.find.search(text, timeout=PROBE_BUDGET_S * 20)
    return time.thread_time() - began


def _spent(matcher: Matcher, text: str) -> float:
    spent = max(_timed(matcher, text, False), _timed(matcher, text, True))
    if spent > PROBE_BUDGET_S:  # once more: the lower of two is the pattern's own cost, not a hiccup
        spent = min(spent, max(_timed(matcher, text, False), _timed(matcher, text, True)))
    return spent


def check_timing(matcher: Matcher, tree: Any) -> None:
    """Raise UnsafePattern if a search of the pattern (either way the scanner runs it) on an adversarial text takes
    longer than the budget."""
    for text in probe_texts(tree):
        spent = _spent(matcher, text)
        if spent > PROBE_BUDGET_S:
            sample = text[:12].replace("\n", "\\n")
            raise UnsafePattern(f"it took {spent * 1e3:.0f} ms on a {PROBE_LENGTH}-character text ({sample!r}…); "
                                f"allow at most {PROBE_BUDGET_S * 1e3:.0f} ms: bound the gaps (e.g. [^\\n]{{0,80}} "
                                "instead of .*) and avoid repeating groups that end in a quantifier")
