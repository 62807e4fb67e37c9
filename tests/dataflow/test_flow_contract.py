"""The consumer contract through the flow on the real broker: every loan post gets an answer on
the risk topic (a score, or a not_scored record for a post dead-lettered or refused; a click
that is no post gets only its dead letter), each score says how much history it rests on,
every message carries the record kind and schema version in its headers, and every record
read back validates against the committed JSON Schema files."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import msgspec
import pytest
from bytewax.testing import run_main

from dataflow.flow import FlowConfig, build_flow
from deepcredit.events import DAY_S
from deepcredit.kafka_io import read_to_end
from deepcredit.records import RECORD_HEADER, SCHEMA_VERSION, SCHEMA_VERSION_HEADER
from deepcredit.records import DeadLetterReason as Reason
from deepcredit.schemas import SCHEMAS_DIR
from deepcredit.score_log import summarise
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.artifact import load_scorer
from tests.streams import read_dead_letters, read_not_scored, read_scores, send

pytestmark = pytest.mark.kafka

T0 = 1.6e9


def click(event_id: str, user: str, days: float, activity: str, **more: object) -> bytes:
    return json.dumps({"event_id": event_id, "user_id": user, "ts": T0 + days * DAY_S,
                       "activity": activity, "amount": 100.0, **more}).encode()  # fmt: skip


LOAN = {"loan_id": "L1", "rate": 0.1, "term_days": 30}
LINES = [
    click("a1", "ua", 0.0, "recharge"),
    click("a2", "ua", 0.5, "withdraw"),
    click("a3", "ua", 2.0, "post", **LOAN),  # scored: 2 events and 2 days before it
    click("b1", "ub", 1.0, "post", **LOAN),  # scored: a first-time user
    click("c1", "uc", 1.0, "post", loan_id="L9"),  # a post without rate and term: not scored
    click("a3", "ua", 3.0, "post", loan_id="L2", rate=0.2, term_days=60),  # a3 reused: refused
    click("d1", "ud", 1.0, "recharge", amount=-5.0),  # no post: a dead letter only
    b"not json",  # no post that can be read: a dead letter only
]


def test_every_post_gets_a_score_or_a_not_scored_record_with_headers_and_valid_schemas(
    kafka: KafkaSettings, topics: Topics, model_dir: Path
) -> None:
    send(kafka, topics.clicks, LINES)
    w = load_scorer(model_dir)
    run_main(build_flow(FlowConfig(kafka, topics, tail=False), w, lambda: DEFAULT_THRESHOLDS))

    scores = {s.event_id: s for s in read_scores(kafka, topics.risk_scores)}
    assert set(scores) == {"a3", "b1"}
    assert (scores["a3"].prior_events, scores["a3"].history_days) == (2, 2.0)
    assert (scores["b1"].prior_events, scores["b1"].history_days) == (0, 0.0)
    refused = {(n.event_id, n.reason): n for n in read_not_scored(kafka, topics.risk_scores)}
    assert set(refused) == {("c1", Reason.MISSING_LOAN_FIELDS), ("a3", Reason.CONFLICTING_EVENT_ID)}
    c1 = refused["c1", Reason.MISSING_LOAN_FIELDS]
    assert (c1.user_id, c1.loan_id, c1.event_ts, c1.model_version) == ("uc", "L9", T0 + DAY_S,
                                                                       w.version)  # fmt: skip
    assert refused["a3", Reason.CONFLICTING_EVENT_ID].loan_id == "L2"  # the refused copy's
    letters = read_dead_letters(kafka, topics.dead_letter)
    assert sorted(d.reason.value for d in letters) == sorted(
        r.value for r in (Reason.MISSING_LOAN_FIELDS, Reason.CONFLICTING_EVENT_ID,
                          Reason.OUT_OF_RANGE, Reason.INVALID_JSON))  # fmt: skip
    by_offset = {(d.partition, d.offset): d for d in letters}
    for n in refused.values():  # each not_scored points at its dead letter
        assert by_offset[n.partition, n.offset].reason is n.reason

    validators = {p.stem: jsonschema.Draft202012Validator(json.loads(p.read_text()))
                  for p in SCHEMAS_DIR.glob("*.json") if p.stem != "index"}  # fmt: skip
    risk = read_to_end(kafka, topics.risk_scores)
    assert len(risk) == 4
    for m in [*risk, *read_to_end(kafka, topics.dead_letter)]:
        headers = dict(m.headers() or [])
        kind = headers[RECORD_HEADER].decode()
        assert headers[SCHEMA_VERSION_HEADER] == str(SCHEMA_VERSION).encode()
        record = msgspec.json.decode(m.value())
        assert record["type"] == kind and record["schema_version"] == SCHEMA_VERSION
        validators[kind].validate(record)
        if kind in ("score", "not_scored"):
            assert m.key() == record["user_id"].encode()  # keyed by user, like the clicks

    summary = summarise(kafka, topics.risk_scores, latest=2)  # what 'deepcredit scores' prints
    assert (summary.posts, summary.first_time) == (2, 1)
    assert summary.not_scored == {"missing_loan_fields": 1, "conflicting_event_id": 1}
    assert "not scored     conflicting_event_id: 1, missing_loan_fields: 1" in summary.describe()
