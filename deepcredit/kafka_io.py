"""Small helpers around confluent-kafka shared by every producer of ours."""

from __future__ import annotations

from confluent_kafka import Producer

__all__ = ["produce"]


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
