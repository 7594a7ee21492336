"""The `shadow_pairs` table (migration 13) and its rows as models: the one place that knows its columns.

One row per compared pair: the conversation and both answers after the live deployment's capture redaction,
statuses, latencies and figures. Each shadow (live, candidate) keeps its newest `keep` rows: every batch trims
the shadows it wrote to, in the same transaction."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from appliance.capture.models import ChatMessage, as_dicts
from appliance.state.store import StateStore
from appliance.trials.compare import PairFigures
from appliance.trials.models import ShadowPair

COLUMNS = ("live", "candidate", "created_at", "endpoint", "key_id", "messages", "live_status", "live_answer",
           "live_latency_s", "candidate_status", "candidate_answer", "candidate_latency_s", "agreement", "exact",
           "chrf", "cosine", "length_delta_chars", "length_delta_tokens", "live_refusal", "candidate_refusal")
INSERT_PAIR = (f"INSERT INTO shadow_pairs({', '.join(COLUMNS)}) "
               f"VALUES({', '.join('?' for _ in COLUMNS)})")
TRIM = ("DELETE FROM shadow_pairs WHERE live = ?1 AND candidate = ?2 AND id <= (SELECT id FROM shadow_pairs "
        "WHERE live = ?1 AND candidate = ?2 ORDER BY id DESC LIMIT 1 OFFSET ?3)")
FIGURE_COLUMNS = ("id, live, candidate, created_at, live_latency_s, candidate_latency_s, agreement, exact, chrf, "
                  "cosine, length_delta_chars, length_delta_tokens, live_refusal, candidate_refusal")


def pair_params(pair: ShadowPair) -> tuple[Any, ...]:
    f = pair.figures
    return (pair.live, pair.candidate, pair.created_at, pair.endpoint, pair.key_id,
            json.dumps(as_dicts(pair.messages), ensure_ascii=False, separators=(",", ":")), pair.live_status,
            pair.live_answer, pair.live_latency_s, pair.candidate_status, pair.candidate_answer,
            pair.candidate_latency_s, f.agreement, int(f.exact), f.chrf, f.cosine, f.length_delta_chars,
            f.length_delta_tokens, f.live_refusal or "", f.candidate_refusal or "")


def figures_of(row: sqlite3.Row) -> PairFigures:
    return PairFigures(
        agreement=row["agreement"], exact=bool(row["exact"]), chrf=row["chrf"], cosine=row["cosine"],
        length_delta_chars=row["length_delta_chars"], length_delta_tokens=row["length_delta_tokens"],
        latency_delta_s=round(row["candidate_latency_s"] - row["live_latency_s"], 6),
        live_refusal=row["live_refusal"] or None, candidate_refusal=row["candidate_refusal"] or None)


def pair_of(row: sqlite3.Row) -> ShadowPair:
    return ShadowPair(
        id=row["id"], live=row["live"], candidate=row["candidate"], created_at=row["created_at"],
        endpoint=row["endpoint"], key_id=row["key_id"],
        messages=[ChatMessage.model_validate(m) for m in json.loads(row["messages"])],
        live_status=row["live_status"], live_answer=row["live_answer"], live_latency_s=row["live_latency_s"],
        candidate_status=row["candidate_status"], candidate_answer=row["candidate_answer"],
        candidate_latency_s=row["candidate_latency_s"], figures=figures_of(row))


def insert_pairs(conn: sqlite3.Connection, pairs: list[ShadowPair], keep: int) -> int:
    """Insert `pairs` and trim each shadow they belong to to its newest `keep` rows (inside the caller's
    transaction). Returns the rows inserted."""
    inserted = conn.executemany(INSERT_PAIR, [pair_params(p) for p in pairs]).rowcount
    for live, candidate in sorted({(p.live, p.candidate) for p in pairs}):
        conn.execute(TRIM, (live, candidate, keep))
    return int(inserted)


def newest_figures(store: StateStore, keep: int) -> list[sqlite3.Row]:
    """Every shadow's newest `keep` rows (figures only, no texts), oldest first: what a runner starts from."""
    return store.query(
        f"SELECT {FIGURE_COLUMNS} FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY live, candidate ORDER BY id DESC)"
        " AS newest FROM shadow_pairs) WHERE newest <= ? ORDER BY id", (keep,))


def worst_pairs(store: StateStore, live: str, candidate: str, limit: int) -> list[ShadowPair]:
    """The `limit` pairs of a shadow with the lowest agreement (newest first among equals), redacted as stored."""
    rows = store.query("SELECT * FROM shadow_pairs WHERE live = ? AND candidate = ? "
                       "ORDER BY agreement ASC, id DESC LIMIT ?", (live, candidate, limit))
    return [pair_of(r) for r in rows]


def delete_shadow(store: StateStore, live: str, candidate: str) -> int:
    """Delete a shadow's stored pairs; returns how many."""
    with store.transaction() as conn:
        return int(conn.execute("DELETE FROM shadow_pairs WHERE live = ? AND candidate = ?",
                                (live, candidate)).rowcount)
