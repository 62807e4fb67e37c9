"""The cut-over seed file: round trip, and a flow refuses a seed made for another model or topic
with a message that says what to do."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from dataflow.flow import load_seed
from deploy.cli import main
from scorer.artifact import load_scorer
from scorer.user_state import UserState, decode_state, encode_state
from state.seed import SEED_FILE, Seed, SeedError, read_seed, write_seed


def a_seed(version: str, topic: str = "clicks") -> Seed:
    states = {"u1": encode_state(UserState.new(version, 8))}
    return Seed(model_version=version, topic=topic, offsets={0: 12, 1: 0}, states=states,
                created_at=1.0)  # fmt: skip


def test_a_seed_reads_back_as_written_and_leaves_no_partial_file(tmp_path: Path) -> None:
    seed = a_seed("dc-b")
    assert write_seed(tmp_path / "s", seed) == tmp_path / "s" / SEED_FILE
    back = read_seed(tmp_path / "s")
    assert back == seed and decode_state(back.states["u1"]) == UserState.new("dc-b", 8)
    assert [p.name for p in (tmp_path / "s").iterdir()] == [SEED_FILE]


def test_no_seed_or_a_broken_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match=r"no cut-over seed in .*'deepcredit cutover"):
        read_seed(tmp_path)
    (tmp_path / SEED_FILE).write_bytes(b"\x93not a seed")
    with pytest.raises(SeedError, match="is not a cut-over seed"):
        read_seed(tmp_path)


def test_a_flow_refuses_a_seed_of_another_model_or_topic(tmp_path: Path, model_dir: Path) -> None:
    w = load_scorer(model_dir)
    write_seed(tmp_path / "other-model", a_seed("dc-other"))
    write_seed(tmp_path / "other-topic", a_seed(w.version, "t1-clicks"))
    with pytest.raises(SeedError, match=f"made for model dc-other, this flow serves {w.version}"):
        load_seed(tmp_path / "other-model", w, "clicks")
    with pytest.raises(SeedError, match="offsets of topic 't1-clicks', this flow reads 'clicks'"):
        load_seed(tmp_path / "other-topic", w, "clicks")
    with pytest.raises(SeedError, match="needs a model"):
        load_seed(tmp_path / "other-topic", None, "t1-clicks")
    assert load_seed(tmp_path / "other-topic", w, "t1-clicks").offsets == {0: 12, 1: 0}


def test_serve_with_a_seed_of_another_model_exits_with_the_reason(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_seed(tmp_path / "seed", a_seed("dc-other"))
    args = ["serve", "--model", str(model_dir), "--seed", str(tmp_path / "seed"),
            "--metrics-port", "0"]  # fmt: skip
    assert main(args) == 1  # before anything starts: no broker needed
    err = capsys.readouterr().err
    assert "made for model dc-other" in err and "run 'deepcredit cutover --model" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"offsets": {0: -1}}, "partition 0 at offset -1: both must be >= 0"),
        ({"offsets": {-1: 5}}, "partition -1 at offset 5"),
        ({"states": {"u1": b"\x95garbage"}}, "the state of user 'u1': not a user state"),
        ({"states": {"u1": encode_state(UserState.new("dc-a", 8))}},
         "the state of user 'u1' is of model dc-a, the seed of dc-b"),
        ({"states": {"u1": encode_state(UserState.new("dc-b", 8)),
                     "u2": encode_state(UserState.new("dc-b", 4))}},
         "the state of user 'u2' has hidden size 4, not 8"),
    ],
)  # fmt: skip
def test_a_seed_with_a_state_or_offset_no_flow_can_use_is_refused_whole(
    tmp_path: Path, change: dict, says: str
) -> None:
    # Refused at the start, not at the first event of the user whose state is broken.
    write_seed(tmp_path, msgspec.structs.replace(a_seed("dc-b"), **change))
    with pytest.raises(SeedError, match=f"is not a usable cut-over seed: {says}"):
        read_seed(tmp_path)


def test_a_seed_nested_too_deep_is_a_seed_error(tmp_path: Path) -> None:
    data = msgspec.msgpack.encode(a_seed("dc-b"))
    # One more field than a Seed has (a fixmap one larger), nested past the recursion limit.
    (tmp_path / SEED_FILE).write_bytes(bytes([data[0] + 1]) + data[1:] + b"\xa1x"
                                       + b"\x91" * 5000 + b"\xc0")  # fmt: skip
    with pytest.raises(SeedError, match="nested too deep to decode"):
        read_seed(tmp_path)


def a_part(
    version: str, offsets: dict[int, int], users: list[str], topic: str = "clicks",
    partitions: list[int] | None = None, prepared_at: float = 1.0, finished_at: float = 2.0,
) -> Seed:  # fmt: skip
    states = {u: encode_state(UserState.new(version, 8)) for u in users}
    return Seed(model_version=version, topic=topic, offsets=offsets, states=states,
                created_at=finished_at, prepared_at=prepared_at,
                topic_partitions=partitions or [0, 1, 2])  # fmt: skip


def test_the_parts_of_a_cutover_split_by_partition_read_as_one_seed(tmp_path: Path) -> None:
    a = a_part("dc-b", {0: 12, 2: 7}, ["u1", "u3"])
    b = a_part("dc-b", {1: 5}, ["u2"], prepared_at=1.5, finished_at=3.0)
    assert write_seed(tmp_path, a, (2, 0)).name == "seed-partitions-0-2.msgpack"
    with pytest.raises(SeedError, match=r"no part for partitions \[1\] of clicks"):
        read_seed(tmp_path)  # partition 1 not finished yet: it would be read from its start
    write_seed(tmp_path, b, (1,))
    seed = read_seed(tmp_path)
    assert seed.offsets == {0: 12, 1: 5, 2: 7}
    assert seed.states == a.states | b.states and seed.created_at == 3.0


@pytest.mark.parametrize("other", [
    a_part("dc-c", {1: 5}, ["u2"]),  # another model's
    a_part("dc-b", {1: 5}, ["u2"], topic="t1-clicks"),  # another topic's
    a_part("dc-b", {2: 5}, ["u2"]),  # a partition twice
    a_part("dc-b", {1: 5}, ["u1"]),  # a user twice
    a_part("dc-b", {1: 5}, ["u2"], partitions=[0, 1, 2, 3]),  # the topic had other partitions
    a_part("dc-b", {1: 5}, ["u2"], prepared_at=0.1, finished_at=0.5),  # stale: finished early
])  # fmt: skip
def test_parts_that_do_not_make_one_cutover_are_refused(tmp_path: Path, other: Seed) -> None:
    write_seed(tmp_path, a_part("dc-b", {0: 12, 2: 7}, ["u1", "u3"]), (0, 2))
    write_seed(tmp_path, other, (1,))
    with pytest.raises(SeedError, match="are not parts of one cut-over"):
        read_seed(tmp_path)


def test_the_refusal_names_the_two_parts_that_clash(tmp_path: Path) -> None:
    write_seed(tmp_path, a_part("dc-b", {0: 12}, ["u1"]), (0,))
    write_seed(tmp_path, a_part("dc-b", {1: 5}, ["u2"]), (1,))
    write_seed(tmp_path, a_part("dc-b", {2: 5, 1: 3}, ["u3"]), (1, 2))
    with pytest.raises(SeedError, match=r"both hold partitions \[1\]") as refused:
        read_seed(tmp_path)
    named = str(refused.value).split(" in ")[0]
    assert set(named.split(" and ")) == {"seed-partitions-1-2.msgpack", "seed-partitions-1.msgpack"}


def test_a_whole_seed_beside_parts_of_another_cutover_is_refused(tmp_path: Path) -> None:
    write_seed(tmp_path, a_seed("dc-b"))
    write_seed(tmp_path, a_part("dc-b", {1: 5}, ["u2"]), (1,))
    with pytest.raises(SeedError, match=r"both hold partitions \[1\].*remove the files"):
        read_seed(tmp_path)
