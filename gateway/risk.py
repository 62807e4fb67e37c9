"""From the risk topic to answers: decoding its records (``decode_risk``, the one place that
knows their format), the bounded book of recent answers and of the requests waiting for one
(``AnswerBook``), and the thread that reads the whole topic into it (``RiskReader``).

Why the risk topic, read by event id, and not a reply topic: the flow stays as it is (one
output for every consumer, no per-request routing in the dataflow), and what a request gets is
by construction the record every other consumer reads. The price: each gateway process reads
every score, its own or not, which is a few microseconds per score.

>>> from deepcredit.records import Decision, Score
>>> s = Score(event_id="e1", user_id="u1", loan_id="l1", p_delinquent=0.2, p_default=0.05,
...           decision=Decision.APPROVE, thresholds_version=0, model_version="m",
...           event_ts=1.7e9, scored_at=1.7e9, prior_events=12, history_days=30.5,
...           reasons=["R01"])
>>> decode_risk(msgspec.json.encode(s)) == s
True
>>> decode_risk(b'{"type": "drift_alert"}') is None
True
>>> n = NotScored(event_id="e2", user_id="u1", loan_id="l2", reason="processing_error",
...               detail="...", model_version="m", event_ts=1.7e9, at=1.7e9)
>>> decode_risk(msgspec.json.encode(n)) == n
True
>>> answer_of(s).decision, answer_of(s).reasons[0].statement
('approve', 'Recent late or missed repayments')
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from confluent_kafka import Consumer

from deepcredit.events import ClickEvent
from deepcredit.gateway_api import Reason, ScoreAnswer
from deepcredit.kafka_io import PartitionReader, assigned_consumer, consumer_watermarks
from deepcredit.records import NotScored, RiskRecord, Score
from deepcredit.settings import KafkaSettings
from scorer.reasons import STATEMENTS

__all__ = ["AnswerBook", "RiskReader", "Waiter", "answer_of", "decode_risk", "same_post"]

log = logging.getLogger(__name__)

_risk_decoder = msgspec.json.Decoder(RiskRecord)


def decode_risk(value: bytes | None) -> RiskRecord | None:
    """The record in one risk-topic message value (a ``Score`` or a ``NotScored`` with its
    event id), or None for anything else (another record kind, a not_scored record whose event
    id could not be read, a foreign writer's bytes). Never raises."""
    if not value:
        return None
    try:
        record = _risk_decoder.decode(value)
    except msgspec.DecodeError:  # includes ValidationError
        return None
    if isinstance(record, NotScored) and record.event_id is None:
        return None  # no request can be waiting for it
    return record


def answer_of(record: Score) -> ScoreAnswer:
    """The HTTP answer for a score: the same fields, the same values (the record's schema
    version is the risk topic's contract; the HTTP answer's is its path, ``/v1``), each reason
    code with its statement (a code this gateway does not know: the code as its statement)."""
    fields = msgspec.structs.asdict(record)
    fields["decision"] = str(record.decision)
    del fields["schema_version"]
    fields["reasons"] = [Reason(code=c, statement=STATEMENTS.get(c, c)) for c in record.reasons]
    return ScoreAnswer(**fields)


def same_post(record: RiskRecord, event: ClickEvent) -> bool:
    """Whether ``record`` may be the answer to ``event`` (same user, loan and time), i.e. a
    resend of it; otherwise the event id was reused for another post."""
    return (record.user_id == event.user_id and (record.loan_id or "") == (event.loan_id or "")
            and record.event_ts == event.ts)  # fmt: skip


@dataclass
class Waiter:
    """The requests waiting for one event id's score (a resend in flight joins the first).
    ``score`` resolves to the record, or fails with ``FlowDown``; ``accepted`` to the clicks
    (partition, offset) once the broker acknowledged the post."""

    score: asyncio.Future[RiskRecord]
    accepted: asyncio.Future[tuple[int, int]]
    requests: int = 1
    coordinates: tuple[int, int] | None = field(default=None)


class FlowDown(RuntimeError):
    """The flow stopped answering while a request waited."""


class AnswerBook:
    """The last ``capacity`` records seen on the risk topic by event id (oldest dropped first)
    and the waiters by event id. Used from the event loop's thread only."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._answers: OrderedDict[str, RiskRecord] = OrderedDict()
        self.waiting: dict[str, Waiter] = {}

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, event_id: str) -> RiskRecord | None:
        return self._answers.get(event_id)

    def add(self, records: list[RiskRecord]) -> None:
        """Remember ``records`` (the first record of an id wins: a redelivered score is the
        same post's) and resolve whoever waits for them."""
        for r in records:
            if r.event_id not in self._answers:
                self._answers[r.event_id] = r
                if len(self._answers) > self.capacity:
                    self._answers.popitem(last=False)
            waiter = self.waiting.pop(r.event_id, None)
            if waiter is not None and not waiter.score.done():
                waiter.score.set_result(self._answers[r.event_id])

    def fail_all(self, why: str) -> None:
        """Fail every waiting request with ``FlowDown(why)``."""
        for waiter in self.waiting.values():
            if not waiter.score.done():
                waiter.score.set_exception(FlowDown(why))
        self.waiting.clear()


class RiskReader:
    """A daemon thread that reads every partition of the risk topic: first its last ``warm``
    messages, shared evenly among the partitions (the answers to resends of recent posts), then
    everything written after, handing each batch of decoded records to ``deliver`` (called in
    this thread; the app hands them over to its event loop). ``ready`` is set once the tail as
    of the start is read: a post produced after that has its score read."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        warm: int,
        deliver: Callable[[list[RiskRecord]], None],
    ) -> None:
        self.topic = topic
        self.deliver = deliver
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.error: Exception | None = None
        self._consumer: Consumer = assigned_consumer(kafka, **{"auto.offset.reset": "latest"})
        marks = consumer_watermarks(self._consumer, topic, 10.0)
        per_partition = -(-warm // max(len(marks), 1))
        self._starts = {p: max(low, high - per_partition) for p, (low, high) in
                        marks.items()}  # fmt: skip
        self._ends = {p: high for p, (_, high) in marks.items()}
        self._thread = threading.Thread(target=self._run, daemon=True, name="risk-reader")
        self._thread.start()

    def close(self) -> None:
        self.stop.set()
        self._thread.join(5)
        self._consumer.close()

    def _run(self) -> None:
        batch: list[RiskRecord] = []

        def flush() -> None:
            if batch:
                self.deliver(list(batch))
                batch.clear()
            if reader.caught_up:
                self.ready.set()

        reader = PartitionReader(self._consumer, self.topic, self._starts, self._ends,
                                 follow=True, stop=self.stop, poll_s=0.05, on_poll=flush,
                                 on_error="log")  # fmt: skip
        try:
            for m in reader:
                record = decode_risk(m.value())
                if record is not None:
                    batch.append(record)
        except Exception as exc:  # reported by the readiness and every request: 503
            self.error = exc
            log.exception("risk reader stopped")
