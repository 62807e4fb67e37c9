"""Small helpers around confluent-kafka shared by our producers and readers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator, Mapping

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from deepcredit.settings import KafkaSettings

__all__ = ["produce", "read_range", "read_to_end", "watermarks"]


def produce(producer: Producer, topic: str, value: bytes, key: bytes | None = None) -> None:
    """Produce one message, waiting for room when the local queue is full (backpressure)
    instead of failing: a fast file reader would otherwise outrun the broker."""
    while True:
        try:
            producer.produce(topic, key=key, value=value)
        except BufferError:
            producer.poll(0.1)  # serve delivery reports, which frees queue space
            continue
        producer.poll(0)
        return


def watermarks(
    settings: KafkaSettings, topic: str, timeout_s: float = 30.0
) -> dict[int, tuple[int, int]]:
    """Each partition's (low, high) watermark: the first offset the broker still holds and the
    offset the next message will get."""
    consumer = _reader(settings)
    try:
        return _watermarks(consumer, topic, timeout_s)
    finally:
        consumer.close()


def read_range(
    settings: KafkaSettings,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    timeout_s: float = 30.0,
) -> Iterator[Message]:
    """The messages of ``topic`` with start <= offset < end, for each ``partition: (start,
    end)``; each partition in offset order, partitions interleaved (no consumer group, nothing
    committed). Raises TimeoutError when no message comes for ``timeout_s`` before the ends,
    RuntimeError when a start is no longer held by the broker (retention)."""
    consumer = _reader(settings)
    try:
        yield from _read(consumer, topic, ranges, timeout_s)
    finally:
        consumer.close()


def read_to_end(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every message of ``topic`` from its beginning to its end as of the call, partition by
    partition in offset order (no consumer group, nothing committed).

    Raises TimeoutError when no message comes for ``timeout_s`` before the end.
    """
    consumer = _reader(settings)
    try:
        # From the beginning, not the low watermark: retention may move it meanwhile.
        ranges = {p: (OFFSET_BEGINNING, high)
                  for p, (low, high) in _watermarks(consumer, topic, timeout_s).items()
                  if high > low}  # fmt: skip
        out = list(_read(consumer, topic, ranges, timeout_s))
    finally:
        consumer.close()
    return sorted(out, key=lambda m: (m.partition(), m.offset()))


def _reader(settings: KafkaSettings) -> Consumer:
    # group.id is required by the client but unused: partitions are assigned, nothing committed.
    # An offset the broker no longer holds is an error, never a silent jump to the end.
    return Consumer(settings.client_config(**{
        "group.id": f"deepcredit-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.partition.eof": True, "auto.offset.reset": "error"}))  # fmt: skip


def _watermarks(consumer: Consumer, topic: str, timeout_s: float) -> dict[int, tuple[int, int]]:
    meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if meta.error is not None:
        raise ValueError(f"topic {topic!r}: {meta.error.str()}")
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in sorted(meta.partitions)}  # fmt: skip


def _read(
    consumer: Consumer, topic: str, ranges: Mapping[int, tuple[int, int]], timeout_s: float
) -> Iterator[Message]:
    pending = {p: end for p, (start, end) in ranges.items() if end > start}
    if not pending:
        return
    consumer.assign([TopicPartition(topic, p, ranges[p][0]) for p in pending])
    deadline = time.monotonic() + timeout_s
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic!r} not read to its end: no message in {timeout_s:g} s")
        m = consumer.poll(0.5)
        if m is None:
            continue
        deadline = time.monotonic() + timeout_s
        if m.error() is not None:
            if m.error().code() == KafkaError._PARTITION_EOF:
                pending.pop(m.partition(), None)
                continue
            raise RuntimeError(f"reading {topic!r}: {m.error().str()}")
        end = pending.get(m.partition())
        if end is None:
            continue
        if m.offset() < end:
            yield m
        if m.offset() >= end - 1:
            del pending[m.partition()]
