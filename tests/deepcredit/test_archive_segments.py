"""The archive's files without a broker: segments written, read by offset, and what a crash
leaves recovered."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from deepcredit import archive
from deepcredit.archive import ArchiveError, read_offsets, read_segments, read_window
from deepcredit.jsonlines import append_durable


def value(offset: int) -> bytes:
    return msgspec.json.encode({"event_id": f"e{offset}", "ts": 1000.0 + offset})


def write(folder: Path, partition: int, offsets: range) -> archive.Segment:
    (folder / archive.SEGMENTS_DIR).mkdir(parents=True, exist_ok=True)
    rows = [(o, value(o)) for o in offsets]
    return archive._write_segment(folder, "clicks", partition, rows)


def read_all(*args: object) -> tuple[list[bytes], int]:
    lines, after = read_offsets(*args)  # type: ignore[arg-type]
    return list(lines), after


def test_read_offsets_takes_whole_segments_until_the_topic_starts(tmp_path: Path) -> None:
    write(tmp_path, 0, range(0, 10))
    write(tmp_path, 0, range(10, 20))
    write(tmp_path, 1, range(0, 5))
    lines, after = read_all(tmp_path, "clicks", 0, 3, 12, 100)
    assert (lines, after) == ([value(o) for o in range(3, 20)], 20)
    lines, after = read_all(tmp_path, "clicks", 0, 3, 12, 15)  # cut at the stop too
    assert (lines, after) == ([value(o) for o in range(3, 15)], 15)
    assert read_all(tmp_path, "clicks", 0, 20, 30, 40) == ([], 20)  # nothing past the end
    assert read_all(tmp_path, "clicks", 2, 0, 5, 9) == ([], 0)


def test_read_offsets_stops_at_a_hole(tmp_path: Path) -> None:
    write(tmp_path, 0, range(0, 10))
    write(tmp_path, 0, range(15, 20))
    assert read_all(tmp_path, "clicks", 0, 0, 18, 30) == ([value(o) for o in range(10)], 10)


def test_a_segment_that_skips_offsets_is_read_whole_but_not_cut(tmp_path: Path) -> None:
    (tmp_path / archive.SEGMENTS_DIR).mkdir()
    rows = [(o, value(o)) for o in (0, 1, 3, 4)]  # offset 2 was an empty message
    archive._write_segment(tmp_path, "clicks", 0, rows)
    assert read_all(tmp_path, "clicks", 0, 0, 5, 5) == ([v for _, v in rows], 5)
    with pytest.raises(ArchiveError, match="skips offsets"):
        read_offsets(tmp_path, "clicks", 0, 1, 5, 5)  # refused at the call, before any line


def test_recovery_drops_the_torn_line_and_the_unnamed_files(tmp_path: Path) -> None:
    kept = write(tmp_path, 0, range(0, 10))
    (tmp_path / archive.SEGMENTS_DIR / ".p0000-x.jsonl.gz.1234abcd.partial").write_bytes(b"\x1f")
    (tmp_path / archive.SEGMENTS_DIR / "p0000-000000000010-000000000020.jsonl.gz").write_bytes(
        b"orphan"
    )
    with open(tmp_path / archive.MANIFEST_FILE, "ab") as f:
        f.write(b'{"file": "segments/p0000-')
    assert read_segments(tmp_path) == [kept]
    assert archive._recover(tmp_path) == [kept]
    assert sorted(p.name for p in (tmp_path / archive.SEGMENTS_DIR).iterdir()) == [
        Path(kept.file).name
    ]
    assert (tmp_path / archive.MANIFEST_FILE).read_bytes().endswith(b"}\n")
    assert list(read_window(tmp_path, start_ts=1002.0, end_ts=1004.0)) == [value(2), value(3)]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"file": "../../etc/passwd"}, "file must be a file in segments/"),
        ({"file": "segments/.."}, "file must be a file in segments/"),
        ({"file": "segments/a/b.jsonl.gz"}, "file must be a file in segments/"),
        ({"partition": -1}, "partition -1"),
        ({"first_offset": 10, "next_offset": 10}, "want partition >= 0, 0 <= first < next"),
        ({"lines": 11}, "11 lines for offsets 0 to 10"),
        ({"lines": 0}, "0 lines"),
        ({"max_ts": None}, "one event-time bound without the other"),
        ({"min_ts": 2000.0}, "event times 2000.0 to 1009.0"),
    ],
)
def test_a_manifest_line_that_is_no_segment_is_an_archive_error(
    tmp_path: Path, change: dict, says: str
) -> None:
    segment = msgspec.structs.replace(write(tmp_path, 0, range(10)), **change)
    archive._append_manifest(tmp_path, segment)
    with pytest.raises(ArchiveError, match=f"manifest.jsonl line 2 is not a segment: .*{says}"):
        read_segments(tmp_path)


def test_a_manifest_line_nested_too_deep_is_an_archive_error(tmp_path: Path) -> None:
    line = msgspec.json.encode(write(tmp_path, 0, range(10)))
    deep = line[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
    append_durable(tmp_path / archive.MANIFEST_FILE, deep)
    with pytest.raises(ArchiveError, match="line 2 is not a segment: nested too deep"):
        read_segments(tmp_path)
