"""Event files: one JSON object per line, plain or gzip-compressed (by the ``.gz`` suffix)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator

__all__ = ["read_lines"]


def read_lines(path: str) -> Iterator[bytes]:
    """The non-empty lines of a JSON-lines file, without their line ending."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line:
                yield line
