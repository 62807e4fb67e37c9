"""The cut-over seed: every user's state under a new model at a known offset of the clicks topic.

``deepcredit cutover`` writes it (``state/cutover.py``); ``deepcredit serve --seed DIR``
starts from it: each clicks partition at its offset, each user not in the recovery store
from their seeded state. One msgpack file, written aside and renamed, so a reader sees a whole
seed or none.

A cut-over split by clicks partition (``cutover --partitions``, one process per group of
partitions, each rebuilding the users of its own: a user's clicks are keyed to one partition)
writes one file per part into the same folder (``seed-partitions-0-2.msgpack``). Each part
records every partition the clicks topic had (``topic_partitions``) and when its cut-over was
prepared (``prepared_at``). ``read_seed`` reads every part and merges them, refusing:

- parts of other models or topics, or two parts that share a partition or a user;
- parts that do not cover every partition their topic had (a part not finished yet): the flow
  would read a missing partition from its start and score its old posts again;
- a part finished before another part was prepared: a stale file of an earlier cut-over (the
  parts of one cut-over are all prepared before the old flow stops, and finished after).

>>> seed = Seed(model_version="dc-b", topic="clicks", offsets={0: 12}, states={},
...             created_at=0.0)
>>> seed.problem("dc-a", "clicks")
"the seed was made for model dc-b, this flow serves dc-a: run 'deepcredit cutover --model \
dc-a' for it"
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from deepcredit.atomic import write_atomic
from scorer.user_state import StateDecodeError, decode_state

__all__ = [
    "SEED_FILE",
    "Seed",
    "SeedError",
    "part_file",
    "partitions_option",
    "read_seed",
    "write_seed",
]

SEED_FILE = "seed.msgpack"


def partitions_option(partitions: Sequence[int]) -> str:
    """The ``--partitions`` option of ``deepcredit cutover`` for ``partitions``, with a leading
    space, for the commands a message tells the operator to run ("" for every partition).

    >>> partitions_option([0, 2]), partitions_option([])
    (' --partitions 0 2', '')
    """
    return f" --partitions {' '.join(map(str, partitions))}" if partitions else ""


def part_file(name: str, partitions: Sequence[int]) -> str:
    """The file of a cut-over's part for ``partitions`` (all of them when empty): ``name``
    itself, or with the partitions before its suffix.

    >>> part_file("seed.msgpack", ()), part_file("seed.msgpack", (2, 0))
    ('seed.msgpack', 'seed-partitions-0-2.msgpack')
    """
    if not partitions:
        return name
    stem, dot, suffix = name.partition(".")
    named = "-".join(map(str, sorted(set(partitions))))  # ("*",): the glob of every part's
    return f"{stem}-partitions-{named}{dot}{suffix}"


class SeedError(ValueError):
    """No usable seed in the folder, or a seed made for another model or topic."""


class Seed(msgspec.Struct, frozen=True, kw_only=True):
    """Every user's state after the clicks before ``offsets`` (per partition), under one model."""

    model_version: str
    topic: str  # the clicks topic the offsets belong to
    offsets: dict[int, int]  # partition -> first offset not in the states (the live flow's start)
    states: dict[str, bytes]  # user id -> scorer.user_state.encode_state bytes
    created_at: float  # wall clock, Unix s
    # A part of a cut-over split by partition: every partition of the topic, and when the part
    # was prepared (wall clock, Unix s). Empty and 0 in a seed of every partition.
    topic_partitions: list[int] = []
    prepared_at: float = 0.0

    def problem(self, model_version: str, topic: str) -> str | None:
        """Why a flow serving ``model_version`` on ``topic`` must not start from this seed."""
        if self.model_version != model_version:
            return (f"the seed was made for model {self.model_version}, this flow serves "
                    f"{model_version}: run 'deepcredit cutover --model {model_version}' "
                    "for it")  # fmt: skip
        if self.topic != topic:
            return f"the seed holds offsets of topic {self.topic!r}, this flow reads {topic!r}"
        return None


_decoder = msgspec.msgpack.Decoder(Seed)


def write_seed(folder: Path, seed: Seed, partitions: Sequence[int] = ()) -> Path:
    """``folder``/seed.msgpack (a part's file for ``partitions``, ``part_file``), written
    aside, fsynced and renamed over any older one."""
    name = part_file(SEED_FILE, partitions)
    return write_atomic(folder / name, msgspec.msgpack.encode(seed), durable=True)


def read_seed(folder: Path) -> Seed:
    """The seed in ``folder``, its parts merged (the module), every state in it checked: a flow
    starts from it whole or not at all, rather than stop at the first event of a user whose
    state is broken.

    Raises SeedError when there is no seed, or it is not one: bytes that do not decode (nested
    too deep included), a negative partition or offset, or a state that is not a user state
    (``decode_state``), of another model version than the seed's, or of another hidden size
    than the others; or parts that do not make one seed. Decoding every state costs a few
    microseconds per user.
    """
    paths = sorted(Path(folder).glob(part_file(SEED_FILE, ("*",))))  # type: ignore[arg-type]
    whole = Path(folder) / SEED_FILE
    if whole.is_file() or not paths:
        paths = [whole, *paths]
    parts = [(path, _read_one(path)) for path in paths]
    for i, (path, seed) in enumerate(parts):
        for other, earlier in parts[:i]:
            problem = _clash(earlier, seed)
            if problem is not None:
                raise SeedError(f"{path.name} and {other.name} in {folder} are not parts of "
                                f"one cut-over: {problem}; remove the files of the older "
                                "cut-over")  # fmt: skip
    merged = parts[0][1]
    for _, seed in parts[1:]:
        merged = msgspec.structs.replace(
            merged, offsets=merged.offsets | seed.offsets, states=merged.states | seed.states,
            created_at=max(merged.created_at, seed.created_at),
            prepared_at=max(merged.prepared_at, seed.prepared_at),
        )  # fmt: skip
    missing = sorted(set(merged.topic_partitions) - set(merged.offsets))
    if missing:
        raise SeedError(f"the cut-over seed in {folder} has no part for partitions {missing} "
                        f"of {merged.topic} (it had {merged.topic_partitions}): finish the "
                        "cut-over of those partitions into the same folder ('deepcredit "
                        f"cutover --finish{partitions_option(missing)} --out {folder} ...') "
                        "before starting the new flow")  # fmt: skip
    return merged


def _read_one(path: Path) -> Seed:
    try:
        seed = _decoder.decode(path.read_bytes())
    except FileNotFoundError:
        raise SeedError(f"no cut-over seed in {path.parent} (no {SEED_FILE}): run "
                        "'deepcredit cutover --out DIR' first") from None  # fmt: skip
    except msgspec.DecodeError as exc:
        raise SeedError(f"{path} is not a cut-over seed: {exc}") from None
    except RecursionError:  # msgspec recurses once per level of an ignored field
        raise SeedError(f"{path} is not a cut-over seed: nested too deep to decode") from None
    problem = _problem(seed)
    if problem is not None:
        raise SeedError(f"{path} is not a usable cut-over seed: {problem}")
    return seed


def _clash(a: Seed, b: Seed) -> str | None:
    """Why the seeds ``a`` and ``b`` are not parts of one cut-over; None when they are."""
    if (a.model_version, a.topic) != (b.model_version, b.topic):
        return (f"one is of model {b.model_version} on {b.topic!r}, the other of "
                f"{a.model_version} on {a.topic!r}")  # fmt: skip
    shared = sorted(set(a.offsets) & set(b.offsets))
    if shared:
        return f"both hold partitions {shared}"
    users = set(a.states) & set(b.states)
    if users:
        return f"both hold users such as {min(users)!r} ({len(users)} in all)"
    if a.topic_partitions != b.topic_partitions:
        return (f"one was made when the topic had partitions {b.topic_partitions}, the other "
                f"{a.topic_partitions}")  # fmt: skip
    for older, newer in ((a, b), (b, a)):
        if older.created_at < newer.prepared_at:
            return (f"the part of partitions {sorted(older.offsets)} was finished before the "
                    f"part of partitions {sorted(newer.offsets)} was prepared (a stale part "
                    "of an earlier cut-over)")  # fmt: skip
    return None


def _problem(seed: Seed) -> str | None:
    """Why ``seed`` cannot seed a flow, whatever its model and topic; None when it can."""
    for partition, offset in seed.offsets.items():
        if partition < 0 or offset < 0:  # a negative offset means "the end" to Kafka
            return f"partition {partition} at offset {offset}: both must be >= 0"
    hidden: int | None = None
    for user, blob in seed.states.items():
        try:
            state = decode_state(blob)
        except StateDecodeError as exc:
            return f"the state of user {user!r}: {exc}"
        if state.model_version != seed.model_version:
            return (f"the state of user {user!r} is of model {state.model_version}, the seed "
                    f"of {seed.model_version}")  # fmt: skip
        if hidden is not None and state.hc.shape[1] != hidden:
            return f"the state of user {user!r} has hidden size {state.hc.shape[1]}, not {hidden}"
        hidden = state.hc.shape[1]
    return None
