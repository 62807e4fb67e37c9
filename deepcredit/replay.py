r"""Replay a clickstream file into the clicks topic, as a platform would send it: for demos,
load tests and the dead-letter path.

Each line is produced as is (bad lines too: the flow is meant to dead-letter them), keyed by
its canonical ``user_id`` so that a user's events stay ordered in one partition, at a steady
``rate`` events per second or as fast as the broker takes them.

However it stops (the end of the file, SIGTERM or SIGINT, a refused message, any exception),
the replay waits a bounded time for the broker to acknowledge what it handed to the producer,
then reports what was sent, delivered and refused, and the line up to which every line is on
the topic: ``skip`` that many lines to go on where it stopped.

>>> user_key(b'{"event_id":"e1","user_id":"u7","activity":"lend"}')
b'u7'
>>> user_key(b'{"event_id":"e1"') is None
True
>>> user_key('{"user_id":"zoe\u0308"}'.encode()) == "zo\u00eb".encode()
True
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
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

__all__ = ["ReplayError", "ReplayReport", "ReplayStopped", "replay", "user_key"]

#: Longest sleep between two events, so a slow rate still serves delivery reports.
_SLICE_S = 0.05
#: After a stall (broker backpressure), catch up at most this far instead of bursting.
_MAX_LAG_S = 1.0
#: The signals that stop a replay cleanly: an orchestrator's stop, an operator's Ctrl-C.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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
    """What a replay did. Lines are counted from the file's first non-blank line (1)."""

    sent: int = 0  # handed to the producer
    delivered: int = 0  # acknowledged by the broker
    failed: int = 0  # refused by the broker
    unkeyed: int = 0  # lines without a valid user_id, sent with no key
    skipped: int = 0  # lines left out at the start (``skip``)
    through: int = 0  # every line up to this one is on the topic: skip this many to go on
    stopped_by: str | None = None  # the signal or error that ended it before the last line
    seconds: float = 0.0
    #: partition -> (first, last) offset this replay wrote there
    offsets: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Achieved events per second."""
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def unacknowledged(self) -> int:
        """Sent, but neither delivered nor refused when the replay gave up waiting."""
        return self.sent - self.delivered - self.failed

    @property
    def complete(self) -> bool:
        """Every line the replay was asked for is on the topic."""
        return self.stopped_by is None and self.delivered == self.sent

    def describe(self) -> str:
        spans = ", ".join(f"p{p} {a}..{b}" for p, (a, b) in sorted(self.offsets.items()))
        lines = [f"sent        {self.sent:>10,}  ({self.unkeyed:,} without a valid user_id, "
                 "unkeyed)", f"delivered   {self.delivered:>10,}"]  # fmt: skip
        if self.failed or self.unacknowledged:
            lines.append(f"failed      {self.failed:>10,}  refused by the broker; "
                         f"{self.unacknowledged:,} not acknowledged")  # fmt: skip
        lines += [f"took        {self.seconds:>10.1f} s  ({self.rate:,.0f} events/s)",
                  f"offsets     {spans or 'none'}"]  # fmt: skip
        if not self.complete:
            lines.append(f"resume      lines 1..{self.through:,} are on the topic: go on with "
                         f"--skip {self.through}")  # fmt: skip
        return "\n".join(lines)


class ReplayError(RuntimeError):
    """Messages the broker refused or did not acknowledge in time; ``report`` says what
    arrived and where to go on."""

    def __init__(self, message: str, report: ReplayReport) -> None:
        super().__init__(message)
        self.report = report


class ReplayStopped(ReplayError):
    """A stop signal (``signum``) ended the replay early, after the bounded flush."""

    def __init__(self, signum: int, report: ReplayReport) -> None:
        super().__init__(f"stopped by {report.stopped_by}", report)
        self.signum = signum


class _Through:
    """The highest line n such that lines 1..n are all delivered, from delivery reports that
    come in any order across partitions (memory: the lines delivered ahead of a gap)."""

    def __init__(self, start: int) -> None:
        self.line = start
        self._ahead: set[int] = set()

    def add(self, line: int) -> None:
        if line != self.line + 1:
            self._ahead.add(line)
            return
        self.line = line
        while self.line + 1 in self._ahead:
            self.line += 1
            self._ahead.remove(self.line)


def replay(
    path: str | Path,
    settings: KafkaSettings,
    topic: str,
    *,
    rate: float | None = None,
    limit: int | None = None,
    skip: int = 0,
    progress: bool = True,
    timeout_s: float = 60.0,
    stop_timeout_s: float = 8.0,
) -> ReplayReport:
    """Produce the lines of ``path`` (JSON lines, ``.gz`` allowed) to ``topic`` and wait until
    the broker has them all.

    ``rate``: events per second, paced on a monotonic clock (None: as fast as possible).
    ``skip``: leave out the first lines (a stopped replay's ``through``); ``limit``: then send
    at most this many. In the main thread, SIGTERM and SIGINT stop it after the line being
    sent. Raises FileNotFoundError for a missing file, ValueError for a bad argument,
    ReplayStopped after a stop signal, ReplayError as soon as a message is refused or when
    the last ones are not acknowledged within ``timeout_s`` (``stop_timeout_s`` after a
    signal: an orchestrator kills soon after its SIGTERM); the report is on the error. Any
    other exception goes on after the same wait, with the report in a note.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such events file: {path}")
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be a positive number of events per second, got {rate}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if skip < 0:
        raise ValueError(f"skip must not be negative, got {skip}")

    report = ReplayReport(skipped=skip, through=skip)
    through = _Through(skip)
    errors: list[str] = []

    def delivered(line: int, err: KafkaError | None, msg: Any) -> None:
        if err is not None:
            report.failed += 1
            errors.append(f"line {line}: {err.str()}")
            return
        report.delivered += 1
        through.add(line)
        p, o = msg.partition(), msg.offset()
        first, last = report.offsets.get(p, (o, o))
        report.offsets[p] = (min(first, o), max(last, o))

    # Idempotence keeps each user's events in order and unduplicated across retries.
    producer = Producer(settings.client_config(**{"linger.ms": 5, "enable.idempotence": True}))
    lines: Iterator[bytes] = islice(read_lines(str(path)), skip, None)
    if limit is not None:
        lines = islice(lines, limit)
    stop = threading.Event()
    stopped_by: list[int] = []

    def send_all() -> None:
        schedule = started
        with tqdm(lines, total=limit, desc="replay", unit="ev", disable=not progress) as bar:
            for number, line in enumerate(bar, start=skip + 1):
                if rate is not None:
                    schedule = _pace(producer, schedule, report.sent / rate, stop)
                if stop.is_set() or errors:
                    return
                key = user_key(line)
                try:
                    if not produce(producer, topic, line, key, stop=stop,
                                   on_delivery=partial(delivered, number)):  # fmt: skip
                        return
                except KafkaException as exc:  # refused locally, e.g. too large for the broker
                    raise ReplayError(f"line {number} not sent: {exc}", report) from None
                report.sent += 1
                report.unkeyed += key is None

    started = time.monotonic()
    # The waits below run under the handlers too: a second signal does not cut them short.
    with _stopped_by_signals(stop, stopped_by):
        try:
            send_all()
        except BaseException as exc:
            producer.flush(stop_timeout_s)
            _finish(report, through, started)
            report.stopped_by = type(exc).__name__
            if not isinstance(exc, ReplayError):
                exc.add_note(f"replay of {path} stopped early:\n{report.describe()}")
            raise
        producer.flush(stop_timeout_s if stopped_by else timeout_s)
    _finish(report, through, started)
    if stopped_by:
        report.stopped_by = signal.Signals(stopped_by[0]).name
        raise ReplayStopped(stopped_by[0], report)
    if errors:
        raise ReplayError(f"{len(errors)} messages refused by the broker, first: {errors[0]}",
                          report)  # fmt: skip
    if report.unacknowledged:
        raise ReplayError(f"{report.unacknowledged} messages not acknowledged within "
                          f"{timeout_s:g} s", report)  # fmt: skip
    return report


def _finish(report: ReplayReport, through: _Through, started: float) -> None:
    report.through = through.line
    report.seconds = time.monotonic() - started


@contextmanager
def _stopped_by_signals(stop: threading.Event, signums: list[int]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop`` and record their number instead of
    ending the process (the main thread only: Python runs signal handlers there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signums.append(signum)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _pace(producer: Producer, started: float, due_s: float, stop: threading.Event) -> float:
    """Wait until ``due_s`` after ``started`` (or ``stop``), serving delivery reports meanwhile.

    Returns the (possibly moved) start: when the replay has fallen behind by more than
    ``_MAX_LAG_S``, the schedule slides so that it resumes at ``rate`` rather than bursting.
    """
    while not stop.is_set():
        left = started + due_s - time.monotonic()
        if left <= 0:
            return started if -left <= _MAX_LAG_S else started - left - _MAX_LAG_S
        producer.poll(min(left, _SLICE_S))
    return started
