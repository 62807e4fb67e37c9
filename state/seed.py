"""The cut-over seed: every user's state under a new model at a known offset of the clicks topic.

``deepcredit cutover`` writes it (``state/cutover.py``); ``deepcredit serve --seed DIR``
starts from it: each clicks partition at its offset, each user not in the recovery store
from their seeded state. One msgpack file, written aside and renamed, so a reader sees a whole
seed or none.

>>> seed = Seed(model_version="dc-b", topic="clicks", offsets={0: 12}, states={},
...             created_at=0.0)
>>> seed.problem("dc-a", "clicks")
"the seed was made for model dc-b, this flow serves dc-a: run 'deepcredit cutover --model \
dc-a' for it"
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from deepcredit.atomic import write_atomic
from scorer.user_state import StateDecodeError, decode_state

__all__ = ["SEED_FILE", "Seed", "SeedError", "read_seed", "write_seed"]

SEED_FILE = "seed.msgpack"


class SeedError(ValueError):
    """No usable seed in the folder, or a seed made for another model or topic."""


class Seed(msgspec.Struct, frozen=True, kw_only=True):
    """Every user's state after the clicks before ``offsets`` (per partition), under one model."""

    model_version: str
    topic: str  # the clicks topic the offsets belong to
    offsets: dict[int, int]  # partition -> first offset not in the states (the live flow's start)
    states: dict[str, bytes]  # user id -> scorer.user_state.encode_state bytes
    created_at: float  # wall clock, Unix s

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


def write_seed(folder: Path, seed: Seed) -> Path:
    """``folder``/seed.msgpack, written aside, fsynced and renamed over any older one."""
    return write_atomic(folder / SEED_FILE, msgspec.msgpack.encode(seed), durable=True)


def read_seed(folder: Path) -> Seed:
    """The seed in ``folder``, every state in it checked: a flow starts from it whole or not
    at all, rather than stop at the first event of a user whose state is broken.

    Raises SeedError when there is no seed, or it is not one: bytes that do not decode (nested
    too deep included), a negative partition or offset, or a state that is not a user state
    (``decode_state``), of another model version than the seed's, or of another hidden size
    than the others. Decoding every state costs a few microseconds per user.
    """
    path = Path(folder) / SEED_FILE
    try:
        seed = _decoder.decode(path.read_bytes())
    except FileNotFoundError:
        raise SeedError(f"no cut-over seed in {folder} (no {SEED_FILE}): run "
                        "'deepcredit cutover --out DIR' first") from None  # fmt: skip
    except msgspec.DecodeError as exc:
        raise SeedError(f"{path} is not a cut-over seed: {exc}") from None
    except RecursionError:  # msgspec recurses once per level of an ignored field
        raise SeedError(f"{path} is not a cut-over seed: nested too deep to decode") from None
    problem = _problem(seed)
    if problem is not None:
        raise SeedError(f"{path} is not a usable cut-over seed: {problem}")
    return seed


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
