"""The prepare's memory-bounded parts without a broker: the history spilled to user buckets and
read back as the flow decoded it, and the prepared file written in parts, read as one."""

from __future__ import annotations

import io
import os
import resource
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest

from deepcredit.buckets import BucketFiles, bucket_of
from deepcredit.codec import decode_click
from deepcredit.events import ClickEvent
from deepcredit.settings import KafkaSettings, Topics
from state import cutover
from state.cutover import (
    PREPARED_FILE,
    CutoverConfig,
    CutoverError,
    Prepared,
    PreparedPart,
    finish_cutover,
    prepare_cutover,
    read_prepared,
)


def test_the_spilled_history_gives_each_user_their_clicks_in_order(
    clicks: list[ClickEvent], tmp_path: Path
) -> None:
    expected: dict[str, list[ClickEvent]] = defaultdict(list)
    at: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for i, e in enumerate(clicks):
        expected[e.user_id].append(e)
        at[e.user_id].append((i % 3, i))
    values = [msgspec.json.encode(e) for e in clicks]
    # A message spread over lines, and one that is not a click: one click, one dead letter.
    values[0] = msgspec.json.format(values[0], indent=2)
    values.append(b'{"event_id": "x"}')
    assert values[0].count(b"\n") > 3 and decode_click(values[0]) == clicks[0]
    with BucketFiles(tmp_path / "spill", 7) as files:
        history = cutover.SpilledHistory(spill=files)
        for i, v in enumerate(values):
            history.add(v, i % 3, i)  # as if from partition i % 3, offset i
        files.close()
        got = [history.users(b) for b in range(7)]
    assert not (tmp_path / "spill").exists()  # removed with the context
    assert (history.events, history.dead_letters) == (len(clicks), 1)
    for b, (users, where) in enumerate(got):
        assert all(bucket_of(u, 7) == b for u in users) and set(where) == set(users)
    merged = {u: events for users, _ in got for u, events in users.items()}
    assert merged == expected and sum(len(u) for u, _ in got) == len(expected) > 7
    assert {u: places for _, where in got for u, places in where.items()} == at


def a_header(users: int) -> Prepared:
    return Prepared(model_version="m", topic="clicks", offsets={0: 3}, states={}, posts=[],
                    probabilities={}, events=3, from_archive=0, dead_letters=0, rebuild_s=0.1,
                    prepare_s=0.2, created_at=1.0, users=users)  # fmt: skip


def a_part(clicks: list[ClickEvent], user: str) -> PreparedPart:
    posts = [e for e in clicks if e.user_id == user and e.activity.value == "post"]
    return PreparedPart(states={user: b"state of " + user.encode()}, posts=posts,
                        probabilities={e.event_id: (0.1, 0.01) for e in posts},
                        history={e.event_id: (2, 1.5) for e in posts},
                        reasons={e.event_id: ["R1"] for e in posts})  # fmt: skip


def test_the_prepared_file_is_read_as_one_prepared_cutover(
    clicks: list[ClickEvent], tmp_path: Path
) -> None:
    users = sorted({e.user_id for e in clicks})[:3]
    parts = [a_part(clicks, u) for u in users]
    f = io.BytesIO()
    f.write(cutover._PREPARED_MAGIC)
    for part in parts:
        cutover._write_frame(f, cutover._PART, part)
    cutover._write_frame(f, cutover._HEADER, a_header(len(users)))
    whole = f.getvalue()
    (tmp_path / PREPARED_FILE).write_bytes(whole)
    got = read_prepared(tmp_path)
    assert got.users == len(got.states) == 3 and got.offsets == {0: 3}
    assert got.states == {u: b"state of " + u.encode() for u in users}
    assert got.posts == [e for p in parts for e in p.posts] and got.posts
    assert set(got.probabilities) == set(got.history) == set(got.reasons) == {
        e.event_id for e in got.posts
    }
    # A prepared file of one object, as written before parts, reads as it did.
    (tmp_path / PREPARED_FILE).write_bytes(msgspec.msgpack.encode(got))
    assert read_prepared(tmp_path) == got
    # Cut short anywhere (a torn copy), or a frame's length damaged: refused with what to do,
    # never a partial cut-over (nor a read of the length it claims).
    damaged = whole[: len(cutover._PREPARED_MAGIC) + 1] + (2**62).to_bytes(8, "little")
    for data in (*(whole[:end] for end in (len(cutover._PREPARED_MAGIC) + 5, len(whole) - 10,
                                            len(whole) - 1)),
                 damaged + whole[len(damaged):]):  # fmt: skip
        (tmp_path / PREPARED_FILE).write_bytes(data)
        with pytest.raises(CutoverError, match="prepare again"):
            read_prepared(tmp_path)


def test_the_figures_prepare_returns_are_refused_by_the_finish(tmp_path: Path) -> None:
    cfg = CutoverConfig(KafkaSettings(), Topics.from_prefix(""), tmp_path / "model", tmp_path)
    with pytest.raises(ValueError, match="without its states: finish from its file"):
        finish_cutover(cfg, a_header(users=5))


def test_one_prepare_of_a_part_at_a_time_and_what_a_killed_one_left_is_cleared(
    model_dir: Path, tmp_path: Path
) -> None:
    cfg = CutoverConfig(KafkaSettings(), Topics.from_prefix(""), model_dir, tmp_path / "out")
    with cutover._prepare_lock(cfg) as spill:
        with pytest.raises(CutoverError, match="another cut-over is preparing into"):
            prepare_cutover(cfg)  # refused before it reads anything
        (spill / "clicks").mkdir(parents=True)  # as a prepare killed mid-way leaves them
        (cfg.out / f".{PREPARED_FILE}.0a1b2c3d.partial").write_bytes(b"half")
    assert not spill.exists()  # removed at the end
    (spill / "clicks").mkdir(parents=True)
    (cfg.out / f".{PREPARED_FILE}.0a1b2c3d.partial").write_bytes(b"half")
    with cutover._prepare_lock(cfg):
        assert sorted(p.name for p in cfg.out.iterdir()) == ["prepare.lock"]
    other = CutoverConfig(KafkaSettings(), Topics.from_prefix(""), model_dir, cfg.out,
                          partitions=(1,))  # fmt: skip
    with cutover._prepare_lock(cfg), cutover._prepare_lock(other) as part_spill:
        assert part_spill != spill  # another part prepares beside it


def test_the_buckets_fit_under_a_low_limit_of_open_files(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1024:
        pytest.skip(f"hard limit of open files {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    try:
        with BucketFiles(tmp_path / "a", 300) as a:
            a.close()
            with BucketFiles(tmp_path / "b", 300) as b:
                b.write("u", b"x")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
