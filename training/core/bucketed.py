"""Training sequences of an event log built with memory that does not grow with its users.

``dataset.build_sequences`` holds every event of the log, grouped by user, as Python objects
until the last line is read, then every row as Python tuples: its peak grows with the log.
``build_on_disk`` gives the same arrays (same users in the same order, same rows, bit for bit)
in three passes whose memory is bounded by a fixed budget per bucket:

1. **Scatter.** One pass over the log decodes each line (``codec.decode_click``: an invalid
   line is counted and skipped, as ``eventlog.read_events`` skips it) and appends the line, as
   it was, to one of K bucket files chosen by a hash of its user id (``deepcredit.buckets``),
   so each user's events land in one bucket in the log's order. K comes from the log's size
   as text (sampled through gzip for a ``.gz`` log) so that a bucket holds about
   ``bucket_mib`` MiB of JSON.
   The latest event time, at which labels are judged, is kept.
2. **Build.** Each bucket in turn is read back, grouped by user and turned into rows by
   ``dataset.build_users``: the code ``build_sequences`` runs, which steps each event with
   ``scorer.steps.plan_step``, the function the live scorer runs. The bucket's arrays are
   written as ``.npy`` files and freed before the next bucket is read.
3. **Merge.** ``build_sequences`` orders users by id. Each bucket's users are in that order
   already, so the output is a K-way merge: for each array, each bucket's file is read front to
   back and the output written front to back, through fixed-size buffers.

The result is a folder of ``.npy`` files (``Sequences.save_dir``'s layout) that
``Sequences.open`` maps read-only, so training reads the rows of each batch and holds no copy.

Why hashed buckets of JSON lines: a bucket is read once, whole, by the decoder every other
reader of the log uses, and the lines are the contract's own encoding, so nothing is translated
twice. Parquet (pyarrow) would add a 100 MB dependency for files written once and read once;
an external sort of the events by user would merge the events themselves, where hashing leaves
only the output rows to merge, once. What still grows with users: the user ids and the row
offsets (a few dozen bytes a user, in memory during the merge); what grows with events is on
disk.
"""

from __future__ import annotations

import functools
import gzip
import math
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import BinaryIO

import numpy as np
from tqdm import tqdm

from deepcredit.buckets import BucketFiles, bucket_count
from deepcredit.codec import decode_click
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines
from training.core.dataset import Sequences, build_users, log_duplicates, offsets_from_lengths

__all__ = ["DEFAULT_BUCKET_MIB", "BucketedBuild", "build_on_disk", "text_bytes"]

#: JSON text per bucket. A bucket's events and rows in Python objects take about five times
#: their text, so this bounds the build's own memory near 200 MB whatever the log's size.
DEFAULT_BUCKET_MIB = 32

_SAMPLE_BYTES = 16 << 20  # text read from a .gz log to estimate its size as text
_COPY_BYTES = 8 << 20  # the most one read of the merge holds
_USER_FIELDS = ("user_ids", "act_offsets", "loan_offsets")
_ACT_FIELDS = ("act_x", "act_gap", "act_reset")


@dataclass(frozen=True)
class BucketedBuild:
    """What ``build_on_disk`` did: where the arrays are, the lines read, the invalid lines
    skipped (with the first one's reason), the buckets used."""

    folder: Path
    events: int
    rejected: int
    first_rejection: str | None
    buckets: int


def text_bytes(path: Path) -> int:
    """The size of an event log as text, in bytes: the file's size, or for a ``.gz`` log its
    size times the ratio of the first 16 MiB of text to the compressed bytes they took (exact
    when the whole log is that small)."""
    size = Path(path).stat().st_size
    if not str(path).endswith(".gz"):
        return size
    with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as text:
        sample = len(text.read(_SAMPLE_BYTES))
        consumed = raw.tell()
    if sample < _SAMPLE_BYTES:
        return sample
    return math.ceil(size * sample / max(1, consumed))


def build_on_disk(
    events: Path,
    out: Path,
    *,
    bucket_mib: float = DEFAULT_BUCKET_MIB,
    as_of: float | None = None,
    progress: bool = False,
) -> BucketedBuild:
    """The Sequences of the event log ``events`` (JSON lines, ``.gz`` or plain) written to the
    folder ``out`` as ``.npy`` files, the arrays ``dataset.build_sequences`` gives for the
    log's valid events (the module says how). ``as_of``: when labels are judged (default: the
    latest event time). Works in a hidden folder beside ``out`` (scratch space about the log's
    size as text, then the arrays) and renames it to ``out`` at the end; an existing ``out``
    (a concurrent build of the same log) is kept and this build's folder removed.
    Raises FileNotFoundError for a missing log, OSError when a file cannot be written."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.partial")
    work = partial / "work"
    try:
        partial.mkdir(parents=True)
        k = bucket_count(text_bytes(events), bucket_mib * (1 << 20))
        with BucketFiles(work, k) as spill:
            scattered = _scatter(Path(events), spill, progress)
            judged_at = scattered.last_ts if as_of is None else as_of
            parts, resends, conflicts = [], 0, 0
            for b in tqdm(range(k), desc="building sequences", unit="bucket",
                          disable=not progress):  # fmt: skip
                parts.append(partial / f"part-{b:05d}")
                r, c = _build_bucket(spill.lines(b), judged_at, parts[-1])
                resends, conflicts = resends + r, conflicts + c
                spill.drop(b)
        log_duplicates(resends, conflicts)
        _merge(parts, partial)
        for part in parts:
            shutil.rmtree(part)
        try:
            partial.rename(out)
        except OSError:
            if not out.is_dir():
                raise
            shutil.rmtree(partial)  # the same log built beside us: keep the first
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BucketedBuild(out, scattered.events, scattered.rejected, scattered.first_rejection, k)


@dataclass
class _Scattered:
    events: int = 0
    rejected: int = 0
    first_rejection: str | None = None
    last_ts: float = -math.inf


def _scatter(events: Path, spill: BucketFiles, progress: bool) -> _Scattered:
    got = _Scattered()
    lines = tqdm(read_lines(str(events)), desc="reading events", unit="ev", disable=not progress)
    for line in lines:
        event = decode_click(line)
        if not isinstance(event, ClickEvent):
            got.rejected += 1
            got.first_rejection = got.first_rejection or event.detail
            continue
        got.events += 1
        got.last_ts = max(got.last_ts, event.ts)
        spill.write(event.user_id, line)
    spill.close()
    return got


def _build_bucket(lines: Iterator[bytes], as_of: float, out: Path) -> tuple[int, int]:
    by_user: dict[str, list[ClickEvent]] = {}
    for line in lines:
        event = decode_click(line)
        assert isinstance(event, ClickEvent)  # the scatter wrote valid events only
        by_user.setdefault(event.user_id, []).append(event)
    seq, resends, conflicts = build_users(by_user, as_of=as_of)
    seq.save_dir(out)
    return resends, conflicts


def _merge(parts: Sequence[Path], out: Path) -> None:
    """K parts (each a Sequences folder, users in id order) into one folder, users in id order."""
    ids = [np.load(p / "user_ids.npy") for p in parts]
    user_ids = np.concatenate(ids)
    part = np.repeat(np.arange(len(parts)), [len(u) for u in ids])
    order = np.argsort(user_ids, kind="stable")
    lengths = {
        kind: np.concatenate([np.diff(np.load(p / f"{kind}_offsets.npy")) for p in parts])[order]
        for kind in ("act", "loan")
    }
    np.save(out / "user_ids.npy", user_ids[order])
    for kind, n in lengths.items():
        np.save(out / f"{kind}_offsets.npy", offsets_from_lengths(n))
    # Runs of consecutive output users from one part: one read and write each.
    by_part = part[order]
    starts = np.flatnonzero(np.r_[True, by_part[1:] != by_part[:-1]]) if len(order) else order
    for name in (f.name for f in fields(Sequences) if f.name not in _USER_FIELDS):
        rows = lengths["act" if name in _ACT_FIELDS else "loan"]
        run_rows = np.add.reduceat(rows, starts) if len(starts) else starts
        _merge_array([p / f"{name}.npy" for p in parts], out / f"{name}.npy",
                     by_part[starts], run_rows)  # fmt: skip


def _merge_array(
    sources: Sequence[Path], target: Path, run_part: np.ndarray, run_rows: np.ndarray
) -> None:
    readers = [_NpyReader(s) for s in sources]
    try:
        dtype = functools.reduce(np.promote_types, (r.dtype for r in readers))
        tail = readers[0].shape[1:]
        shape = (sum(r.shape[0] for r in readers), *tail)
        with open(target, "wb") as f:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                      "shape": shape}  # fmt: skip
            np.lib.format.write_array_header_1_0(f, header)
            for p, n in zip(run_part.tolist(), run_rows.tolist(), strict=True):
                readers[p].copy_rows(n, f, dtype)
        for r in readers:
            if r.left:
                raise AssertionError(f"{r.path}: {r.left} rows not merged")
    finally:
        for r in readers:
            r.file.close()


class _NpyReader:
    """A C-order ``.npy`` file read front to back, rows at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "rb")  # noqa: SIM115
        version = np.lib.format.read_magic(self.file)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                       (2, 0): np.lib.format.read_array_header_2_0}[version]  # fmt: skip
        self.shape, fortran, self.dtype = read_header(self.file)
        assert not fortran
        self.row_bytes = self.dtype.itemsize * math.prod(self.shape[1:])
        self.left = self.shape[0]

    def copy_rows(self, n: int, out: BinaryIO, dtype: np.dtype) -> None:
        """Copy the next ``n`` rows to ``out`` as ``dtype`` (a wider string type, or the same)."""
        self.left -= n
        step = max(1, _COPY_BYTES // max(1, self.row_bytes))
        while n > 0:
            take = min(n, step)
            data = self.file.read(take * self.row_bytes)
            if len(data) != take * self.row_bytes:
                raise EOFError(f"{self.path}: ends before its rows")
            if dtype != self.dtype:
                data = np.frombuffer(data, self.dtype).astype(dtype).tobytes()
            out.write(data)
            n -= take
