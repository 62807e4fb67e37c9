"""The live flow against the real broker under a flood of malformed messages: 100,000 of them,
of every kind, mixed into a valid stream. Nothing crashes, each one is on the dead-letter topic
with its reason and its coordinates, and every valid post is scored exactly as without them.
Three valid events that a step fails on (score, decide, drift) are dead-lettered too (the
poison-pill rule), and the user whose event failed in the score step scores on unchanged."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from bytewax.testing import run_main
from confluent_kafka import KafkaError, Message, Producer
from prometheus_client import REGISTRY

from dataflow import steps
from dataflow.flow import FlowConfig, build_flow
from deepcredit.codec import MAX_DEPTH, MAX_EVENT_BYTES, decode_click, encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.records import DeadLetterReason as R
from deepcredit.records import DriftAlert, Score
from deepcredit.replay import user_key
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, advance
from scorer.monitors import DriftMonitors
from scorer.reasons import advance_with_reasons
from scorer.user_state import UserState
from tests.streams import clicks_lines, expected_scores, read_dead_letters, read_scores

pytestmark = pytest.mark.kafka

CASES = Path(__file__).parents[1] / "cases"
MALFORMED = 100_000
#: Event ids of valid events that the test makes one step fail on.
FAILS_IN = {"poison-score": "score", "poison-decide": "decide", "poison-drift": "drift"}

Make = Callable[[random.Random, dict], tuple[bytes | None, R]]


def _json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def _with(doc: dict, **changes: object) -> dict:
    return {**doc, **changes}


def _without(doc: dict, *fields: str) -> dict:
    return {k: v for k, v in doc.items() if k not in fields}


# Each kind: from a random generator and a valid post (as a dict), a message and its reason.
KINDS: list[Make] = [
    lambda r, d: (b"#" + r.randbytes(r.randrange(0, 60)).translate(_ASCII), R.INVALID_JSON),
    lambda r, d: (_json(d)[: r.randrange(1, 40)], R.INVALID_JSON),
    lambda r, d: (r.choice([b"", None]), R.INVALID_JSON),
    lambda r, d: (_flip(r, _json(d)), R.INVALID_UTF8),
    lambda r, d: (_json(d)[:-1] + b',"meta":' + _deep(r) + b"}", R.TOO_DEEP),
    lambda r, d: (_json(_with(d, **r.choice(_WRONG_TYPES))), R.WRONG_TYPE),
    lambda r, d: (_json(_with(d, **r.choice(_OUT_OF_RANGE))), R.OUT_OF_RANGE),
    lambda r, d: (_json(_without(d, r.choice(["rate", "term_days", "loan_id"]))),
                  R.MISSING_LOAN_FIELDS),
    lambda r, d: (_json(_with(d, pad="x" * r.randrange(MAX_EVENT_BYTES, MAX_EVENT_BYTES + 300))),
                  R.OVERSIZE),
    lambda r, d: (_json(_with(d, **{r.choice(["user_id", "event_id", "loan_id"]):
                                    r.choice(_BAD_IDS)})), R.INVALID_ID),
    lambda r, d: (r.choice([b"[1, 2]", b'"post"', b"42", b"null", b"true", _json([d])]),
                  R.NOT_AN_OBJECT),
    lambda r, d: (_json(_without(d, r.choice(["event_id", "user_id", "ts", "activity"]))),
                  R.MISSING_FIELD),
    lambda r, d: (_json(_with(d, activity=r.choice(["gamble", "POST", ""]))),
                  R.UNKNOWN_ACTIVITY),
]  # fmt: skip
_ASCII = bytes(range(128)) * 2  # any byte to its ASCII value modulo 128: garbage, but UTF-8
_WRONG_TYPES = [{"ts": "yesterday"}, {"amount": True}, {"user_id": 7}, {"term_days": 90.5},
                {"rate": [0.1]}, {"loan_id": {}}]  # fmt: skip
_OUT_OF_RANGE = [{"amount": -0.01}, {"ts": 0}, {"ts": 1e13}, {"rate": 12.0}, {"term_days": 0},
                 {"user_id": "u" * 129}, {"event_id": ""}]  # fmt: skip
_BAD_IDS = ["   ", "u1\u0000", " u1", "u1\n", "u\u200b1", "\u202eu1", "u\u20281", "\u00a0u1"]


def _flip(r: random.Random, data: bytes) -> bytes:
    at = r.randrange(len(data))
    return data[:at] + r.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + data[at:]


def _deep(r: random.Random) -> bytes:
    n = r.randrange(MAX_DEPTH, 500)  # the event's own object makes it one deeper
    opener, closer = r.choice([(b"[", b"]"), (b'{"a":', b"}")])
    return opener * n + b"1" + closer * n


def malformed(n: int, users: list[str], seed: int = 5) -> list[tuple[bytes | None, bytes | None,
                                                                      R]]:  # fmt: skip
    """``n`` malformed messages as (key, value, reason), the kinds in turn, each keyed by a real
    user, by nothing or by junk (the key is not read for identity)."""
    r = random.Random(seed)
    out = []
    for i in range(n):
        post = {"event_id": f"bad-{i}", "user_id": r.choice(users), "ts": 1.6e9 + i,
                "activity": "post", "amount": 100.0, "loan_id": f"bad-{i}", "rate": 0.1,
                "term_days": 30}  # fmt: skip
        value, reason = KINDS[i % len(KINDS)](r, post)
        key = r.choice([post["user_id"].encode(), None, r.randbytes(3)])
        out.append((key, value, reason))
    return out


def poison_events(clicks: list[ClickEvent]) -> tuple[int, list[ClickEvent]]:
    """The events a step is made to fail on (``FAILS_IN``), and the index in ``clicks`` of the
    click the first one copies (under a new id) to go right after: the score step fails on it
    once it has advanced the user's state. The other two are new users' (a post, a recharge)."""
    user = clicks[0].user_id
    middle = [i for i, e in enumerate(clicks) if e.user_id == user][5]
    post = next(e for e in clicks if e.activity is Activity.POST)
    return middle, [
        msgspec.structs.replace(clicks[middle], event_id="poison-score"),
        msgspec.structs.replace(post, event_id="poison-decide", user_id="poison-decide-user"),
        ClickEvent(event_id="poison-drift", user_id="poison-drift-user", ts=post.ts,
                   activity=Activity.RECHARGE, amount=5.0),
    ]  # fmt: skip


def fail_on_poison(monkeypatch: pytest.MonkeyPatch) -> None:
    def score(w: ModelWeights, s: UserState, event: ClickEvent, key: bytes,
              fingerprint: bytes) -> tuple[tuple[float, float] | None, list[str]]:  # fmt: skip
        # advanced: the failure is half-way
        scored = advance_with_reasons(w, s, event, key, fingerprint)
        if event.event_id == "poison-score":
            raise RuntimeError("score failed")
        return scored

    def record(post: ClickEvent, *args: Any) -> Score:
        if post.event_id == "poison-decide":
            raise RuntimeError("decide failed")
        return score_record(post, *args)

    def update(self: DriftMonitors, event: ClickEvent,
               p: tuple[float, float] | None) -> list[DriftAlert]:  # fmt: skip
        if event.event_id == "poison-drift":
            raise RuntimeError("drift failed")
        return drift_update(self, event, p)

    score_record, drift_update = steps.score_record, DriftMonitors.update
    monkeypatch.setattr(steps, "advance_with_reasons", score)
    monkeypatch.setattr(steps, "score_record", record)
    monkeypatch.setattr(DriftMonitors, "update", update)


def dead_letters_counted() -> Counter:
    return Counter({reason: REGISTRY.get_sample_value("deepcredit_dead_letters_total",
                                                      {"reason": reason.value}) or 0.0
                    for reason in R})  # fmt: skip


class Sent(msgspec.Struct):
    """One message of the test's stream, and where the broker put it."""

    key: bytes | None
    value: bytes | None
    partition: int = -1  # -1: the producer's partitioner picks (by key)
    reason: R | None = None  # why it must be dead-lettered; None: it must be accepted
    coordinates: tuple[int, int] | None = None  # (partition, offset), once delivered


def produce_all(kafka: KafkaSettings, topic: str, sent: list[Sent]) -> None:
    """Everything in one go, batched, each message's coordinates recorded on delivery."""
    producer = Producer(kafka.client_config(**{
        "linger.ms": 50, "batch.size": 1_000_000, "queue.buffering.max.messages": 500_000,
        "enable.idempotence": True}))  # fmt: skip

    def delivered(s: Sent) -> Callable[[KafkaError | None, Message], None]:
        def report(err: KafkaError | None, msg: Message) -> None:
            assert err is None, err
            s.coordinates = (msg.partition(), msg.offset())

        return report

    for s in sent:
        producer.produce(topic, value=s.value, key=s.key, partition=s.partition,
                         on_delivery=delivered(s))  # fmt: skip
    assert producer.flush(60) == 0
    assert all(s.coordinates is not None for s in sent)


def test_a_flood_of_malformed_messages_and_failing_steps_changes_no_score(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # The valid stream: the generated clicks, with the event the score step fails on after the
    # click it copies and the decide and drift ones first; then the two case files' events, on
    # one partition so that their order holds, each keyed as its producer wrote it (the NFD
    # form of the user id for post LB).
    middle, (score_poison, decide_poison, drift_poison) = poison_events(clicks)
    valid = [Sent(user_key(line), line) for line in clicks_lines(clicks_file)]
    valid.insert(middle + 1, Sent(score_poison.user_id.encode(), encode(score_poison),
                             reason=R.PROCESSING_ERROR))  # fmt: skip
    valid[:0] = [Sent(e.user_id.encode(), encode(e), reason=R.PROCESSING_ERROR)
                 for e in (decide_poison, drift_poison)]  # fmt: skip
    valid += [Sent(json.loads(line)["user_id"].encode(), line, partition=0)
              for line in case_lines("unicode-user-id-split")]  # fmt: skip
    first, deep, last = case_lines("deep-nesting-crash")
    valid += [Sent(b"u1", first, 0), Sent(b"u1", deep, 0, R.TOO_DEEP), Sent(b"u2", last, 0)]

    # 100,000 malformed messages, scattered through it (the valid ones keep their order).
    r = random.Random(3)
    bad = [Sent(k, v, reason=reason)
           for k, v, reason in malformed(MALFORMED, sorted({e.user_id for e in clicks}))]
    at = set(r.sample(range(len(valid) + len(bad)), len(valid)))
    valid_left, bad_left = iter(valid), iter(bad)
    sent = [next(valid_left) if i in at else next(bad_left) for i in range(len(valid) + len(bad))]
    produce_all(kafka, topics.clicks, sent)

    w = load_scorer(model_dir)
    fail_on_poison(monkeypatch)
    counted_before = dead_letters_counted()
    run_main(build_flow(FlowConfig(kafka, topics, tail=False), w, lambda: DEFAULT_THRESHOLDS))

    # Every valid post scored once, exactly as the valid events alone give.
    accepted = [e for s in valid if s.reason is None
                for e in [decode_click(s.value)] if isinstance(e, ClickEvent)]  # fmt: skip
    assert len(accepted) == sum(s.reason is None for s in valid)
    expected, _ = expected_scores(w, accepted)
    scores = read_scores(kafka, topics.risk_scores)
    assert len(scores) == len(expected) > 100
    assert {s.event_id: (s.p_delinquent, s.p_default) for s in scores} == expected
    # The case's NFD post LB scored with the NFC form's history, not as a new user's.
    assert expected["a5"] != new_user_score(w, accepted)

    # Every other message on the dead-letter topic, once, with its reason and coordinates.
    letters = read_dead_letters(kafka, topics.dead_letter)
    got = {(d.partition, d.offset): d for d in letters}
    assert len(got) == len(letters)
    rejected = [s for s in sent if s.reason is not None]
    assert {c: d.reason for c, d in got.items()} == {s.coordinates: s.reason for s in rejected}
    by_reason = Counter(s.reason for s in rejected)
    # Every reason but a reused event id, which needs a user's history (test_flow_cases.py).
    assert by_reason[R.PROCESSING_ERROR] == 3
    assert set(by_reason) == set(R) - {R.CONFLICTING_EVENT_ID}
    counted = dead_letters_counted()
    counted_now = {reason: counted[reason] - counted_before[reason] for reason in R}
    assert counted_now == {**by_reason, R.CONFLICTING_EVENT_ID: 0}
    for s in rejected:
        letter = got[s.coordinates]
        assert (letter.key, letter.topic) == (s.key, topics.clicks)
        if s.reason is R.PROCESSING_ERROR:
            step = FAILS_IN[msgspec.json.decode(s.value, type=ClickEvent).event_id]
            assert letter.detail == f"{step}: RuntimeError: {step} failed"
            assert letter.payload == s.value  # the event as accepted: it was sent canonical


def case_lines(name: str) -> list[bytes]:
    return (CASES / name / "input.jsonl").read_bytes().splitlines()


def new_user_score(w: ModelWeights, accepted: list[ClickEvent]) -> tuple[float, float] | None:
    """Post LB's probabilities for a user with no history (what the case got)."""
    lb = next(e for e in accepted if e.event_id == "a5")
    return advance(w, UserState.new(w.version, w.hidden_size), lb)
