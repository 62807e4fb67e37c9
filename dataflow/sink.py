"""The flow's Kafka outputs: Bytewax's ``KafkaSink``, except that no message vanishes.

Bytewax's sink flushes after each batch but drops the delivery reports, so a score the broker
refused or never acknowledged (``message.timeout.ms``) would be lost while its epoch commits.
Here the partition raises after the flush instead: the flow stops before the epoch's snapshot,
and a restart writes the epoch again (at least once). It also waits for room when the
producer's queue is full rather than failing, and keeps each message's headers (ours carry
the record kind and the schema version, ``records.kafka_headers``).
"""

from __future__ import annotations

from bytewax.connectors.kafka import KafkaSinkMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from confluent_kafka import Producer

from deepcredit.kafka_io import DeliveryReports, UndeliveredError, produce
from deepcredit.settings import KafkaSettings

__all__ = ["CheckedKafkaSink"]

Out = KafkaSinkMessage[bytes | None, bytes]


class CheckedKafkaSink(DynamicSink[Out]):
    """Write each item's key and value to ``topic``; one producer per worker."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        self.kafka = kafka
        self.topic = topic

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CheckedPartition:
        reports = DeliveryReports()
        producer = Producer(self.kafka.client_config(on_delivery=reports))
        return _CheckedPartition(producer, reports, self.topic)


class _CheckedPartition(StatelessSinkPartition[Out]):
    def __init__(self, producer: Producer, reports: DeliveryReports, topic: str) -> None:
        self._producer = producer
        self._reports = reports
        self._topic = topic

    def write_batch(self, items: list[Out]) -> None:
        """Raises UndeliveredError when a message of this batch (or an earlier one) did not
        arrive."""
        for msg in items:
            produce(self._producer, self._topic, msg.value, msg.key, headers=msg.headers)
        self._check()

    def close(self) -> None:
        self._check()

    def _check(self) -> None:
        problem = self._reports.undelivered(self._producer)
        if problem is not None:
            raise UndeliveredError(f"writing to {self._topic}: {problem}")
