"""The click archive: every raw message of the clicks topic on disk, replayable and trainable.

    <folder>/manifest.jsonl                 one line per segment, in the order written
    <folder>/segments/p<P>-<first>-<next>.jsonl.gz
                                            one partition's messages first <= offset < next,
                                            one raw message value a line, in offset order
    <folder>/windows/                       files assembled by ``write_window`` for training

Why this format. Gzip JSON-lines is what ``deepcredit train`` and ``training.core.eventlog`` already
read (``.jsonl.gz``), so a segment, or a window of segments concatenated, trains as it is, and
``zcat`` plus ``jq`` inspect it. Segments are append-only and immutable: a finished one is never
rewritten, so copying or syncing the archive to an object store is a plain file copy. Each
segment holds one partition's contiguous offsets, so the manifest's offsets say exactly what is
archived and where to resume, and a user's events (keyed, so in one partition) stay in order.
The manifest also holds each segment's event-time range, so a reader picks the segments of an
event-time window without opening the others. The raw value is kept (not a re-encoding), so the
archive replays byte for byte; invalid messages are kept too (training skips them, as it does
any invalid line). A value holding a line break (pretty-printed JSON) is compacted to one line.

This module alone reads segment files: ``read_window`` by event time (training),
``read_offsets`` by offset (the cut-over, for what the topic's retention dropped).

A segment is cut when a partition's buffer reaches ``segment_events`` messages or has waited
``segment_seconds`` of wall time (hourly by default), and when the archiver stops.

Writing one segment (one archiver per folder; it takes an exclusive lock on ``<folder>/.lock``):

1. write the gzip file aside (``segments/.NAME.<random>.partial``), flush and fsync it;
2. rename it to its final name and fsync the folder (1. and 2.: ``deepcredit.atomic``);
3. append its manifest line, flushed and fsync'ed (a durable log: ``deepcredit.jsonlines``).

| dies in | on disk                                   | at the next start                        |
|---------|-------------------------------------------|------------------------------------------|
| 1.      | a ``.partial`` file                       | deleted; the messages are read again     |
| 2., 3.  | a segment the manifest does not name, or  | deleted / the torn line dropped; the     |
|         | a torn manifest line (no newline)         | messages are read again                  |
| after 3.| the segment and its manifest line         | resumes after its last offset            |

The consumer commits nothing to Kafka: the manifest is the only record of progress, so nothing
is archived twice and nothing is skipped, whatever the moment of a crash (exactly once into the
archive, given the topic still holds the messages: keep its retention above the longest outage).
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from pathlib import Path

import msgspec

from deepcredit.atomic import atomic_writer
from deepcredit.codec import exceeds_depth
from deepcredit.jsonlines import append_durable, drop_torn_line, read_log
from deepcredit.settings import KafkaSettings

__all__ = [
    "ArchiveConfig",
    "ArchiveError",
    "Segment",
    "WindowInfo",
    "archive_clicks",
    "archived_through",
    "event_time_range",
    "read_offsets",
    "read_segments",
    "read_window",
    "write_window",
]

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.jsonl"
SEGMENTS_DIR = "segments"
WINDOWS_DIR = "windows"
_LOCK_FILE = ".lock"


class ArchiveError(ValueError):
    """The archive cannot do what was asked; the message says why."""


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One manifest line: a segment file and the offsets and event times it holds."""

    file: str  # relative to the archive folder
    topic: str
    partition: int
    first_offset: int
    next_offset: int  # one past the last offset archived (where the next segment starts)
    lines: int
    min_ts: float | None  # event-time range of the lines whose ts could be read
    max_ts: float | None
    written_at: float  # wall clock

    def problem(self) -> str | None:
        """Why this line cannot be a segment the archiver wrote, or None: a file outside
        ``segments/``, offsets or a line count that do not add up, one event-time bound."""
        folder, _, name = self.file.partition("/")
        if folder != SEGMENTS_DIR or name in ("", ".", "..") or "/" in name or "\x00" in name:
            return f"file must be a file in {SEGMENTS_DIR}/, got {self.file!r}"
        if self.partition < 0 or not 0 <= self.first_offset < self.next_offset:
            return (f"partition {self.partition}, offsets {self.first_offset} to "
                    f"{self.next_offset}: want partition >= 0, 0 <= first < next")  # fmt: skip
        if not 1 <= self.lines <= self.next_offset - self.first_offset:
            return f"{self.lines} lines for offsets {self.first_offset} to {self.next_offset}"
        if (self.min_ts is None) != (self.max_ts is None):
            return "one event-time bound without the other"
        if self.min_ts is not None and not self.min_ts <= self.max_ts:  # type: ignore[operator]
            return f"event times {self.min_ts} to {self.max_ts}"
        return None


class _Ts(msgspec.Struct):
    ts: float


_ts_decoder = msgspec.json.Decoder(_Ts)


def _event_ts(line: bytes) -> float | None:
    """The ``ts`` of a click as it came (any bytes), or None when it has none to read."""
    if exceeds_depth(line):  # the parser would recurse as deep as the nesting goes
        return None
    try:
        return _ts_decoder.decode(line).ts
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


@dataclass(frozen=True)
class ArchiveConfig:
    segment_events: int = field(
        default=100_000, metadata={"help": "cut a partition's segment at this many messages"}
    )
    segment_seconds: float = field(
        default=3600.0, metadata={"help": "or when its first message has waited this long"}
    )
    poll_seconds: float = 0.5
    extra_config: dict = field(default_factory=dict)  # merged into the consumer's settings


# -- the manifest -----------------------------------------------------------------------------


def read_segments(folder: Path) -> list[Segment]:
    """The manifest's segments, in the order written (a torn last line is ignored).
    ArchiveError when a complete line is not a segment: not one's JSON, nested too deep to
    decode, or refused by ``Segment.problem``."""
    path = Path(folder) / MANIFEST_FILE
    out = []
    for number, line in read_log(path):
        try:
            segment = msgspec.json.decode(line, type=Segment)
        except msgspec.DecodeError as exc:
            raise ArchiveError(f"{path} line {number} is not a segment: {exc}") from None
        except RecursionError:  # msgspec recurses once per level of an ignored field
            raise ArchiveError(f"{path} line {number} is not a segment: nested too deep to "
                               "decode") from None  # fmt: skip
        problem = segment.problem()
        if problem is not None:
            raise ArchiveError(f"{path} line {number} is not a segment: {problem}")
        out.append(segment)
    return out


def _next_offsets(segments: list[Segment], topic: str) -> dict[int, int]:
    nxt: dict[int, int] = {}
    for s in segments:
        if s.topic == topic:
            nxt[s.partition] = max(nxt.get(s.partition, 0), s.next_offset)
    return nxt


def _recover(folder: Path) -> list[Segment]:
    """Undo what a crash left half-done (see the module's table); return the manifest."""
    drop_torn_line(folder / MANIFEST_FILE)
    segments = read_segments(folder)
    named = {s.file for s in segments}
    for path in (folder / SEGMENTS_DIR).iterdir():
        if f"{SEGMENTS_DIR}/{path.name}" not in named:
            log.warning("removing %s: not in the manifest (left by a crash)", path)
            path.unlink()
    return segments


def _one_line(value: bytes) -> bytes:
    if b"\n" not in value and b"\r" not in value:
        return value
    if not exceeds_depth(value):  # the formatter would recurse as deep as the nesting goes
        try:
            return msgspec.json.format(value, indent=0).replace(b"\n", b"")
        except msgspec.DecodeError:
            pass
    return value.replace(b"\r", b" ").replace(b"\n", b" ")  # not a valid click anyway


def _write_segment(folder: Path, topic: str, partition: int,
                   rows: list[tuple[int, bytes]]) -> Segment:  # fmt: skip
    first, last = rows[0][0], rows[-1][0]
    name = f"p{partition:04d}-{first:012d}-{last + 1:012d}.jsonl.gz"
    times = [t for t in (_event_ts(v) for _, v in rows) if t is not None]
    with atomic_writer(folder / SEGMENTS_DIR / name, durable=True, gzip=True) as gz:  # 1., 2.
        gz.write(b"".join(v + b"\n" for _, v in rows))
    segment = Segment(file=f"{SEGMENTS_DIR}/{name}", topic=topic, partition=partition,
                      first_offset=first, next_offset=last + 1, lines=len(rows),
                      min_ts=min(times) if times else None,
                      max_ts=max(times) if times else None, written_at=time.time())  # fmt: skip
    _append_manifest(folder, segment)  # 3.
    return segment


def _append_manifest(folder: Path, segment: Segment) -> None:
    append_durable(folder / MANIFEST_FILE, msgspec.json.encode(segment))


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    with open(folder / _LOCK_FILE, "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(f"another archiver is writing {folder}") from None
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# -- the consumer -----------------------------------------------------------------------------


def archive_clicks(
    settings: KafkaSettings,
    topic: str,
    folder: Path,
    *,
    until_end: bool,
    config: ArchiveConfig | None = None,
) -> list[Segment]:
    """Archive ``topic`` into ``folder`` from where its manifest ends; return the new segments.

    Every partition is assigned (no consumer group, nothing committed). With ``until_end``,
    stop once each partition is archived up to its end as of the call; otherwise run until
    interrupted (KeyboardInterrupt), writing what is buffered before returning.
    """
    from confluent_kafka import OFFSET_BEGINNING

    from deepcredit.kafka_io import (
        KafkaReadError,
        OffsetsOutOfRange,
        PartitionReader,
        assigned_consumer,
        check_resume,
        consumer_watermarks,
    )

    config = config or ArchiveConfig()
    folder = Path(folder)
    (folder / SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
    written: list[Segment] = []
    with _locked(folder):
        start = _next_offsets(_recover(folder), topic)
        try:
            check_resume(settings, topic, start, whose=f"the archive {folder}",
                         remedy="Archive this topic into a new --folder (the old one keeps "
                                "what it holds), or point --bootstrap and "
                                "DEEPCREDIT_TOPIC_PREFIX at the topic it came from.")  # fmt: skip
        except (OffsetsOutOfRange, ValueError) as exc:
            raise ArchiveError(str(exc)) from None
        # An offset the topic stops holding while we read is an error, never a silent jump.
        consumer = assigned_consumer(settings, f"deepcredit-archive-{uuid.uuid4().hex[:8]}",
                                     **{"auto.offset.reset": "error", **config.extra_config})
        buffers: dict[int, list[tuple[int, bytes]]] = {}
        opened: dict[int, float] = {}

        def flush(partition: int) -> None:
            rows = buffers.pop(partition, None)
            opened.pop(partition, None)
            if rows:
                written.append(_write_segment(folder, topic, partition, rows))

        def flush_aged() -> None:
            now = time.monotonic()
            for p in [p for p, t in opened.items() if now - t >= config.segment_seconds]:
                flush(p)

        try:
            try:
                marks = consumer_watermarks(consumer, topic, 30)
            except ValueError as exc:
                raise ArchiveError(str(exc)) from None
            starts = {p: start.get(p, OFFSET_BEGINNING) for p in marks}
            ends = {p: high for p, (_, high) in marks.items()} if until_end else None
            reader = PartitionReader(consumer, topic, starts, ends, follow=not until_end,
                                     poll_s=config.poll_seconds, on_poll=flush_aged)  # fmt: skip
            for m in reader:
                p, value = m.partition(), m.value()
                if value:  # a tombstone or empty message is not a click: nothing to keep
                    buffers.setdefault(p, []).append((m.offset(), _one_line(value)))
                    opened.setdefault(p, time.monotonic())
                if len(buffers.get(p, ())) >= config.segment_events:
                    flush(p)
        except KafkaReadError as exc:
            raise ArchiveError(str(exc)) from None
        except KeyboardInterrupt:
            log.info("interrupted: writing the buffered messages")
        finally:
            consumer.close()
        for p in sorted(buffers):
            flush(p)
    return written


# -- reading ----------------------------------------------------------------------------------


def event_time_range(folder: Path) -> tuple[float, float] | None:
    """The earliest and latest event time archived, or None when nothing is."""
    segments = [s for s in read_segments(folder) if s.min_ts is not None]
    if not segments:
        return None
    return min(s.min_ts for s in segments), max(s.max_ts for s in segments)  # type: ignore[type-var]


def archived_through(folder: Path) -> float | None:
    """The event time the archive is complete up to: the oldest of each partition's newest
    event time (a partition that lags holds back the clock), or None when nothing is archived.

    The controller's event-time clock: a retraining due at T waits until this is >= T.
    """
    newest: dict[tuple[str, int], float] = {}
    for s in read_segments(folder):
        if s.max_ts is not None:
            key = (s.topic, s.partition)
            newest[key] = max(newest.get(key, s.max_ts), s.max_ts)
    return min(newest.values()) if newest else None


def read_window(
    folder: Path, *, start_ts: float | None = None, end_ts: float | None = None
) -> Iterator[bytes]:
    """The archived lines with start_ts <= event time < end_ts, segment by segment in manifest
    order (each partition in offset order, so each user's events in order). Without bounds,
    every line, invalid ones included; with a bound, lines without a readable ts are left out."""
    folder = Path(folder)
    windowed = start_ts is not None or end_ts is not None
    lo = -float("inf") if start_ts is None else start_ts
    hi = float("inf") if end_ts is None else end_ts
    for s in read_segments(folder):
        if windowed and (s.min_ts is None or s.max_ts < lo or s.min_ts >= hi):
            continue
        for line in _lines(folder, s):
            if not windowed:
                yield line
                continue
            ts = _event_ts(line)
            if ts is not None and lo <= ts < hi:
                yield line


def read_offsets(
    folder: Path, topic: str, partition: int, start: int, until: int, stop: int
) -> tuple[Iterator[bytes], int]:
    """The archived messages of ``topic``[``partition``] from offset ``start`` on, in offset
    order, read lazily (a partition's archive can be far larger than memory), and the offset
    after the last one: whole segments until offset ``until`` is reached (a segment is cut
    only at ``start`` and at ``stop``, nothing at or past ``stop`` is read). At a hole in the
    archive it stops there, so the offset returned is below ``until``.

    ArchiveError, at the call, when a segment must be cut but skips offsets: the archiver drops
    empty messages, so such a segment's lines have no known offsets.
    """
    segments = sorted((s for s in read_segments(folder)
                       if s.topic == topic and s.partition == partition),
                      key=lambda s: s.first_offset)  # fmt: skip
    plan: list[tuple[Segment, int, int]] = []
    cursor = start
    for s in segments:
        if cursor >= until or s.first_offset > cursor:
            break  # enough, or a hole
        if s.next_offset > cursor:
            _check_cut(s, cursor, stop)
            plan.append((s, cursor, stop))
            cursor = min(s.next_offset, stop)
    return chain.from_iterable(_lines(folder, *p) for p in plan), cursor


def _check_cut(s: Segment, start: int, stop: int) -> None:
    cut = start > s.first_offset or stop < s.next_offset
    if cut and s.lines != s.next_offset - s.first_offset:
        raise ArchiveError(f"archive segment {s.file} skips offsets, so it cannot be cut at "
                           f"offsets {start} to {stop}: read it from other offsets (run a cut-over "
                           "again)")  # fmt: skip


def _lines(folder: Path, s: Segment, start: int = 0, stop: int | None = None) -> Iterator[bytes]:
    """The lines (raw message values) of segment ``s`` with start <= offset < stop, in offset
    order: the one place a segment file is read. ArchiveError as ``read_offsets`` says."""
    first, nxt = s.first_offset, s.next_offset
    stop = nxt if stop is None else stop
    cut = start > first or stop < nxt
    _check_cut(s, start, stop)
    with gzip.open(folder / s.file, "rb") as f:
        whole = (line.rstrip(b"\n") for line in f)
        yield from (islice(whole, max(0, start - first), stop - first) if cut else whole)


@dataclass(frozen=True)
class WindowInfo:
    path: Path
    lines: int
    start_ts: float | None
    end_ts: float | None


def write_window(
    folder: Path,
    out: Path | None = None,
    *,
    start_ts: float | None = None,
    end_ts: float | None = None,
) -> WindowInfo:
    """``read_window`` into one ``.jsonl.gz`` file (written aside, then renamed) that
    ``deepcredit train`` reads. Default ``out``: ``<folder>/windows/clicks-<start>-<end>``."""
    folder = Path(folder)
    if out is None:
        lo = "start" if start_ts is None else f"{start_ts:.0f}"
        hi = "end" if end_ts is None else f"{end_ts:.0f}"
        out = folder / WINDOWS_DIR / f"clicks-{lo}-{hi}.jsonl.gz"
    lines = 0
    with atomic_writer(out, gzip=True) as gz:
        for line in read_window(folder, start_ts=start_ts, end_ts=end_ts):
            gz.write(line + b"\n")
            lines += 1
    return WindowInfo(out, lines, start_ts, end_ts)
