"""Files that are either the old version or the new one, never half written: write beside the
target, optionally fsync, rename over it (and fsync the folder, so the rename survives a crash).

>>> # write_atomic(Path("results/x.json"), b"{}\\n")
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_atomic", "write_json"]


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> Path:
    """``path`` holds ``data``; ``durable``: fsync the file and its folder too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(partial, path)
    if durable:
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as indented JSON in ``path``, written aside and renamed (results, summaries)."""
    return write_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())
