"""Files that are either the old version or the new one, never half written: write beside the
target, optionally fsync, rename over it (and fsync the folder, so the rename survives a crash).

``atomic_writer`` streams (a segment, a benchmark, a cache too large to hold as bytes);
``write_atomic`` and ``write_json`` write bytes already in memory through it.

>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with atomic_writer(folder / "x.txt") as f:
...     _ = f.write(b"whole\\n")
>>> (folder / "x.txt").read_bytes(), [p.name for p in folder.iterdir()]
(b'whole\\n', ['x.txt'])
"""

from __future__ import annotations

import gzip as gzip_
import io
import json
import math
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_writer", "fsync_dir", "strict_json", "write_atomic", "write_json"]


@contextmanager
def atomic_writer(
    path: Path, *, durable: bool = False, gzip: bool = False, compresslevel: int = 9
) -> Iterator[io.BufferedIOBase]:
    """A binary file to write ``path``'s new content into; ``path`` gets it on a clean exit.

    The file is a hidden partial beside ``path`` (``.<name>.<random>.partial``), random so that
    two writers of one target each publish a whole file (the last rename wins). On a clean exit
    it is renamed over ``path``; on an exception (KeyboardInterrupt included) it is removed and
    ``path`` is left as it was. ``durable``: fsync the file before the rename and the folder
    after it. ``gzip``: the file object compresses, at ``compresslevel``, with no name or time
    in the header, so the same content gives the same bytes. Creates ``path``'s folder.
    Raises what the writes raise (OSError).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with ExitStack() as stack:
            raw = stack.enter_context(open(partial, "xb"))
            out: io.BufferedIOBase = raw
            if gzip:
                zipped = gzip_.GzipFile(
                    filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel
                )
                out = stack.enter_context(zipped)
            yield out
            if gzip:
                out.close()  # the gzip trailer, before the raw file is synced
            if durable:
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """fsync ``folder``, so the names created, renamed or removed in it survive a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> Path:
    """``path`` holds ``data``, all of it or none (``atomic_writer``); ``durable``: fsync the
    file and its folder too. Returns ``path``."""
    with atomic_writer(path, durable=durable) as f:
        f.write(data)
    return path


def strict_json(obj: Any) -> bytes:
    """``obj`` (builtins: dict, list, str, numbers, bool, None) as indented strict JSON (RFC
    8259) and a newline: a number that is not finite (an undefined metric: an AUC with one
    class) is written as null, never as the ``NaN`` that Python's json writes by default."""
    return (json.dumps(_finite(obj), indent=2, allow_nan=False) + "\n").encode()


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> Path:
    """``obj`` as strict JSON (``strict_json``) in ``path``, written aside and renamed
    (results, summaries)."""
    return write_atomic(path, strict_json(obj))
