"""The one topic reader against the real broker: its ends, its timeout, following a topic."""

from __future__ import annotations

import threading

import pytest
from confluent_kafka import OFFSET_BEGINNING, Producer

from deepcredit.kafka_io import PartitionReader, assigned_consumer, read_range, read_to_end
from deepcredit.settings import KafkaSettings, Topics
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
