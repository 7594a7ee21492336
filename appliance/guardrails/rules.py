"""Operator-written patterns made into matchers: a deny rule's keywords or regex, a custom entity's regex. Each
is checked when it is created (it compiles, cannot match empty text, cannot backtrack catastrophically) with a
message that names the rule."""

from __future__ import annotations

import re
from collections.abc import Sequence

import regex

from appliance.guardrails.redos import UnsafePattern, check_timing, find_nested, parse
from appliance.guardrails.scan import Matcher, compile_matcher

_GLOBAL_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


def keywords_pattern(keywords: Sequence[str]) -> str:
    """One alternation of the keywords, longest first; words inside a keyword match any run of white space, and a
    keyword that starts or ends with a word character matches whole words only ("ass" is not in "class")."""
    parts = []
    for keyword in sorted({k.strip() for k in keywords}, key=lambda k: (-len(k), k)):
        body = r"\s+".join(regex.escape(word) for word in keyword.split())
        before = r"(?<!\w)" if keyword[0].isalnum() or keyword[0] == "_" else ""
        after = r"(?!\w)" if keyword[-1].isalnum() or keyword[-1] == "_" else ""
        parts.append(before + body + after)
    return "|".join(parts)


def split_flags(pattern: str) -> tuple[str, bool]:
    """A leading global flag group (`(?i)`) taken off the pattern (the scanner wraps it in a group, where Python's
    syntax no longer allows one); returns the rest and whether it asked to ignore case."""
    found = _GLOBAL_FLAGS.match(pattern)
    if found is None:
        return pattern, False
    return pattern[found.end():], "i" in found.group(1)


def checked_matcher(label: str, pattern: str, *, deny: bool, ignore_case: bool, timing: bool = True) -> Matcher:
    """Compile an operator's pattern, refusing what the scanner cannot run safely (ValueError with the reason).

    `timing` runs the adversarial probes (tens of milliseconds); it is skipped when the pattern was checked at
    creation and is only being compiled again (a policy loaded from the store)."""
    body, flagged = split_flags(pattern)
    ignore_case = ignore_case or flagged
    try:
        tree = parse(body, ignore_case)
        matcher = compile_matcher(label, body, deny=deny, ignore_case=ignore_case)
    except (re.error, regex.error) as exc:
        raise ValueError(f"the regex does not compile: {exc}") from None
    problem = find_nested(tree)
    if problem is not None:
        raise ValueError(f"the regex may backtrack catastrophically: {problem}; rewrite it without a quantifier "
                         "inside a repeated group (possessive quantifiers and atomic groups are fine)")
    if tree.getwidth()[0] == 0:
        raise ValueError("the regex can match empty text; it must match at least one character")
    if timing:
        try:
            check_timing(matcher, tree)
        except UnsafePattern as exc:
            raise ValueError(f"the regex is too slow on some texts: {exc}") from None
    return matcher
