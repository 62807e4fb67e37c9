"""What the score step reports besides scores, without Kafka: a conflicting duplicate comes out
as a dead letter (a resend stays silent, counted), events read out of order and held loan
events given up are counted; and the two issue-12 cases through the step."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest
from prometheus_client import REGISTRY

from dataflow import user_events
from dataflow.records import Accepted, Scored
from dataflow.steps import UserScorer
from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.records import DeadLetter, DeadLetterReason
from scorer.artifact import load_scorer
from scorer.model import advance
from scorer.user_state import UserState, event_fingerprint
from tests.streams import case_arrival, case_events


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def accepted(events: list[ClickEvent]) -> list[Accepted]:
    return [Accepted(e, 0.0, 0, offset) for offset, e in enumerate(events)]


def test_the_case_reused_id_is_dead_lettered_and_a_true_resend_is_skipped_silently(
    model_dir: Path,
) -> None:
    w = load_scorer(model_dir)
    l1, borrow, l2 = case_events("dup-id-different-content", "input.jsonl")
    assert l1.event_id == l2.event_id and l1.loan_id != l2.loan_id
    logic = UserScorer(w, None)
    letters_before = counted("deepcredit_dead_letters_total", reason="conflicting_event_id")
    resends_before = counted("deepcredit_duplicate_events_total", activity="post")
    out, _ = logic.on_batch(accepted([l1, borrow, l2, l1]))  # the case, then L1 resent
    scored = [x for x in out if isinstance(x, Scored)]
    letters = [x for x in out if isinstance(x, DeadLetter)]
    assert [s.accepted.event for s in scored] == [l1]
    expected = UserState.new(w.version, w.hidden_size)
    assert (scored[0].p_delinquent, scored[0].p_default) == advance(w, expected, l1)
    [letter] = letters
    assert letter.reason is DeadLetterReason.CONFLICTING_EVENT_ID
    assert msgspec.json.decode(letter.payload, type=ClickEvent) == l2
    assert (letter.key, letter.partition, letter.offset) == (b"u1", 0, 2)
    assert event_fingerprint(l1).hex() in letter.detail
    assert event_fingerprint(l2).hex() in letter.detail
    assert counted("deepcredit_dead_letters_total",
                   reason="conflicting_event_id") - letters_before == 1  # fmt: skip
    assert counted("deepcredit_duplicate_events_total", activity="post") - resends_before == 1
    advance(w, expected, borrow)
    assert logic.state == expected  # neither copy moved the state


def test_the_case_disordered_arrival_scores_xl2_near_the_in_order_score(
    model_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ux1's repay read before its loan's post and borrow (another partition): the ledger puts
    it in its place, so XL2's debt and record are the in-order ones; the TLSTM steps are not
    redone, so the score is near the in-order one, not equal. The post read after the repay is
    counted as out of order, and logged."""
    w = load_scorer(model_dir)
    in_order, arrival = case_arrival()
    xl2 = in_order[-1]
    baseline = UserScorer(w, None)
    [*_, expected] = [x for x in baseline.on_batch(accepted(in_order))[0]
                      if isinstance(x, Scored)]  # fmt: skip
    disordered = UserScorer(w, None)
    before = {a: counted("deepcredit_out_of_order_events_total", activity=a)
              for a in ("post", "borrow", "repay")}  # fmt: skip
    # A fresh log sampler: another test may have logged within the minute.
    monkeypatch.setattr(user_events, "_out_of_order_log",
                        user_events._Sampler(user_events.LOG_INTERVAL_S))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=user_events.__name__):
        out, _ = disordered.on_batch(accepted(arrival))
    [*_, got] = [x for x in out if isinstance(x, Scored)]
    assert got.accepted.event == expected.accepted.event == xl2
    book, in_book = disordered.state.memory.ledger, baseline.state.memory.ledger
    assert book.debt(xl2.ts) == in_book.debt(xl2.ts) == (0.0, 0.0, 0)  # XL1 not overdue
    assert book.record(xl2.ts) == in_book.record(xl2.ts)
    assert abs(got.p_default - expected.p_default) < 0.02
    assert abs(got.p_delinquent - expected.p_delinquent) < 0.05
    after = {a: counted("deepcredit_out_of_order_events_total", activity=a) for a in before}
    assert {a: after[a] - before[a] for a in before} == {"post": 1, "borrow": 0, "repay": 0}
    assert "earlier than an event of the user already read" in caplog.text


def test_held_loan_events_given_up_are_counted(model_dir: Path) -> None:
    w = load_scorer(model_dir)
    t0 = 1.6e9
    orphan = ClickEvent(event_id="r", user_id="u9", ts=t0, activity=Activity.REPAY,
                        amount=5.0, loan_id="nowhere")  # fmt: skip
    later = ClickEvent(event_id="x", user_id="u9", ts=t0 + 8 * DAY_S, activity=Activity.RECHARGE,
                       amount=5.0)  # fmt: skip
    before = counted("deepcredit_held_loan_events_given_up_total")
    logic = UserScorer(w, None)
    logic.on_batch(accepted([orphan, later]))
    assert counted("deepcredit_held_loan_events_given_up_total") - before == 1
    assert logic.state.memory.ledger.given_up == 1
