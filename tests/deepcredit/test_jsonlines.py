"""The durable log: a torn last line is never read, and the next append is whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepcredit.jsonlines import append_durable, drop_torn_line, read_log


def test_a_torn_last_line_is_ignored_and_the_next_append_is_intact(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "log.jsonl"
    path.parent.mkdir()
    assert list(read_log(path)) == []
    append_durable(path, b'{"n": 1}')
    append_durable(path, b'{"n": 2}')
    with open(path, "ab") as f:
        f.write(b'{"n": 3, "reason": "a crash mid-wr')
    assert [json.loads(line)["n"] for _, line in read_log(path)] == [1, 2]
    append_durable(path, b'{"n": 4}')
    assert [json.loads(line)["n"] for _, line in read_log(path)] == [1, 2, 4]
    assert path.read_bytes().endswith(b'{"n": 4}\n')


def test_lines_keep_their_numbers_and_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"n": 1}\n\n{"n": 3}\n{"n"')
    assert list(read_log(path)) == [(1, b'{"n": 1}'), (3, b'{"n": 3}')]
    assert drop_torn_line(path) is True
    assert path.read_bytes() == b'{"n": 1}\n\n{"n": 3}\n'
    assert drop_torn_line(path) is False
    assert drop_torn_line(tmp_path / "absent.jsonl") is False


def test_a_whole_torn_file_is_emptied(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    path.write_bytes(b'{"n": 1')
    assert list(read_log(path)) == []
    append_durable(path, b'{"n": 2}')
    assert path.read_bytes() == b'{"n": 2}\n'


def test_a_line_break_in_a_record_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="line break"):
        append_durable(tmp_path / "log.jsonl", b'{"n":\n 1}')
    assert not (tmp_path / "log.jsonl").exists()
