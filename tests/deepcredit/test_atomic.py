"""Write-aside-and-rename leaves the whole new file and no partial beside it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from deepcredit.atomic import atomic_writer, write_atomic, write_json


def test_writes_replace_whole_files_and_leave_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"a": 1})
    write_json(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    write_atomic(path, b"raw", durable=True)
    assert path.read_bytes() == b"raw"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]


def test_a_partial_left_by_a_crash_is_never_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.bin"
    write_atomic(path, b"old")
    writer = atomic_writer(path, durable=True)
    f = writer.__enter__()
    f.write(b"half of the ne")  # the process dies here: no exit, no rename
    f.flush()
    assert path.read_bytes() == b"old"
    (partial,) = [p for p in tmp_path.iterdir() if p.name != "r.bin"]
    assert partial.name.startswith(".r.bin.") and partial.name.endswith(".partial")
    write_atomic(path, b"new")  # the next writer neither reads nor reuses it
    assert path.read_bytes() == b"new"
    f.close()


def test_the_streaming_writer_removes_its_partial_on_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.gz"
    write_atomic(path, b"old")
    with pytest.raises(KeyboardInterrupt), atomic_writer(path, gzip=True) as f:
        f.write(b"some lines\n")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl.gz"]


def test_the_streaming_writer_gzips_reproducibly(tmp_path: Path) -> None:
    for name in ("a.gz", "b.gz"):
        with atomic_writer(tmp_path / name, durable=True, gzip=True, compresslevel=6) as f:
            f.write(b'{"n": 1}\n')
    assert gzip.decompress((tmp_path / "a.gz").read_bytes()) == b'{"n": 1}\n'
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
