"""Streaming-safe output: fed the text deltas of one answer (one choice), a `StreamFilter` releases at once what
no pattern can still claim, masked, and holds back only the tail from which a value or a deny match may still
begin. A deny match ends the answer: nothing from its start on is released."""

from __future__ import annotations

from collections.abc import Sequence

from appliance.guardrails.scan import Matcher, ScanTimeout, mask, scan

# Released characters kept as lookbehind context for the next scan (the built-in patterns look one back).
CONTEXT = 32


class StreamFilter:
    """One answer's filter. `feed` returns the text safe to send now; `finish` flushes at the end of the answer.
    After a deny match (`denied` is the rule's name) both return "" and the caller ends the answer with
    finish_reason "content_filter"."""

    def __init__(self, matchers: Sequence[Matcher], timeout: float | None = None) -> None:
        self._matchers = tuple(matchers)
        self._timeout = timeout
        self._context = ""
        self._pending = ""
        self.denied: str | None = None
        self.reason = ""  # "match", or "timeout" when a pattern ran out of time (refused: fail closed)
        self.finished = False

    @property
    def held(self) -> str:
        """The text held back so far (for tests and diagnostics; never send it)."""
        return self._pending

    def feed(self, delta: str) -> str:
        if self.denied is not None or self.finished:
            return ""
        if not self._matchers:
            return delta
        return self._advance(self._context + self._pending + delta, final=False)

    def finish(self) -> str:
        if self.denied is not None or self.finished:
            return ""
        self.finished = True
        if not self._matchers:
            return ""
        return self._advance(self._context + self._pending, final=True)

    def _advance(self, text: str, final: bool) -> str:
        start = len(self._context)
        try:
            result = scan(text, start, self._matchers, final=final, timeout=self._timeout)
        except ScanTimeout as exc:
            self.denied, self.reason, self._pending = exc.label, "timeout", ""
            return ""
        released = mask(text, start, result.boundary, result.spans)
        if result.denied is not None:
            self.denied, self.reason, self._pending = result.denied.label, "match", ""
            return released
        self._pending = text[result.boundary:]
        self._context = text[max(0, result.boundary - CONTEXT):result.boundary]
        return released
