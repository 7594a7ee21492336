"""A policy compiled once into matchers per direction: what the gateway holds per deployment and asks for each
request and answer (checks.py for request bodies and whole answers, `stream()` for streamed ones)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from appliance.guardrails.errors import PolicyViolation
from appliance.guardrails.pii import builtin_matchers
from appliance.guardrails.policy import DenyRule, Direction, GuardrailPolicy
from appliance.guardrails.rules import checked_matcher, keywords_pattern
from appliance.guardrails.scan import Matcher, ScanTimeout, mask, scan
from appliance.guardrails.stream import StreamFilter

Scope = Literal["input", "output", "capture"]
# A scan of a whole text that runs longer than this is refused (fail closed); patterns were checked at creation,
# so only a text far beyond what they were probed with gets here.
WHOLE_TEXT_TIMEOUT_S = 1.0
# A stream's window is small: a scan of one chunk taking this long means a pathological text.
STREAM_TIMEOUT_S = 0.1


@dataclass(frozen=True)
class Verdict:
    """A whole text checked: the text to pass on (masked), or the deny rule that refused it."""

    text: str
    denied: str | None = None
    reason: str = ""


class Guardrails:
    """The compiled policy. `timing=False` skips the adversarial probes when compiling a policy that was validated
    at creation (as one loaded from the store was)."""

    def __init__(self, policy: GuardrailPolicy, timing: bool = False) -> None:
        self.policy = policy
        builtins = builtin_matchers()
        custom = {e.label: checked_matcher(e.label, e.regex, deny=False, ignore_case=not e.case_sensitive,
                                           timing=timing) for e in policy.custom_entities}
        entities = {**builtins, **custom}
        directions: tuple[Direction, ...] = ("input", "output")
        rules = {d: [self._rule(r, timing) for r in policy.deny if r.applies(d)] for d in directions}
        self._matchers: dict[Scope, tuple[Matcher, ...]] = {
            "input": (*rules["input"], *(entities[e] for e in policy.redact.input)),
            "output": (*rules["output"], *(entities[e] for e in policy.redact.output)),
            "capture": tuple(entities[e] for e in policy.redact.capture),
        }

    @staticmethod
    def _rule(rule: DenyRule, timing: bool) -> Matcher:
        if rule.keywords is not None:
            pattern, timing = keywords_pattern(rule.keywords), False  # escaped words: nothing to probe
        else:
            pattern = rule.regex or ""
        return checked_matcher(rule.name, pattern, deny=True, ignore_case=not rule.case_sensitive, timing=timing)

    def active(self, scope: Scope) -> bool:
        """Whether anything is checked or masked in `scope` (nothing to do otherwise: skip the work)."""
        return bool(self._matchers[scope])

    def matchers(self, scope: Scope) -> tuple[Matcher, ...]:
        return self._matchers[scope]

    def examine(self, text: str, scope: Scope) -> Verdict:
        """Check a whole text: masked, or the first deny match's rule (a pattern out of time counts as one)."""
        matchers = self._matchers[scope]
        if not matchers or not text:
            return Verdict(text)
        try:
            result = scan(text, 0, matchers, final=True, timeout=WHOLE_TEXT_TIMEOUT_S)
        except ScanTimeout as exc:
            return Verdict("", exc.label, "timeout")
        if result.denied is not None:
            return Verdict("", result.denied.label, "match")
        return Verdict(mask(text, 0, len(text), result.spans))

    def check(self, text: str, direction: Literal["input", "output"]) -> str:
        """The text masked for `direction`; raises PolicyViolation if a deny rule matches."""
        verdict = self.examine(text, direction)
        if verdict.denied is not None:
            raise PolicyViolation(verdict.denied, direction, verdict.reason)
        return verdict.text

    def redact(self, text: str, scope: Scope = "capture") -> str:
        """The text with `scope`'s entities masked, deny rules not applied. A text that cannot be scanned in time
        is dropped whole ("") rather than kept unmasked."""
        entities = tuple(m for m in self._matchers[scope] if not m.deny)
        if not entities or not text:
            return text
        try:
            result = scan(text, 0, entities, final=True, timeout=WHOLE_TEXT_TIMEOUT_S)
        except ScanTimeout:
            return ""
        return mask(text, 0, len(text), result.spans)

    def stream(self) -> StreamFilter:
        """A filter for one streamed answer (one per choice)."""
        return StreamFilter(self._matchers["output"], STREAM_TIMEOUT_S)
