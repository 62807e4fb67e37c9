"""An event log on disk: its fingerprint, its events, and its training sequences (cached).

Building sequences from ten million lines takes minutes; the result is cached by the file's
SHA-256 under ``$XDG_CACHE_HOME/deepcredit/sequences`` so a second training run starts at once
and can never pick up sequences of a different file. It is built on disk, bucket by bucket
(``training.core.bucketed``: memory bounded whatever the log's number of users), as a folder of
``.npy`` files that training maps read-only (``Sequences.open``).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from deepcredit.codec import decode_click
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines
from deepcredit.records import DeadLetter
from scorer.card import DataInfo
from training.core.bucketed import DEFAULT_BUCKET_MIB, build_on_disk
from training.core.dataset import Sequences

__all__ = ["fingerprint", "load_sequences", "read_events"]

log = logging.getLogger(__name__)

#: Bump when the sequence layout or the features change, so stale caches are not read.
SEQUENCES_FORMAT = "v4"


def fingerprint(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_events(path: Path, errors: list[DeadLetter] | None = None) -> Iterator[ClickEvent]:
    """Valid events of a JSON-lines log; invalid lines are skipped and collected in ``errors``."""
    for line in read_lines(str(path)):
        result = decode_click(line)
        if isinstance(result, ClickEvent):
            yield result
        elif errors is not None:
            errors.append(result)


def load_sequences(
    path: Path, *, progress: bool = True, bucket_mib: float = DEFAULT_BUCKET_MIB
) -> tuple[Sequences, DataInfo]:
    """Training sequences of an event log, mapped read-only from the cache (built there first
    when this exact file was not seen, ``bucket_mib`` MiB of the log at a time).
    Raises FileNotFoundError for a missing log."""
    if not path.is_file():
        raise FileNotFoundError(f"no such events file: {path}")
    sha = fingerprint(path)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache = Path(base) / "deepcredit" / "sequences" / f"{sha}-{SEQUENCES_FORMAT}"
    if not cache.is_dir():
        built = build_on_disk(path, cache, bucket_mib=bucket_mib, progress=progress)
        if built.rejected:
            log.warning("%d lines of %s are not valid events and were skipped (first: %s)",
                        built.rejected, path, built.first_rejection)  # fmt: skip
    seq = Sequences.open(cache)
    info = DataInfo(str(path), sha, seq.users, len(seq.loan_x), len(seq.act_x))
    return seq, info
