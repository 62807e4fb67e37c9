"""Send a file of click events through the clicks topic and read them back: a broker smoke test.

Each line is produced as one message keyed by its user; the messages are then consumed from
exactly the offsets this run wrote, decoded with the contract, compared with what was sent,
and the rejects are written to the dead-letter topic as the live flow will do.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import Consumer, Producer
from tqdm import tqdm

from deepcredit.codec import decode_click, encode
from deepcredit.events import ClickEvent
from deepcredit.kafka_io import (
    PartitionReader,
    assigned_consumer,
    consumer_watermarks,
    delivering,
    produce,
)
from deepcredit.records import kafka_headers
from deepcredit.settings import KafkaSettings, Topics

__all__ = ["SAMPLE_BAD_MESSAGES", "RoundTripReport", "round_trip"]


@dataclass
class RoundTripReport:
    produced: int = 0
    consumed: int = 0
    valid: int = 0
    identical: int = 0  # valid events equal to the line that was sent
    dead_letters: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.consumed == self.produced and self.identical == self.valid

    def describe(self) -> str:
        rejects = ", ".join(f"{r} {n}" for r, n in sorted(self.dead_letters.items())) or "none"
        return "\n".join(
            [
                f"produced      {self.produced:>10,}",
                f"consumed      {self.consumed:>10,}",
                f"valid events  {self.valid:>10,}  ({self.identical:,} identical to what was sent)",
                f"dead letters  {sum(self.dead_letters.values()):>10,}  ({rejects})",
                f"took          {self.seconds:>10.1f} s",
            ]
        )


def round_trip(
    lines: Iterable[bytes],
    settings: KafkaSettings,
    topics: Topics,
    *,
    timeout_s: float,
    progress: bool = True,
) -> RoundTripReport:
    """Produce ``lines`` to the clicks topic, consume them back, decode and compare.

    Consuming stops when nothing comes for ``timeout_s`` before every line is back: the
    report then shows the shortfall (``ok`` is False).
    """
    report = RoundTripReport()
    started = time.monotonic()
    consumer = assigned_consumer(settings)
    config = {"linger.ms": 20, "enable.idempotence": True}
    try:
        # Every message produced (clicks, dead letters) arrives or is reported.
        with delivering(settings, timeout_s, config) as producer:
            start = _end_offsets(consumer, topics.clicks)
            sent = _produce(producer, lines, topics.clicks, report, timeout_s, progress)
            end = _end_offsets(consumer, topics.clicks)
            _check_back(consumer, producer, topics, (start, end), sent, report, timeout_s,
                        progress)  # fmt: skip
    finally:
        consumer.close()
    report.seconds = time.monotonic() - started
    return report


def _check_back(
    consumer: Consumer,
    producer: Producer,
    topics: Topics,
    span: tuple[dict[int, int], dict[int, int]],
    sent: dict[str, ClickEvent],
    report: RoundTripReport,
    timeout_s: float,
    progress: bool,
) -> None:
    """Consume the clicks between the ``span``'s start and end offsets, decode and compare
    them with what was ``sent``; dead-letter the bad ones as the flow would."""
    start, end = span
    expected = sum(end[p] - start[p] for p in start)
    reader = PartitionReader(consumer, topics.clicks, start, end, timeout_s=timeout_s)
    with tqdm(total=expected, desc="consume", unit="ev", disable=not progress) as bar:
        try:
            for m in reader:
                report.consumed += 1
                bar.update()
                result = decode_click(m.value(), key=m.key(), topic=m.topic(),
                                      partition=m.partition(), offset=m.offset())  # fmt: skip
                if isinstance(result, ClickEvent):
                    report.valid += 1
                    report.identical += sent.get(result.event_id) == result
                else:
                    report.dead_letters[result.reason.value] += 1
                    produce(producer, topics.dead_letter, encode(result), m.key(),
                            headers=kafka_headers(result))
        except TimeoutError:
            pass  # the report shows what did not come back


def _end_offsets(consumer: Consumer, topic: str) -> dict[int, int]:
    return {p: high for p, (_, high) in consumer_watermarks(consumer, topic, 10).items()}


def _produce(
    producer: Producer,
    lines: Iterable[bytes],
    topic: str,
    report: RoundTripReport,
    timeout_s: float,
    progress: bool,
) -> dict[str, ClickEvent]:
    """Produce each line keyed by its user (events of a user stay ordered in one partition)."""
    sent: dict[str, ClickEvent] = {}
    for line in tqdm(lines, desc="produce", unit="ev", disable=not progress):
        event = decode_click(line)
        key = None
        if isinstance(event, ClickEvent):
            sent[event.event_id] = event
            key = event.user_id.encode()
        produce(producer, topic, line, key)
        report.produced += 1
    if producer.flush(timeout_s) != 0:
        raise TimeoutError(f"{len(producer)} messages not delivered within {timeout_s:.0f} s")
    return sent


#: A few malformed messages the demo mixes in to show the dead-letter path.
SAMPLE_BAD_MESSAGES = (
    b'{"event_id": "bad-1", "user_id": "u0", "activity": "post"',
    msgspec.json.encode({"event_id": "bad-2", "user_id": "u0", "ts": 1.6e9,
                         "activity": "gamble", "amount": 10}),
    msgspec.json.encode({"event_id": "bad-3", "user_id": "u0", "ts": 1.6e9,
                         "activity": "repay", "amount": -5, "loan_id": "l"}),
)  # fmt: skip
