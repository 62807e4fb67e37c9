"""``deepcredit.kafka_io``: a producer that never drops a message silently, and the check of
stored offsets against a topic's watermarks."""

from __future__ import annotations

import logging

import pytest

from deepcredit.kafka_io import (
    OffsetsOutOfRange,
    UndeliveredError,
    check_resume,
    delivering,
    produce,
    read_to_end,
    resume_problem,
)
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import TopicSpec, ensure_topics


def ensure_small_topic(kafka: KafkaSettings, name: str, max_message_bytes: int) -> None:
    """A one-partition topic whose broker refuses record batches above ``max_message_bytes``
    (the client's own limit is far higher, so the refusal comes back as a delivery report)."""
    ensure_topics(kafka, [TopicSpec(name, 1, {"max.message.bytes": str(max_message_bytes)})])


def test_resume_problem_names_partitions_offsets_and_ends() -> None:
    marks = {0: (0, 8), 1: (0, 12)}
    assert resume_problem({0: 8, 1: 0}, marks) is None  # the end itself: nothing new yet
    assert resume_problem({0: -2, 1: -1}, marks) is None  # logical: beginning, end
    assert resume_problem({2: 5}, marks) == (
        "past the end: partition 2 at 5 (the topic has no partition 2) (the topic was "
        "recreated?)")  # fmt: skip


@pytest.mark.kafka
def test_a_refused_message_is_an_error_when_the_block_ends(
    kafka: KafkaSettings, topics: Topics
) -> None:
    small = topics.clicks + "-small"
    ensure_small_topic(kafka, small, max_message_bytes=1024)
    refused = pytest.raises(UndeliveredError, match=r"1 refused by the broker .*of 1 messages")
    with refused, delivering(kafka, 30.0) as producer:
        produce(producer, small, b"x" * 2000)
    with delivering(kafka, 30.0) as producer:
        produce(producer, small, b"fits")
    assert [m.value() for m in read_to_end(kafka, small)] == [b"fits"]


@pytest.mark.kafka
def test_an_exception_in_the_block_still_delivers_what_was_handed_over(
    kafka: KafkaSettings, topics: Topics, caplog: pytest.LogCaptureFixture
) -> None:
    broken = pytest.raises(RuntimeError, match="the caller broke")
    with broken, caplog.at_level(logging.ERROR), delivering(kafka, 30.0, {"linger.ms": 1000}) as p:
        for i in range(100):
            produce(p, topics.clicks, b"m%d" % i)
        raise RuntimeError("the caller broke")
    assert len(read_to_end(kafka, topics.clicks)) == 100
    assert not caplog.records  # all arrived: nothing to report


@pytest.mark.kafka
def test_check_resume_refuses_offsets_the_topic_does_not_hold(
    kafka: KafkaSettings, topics: Topics
) -> None:
    with delivering(kafka, 30.0) as producer:
        for _ in range(2):
            producer.produce(topics.clicks, b"m", partition=0)
    check_resume(kafka, topics.clicks, {0: 2, 1: 0, 2: -2}, whose="w", remedy="r")
    with pytest.raises(OffsetsOutOfRange) as caught:
        check_resume(kafka, topics.clicks, {0: 489, 1: 0}, whose="the store s", remedy="Do r.")
    assert str(caught.value) == (
        f"the store s holds offsets of {topics.clicks} past the end: partition 0 at 489 (the "
        "topic ends at 2) (the topic was recreated?); resuming from them would skip messages "
        "without a trace. Do r.")  # fmt: skip
