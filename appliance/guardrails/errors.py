"""The refusal every guardrail raises: an OpenAI-shaped 400 `content_policy_violation` that names the rule and
the direction, never the text that matched."""

from __future__ import annotations

from appliance.errors import ApplianceError


class PolicyViolation(ApplianceError):
    """`rule`: the deny rule's name, `limits.<field>`, `guard` or `pii:<ENTITY>` (a recogniser that ran out of
    time); `direction`: input or output; `reason`: match, limit, unsafe, timeout, error, unknown (for metrics
    and the audit line)."""

    status, code = 400, "content_policy_violation"

    def __init__(self, rule: str, direction: str, reason: str = "match", detail: str = "") -> None:
        what = "request" if direction == "input" else "answer"
        message = f"the {what} was refused by the deployment's guardrail rule '{rule}' ({direction})"
        super().__init__(f"{message}: {detail}" if detail else message,
                         param="messages" if direction == "input" else None)
        self.rule = rule
        self.direction = direction
        self.reason = reason
