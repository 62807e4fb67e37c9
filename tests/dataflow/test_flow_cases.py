"""The issue-12 cases through the flow on the real broker (inputs in ``tests/cases/``):

- ``dup-id-different-content``: a new loan request reusing an earlier event id is dead-lettered
  as a conflicting duplicate (and counted), the first request is scored, and a true resend of
  it is skipped silently (counted);
- ``user-on-two-partitions``: ux1's repay, alone on another partition, is read before its loan's
  post and borrow (behind a backlog); the later post XL2 is scored near the in-order score (its
  debt and record are the in-order ones: ``tests/dataflow/test_user_events.py``), and the
  post read out of order is counted.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from bytewax.testing import run_main
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from dataflow.flow import FlowConfig, build_flow
from deepcredit.events import ClickEvent
from deepcredit.records import DeadLetterReason
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.artifact import load_scorer
from tests.streams import (
    case_arrival,
    case_lines,
    expected_scores,
    read_dead_letters,
    read_scores,
    send,
)

pytestmark = pytest.mark.kafka


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_dup_id_different_content_dead_letters_the_reused_id_and_skips_a_true_resend(
    kafka: KafkaSettings, topics: Topics, model_dir: Path
) -> None:
    lines = [value for _, value in case_lines("dup-id-different-content", "input.jsonl")]
    send(kafka, topics.clicks, [*lines, lines[0]])  # the case, then L1 resent as it was
    w = load_scorer(model_dir)
    conflicts_before = counted("deepcredit_dead_letters_total", reason="conflicting_event_id")
    resends_before = counted("deepcredit_duplicate_events_total", activity="post")

    run_main(build_flow(FlowConfig(kafka, topics, tail=False), w, lambda: DEFAULT_THRESHOLDS))

    l1, borrow, l2 = (msgspec.json.decode(line, type=ClickEvent) for line in lines)
    expected, _ = expected_scores(w, [l1, borrow])
    [score] = read_scores(kafka, topics.risk_scores)  # L1, once
    assert (score.event_id, score.loan_id) == ("e1", "L1")
    assert (score.p_delinquent, score.p_default) == expected["e1"]
    [letter] = read_dead_letters(kafka, topics.dead_letter)  # L2, not silently lost
    assert letter.reason is DeadLetterReason.CONFLICTING_EVENT_ID
    assert msgspec.json.decode(letter.payload, type=ClickEvent) == l2
    assert letter.key == b"u1" and letter.partition is not None and letter.offset == 2
    assert letter.topic == topics.clicks  # its coordinates whole, as every other dead letter
    assert counted("deepcredit_dead_letters_total",
                   reason="conflicting_event_id") - conflicts_before == 1  # fmt: skip
    assert counted("deepcredit_duplicate_events_total", activity="post") - resends_before == 1


def test_user_on_two_partitions_scores_xl2_near_the_in_order_score_and_counts_the_disorder(
    kafka: KafkaSettings, topics: Topics, model_dir: Path
) -> None:
    case = "user-on-two-partitions"
    # The case's filler: 1,500 recharges of 50 other users, a backlog on ux1's partition.
    producer = Producer(kafka.client_config())
    for i in range(1500):
        user = f"filler{i % 50}"
        value = json.dumps({"event_id": f"f{i}", "user_id": user, "ts": 1599995000 + i,
                            "activity": "recharge", "amount": 10.0})  # fmt: skip
        producer.produce(topics.clicks, value.encode(), key=user.encode(), partition=1)
    # ux1's events as the two partitioners placed them: the Java service's repay elsewhere.
    for name, partition in (("platform-post-borrow.tsv", 1), ("java-service-repay.tsv", 0),
                            ("platform-post2.tsv", 1)):  # fmt: skip
        for key, value in case_lines(case, name):
            assert key == b"ux1"
            producer.produce(topics.clicks, value, key=key, partition=partition)
    assert producer.flush(30) == 0
    w = load_scorer(model_dir)
    before = counted("deepcredit_out_of_order_events_total", activity="post")

    # Small polls: the backlog ahead of ux1's events on partition 1 takes many, while the
    # repay comes in partition 0's first, as in the case.
    run_main(build_flow(FlowConfig(kafka, topics, tail=False, batch_size=10), w,
                        lambda: DEFAULT_THRESHOLDS))  # fmt: skip

    in_order, _ = case_arrival()
    expected, _ = expected_scores(w, in_order)
    scores = {s.event_id: s for s in read_scores(kafka, topics.risk_scores)}
    assert set(scores) == {"x1", "x4"}
    xl2 = scores["x4"]
    assert abs(xl2.p_default - expected["x4"][1]) < 0.02
    assert abs(xl2.p_delinquent - expected["x4"][0]) < 0.05
    assert counted("deepcredit_out_of_order_events_total", activity="post") - before == 1
    assert read_dead_letters(kafka, topics.dead_letter) == []
