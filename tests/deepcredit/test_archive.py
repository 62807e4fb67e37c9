"""The click archive against the real broker: archive to the end, crash, resume, read back;
refuse to resume past the end of a recreated topic."""

from __future__ import annotations

import gzip
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from deepcredit import archive
from deepcredit.archive import (
    ArchiveConfig,
    ArchiveError,
    archive_clicks,
    event_time_range,
    read_segments,
    read_window,
    write_window,
)
from deepcredit.kafka_io import produce
from deepcredit.settings import KafkaSettings, Topics
from deploy.cli import main
from tests.streams import recreate

pytestmark = pytest.mark.kafka

CASES = Path(__file__).parents[1] / "cases"
T0 = 1.6e9


def click(i: int, user: int) -> bytes:
    return msgspec.json.encode({"event_id": f"e{i}", "user_id": f"u{user}", "ts": T0 + 60 * i,
                                "activity": "recharge", "amount": 1.0})  # fmt: skip


def send(kafka: KafkaSettings, topic: str, lines: list[bytes]) -> None:
    producer = Producer(kafka.client_config())
    for line in lines:
        produce(producer, topic, line, msgspec.json.decode(line)["user_id"].encode())
    assert producer.flush(30) == 0


def by_user(lines: list[bytes]) -> dict[str, list[bytes]]:
    out: dict[str, list[bytes]] = defaultdict(list)
    for line in lines:
        out[msgspec.json.decode(line)["user_id"]].append(line)
    return dict(out)


def test_archive_resumes_after_a_crash_without_losing_or_repeating(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "archive"
    first = [click(i, i % 7) for i in range(120)]
    send(kafka, topics.clicks, first)
    small = ArchiveConfig(segment_events=25)

    segments = archive_clicks(kafka, topics.clicks, folder, until_end=True, config=small)
    assert sum(s.lines for s in segments) == 120
    assert all(s.lines <= 25 for s in segments)
    assert sorted(read_window(folder)) == sorted(first)

    # More clicks; the archiver dies between renaming a segment and naming it in the manifest.
    second = [click(i, i % 7) for i in range(120, 200)]
    send(kafka, topics.clicks, second)
    real_append = archive._append_manifest
    calls = []

    def dying_append(folder_: Path, segment: archive.Segment) -> None:
        calls.append(segment)
        if len(calls) == 2:
            raise OSError("simulated crash")
        real_append(folder_, segment)

    monkeypatch.setattr(archive, "_append_manifest", dying_append)
    with pytest.raises(OSError, match="simulated crash"):
        archive_clicks(kafka, topics.clicks, folder, until_end=True, config=small)
    monkeypatch.setattr(archive, "_append_manifest", real_append)
    orphan = folder / calls[1].file
    assert orphan.is_file()  # renamed, but not in the manifest
    # ... and a torn manifest line, as a crash in the middle of step 3 leaves it.
    with open(folder / archive.MANIFEST_FILE, "ab") as f:
        f.write(b'{"file": "segments/p0000-')

    archive_clicks(kafka, topics.clicks, folder, until_end=True, config=small)
    assert not orphan.is_file() or orphan.name in {Path(s.file).name for s in read_segments(folder)}
    everything = list(read_window(folder))
    assert sorted(everything) == sorted(first + second)  # nothing lost, nothing twice
    # Each partition's offsets are contiguous across segments; each user's clicks in order.
    by_partition = defaultdict(list)
    for s in read_segments(folder):
        by_partition[s.partition].append(s)
    for segs in by_partition.values():
        assert [s.first_offset for s in segs[1:]] == [s.next_offset for s in segs[:-1]]
    assert by_user(everything) == by_user(first + second)

    # Nothing new: a run to the end writes nothing.
    assert archive_clicks(kafka, topics.clicks, folder, until_end=True) == []

    # An event-time window, as one training file.
    lo, hi = event_time_range(folder)
    assert (lo, hi) == (T0, T0 + 60 * 199)
    info = write_window(folder, start_ts=T0 + 60 * 50, end_ts=T0 + 60 * 150)
    with gzip.open(info.path, "rb") as f:
        window = f.read().splitlines()
    assert info.lines == 100 and sorted(window) == sorted((first + second)[50:150])
    assert by_user(window) == by_user((first + second)[50:150])


def test_archive_command_until_end(
    kafka: KafkaSettings,
    topics: Topics,
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    lines = [click(i, i % 3) for i in range(30)]
    send(kafka, topics.clicks, lines)
    folder = tmp_path / "a"
    args = ["archive", "--folder", str(folder), "--until-end", "--bootstrap",
            kafka.bootstrap_servers]  # fmt: skip
    assert main(args) == 0
    assert "30 messages" in capsys.readouterr().out
    assert sorted(read_window(folder)) == sorted(lines)


def test_deep_nesting_is_archived_and_read_back_without_a_crash(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    """Case deep-nesting-crash: the archiver parses each click for its time, and a multi-line
    one to put it on one line; a deeply nested click must neither crash it nor be lost."""
    lines = (CASES / "deep-nesting-crash" / "input.jsonl").read_bytes().splitlines()
    multi_line = b'{"ts": 1600000200,\n"meta": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    producer = Producer(kafka.client_config())
    for line in [*lines, multi_line]:
        produce(producer, topics.clicks, line, b"u1")  # one partition: in this order
    assert producer.flush(30) == 0

    folder = tmp_path / "archive"
    assert sum(s.lines for s in archive_clicks(kafka, topics.clicks, folder,
                                                until_end=True)) == 4  # fmt: skip
    assert list(read_window(folder)) == [*lines, multi_line.replace(b"\n", b" ")]
    # Too deep to be a click: no time is read from it, so no window holds it.
    assert list(read_window(folder, start_ts=0.0)) == [lines[0], lines[2]]


@pytest.mark.kafka
def test_an_archive_does_not_resume_past_the_end_of_a_recreated_topic(
    kafka: KafkaSettings, topics: Topics, tmp_path: Path
) -> None:
    send(kafka, topics.clicks, [click(i, i % 3) for i in range(30)])
    archive_clicks(kafka, topics.clicks, tmp_path / "a", until_end=True)
    recreate(kafka, topics.clicks, partitions=3)
    send(kafka, topics.clicks, [click(i, i % 3) for i in range(3)])
    with pytest.raises(ArchiveError, match=f"archive {tmp_path / 'a'} holds offsets of "
                       f"{topics.clicks} past the end: partition "):  # fmt: skip
        archive_clicks(kafka, topics.clicks, tmp_path / "a", until_end=True)
    assert len(list(read_window(tmp_path / "a"))) == 30  # the archive keeps what it holds


def test_the_clock_is_the_partition_that_lags(tmp_path: Path) -> None:
    """The controller's clock: complete up to the oldest of each partition's newest event."""
    assert archive.archived_through(tmp_path) is None

    def segment(partition: int, first: int, max_ts: float | None) -> bytes:
        s = archive.Segment(file=f"segments/p{partition}-{first}.jsonl.gz", topic="clicks",
                            partition=partition, first_offset=first, next_offset=first + 10,
                            lines=10, min_ts=None if max_ts is None else max_ts - 5,
                            max_ts=max_ts, written_at=0.0)  # fmt: skip
        return msgspec.json.encode(s) + b"\n"

    manifest = tmp_path / archive.MANIFEST_FILE
    manifest.write_bytes(segment(0, 0, 100.0) + segment(1, 0, 40.0) + segment(0, 10, 200.0)
                         + segment(1, 10, None))  # fmt: skip
    assert archive.archived_through(tmp_path) == 40.0  # partition 1 holds the clock back
    with open(manifest, "ab") as f:
        f.write(segment(1, 20, 150.0))
    assert archive.archived_through(tmp_path) == 150.0
    assert archive.event_time_range(tmp_path) == (35.0, 200.0)
