"""A deployment's policy (guardrails and capture) as operators read it, for the CLI and the TUI alike: pure
functions over the daemon's PolicyVersion JSON. The rules' content stays in `--json`; this names them."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]


def _limits(limits: Json) -> str:
    parts = [text.format(limits[key]) for key, text in (
        ("max_prompt_tokens", "prompt ≤ {:,} tokens"), ("max_answer_tokens", "answer ≤ {:,} tokens"),
        ("max_messages", "≤ {} messages")) if limits.get(key) is not None]
    return " · ".join(parts) or "none"


def _deny(rules: list[Json]) -> str:
    """Each rule's name with what it checks: `no-secrets (both, 2 keywords)`, `card-numbers (input, regex)`."""
    parts = []
    for rule in rules:
        what = "regex" if rule.get("regex") is not None else f"{len(rule.get('keywords') or [])} keywords"
        parts.append(f"{rule['name']} ({rule.get('direction', 'both')}, {what})")
    return ", ".join(parts) or "none"


def _redact(redact: Json) -> str:
    return " · ".join(f"{where} {', '.join(redact.get(where) or []) or '—'}" for where in ("input", "output",
                                                                                         "capture"))


def _guard(guard: Json | None) -> str:
    if not guard:
        return "none"
    return (f"{guard['deployment']} on {', '.join(guard.get('directions') or ['input'])} · "
            f"{guard.get('timeout_s', 5):g} s · {guard.get('on_error')}")


def _capture(capture: Json) -> str:
    if not capture.get("enabled"):
        return "off"
    return (f"on · sample {100 * float(capture.get('sample_rate', 1)):g}% · keep {capture.get('retention_days'):g} "
            f"days · ≤ {capture.get('max_rows'):,} items · ≤ {int(capture.get('max_bytes', 0)) / 2**20:g} MiB")


def version_text(version: Json) -> str:
    """`v3 by alice (why)`, or `none set` for version 0."""
    if not version.get("version"):
        return "none set"
    text = f"v{version['version']}"
    if version.get("actor"):
        text += f" by {version['actor']}"
    return text + (f" ({version['reason']})" if version.get("reason") else "")


def policy_lines(version: Json) -> list[tuple[str, str]]:
    """(label, text) rows: version, limits, deny rules, redaction per direction, custom entities, guard model,
    capture, and the live watch's overrides when there are any."""
    policy = version.get("policy") or {}
    guardrails, capture = policy.get("guardrails") or {}, policy.get("capture") or {}
    rows = [("version", version_text(version)), ("limits", _limits(guardrails.get("limits") or {})),
            ("deny", _deny(guardrails.get("deny") or [])), ("redact", _redact(guardrails.get("redact") or {}))]
    entities = guardrails.get("custom_entities") or []
    if entities:
        rows.append(("entities", ", ".join(e["label"] for e in entities)))
    rows += [("guard", _guard(guardrails.get("guard"))), ("capture", _capture(capture))]
    if policy.get("watch"):  # the live watch's overrides of the profile's defaults
        rows.append(("watch", " · ".join(f"{key} {value}" for key, value in policy["watch"].items())))
    return rows
