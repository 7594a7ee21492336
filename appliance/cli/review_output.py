"""What the review and capture commands print for people, and the times and ages they read."""

from __future__ import annotations

import re
import time
from datetime import datetime
from typing import Any

from appliance.client.review import feedback_lines, item_heading, rating, review_text

Json = dict[str, Any]
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def seconds(text: str) -> float:
    """An age: `30d`, `12h`, `90m`, `45s`, `2w`, or a number of seconds.

    Raises:
        ValueError: anything else (argparse turns it into a usage error).
    """
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not an age such as 30d, 12h, 90m or 3600")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def moment(text: str, now: float | None = None) -> float:
    """A point in time as Unix seconds: an age ago (`2h`, `7d`), an ISO date or time (`2025-06-01`,
    `2025-06-01T08:00`, local time unless it names its zone), or Unix seconds.

    Raises:
        ValueError: none of these.
    """
    if _DURATION.match(text) and text.strip()[-1:] in UNITS:
        return (time.time() if now is None else now) - seconds(text)
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise ValueError(f"{text!r} is not an age (2h, 7d), a date (2025-06-01) or Unix seconds") from None


def when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp)) if timestamp else "—"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell; the last one is not padded."""
    widths = [max([len(h), *(len(r[n]) for r in rows)]) for n, h in enumerate(headers)]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths, strict=False)) + "  " + row[-1])


def print_queue(listing: Json) -> None:
    """The review queue as a table, with how many items the filters select in all."""
    items = listing["items"]
    rows = [[i["response_id"], time.strftime("%m-%d %H:%M", time.localtime(i["created_at"])), i["deployment"],
             i["key_name"], rating(i.get("score"), i.get("label")), "yes" if i.get("corrected") else "", i["state"],
             i["preview"][:60]] for i in items]
    print_table(["ID", "CAPTURED", "DEPLOYMENT", "KEY", "RATING", "CORR", "STATE", "PROMPT"], rows)
    shown = f"{len(items)} of {listing['total']}" if listing["total"] > len(items) else f"{listing['total']}"
    print(f"{shown} item{'s' if listing['total'] != 1 else ''}")


def _messages(title: str, messages: list[Json]) -> None:
    print(f"\n{title}")
    for message in messages:
        print(f"  [{message['role']}]")
        for line in str(message["content"]).splitlines() or [""]:
            print(f"    {line}")


def print_detail(detail: Json) -> None:
    """One item: heading, review state, the redacted conversation and answer, the feedback, and the reviewer's
    edited conversation when there is one."""
    item, review = detail["item"], detail.get("review") or {}
    print(f"{item['response_id']}  captured {when(item['created_at'])}")
    print(f"  {item_heading(item)}")
    print(f"  review: {review_text(review)}" + (f", {when(review['decided_at'])}" if review.get("decided_at")
                                                 else ""))
    _messages("conversation (redacted)", item["messages"])
    _messages("answer (redacted)", [{"role": "assistant", "content": item["answer"]}])
    rows = feedback_lines(detail.get("feedback"))
    print("\nfeedback" + ("" if rows else ": none (captured by the sample)"))
    for label, text in rows:
        print(f"  {label:<11} {text}")
    if review.get("state") in ("edited", "pending") and review.get("messages"):
        _messages("edited conversation" + (" (kept for the next decision)" if review["state"] == "pending"
                                           else ""), review["messages"])


def print_decision(detail: Json) -> None:
    print(f"{detail['item']['response_id']}: {review_text(detail.get('review') or {})}")


def print_stats(stats: Json, total: int) -> None:
    dropped = ", ".join(f"{reason} {count}" for reason, count in sorted(stats["dropped"].items())) or "none"
    print(f"stored items  {total}")
    print(f"writer        accepted {stats['accepted']} · written {stats['written']} · duplicates "
          f"{stats['duplicates']} · queued {stats['queued']} · batches {stats['batches']} (since the daemon "
          "started)")
    print(f"dropped       {dropped}")


def print_sweep(result: Json) -> None:
    removed = result.get("removed") or {}
    if not removed:
        print("nothing to remove: every deployment is within its retention")
    for deployment, reasons in sorted(removed.items()):
        print(f"{deployment}: removed " + ", ".join(f"{n} by {why}" for why, n in sorted(reasons.items())))


def print_export(export: Json, job: Json) -> None:
    print(f"exported {export['rows']} {export['kind']} rows from {export['items']} items → {export['path']}")
    for skipped in export.get("skipped") or []:
        print(f"  skipped {skipped['response_id']}: {skipped['reason']}")
    print(f"importing as job {job['id']}")
