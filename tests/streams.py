"""Helpers for the flow's integration tests: put a clickstream on Kafka, read scores back, and
the scores a flow must give (the numpy scorer fed each user's events in order); the inputs of
the failing cases (``tests/cases/<case>/``, copied from ``shared/cases``); recreate a topic as
an operator might."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
from confluent_kafka import Producer

from deepcredit.codec import decode_click
from deepcredit.errors import DeployError
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines
from deepcredit.kafka_io import produce, read_to_end
from deepcredit.records import DeadLetter, NotScored, RiskRecord, Score
from deepcredit.replay import user_key
from deepcredit.settings import KafkaSettings
from deepcredit.topics import TopicSpec, delete_topics, ensure_topics
from scorer.model import ModelWeights, advance
from scorer.user_state import UserState

CASES = Path(__file__).parent / "cases"
_risk_decoder = msgspec.json.Decoder(RiskRecord)
BAD_MESSAGES = (b"not json", b'{"event_id": "x", "user_id": "u"}', b"\xff\xfe")


def send(kafka: KafkaSettings, topic: str, lines: list[bytes]) -> None:
    """Produce ``lines`` keyed by user id (None for lines that are not events)."""
    producer = Producer(kafka.client_config())
    for line in lines:
        produce(producer, topic, line, user_key(line))
    assert producer.flush(30) == 0


def recreate(kafka: KafkaSettings, topic: str, partitions: int) -> None:
    """Delete ``topic`` and create it again, empty (deletion finishes in the background)."""
    delete_topics(kafka, [topic])
    deadline = time.monotonic() + 60
    while True:
        try:
            if ensure_topics(kafka, [TopicSpec(topic, partitions)])[topic] == "created":
                return
        except DeployError:  # still marked for deletion
            pass
        assert time.monotonic() < deadline, f"{topic} not created again"
        time.sleep(0.5)


def clicks_lines(path: Path) -> list[bytes]:
    return list(read_lines(str(path)))


def read_risk(kafka: KafkaSettings, topic: str) -> list[Score | NotScored]:
    """Every record on the risk-scores topic: scores and not_scored records."""
    return [_risk_decoder.decode(m.value()) for m in read_to_end(kafka, topic)]


def read_scores(kafka: KafkaSettings, topic: str) -> list[Score]:
    """The scores on the risk-scores topic (its not_scored records left out)."""
    return [r for r in read_risk(kafka, topic) if isinstance(r, Score)]


def read_not_scored(kafka: KafkaSettings, topic: str) -> list[NotScored]:
    return [r for r in read_risk(kafka, topic) if isinstance(r, NotScored)]


def read_dead_letters(kafka: KafkaSettings, topic: str) -> list[DeadLetter]:
    return [msgspec.json.decode(m.value(), type=DeadLetter) for m in read_to_end(kafka, topic)]


def expected_scores(
    w: ModelWeights, events: list[ClickEvent]
) -> tuple[dict[str, tuple[float, float]], dict[str, UserState]]:
    """Each post's probabilities by event id, and each user's final state."""
    states: dict[str, UserState] = {}
    scores: dict[str, tuple[float, float]] = {}
    for e in events:
        s = states.setdefault(e.user_id, UserState.new(w.version, w.hidden_size))
        p = advance(w, s, e)
        if p is not None:
            scores[e.event_id] = p
    return scores, states


def case_lines(case: str, name: str) -> list[tuple[bytes | None, bytes]]:
    """The (key, value) messages of one input file of a case: a ``.tsv`` holds
    ``key<TAB>json`` lines, a ``.jsonl`` json lines (keyed by their user id)."""
    lines = [line for line in (CASES / case / name).read_bytes().splitlines() if line.strip()]
    if name.endswith(".tsv"):
        return [tuple(line.split(b"\t", 1)) for line in lines]  # type: ignore[misc]
    return [(user_key(line), line) for line in lines]


def case_events(case: str, name: str) -> list[ClickEvent]:
    events = [decode_click(value) for _, value in case_lines(case, name)]
    assert all(isinstance(e, ClickEvent) for e in events)
    return events  # type: ignore[return-value]


def case_arrival() -> tuple[list[ClickEvent], list[ClickEvent]]:
    """``user-on-two-partitions``: ux1's events in event-time order, and as the flow read them
    (the repay, alone on the other partition, first)."""
    case = "user-on-two-partitions"
    post_borrow = case_events(case, "platform-post-borrow.tsv")
    repay = case_events(case, "java-service-repay.tsv")
    post2 = case_events(case, "platform-post2.tsv")
    return post_borrow + repay + post2, repay + post_borrow + post2
