"""Golden sets: scorers, line-numbered errors, reports and forgetting, the built-in general set."""

from __future__ import annotations

import pytest

from appliance.evaluation.golden import (
    GoldenError,
    GoldenItem,
    builtin_general,
    forgotten,
    make_report,
    parse_golden,
    rouge_l,
    score_item,
)


def test_scorers() -> None:
    assert score_item(GoldenItem(prompt="p", expected="Paris", scorer="exact"), "  paris ").passed
    assert not score_item(GoldenItem(prompt="p", expected="Paris", scorer="exact"), "It is Paris.").passed
    assert score_item(GoldenItem(prompt="p", expected="Paris"), "The capital is PARIS.").passed
    assert score_item(GoldenItem(prompt="p", expected=r"^ACME-BOT:", scorer="regex"), "ACME-BOT: stop").passed
    assert not score_item(GoldenItem(prompt="p", expected=r"^ACME-BOT:", scorer="regex"), "I am ACME-BOT:").passed
    close = score_item(GoldenItem(prompt="p", expected="stop the press and call maintenance", scorer="rougeL"),
                       "Stop the press, then call maintenance now")
    assert close.passed and 0.5 <= close.score < 1.0


def test_rouge_l_is_lcs_f1() -> None:
    assert rouge_l("a b c d", "a b c d") == 1.0
    assert rouge_l("a x b y", "a b") == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert rouge_l("", "a") == 0.0 and rouge_l("x y", "a b") == 0.0


def test_golden_file_errors_name_the_line() -> None:
    good = '{"prompt": "q", "expected": "a"}'
    with pytest.raises(GoldenError, match="golden.jsonl line 2: invalid JSON"):
        parse_golden(f'{good}\n{{"prompt": "q" "expected": "a"}}\n', "golden.jsonl")
    with pytest.raises(GoldenError, match="line 3: expected: Field required"):
        parse_golden(f'{good}\n\n{{"prompt": "q"}}\n', "golden.jsonl")
    with pytest.raises(GoldenError, match="line 1: scorer"):
        parse_golden('{"prompt": "q", "expected": "a", "scorer": "bleu"}', "golden.jsonl")
    with pytest.raises(GoldenError, match="line 1: .*not a valid regex"):
        parse_golden('{"prompt": "q", "expected": "(", "scorer": "regex"}', "golden.jsonl")
    with pytest.raises(GoldenError, match="no golden items"):
        parse_golden("\n\n", "golden.jsonl")


def test_report_counts_task_and_general_and_finds_forgetting() -> None:
    items = [GoldenItem(prompt="q1", expected="ACME"), GoldenItem(prompt="France?", expected="Paris", kind="general")]
    before = make_report(items, ["Hello", "Paris."])
    after = make_report(items, ["ACME-BOT: hi", "Rome."])
    assert before.summary() == "task 0/1, general 1/1" and after.summary() == "task 1/1, general 0/1"
    assert forgotten(before, after) == ["France?"]
    assert before.score == after.score == 0.5


def test_builtin_general_set_ships_with_the_package() -> None:
    items = builtin_general()
    assert len(items) >= 5 and all(i.kind == "general" for i in items)
    assert any("France" in i.prompt for i in items)
