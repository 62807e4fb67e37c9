"""Small helpers around confluent-kafka shared by our producers and readers.

Every reader of a topic goes through ``PartitionReader``: partitions assigned (no consumer
group membership), from given offsets, up to given ends or following the topic, with the
end-of-partition, idle-timeout, stop and error handling written once.

Producing: ``produce_in_transaction`` writes records to several topics in one Kafka
transaction (all of them or none, for readers with ``read_committed``, librdkafka's default);
``delivering`` is a producer that never drops what it was handed silently (it
flushes on every way out of its block and raises or logs what did not arrive); ``produce``
waits for room instead of failing when the local queue is full.

Resuming: ``resume_problem`` / ``check_resume`` compare stored offsets (a recovery store, a
seed, an archive's manifest, a consumer group's commits) with the topic's watermarks, so that a
recreated topic or a retention gap stops the reader with a message instead of librdkafka's
silent jump (readers also set ``auto.offset.reset`` to ``error``).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Literal

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from deepcredit.settings import KafkaSettings

__all__ = [
    "DeliveryReports",
    "KafkaReadError",
    "OffsetsOutOfRange",
    "PartitionReader",
    "TransactionFailed",
    "UndeliveredError",
    "assigned_consumer",
    "check_resume",
    "consumer_watermarks",
    "delivering",
    "init_transactions",
    "produce",
    "produce_in_transaction",
    "read_range",
    "read_to_end",
    "resume_problem",
    "watermarks",
]

log = logging.getLogger(__name__)


class KafkaReadError(RuntimeError):
    """The broker reported an error for a partition being read (the message says which)."""


DeliveryCallback = Callable[[KafkaError | None, Message], None]


class UndeliveredError(RuntimeError):
    """Messages handed to a producer that the broker refused or did not acknowledge in time."""


class OffsetsOutOfRange(RuntimeError):
    """Stored offsets to resume from that the topic does not hold (see ``resume_problem``)."""


def produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None = None,
    *,
    on_delivery: DeliveryCallback | None = None,
    stop: threading.Event | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> bool:
    """Produce one message, waiting for room when the local queue is full (backpressure)
    instead of failing: a fast file reader would otherwise outrun the broker.

    ``on_delivery``: this message's delivery report callback (else the producer's);
    ``headers``: the message's Kafka headers (ours: ``records.kafka_headers``). Returns
    False, without producing, when ``stop`` is set while it waits for room (a stop signal must
    not wait for a broker that does not answer). Raises KafkaException when the client refuses
    the message (e.g. larger than ``message.max.bytes``).
    """
    extra: dict[str, object] = {} if on_delivery is None else {"on_delivery": on_delivery}
    if headers:
        extra["headers"] = headers
    while True:
        try:
            producer.produce(topic, key=key, value=value, **extra)
        except BufferError:
            if stop is not None and stop.is_set():
                return False
            producer.poll(0.1)  # serve delivery reports, which frees queue space
            continue
        producer.poll(0)
        return True


class DeliveryReports:
    """A producer's delivery reports, counted: pass it as the producer's ``on_delivery``."""

    def __init__(self) -> None:
        self.delivered = 0
        self.failed = 0
        self.first_error: str | None = None

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
            return
        self.failed += 1
        if self.first_error is None:
            self.first_error = err.str()

    def undelivered(self, producer: Producer, timeout_s: float | None = None) -> str | None:
        """Wait up to ``timeout_s`` (None: until each message is acknowledged or fails, at most
        ``message.timeout.ms``) for ``producer``'s messages; then say which did not arrive, or
        None when all did."""
        left = producer.flush() if timeout_s is None else producer.flush(timeout_s)
        if not left and not self.failed:
            return None
        parts = []
        if self.failed:
            parts.append(f"{self.failed} refused by the broker (first: {self.first_error})")
        if left:
            parts.append(f"{left} not acknowledged within {timeout_s:g} s")
        return f"{' and '.join(parts)}, of {self.delivered + self.failed + left} messages"


@contextmanager
def delivering(
    settings: KafkaSettings, timeout_s: float, config: Mapping[str, Any] | None = None
) -> Iterator[Producer]:
    """A producer (``settings`` plus ``config``) whose messages all arrive or are reported.

    On leaving the block, normally or by an exception, it waits up to ``timeout_s`` for the
    broker to acknowledge what was handed to it. Left normally, it raises UndeliveredError
    when a message was refused or is still unacknowledged; left by an exception, it logs them
    and lets that exception go on.
    """
    reports = DeliveryReports()
    producer = Producer(settings.client_config(**{**(config or {}), "on_delivery": reports}))
    try:
        yield producer
    except BaseException:
        problem = reports.undelivered(producer, timeout_s)
        if problem is not None:
            log.error("stopped by an error: %s", problem)
        raise
    problem = reports.undelivered(producer, timeout_s)
    if problem is not None:
        raise UndeliveredError(problem)


def resume_problem(stored: Mapping[int, int], marks: Mapping[int, tuple[int, int]]) -> str | None:
    """Why resuming a topic at the ``stored`` offsets (partition -> next offset to read) would
    skip messages, given its watermarks ``marks`` (partition -> (low, high)); None when each
    stored offset is one the topic holds or will hold next (low <= offset <= high). Negative
    stored offsets are logical (the beginning, the end) and always fine.

    >>> resume_problem({0: 489, 1: 5, 2: 3}, {0: (0, 8), 1: (7, 12), 2: (0, 3)})
    'past the end: partition 0 at 489 (the topic ends at 8) (the topic was recreated?); before \
the start: partition 1 at 5 (the topic starts at 7) (retention deleted messages before they \
were read)'
    """
    past, before = [], []
    for p, offset in sorted(stored.items()):
        if offset < 0:
            continue
        if p not in marks:
            past.append(f"partition {p} at {offset} (the topic has no partition {p})")
            continue
        low, high = marks[p]
        if offset > high:
            past.append(f"partition {p} at {offset} (the topic ends at {high})")
        elif offset < low:
            before.append(f"partition {p} at {offset} (the topic starts at {low})")
    problems = []
    if past:
        problems.append(f"past the end: {', '.join(past)} (the topic was recreated?)")
    if before:
        problems.append(f"before the start: {', '.join(before)} (retention deleted messages "
                        "before they were read)")  # fmt: skip
    return "; ".join(problems) or None


def check_resume(
    settings: KafkaSettings,
    topic: str,
    stored: Mapping[int, int],
    *,
    whose: str,
    remedy: str,
    timeout_s: float = 30.0,
) -> None:
    """Raise OffsetsOutOfRange when ``topic`` does not hold the ``stored`` offsets
    (``resume_problem``), with a message that names ``whose`` offsets they are, the partitions,
    the offsets, the topic's ends and the ``remedy``. Raises ValueError when the topic does not
    exist."""
    if not stored:
        return
    problem = resume_problem(stored, watermarks(settings, topic, timeout_s))
    if problem is not None:
        raise OffsetsOutOfRange(f"{whose} holds offsets of {topic} {problem}; resuming from "
                                f"them would skip messages without a trace. {remedy}")  # fmt: skip


def assigned_consumer(
    settings: KafkaSettings, group_id: str | None = None, **config: Any
) -> Consumer:
    """A consumer for ``PartitionReader``: end-of-partition events on, nothing auto-committed.

    ``group_id`` matters only to a caller that commits offsets itself; by default a throwaway
    one (the client requires one). ``config`` goes over these settings.
    """
    return Consumer(settings.client_config(**{
        "group.id": group_id or f"deepcredit-reader-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False, "enable.partition.eof": True, **config}))  # fmt: skip


def consumer_watermarks(
    consumer: Consumer, topic: str, timeout_s: float = 30.0
) -> dict[int, tuple[int, int]]:
    """Each partition's (low, high) watermark, partitions in order: the first offset the
    broker still holds and the offset the next message will get.

    Raises ValueError when the topic does not exist; KafkaException when the broker does not
    answer within ``timeout_s``.
    """
    meta = consumer.list_topics(topic, timeout=timeout_s).topics[topic]
    if meta.error is not None:
        raise ValueError(f"topic {topic!r}: {meta.error.str()}")
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)
            for p in sorted(meta.partitions)}  # fmt: skip


def watermarks(
    settings: KafkaSettings, topic: str, timeout_s: float = 30.0
) -> dict[int, tuple[int, int]]:
    """``consumer_watermarks`` on a consumer of its own."""
    consumer = _reader(settings)
    try:
        return consumer_watermarks(consumer, topic, timeout_s)
    finally:
        consumer.close()


class PartitionReader:
    """The messages of some partitions of one topic, each partition in offset order
    (partitions interleaved), on ``consumer``, which this assigns them to and never closes.

    ``starts``: partition -> first offset (or ``OFFSET_BEGINNING``). ``ends``: partition ->
    end offset (exclusive), usually the high watermarks as of some moment. Without
    ``follow``, reading stops once every partition has reached its end and messages at or
    past an end are not yielded; a partition with end <= start is not read at all. With
    ``follow``, reading goes on until ``stop`` is set and the ends only mark ``caught_up``.
    A partition reaches its end when its message at ``end - 1`` has been handled (the caller
    asked for the next one) or the client reports the partition's end (compaction may have
    removed that message).

    ``timeout_s``: iterating raises TimeoutError when nothing at all comes for that long while
    a partition is short of its end (None: wait as long as it takes). ``on_poll`` runs before
    each poll of the client, after the messages of the poll before were handled: for work on
    a clock, such as flushing what waited too long. A partition error from the broker raises
    KafkaReadError (``on_error="raise"``) or is logged as a warning and reading goes on
    (``"log"``, for a reader that must outlive a broker hiccup); KafkaException from the
    client itself goes through.
    """

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        starts: Mapping[int, int],
        ends: Mapping[int, int] | None = None,
        *,
        follow: bool = False,
        timeout_s: float | None = None,
        stop: threading.Event | None = None,
        poll_s: float = 0.5,
        on_poll: Callable[[], None] | None = None,
        on_error: Literal["raise", "log"] = "raise",
    ) -> None:
        if ends is None and not follow:
            raise ValueError("a reader without ends can only follow the topic")
        self.consumer = consumer
        self.topic = topic
        self.starts = dict(starts)
        self.ends = dict(ends or {})
        self.follow = follow
        self.timeout_s = timeout_s
        self.stop = stop
        self.poll_s = poll_s
        self.on_poll = on_poll
        self.on_error = on_error
        self._pending = {p: end for p, end in self.ends.items()
                         if p in self.starts and end > max(self.starts[p], 0)}  # fmt: skip

    @property
    def caught_up(self) -> bool:
        """Whether every partition has reached its end (always, without ends)."""
        return not self._pending

    def __iter__(self) -> Iterator[Message]:
        read = self.starts if self.follow else self._pending
        if not read:
            return
        self.consumer.assign([TopicPartition(self.topic, p, self.starts[p]) for p in read])
        heard = time.monotonic()
        while self.follow or self._pending:
            if self.stop is not None and self.stop.is_set():
                return
            if self.on_poll is not None:
                self.on_poll()
            m = self.consumer.poll(self.poll_s)
            if m is None:
                if (self.timeout_s is not None and self._pending
                        and time.monotonic() - heard > self.timeout_s):  # fmt: skip
                    raise TimeoutError(f"{self.topic!r} not read to its end: no message in "
                                       f"{self.timeout_s:g} s")  # fmt: skip
                continue
            heard = time.monotonic()
            if m.error() is not None:
                self._event(m)
                continue
            p, end = m.partition(), self._pending.get(m.partition())
            if not self.follow and (end is None or m.offset() >= end):
                continue  # past its end, or of a partition done with
            yield m
            if end is not None and m.offset() >= end - 1:
                del self._pending[p]

    def _event(self, m: Message) -> None:
        error = m.error()
        if error.code() == KafkaError._PARTITION_EOF:
            self._pending.pop(m.partition(), None)
            return
        where = f"reading {self.topic!r}[{m.partition()}]: {error.str()}"
        if self.on_error == "raise":
            raise KafkaReadError(where)
        log.warning("%s", where)


def read_range(
    settings: KafkaSettings,
    topic: str,
    ranges: Mapping[int, tuple[int, int]],
    timeout_s: float = 30.0,
) -> Iterator[Message]:
    """The messages of ``topic`` with start <= offset < end, for each ``partition: (start,
    end)``; each partition in offset order, partitions interleaved (no consumer group, nothing
    committed). Raises TimeoutError when no message comes for ``timeout_s`` before the ends,
    KafkaReadError (a RuntimeError) when a start is no longer held by the broker (retention).
    """
    consumer = _reader(settings)
    try:
        starts = {p: start for p, (start, _) in ranges.items()}
        ends = {p: end for p, (_, end) in ranges.items()}
        yield from PartitionReader(consumer, topic, starts, ends, timeout_s=timeout_s)
    finally:
        consumer.close()


#: Most seconds to wait for the broker's transaction coordinator before a transaction: the first
#: transaction on a broker creates the coordinator's state, longer than a usual answer.
INIT_TRANSACTIONS_S = 60.0


class TransactionFailed(RuntimeError):
    """A transaction was not committed; the message says whether it was aborted."""


def init_transactions(producer: Producer, timeout_s: float) -> None:
    """``init_transactions``, tried again on a retriable error (the broker's transaction
    coordinator is being created or moved) until ``timeout_s`` have passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            producer.init_transactions(max(0.1, deadline - time.monotonic()))
            return
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            retriable = isinstance(error, KafkaError) and error.retriable()
            if not retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def produce_in_transaction(
    settings: KafkaSettings,
    transactional_id: str,
    messages: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]],
    timeout_s: float,
) -> None:
    """Write ``messages`` (topic, key, value, headers) in one Kafka transaction: readers
    (``read_committed``) see all of them or none.

    ``transactional_id``: one per kind of change, so a second writer fences the first and two
    writers cannot interleave half-written changes. ``timeout_s``: most seconds for each step
    (find the topics, commit; the coordinator gets at least ``INIT_TRANSACTIONS_S``).
    Raises TransactionFailed when a topic does not exist (nothing written), the broker does
    not answer, or the commit fails (aborted when it can be; the message says).
    """
    ms = max(1000, int(timeout_s * 1000))
    config = {"transactional.id": transactional_id, "message.timeout.ms": ms,
              "transaction.timeout.ms": max(ms, 60_000)}  # fmt: skip
    producer = Producer(settings.client_config(**config))
    try:
        meta = producer.list_topics(timeout=timeout_s).topics
        missing = sorted({t for t, *_ in messages if t not in meta or meta[t].error is not None})
        if missing:  # producing to a topic that does not exist would stall the commit
            raise TransactionFailed(f"no topic {', '.join(map(repr, missing))} on the broker: "
                                    "'deepcredit kafka up' creates them")  # fmt: skip
        init_transactions(producer, max(timeout_s, INIT_TRANSACTIONS_S))
    except KafkaException as exc:
        raise TransactionFailed(f"the broker did not answer: {_reason(exc)}") from None
    try:
        producer.begin_transaction()
        for topic, key, value, headers in messages:
            producer.produce(topic, key=key, value=value, headers=headers)
        producer.commit_transaction(timeout_s)
    except KafkaException as exc:
        try:
            producer.abort_transaction(timeout_s)
            outcome = "aborted, nothing written"
        except KafkaException:
            outcome = "outcome unknown"
        raise TransactionFailed(f"not delivered ({outcome}): {_reason(exc)}") from None


def _reason(exc: KafkaException) -> object:
    return exc.args[0].str() if exc.args and isinstance(exc.args[0], KafkaError) else exc


def read_to_end(settings: KafkaSettings, topic: str, timeout_s: float = 30.0) -> list[Message]:
    """Every message of ``topic`` from its beginning to its end as of the call, partition by
    partition in offset order (no consumer group, nothing committed).

    Raises TimeoutError when no message comes for ``timeout_s`` before the end.
    """
    consumer = _reader(settings)
    try:
        marks = {p: high for p, (low, high) in consumer_watermarks(consumer, topic, timeout_s)
                 .items() if high > low}  # fmt: skip
        # From the beginning, not the low watermark: retention may move it meanwhile.
        starts = dict.fromkeys(marks, OFFSET_BEGINNING)
        out = list(PartitionReader(consumer, topic, starts, marks, timeout_s=timeout_s))
    finally:
        consumer.close()
    return sorted(out, key=lambda m: (m.partition(), m.offset()))


def _reader(settings: KafkaSettings) -> Consumer:
    # An offset the broker no longer holds is an error, never a silent jump to the end.
    return assigned_consumer(settings, **{"auto.offset.reset": "error"})
