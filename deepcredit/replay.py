r"""Replay a clickstream file into the clicks topic, as a platform would send it: for demos,
load tests and the dead-letter path.

Each line is produced as is (bad lines too: the flow is meant to dead-letter them), keyed by
its canonical ``user_id`` so that a user's events stay ordered in one partition, at a steady
``rate`` events per second or as fast as the broker takes them.

>>> user_key(b'{"event_id":"e1","user_id":"u7","activity":"lend"}')
b'u7'
>>> user_key(b'{"event_id":"e1"') is None
True
>>> user_key('{"user_id":"zoe\u0308"}'.encode()) == "zo\u00eb".encode()
True
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import msgspec
from confluent_kafka import KafkaError, KafkaException, Producer
from tqdm import tqdm

from deepcredit.codec import exceeds_depth
from deepcredit.events import canonical_id
from deepcredit.jsonlines import read_lines
from deepcredit.kafka_io import produce
from deepcredit.settings import KafkaSettings

__all__ = ["ReplayError", "ReplayReport", "replay", "user_key"]

#: Longest sleep between two events, so a slow rate still serves delivery reports.
_SLICE_S = 0.05
#: After a stall (broker backpressure), catch up at most this far instead of bursting.
_MAX_LAG_S = 1.0


class ReplayError(RuntimeError):
    """Messages the broker refused or did not acknowledge in time."""


class _UserOnly(msgspec.Struct):
    user_id: str | None = None


_key_decoder = msgspec.json.Decoder(_UserOnly)


def user_key(line: bytes) -> bytes | None:
    """The message key of a line: its ``user_id`` in canonical form (``canonical_id``), so the
    forms of one id land on one partition, or None when it has no valid one (or is no JSON, or
    nests past ``codec.MAX_DEPTH``). Never raises."""
    if exceeds_depth(line):
        return None
    try:
        user = _key_decoder.decode(line).user_id
    except msgspec.DecodeError:  # includes ValidationError: not an object, user_id not a str
        return None
    if user is None:
        return None
    try:
        return canonical_id(user).encode()
    except ValueError:
        return None


@dataclass
class ReplayReport:
    sent: int = 0  # produced (handed to the client)
    delivered: int = 0  # acknowledged by the broker
    unkeyed: int = 0  # lines without a valid user_id, sent with no key
    seconds: float = 0.0
    #: partition -> (first, last) offset this replay wrote there
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Achieved events per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        spans = ", ".join(f"p{p} {a}..{b}" for p, (a, b) in sorted(self.offsets.items()))
        return "\n".join(
            [
                f"sent        {self.sent:>10,}  ({self.unkeyed:,} without a valid user_id, "
                "unkeyed)",
                f"delivered   {self.delivered:>10,}",
                f"took        {self.seconds:>10.1f} s  ({self.rate:,.0f} events/s)",
                f"offsets     {spans or 'none'}",
            ]
        )


def replay(
    path: str | Path,
    settings: KafkaSettings,
    topic: str,
    *,
    rate: float | None = None,
    limit: int | None = None,
    progress: bool = True,
    timeout_s: float = 60.0,
) -> ReplayReport:
    """Produce the lines of ``path`` (JSON lines, ``.gz`` allowed) to ``topic`` and wait until
    the broker has them all.

    ``rate``: events per second, paced on a monotonic clock (None: as fast as possible).
    ``limit``: stop after this many lines. Raises FileNotFoundError for a missing file and
    ReplayError as soon as a message is refused, or when the last ones are not acknowledged
    within ``timeout_s``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such events file: {path}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be a positive number of events per second, got {rate}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")

    report = ReplayReport()
    errors: list[str] = []

    def delivered(err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            errors.append(err.str())
            return
        report.delivered += 1
        p, o = msg.partition(), msg.offset()
        first, last = report.offsets.get(p, (o, o))
        report.offsets[p] = (min(first, o), max(last, o))

    # Idempotence keeps each user's events in order and unduplicated across retries.
    producer = Producer(
        settings.client_config(
            **{"linger.ms": 5, "enable.idempotence": True, "on_delivery": delivered}
        )
    )
    lines: Iterator[bytes] = read_lines(str(path))
    if limit is not None:
        lines = islice(lines, limit)
    started = schedule = time.monotonic()
    try:
        with tqdm(lines, total=limit, desc="replay", unit="ev", disable=not progress) as bar:
            for line in bar:
                if rate is not None:
                    schedule = _pace(producer, schedule, report.sent / rate)
                key = user_key(line)
                report.unkeyed += key is None
                try:
                    produce(producer, topic, line, key)
                except KafkaException as exc:  # refused locally, e.g. larger than the broker takes
                    raise ReplayError(f"line {report.sent + 1} not sent: {exc}") from None
                report.sent += 1
                if errors:
                    break
    except KeyboardInterrupt:
        producer.flush(5.0)  # deliver what was already sent before giving up
        raise
    unacked = producer.flush(timeout_s)
    report.seconds = time.monotonic() - started
    if errors:
        raise ReplayError(f"{len(errors)} messages refused by the broker, first: {errors[0]}")
    if unacked:
        raise ReplayError(f"{unacked} messages not acknowledged within {timeout_s:g} s")
    return report


def _pace(producer: Producer, started: float, due_s: float) -> float:
    """Wait until ``due_s`` after ``started``, serving delivery reports meanwhile.

    Returns the (possibly moved) start: when the replay has fallen behind by more than
    ``_MAX_LAG_S``, the schedule slides so that it resumes at ``rate`` rather than bursting.
    """
    while True:
        left = started + due_s - time.monotonic()
        if left <= 0:
            return started if -left <= _MAX_LAG_S else started - left - _MAX_LAG_S
        producer.poll(min(left, _SLICE_S))
