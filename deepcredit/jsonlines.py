"""JSON-lines files: one JSON object per line.

Event files (``read_lines``): plain or gzip-compressed (by the ``.gz`` suffix).

Durable logs (``append_durable``, ``read_log``, ``drop_torn_line``): append-only files (an audit
log, a manifest) where each line is one decision that holds once its newline is on disk. An
append writes the line and its newline, flushes and fsyncs. A crash mid-append leaves a torn
last line (no newline): that record never held, so readers ignore it and the next append
truncates it first.

| dies in an append | on disk                  | ``read_log``     | the next append           |
|-------------------|--------------------------|------------------|---------------------------|
| before the write  | the old lines            | the old lines    | as usual                  |
| in write or fsync | maybe a torn last line   | the old lines    | drops it, then appends    |
| after the fsync   | the old lines and the new| with the new one | as usual                  |

>>> import tempfile
>>> log_file = Path(tempfile.mkdtemp()) / "log.jsonl"
>>> append_durable(log_file, b'{"n": 1}')
>>> with log_file.open("ab") as f:  # a crash mid-append
...     _ = f.write(b'{"n": 2')
>>> list(read_log(log_file))
[(1, b'{"n": 1}')]
>>> append_durable(log_file, b'{"n": 3}')
>>> log_file.read_bytes()
b'{"n": 1}\\n{"n": 3}\\n'
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from deepcredit.atomic import fsync_dir

__all__ = ["append_durable", "drop_torn_line", "read_lines", "read_log"]

log = logging.getLogger(__name__)


def read_lines(path: str) -> Iterator[bytes]:
    """The non-empty lines of a JSON-lines file, without their line ending."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            line = line.rstrip(b"\r\n")
            if line:
                yield line


def read_log(path: Path) -> Iterator[tuple[int, bytes]]:
    """The complete non-empty lines of a durable log with their line numbers (from 1), without
    the newline; nothing when there is no such file. A torn last line (no newline) is left out,
    with a warning."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    if lines[-1]:
        log.warning("ignoring a torn last line of %s", path)
    for number, line in enumerate(lines[:-1], start=1):
        if line.strip():
            yield number, line


def drop_torn_line(path: Path) -> bool:
    """Truncate a torn last line (no newline) off the durable log ``path``; whether there was
    one. Nothing to do when there is no such file."""
    if not Path(path).exists():
        return False
    with open(path, "r+b") as f:
        return _drop_torn_line(f, path)


def append_durable(path: Path, line: bytes) -> None:
    """Append ``line`` (one JSON document, no newline in it) and a newline to the durable log
    ``path``, flushed and fsync'ed; the file, if new, is fsync'ed into its folder too. A torn
    last line is dropped first. ValueError when ``line`` holds a line break; OSError from the
    writes."""
    if b"\n" in line or b"\r" in line:
        raise ValueError(f"a log line cannot hold a line break: {line[:80]!r}")
    path = Path(path)
    created = not path.exists()
    with open(path, "a+b") as f:  # reads anywhere; writes go to the end
        _drop_torn_line(f, path)
        f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())
    if created:
        fsync_dir(path.parent)


def _drop_torn_line(f: io.BufferedRandom, path: Path) -> bool:
    end = f.seek(0, os.SEEK_END)
    if not end:
        return False
    f.seek(end - 1)
    if f.read(1) == b"\n":
        return False
    f.seek(0)
    keep = f.read().rfind(b"\n") + 1
    log.warning("dropping a torn last line of %s", path)
    f.truncate(keep)
    f.seek(keep)
    return True
