"""Write-aside-and-rename leaves the whole new file and no partial beside it."""

from __future__ import annotations

import json
from pathlib import Path

from deepcredit.atomic import write_atomic, write_json


def test_writes_replace_whole_files_and_leave_no_partial(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "r.json"
    write_json(path, {"a": 1})
    write_json(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    write_atomic(path, b"raw", durable=True)
    assert path.read_bytes() == b"raw"
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.json"]
