"""``deepcredit.kafka_io``: the one topic reader against the real broker (its ends, its timeout,
following a topic), a producer that never drops a message silently, and the check of stored
offsets against a topic's watermarks."""

from __future__ import annotations

import logging
import threading

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer

from deepcredit.kafka_io import (
    OffsetsOutOfRange,
    PartitionReader,
    UndeliveredError,
    assigned_consumer,
    check_resume,
    delivering,
    produce,
    read_range,
    read_to_end,
    resume_problem,
)
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import TopicSpec, ensure_topics
from deepcredit.waiting import wait_until


def write(kafka: KafkaSettings, topic: str, partition: int, values: list[bytes]) -> None:
    producer = Producer(kafka.client_config())
    for v in values:
        producer.produce(topic, value=v, partition=partition)
    assert producer.flush(10) == 0


@pytest.mark.kafka
def test_ends_are_exclusive_and_the_partition_end_ends_a_partition(
    kafka: KafkaSettings, topics: Topics
) -> None:
    write(kafka, topics.clicks, 0, [b"a", b"b", b"c"])
    write(kafka, topics.clicks, 2, [b"x"])
    got = read_range(kafka, topics.clicks, {0: (1, 3), 1: (0, 0), 2: (0, 1)})
    assert sorted((m.partition(), m.offset(), m.value()) for m in got) == [
        (0, 1, b"b"), (0, 2, b"c"), (2, 0, b"x")]  # fmt: skip
    assert [m.value() for m in read_to_end(kafka, topics.clicks)] == [b"a", b"b", b"c", b"x"]
    # An end past the last message: reading stops where the partition ends (compaction may
    # have removed the messages before an end taken earlier).
    assert [m.value() for m in read_range(kafka, topics.clicks, {0: (2, 9)})] == [b"c"]


def test_a_silent_broker_is_a_timeout() -> None:
    nobody = KafkaSettings("127.0.0.1:1", {"log_level": 0})
    with pytest.raises(TimeoutError, match="not read to its end: no message in 1 s"):
        list(read_range(nobody, "clicks", {0: (0, 5)}, timeout_s=1.0))


@pytest.mark.kafka

def test_following_marks_the_catch_up_and_stops_when_told(
    kafka: KafkaSettings, topics: Topics
) -> None:
    write(kafka, topics.drift_alerts, 0, [b"old-1", b"old-2"])
    consumer = assigned_consumer(kafka)
    stop, seen, polls = threading.Event(), [], []
    reader = PartitionReader(consumer, topics.drift_alerts, {0: OFFSET_BEGINNING}, {0: 2},
                             follow=True, stop=stop, poll_s=0.1,
                             on_poll=lambda: polls.append(reader.caught_up))  # fmt: skip
    thread = threading.Thread(target=lambda: seen.extend(m.value() for m in reader))
    thread.start()
    try:
        wait_until(lambda: reader.caught_up, 10, 0.05, what="the catch-up")
        write(kafka, topics.drift_alerts, 0, [b"new"])
        wait_until(lambda: len(seen) == 3, 10, 0.05, what="the new message")
    finally:
        stop.set()
        thread.join(10)
        consumer.close()
    assert not thread.is_alive()
    assert seen == [b"old-1", b"old-2", b"new"]
    assert polls[0] is False and polls[-1] is True


# -- producing and resuming ------------------------------------------------------------------

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
