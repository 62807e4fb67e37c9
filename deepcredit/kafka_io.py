"""Small helpers around confluent-kafka shared by our producers and readers."""

from __future__ import annotations

import time
import uuid

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from deepcredit.settings import KafkaSettings

__all__ = ["produce", "read_to_end"]


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


def read_to_end(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every message of ``topic`` from its beginning to its end as of the call, partition by
    partition in offset order (no consumer group, nothing committed).

    Raises TimeoutError when the end is not reached in ``timeout_s``.
    """
    consumer = Consumer(settings.client_config(**{
        "group.id": f"deepcredit-reader-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
        "enable.partition.eof": True}))  # fmt: skip
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
        if meta.error is not None:
            raise ValueError(f"topic {topic!r}: {meta.error.str()}")
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                for p in meta.partitions}  # fmt: skip
        pending = {p for p, end in ends.items() if end > 0}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in pending])
        out: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic!r} not read to its end within {timeout_s:g} s")
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error() is not None:
                if m.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(m.partition())
                    continue
                raise RuntimeError(f"reading {topic!r}: {m.error().str()}")
            if m.offset() < ends[m.partition()]:
                out.append(m)
            if m.offset() >= ends[m.partition()] - 1:
                pending.discard(m.partition())
        return sorted(out, key=lambda m: (m.partition(), m.offset()))
    finally:
        consumer.close()
