"""Events spilled to disk in user buckets: the way a job over every user's history (building the
training sequences, rebuilding states for a cut-over) keeps its memory bounded by a bucket's
worth of events instead of the whole history.

One pass writes each record (one line, no newline in it) to one of K files chosen by a hash of
its user id (``bucket_of``), so a user's records land in one file in the order they were
written; each bucket is then read back whole, on its own. K is chosen so that a bucket fits
the memory budget (``bucket_count``).

>>> import tempfile
>>> with BucketFiles(Path(tempfile.mkdtemp()), 3) as spill:
...     for user, line in [("a", b"1"), ("b", b"2"), ("a", b"3")]:
...         spill.write(user, line)
...     spill.close()
...     [list(spill.lines(b)) for b in range(3)] == [
...         [x for u, x in [("a", b"1"), ("b", b"2"), ("a", b"3")] if bucket_of(u, 3) == b]
...         for b in range(3)]
True
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from deepcredit.jsonlines import read_lines

__all__ = ["BucketFiles", "bucket_count", "bucket_of"]


def bucket_count(size: int, per_bucket: float) -> int:
    """Buckets for ``size`` units (bytes, events) at ``per_bucket`` each, at least one.

    >>> bucket_count(0, 32), bucket_count(100, 32), bucket_count(1, 0.5)
    (1, 4, 2)
    """
    return max(1, math.ceil(size / per_bucket))


def bucket_of(user_id: str, buckets: int) -> int:
    """The bucket of a user: CRC-32 of the id's UTF-8 bytes modulo ``buckets``; stable across
    runs and machines (unlike ``hash``).

    >>> bucket_of("user-1", 7) == bucket_of("user-1", 7), bucket_of("x", 1)
    (True, 0)
    """
    return zlib.crc32(user_id.encode("utf-8", "surrogatepass")) % buckets


class BucketFiles:
    """``buckets`` files ``bucket-00000.jsonl`` ... in ``folder``, open for writing until
    ``close``; a context manager that removes ``folder`` on exit, so the spill is gone whether
    the job finished or failed. ``folder`` is emptied first: what is in it is a spill left by
    a job that died. Raises OSError when a file cannot be written."""

    def __init__(self, folder: Path, buckets: int) -> None:
        self.folder = Path(folder)
        self.buckets = buckets
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        _allow_open_files(buckets)
        self._files: list[BinaryIO] = []
        try:
            for b in range(buckets):
                self._files.append(open(self.path(b), "wb"))  # noqa: SIM115
        except BaseException:
            self.close()
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def __enter__(self) -> BucketFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def path(self, bucket: int) -> Path:
        return self.folder / f"bucket-{bucket:05d}.jsonl"

    def write(self, user_id: str, line: bytes) -> None:
        """Append ``line`` (without a newline in it) to ``user_id``'s bucket."""
        f = self._files[bucket_of(user_id, self.buckets)]
        f.write(line)
        f.write(b"\n")

    def close(self) -> None:
        """Close the files for writing (again: nothing)."""
        for f in self._files:
            f.close()
        self._files = []

    def lines(self, bucket: int) -> Iterator[bytes]:
        """The lines of ``bucket`` in the order written (after ``close``)."""
        return read_lines(str(self.path(bucket)))

    def drop(self, bucket: int) -> None:
        """Remove ``bucket``'s file once it is read: the spill shrinks as the job goes."""
        self.path(bucket).unlink(missing_ok=True)


def _allow_open_files(more: int) -> None:
    # One open file per bucket while writing, beside those the process has open already (and
    # room for the sockets and files of the job): raise the soft limit when it is lower.
    try:
        already = len(os.listdir("/proc/self/fd"))
    except OSError:  # no /proc (not Linux)
        already = 64
    n = already + more + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < n:
        ceiling = n if hard == resource.RLIM_INFINITY else min(n, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
