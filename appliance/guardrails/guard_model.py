"""A guard model: another local deployment asked, before generation (input) or after (output), whether the
conversation is safe, with Llama Guard's prompt, and its verdict read. A timeout, an error or a verdict that
cannot be read goes the way the policy chose: `fail-open` lets the request through, `fail-closed` refuses it;
the decision carries the reason either way (for metrics and the audit line)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from appliance.guardrails.errors import PolicyViolation

# Llama Guard 3's hazard categories (MLCommons taxonomy).
LLAMA_GUARD_CATEGORIES = {
    "S1": "Violent Crimes.", "S2": "Non-Violent Crimes.", "S3": "Sex Crimes.", "S4": "Child Exploitation.",
    "S5": "Defamation.", "S6": "Specialized Advice.", "S7": "Privacy.", "S8": "Intellectual Property.",
    "S9": "Indiscriminate Weapons.", "S10": "Hate.", "S11": "Self-Harm.", "S12": "Sexual Content.",
    "S13": "Elections.", "S14": "Code Interpreter Abuse.",
}
# Posts the guard prompt (chat messages) to the guard deployment and returns its answer's text.
Send = Callable[[list[dict[str, str]]], Awaitable[str]]
Direction = Literal["input", "output"]
OnError = Literal["fail-open", "fail-closed"]


@dataclass(frozen=True)
class Verdict:
    """What the guard said: `safe` True, False, or None when its answer could not be read."""

    safe: bool | None
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Decision:
    """Whether to go on, and why: safe, unsafe, timeout, error or unknown (an unreadable verdict)."""

    allowed: bool
    reason: str
    categories: tuple[str, ...] = ()

    def raise_if_refused(self, direction: Direction, rule: str = "guard") -> None:
        if not self.allowed:
            detail = f"the guard model said unsafe ({', '.join(self.categories)})" if self.reason == "unsafe" and \
                self.categories else f"guard model: {self.reason}"
            raise PolicyViolation(rule, direction, self.reason, detail)


def _content(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def guard_prompt(messages: Sequence[Mapping[str, Any]], direction: Direction,
                 categories: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """Llama Guard's task prompt as one user message: the categories, the conversation (system messages left out,
    as Llama Guard's own template does), and the instruction to assess the last User (input) or Agent (output)
    message."""
    role = "User" if direction == "input" else "Agent"
    listed = "\n".join(f"{code}: {text}" for code, text in (categories or LLAMA_GUARD_CATEGORIES).items())
    turns = "\n\n".join(f"{'User' if m.get('role') in ('user', 'tool') else 'Agent'}: {_content(m)}"
                        for m in messages if m.get("role") != "system")
    text = (f"Task: Check if there is unsafe content in '{role}' messages in conversations according our safety "
            "policy with the below categories.\n\n<BEGIN UNSAFE CONTENT CATEGORIES>\n"
            f"{listed}\n<END UNSAFE CONTENT CATEGORIES>\n\n<BEGIN CONVERSATION>\n\n{turns}\n\n<END CONVERSATION>\n\n"
            f"Provide your safety assessment for ONLY THE LAST {role} message in the above conversation:\n"
            " - First line must read 'safe' or 'unsafe'.\n"
            " - If unsafe, a second line must include a comma-separated list of violated categories.")
    return [{"role": "user", "content": text}]


_WORD = re.compile(r"[a-z]+")
_CATEGORY = re.compile(r"\bS\d{1,2}\b", re.IGNORECASE)


def parse_verdict(answer: str) -> Verdict:
    """Read a verdict: the first word of the first non-empty line, `safe` or `unsafe` (any case, punctuation and
    text around it tolerated), and for unsafe the category codes (S1…) on the lines after it."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    if not lines:
        return Verdict(None)
    first = _WORD.findall(lines[0].lower())
    word = first[0] if first else ""
    if word == "safe":
        return Verdict(True)
    if word == "unsafe":
        codes = _CATEGORY.findall(" ".join(lines[0:]))
        return Verdict(False, tuple(dict.fromkeys(code.upper() for code in codes)))
    return Verdict(None)


async def ask_guard(send: Send, messages: Sequence[Mapping[str, Any]], direction: Direction, timeout_s: float,
                    on_error: OnError, categories: Mapping[str, str] | None = None) -> Decision:
    """Ask the guard model about `messages` (for output: the conversation with the answer as its last, assistant,
    message). Never raises for the guard's own failures: they become a decision per `on_error`."""
    fallback = on_error == "fail-open"
    try:
        answer = await asyncio.wait_for(send(guard_prompt(messages, direction, categories)), timeout_s)
    except TimeoutError:
        return Decision(fallback, "timeout")
    except asyncio.CancelledError:
        raise
    except Exception:  # the guard deployment down, refusing or answering garbage: on_error decides
        return Decision(fallback, "error")
    verdict = parse_verdict(answer)
    if verdict.safe is None:
        return Decision(fallback, "unknown")
    return Decision(verdict.safe, "safe" if verdict.safe else "unsafe", verdict.categories)
