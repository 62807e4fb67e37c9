"""The bucketed build on disk gives the in-memory build's arrays, and every consumer reads them
mapped read-only as it reads arrays in memory."""

from __future__ import annotations

import gzip
from dataclasses import fields
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch

from deepcredit.buckets import bucket_count, bucket_of
from training.benchmark.config import GeneratorConfig
from training.benchmark.generator import generate
from training.core.bucketed import build_on_disk, text_bytes
from training.core.dataset import Sequences, build_sequences, labels_within
from training.core.eventlog import load_sequences, read_events
from training.core.model import DeepCredit, ModelConfig
from training.core.postfeatures import post_features
from training.core.train import TrainConfig, predict, split


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 users' events as gzip JSON lines, with what a real log also holds: an invalid line,
    a resent event and a conflicting duplicate (an event id reused with other content)."""
    events = list(generate(GeneratorConfig(users=20, seed=7, horizon_days=300)))
    lines = [msgspec.json.encode(e) for e in events]
    lines.insert(5, b'{"not": "an event"}')
    lines.insert(40, lines[30])  # resent
    reused = msgspec.structs.replace(events[50], amount=events[50].amount + 1.0)
    lines.insert(60, msgspec.json.encode(reused))  # conflicting duplicate
    path = tmp_path_factory.mktemp("log") / "clicks.jsonl.gz"
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return path


@pytest.fixture(scope="module")
def in_memory(log: Path) -> Sequences:
    return build_sequences(read_events(log))


@pytest.fixture(scope="module")
def on_disk(log: Path, tmp_path_factory: pytest.TempPathFactory) -> Sequences:
    out = tmp_path_factory.mktemp("built") / "seq"
    # Buckets of ~100 KB: several users each, and several buckets.
    built = build_on_disk(log, out, bucket_mib=0.1)
    assert built.buckets == bucket_count(text_bytes(log), 0.1 * (1 << 20)) > 3
    assert built.rejected == 1 and built.first_rejection
    assert [p.name for p in out.parent.iterdir()] == ["seq"]  # no scratch left
    return Sequences.open(out)


def test_the_bucketed_build_is_the_in_memory_build(in_memory: Sequences, on_disk: Sequences):
    assert in_memory.users == 20
    for f in fields(Sequences):
        old, new = getattr(in_memory, f.name), getattr(on_disk, f.name)
        assert isinstance(new.base, np.memmap), f.name  # mapped, not read
        assert (new.dtype, new.shape) == (old.dtype, old.shape), f.name
        np.testing.assert_array_equal(new, old, err_msg=f.name)
    # Users of one bucket are not neighbours in the output: the merge interleaved buckets.
    buckets = [bucket_of(str(u), 6) for u in on_disk.user_ids]
    assert buckets != sorted(buckets)


def test_consumers_read_the_mapped_arrays_alike(in_memory: Sequences, on_disk: Sequences):
    users = np.array([3, 0, 7])
    np.testing.assert_array_equal(on_disk.subset(users).loan_x, in_memory.subset(users).loan_x)
    a, b = on_disk.batch(users), in_memory.batch(users)
    for name in ("loan_x", "labels", "loan_agg", "post_sub", "sub_x", "sub_gap", "sub_len"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    mid = float(np.median(in_memory.event_ts))
    np.testing.assert_array_equal(labels_within(on_disk, mid), labels_within(in_memory, mid))
    for x, y in zip(post_features(on_disk), post_features(in_memory), strict=True):
        np.testing.assert_array_equal(x, y)
    parts = split(on_disk, TrainConfig())
    np.testing.assert_array_equal(parts.test, split(in_memory, TrainConfig()).test)
    torch.manual_seed(0)
    model = DeepCredit(ModelConfig(hidden_size=4))
    for x, y in zip(predict(model, on_disk, users), predict(model, in_memory, users), strict=True):
        np.testing.assert_array_equal(x, y)


def test_load_sequences_builds_once_and_maps_the_cache(
    log: Path, in_memory: Sequences, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    _, info = load_sequences(log, progress=False, bucket_mib=0.1)
    [cache] = (tmp_path / "deepcredit" / "sequences").iterdir()
    assert cache.is_dir() and info.users == 20 and info.loan_steps == len(in_memory.loan_x)
    stamp = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    again, _ = load_sequences(log, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == stamp  # not rebuilt
    assert isinstance(again.act_x.base, np.memmap)
    np.testing.assert_array_equal(again.event_ids, in_memory.event_ids)
