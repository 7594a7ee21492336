"""A deployment's trials as operators read them, for the CLI and the TUI alike: pure functions over the daemon's
TrialsView JSON (its shadow's summary, its canary, the live watch's verdict) and its shadow pairs."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
RULES = {"error_rate": "error rate", "p95_latency": "p95 latency", "guardrail_blocks": "guardrail blocks",
         "thumbs_down": "thumbs down"}
BLOCKS = "·▁▂▃▄▅▆▇█"


def share(value: float | None, digits: int = 1) -> str:
    """0.125 → `12.5%`; None → `—`."""
    return "—" if value is None else f"{100 * value:.{digits}f}%"


def fixed(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def signed(value: float | None, unit: str = "", digits: int = 1) -> str:
    return "—" if value is None else f"{value:+.{digits}f}{unit}"


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f} s"


def refusals(by_kind: Json | None) -> str:
    """`error 1, empty 2`, or `none`."""
    return ", ".join(f"{kind} {count}" for kind, count in sorted((by_kind or {}).items()) if count) or "none"


def shadow_heading(shadow: Json) -> str:
    """`shadow smol-next on 10% of the requests`."""
    return f"shadow {shadow['candidate']} on {share(shadow['sample_rate'], 0)} of the requests"


def shadow_rows(summary: Json) -> list[tuple[str, str]]:
    """(label, text) rows of a shadow's aggregates: pairs, agreement, exact, chrF, cosine, deltas, refusals."""
    cosine = fixed(summary.get("cosine_mean"))
    if summary.get("cosine_mean") is not None:
        cosine += f" ({summary.get('cosine_pairs', 0)} pairs)"
    tokens = summary.get("length_delta_tokens_mean")
    length = signed(summary.get("length_delta_chars_mean"), " chars")
    if tokens is not None:
        length += f" · {signed(tokens, ' tokens')}"
    counted = f"{summary['pairs']} (newest, at most {summary['keep']}) · offered {summary.get('offered', 0)} · " \
              f"dropped {summary.get('dropped', 0)}"
    return [("pairs", counted), ("agreement", f"{fixed(summary.get('agreement_mean'))} mean"),
            ("exact", share(summary.get("exact_rate"))), ("chrF", fixed(summary.get("chrf_mean"), 1)),
            ("cosine", cosine), ("length Δ", length),
            ("latency Δ", signed(summary.get("latency_delta_s_mean"), " s", 3)),
            ("refusals", f"live {refusals(summary.get('live_refusals'))} · candidate "
                         f"{refusals(summary.get('candidate_refusals'))}")]


def histogram_rows(histogram: list[Json], width: int = 30) -> list[str]:
    """One line a bucket: `0.9–1.0  ████████▌  12`, the bars scaled to the fullest bucket."""
    most = max((int(b["count"]) for b in histogram), default=0)
    rows = []
    for bucket in histogram:
        eighths = round(8 * width * int(bucket["count"]) / most) if most else 0
        bar = "█" * (eighths // 8) + ("▏▎▍▌▋▊▉"[eighths % 8 - 1] if eighths % 8 else "")
        rows.append(f"{bucket['lower']:.1f}–{bucket['upper']:.1f}  {bar:<{width}}  {bucket['count']}")
    return rows


def sparkline(histogram: list[Json]) -> str:
    """The histogram as one character a bucket (an empty bucket is a dot), scaled to the fullest one."""
    most = max((int(b["count"]) for b in histogram), default=0)
    return "".join(BLOCKS[0 if not b["count"] else max(1, round(8 * int(b["count"]) / most))] for b in histogram)


def canary_heading(canary: Json) -> str:
    """`canary smol-next on 5% of the keys`."""
    return f"canary {canary['candidate']} on {share(canary['weight'], 0)} of the keys"


def _counted(count: int, rate: float | None) -> str:
    return f"{count} ({share(rate)})" if rate is not None else str(count)


def _side(side: Json) -> list[str]:
    down = side.get("thumbs_down_rate")
    return [str(side["requests"]), _counted(side["errors"], side.get("error_rate")),
            _counted(side["blocked"], side.get("block_rate")), seconds(side.get("p95_latency_s")),
            f"{side['thumbs_up']}/{side['thumbs_down']}" + (f" ({share(down)} down)" if down is not None else "")]


def side_rows(verdict: Json) -> list[tuple[str, str, str]]:
    """(label, candidate, baseline) rows: requests, errors, blocked, p95 latency, thumbs up/down."""
    labels = ("requests", "errors", "blocked", "p95 latency", "thumbs up/down")
    return list(zip(labels, _side(verdict["candidate"]), _side(verdict["baseline"]), strict=True))


def check_text(check: Json) -> str:
    """What one rule found: `+0.083 (limit 0.050) EXCEEDED`, `1.06× (limit 1.50×) ok`, `not judged: ...`."""
    if not check["judged"]:
        return f"not judged: {check.get('note') or 'no figure'}"
    if check["rule"] == "p95_latency":
        found = f"{check['change']:.2f}× the baseline (limit {check['limit']:.2f}×)"
    else:
        found = f"{check['change']:+.3f} (limit {check['limit']:.3f})"
    return found + (" EXCEEDED" if check["exceeded"] else " ok")


def verdict_heading(verdict: Json) -> str:
    """`canary watch over 120 s: regressed, rolled back` or `switch watch over 900 s: no regression`."""
    window = f"{verdict['until'] - verdict['since']:.0f} s"
    state = "regressed" if verdict["regressed"] else "no regression"
    if verdict.get("rolled_back"):
        state += ", rolled back"
    return f"{verdict['kind']} watch over {window}: {state}"


def pair_heading(pair: Json) -> str:
    """One line of a shadow pair's figures: agreement, exact, chrF, cosine, both statuses and latencies."""
    figures = pair["figures"]
    parts = [f"agreement {figures['agreement']:.3f}", "exact" if figures.get("exact") else "",
             f"chrF {figures['chrf']:.1f}",
             f"cosine {figures['cosine']:.3f}" if figures.get("cosine") is not None else "",
             f"live {pair['live_status']} in {pair['live_latency_s']:.2f} s",
             f"candidate {pair['candidate_status']} in {pair['candidate_latency_s']:.2f} s"]
    return " · ".join(p for p in parts if p)


def prompt_of(pair: Json) -> str:
    """The last user message of a pair's (redacted) conversation."""
    return next((str(m.get("content", "")) for m in reversed(pair.get("messages") or [])
                 if m.get("role") == "user"), "")
