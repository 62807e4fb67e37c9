"""One user's scoring state, and its compact msgpack form for recovery snapshots.

What a user costs: the step memory (open loans and three timestamps), the (h, c) pairs of the
three TLSTMs as one (6, D) float32 array, Y(i-1), the model version that produced them, and
the keys of the user's last ``RECENT_IDS`` event ids (to skip a resent event, see
``UserState.recent``). States of different model versions must never mix: after retraining
they are rebuilt.

>>> s = UserState.new("m1", hidden_size=32)
>>> len(encode_state(s))  # bytes for a user with no history, D = 32
803
>>> decode_state(encode_state(s)) == s
True
>>> key = event_key("e1")
>>> s.has_seen(key), s.remember(key), s.has_seen(key)
(False, None, True)
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import numpy as np

from scorer.steps import StepMemory

__all__ = ["KEY_BYTES", "RECENT_IDS", "UserState", "decode_state", "encode_state", "event_key"]


#: How many of a user's most recent event ids a state remembers. Resends land near the
#: original: a producer retries within its delivery timeout (seconds to two minutes), and a
#: user clicks a handful of times in that while (generated stream, 1,000 users: at most 7
#: events of one user in any 120 s, 17 in any 10 minutes). 32 covers that with room to spare
#: and costs 259 bytes per user (bin16 of 32 x 8 bytes).
RECENT_IDS = 32
#: Bytes of an event id's key: a 64-bit BLAKE2b digest, stable across processes and versions
#: (unlike Python's salted ``hash``). A new id collides with one of 32 keys with probability
#: 32 / 2**64, about 2e-18 per event: at a billion events a day, one event wrongly taken for a
#: resend in about a million years.
KEY_BYTES = 8


def event_key(event_id: str) -> bytes:
    """The 8-byte key a state remembers an event id by."""
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"),
                           digest_size=KEY_BYTES).digest()  # fmt: skip


class UserState(msgspec.Struct, eq=False, array_like=True):
    """``recent``: the keys (``event_key``) of the last ``RECENT_IDS`` distinct event ids the
    state advanced by, oldest first, concatenated (at most 256 bytes). An event whose id is
    among them is a resend and changes nothing (``scorer.model.is_repeat``): a pure function
    of the state and the event, so the live flow, a recovery replay and a rebuild
    (``scorer.rebuild``) decide alike. Training (``training.core.dataset.first_copies``) drops every
    later copy of an id ever seen; the state only drops a copy while the original is among the
    user's last ``RECENT_IDS`` advanced events, so a copy sent later than that is advanced
    again (see ``RECENT_IDS`` for why that does not happen in practice). The field is last and
    defaults to empty, so snapshots written before it existed still decode (with no memory of
    recent ids)."""

    model_version: str
    memory: StepMemory
    hc: np.ndarray  # (6, D) float32 rows: activity h, c; repay h, c; state h, c
    y_prev: np.ndarray  # (2,) float32: raw (uncalibrated) P(delinquent), P(default), last post
    recent: bytes = b""  # keys of the last RECENT_IDS advanced event ids, oldest first

    @classmethod
    def new(cls, model_version: str, hidden_size: int) -> UserState:
        return cls(model_version, StepMemory(), np.zeros((6, hidden_size), np.float32),
                   np.zeros(2, np.float32))  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UserState)
            and self.model_version == other.model_version
            and self.memory == other.memory
            and np.array_equal(self.hc, other.hc)
            and np.array_equal(self.y_prev, other.y_prev)
            and self.recent == other.recent
        )

    def copy(self) -> UserState:
        """An independent copy: advancing it leaves this state as it is (the live flow keeps
        one to undo an event whose step failed). The memory goes through its msgpack form, so
        every field of it is copied, however the ledger grows."""
        memory = _memory_decoder.decode(_memory_encoder.encode(self.memory))
        return UserState(self.model_version, memory, self.hc.copy(), self.y_prev.copy(),
                         self.recent)  # fmt: skip

    def has_seen(self, key: bytes) -> bool:
        """Whether ``key`` (an ``event_key``) is one of the remembered keys."""
        recent = self.recent
        i = recent.find(key)
        while i > 0 and i % KEY_BYTES:  # a match across two keys' bytes: look further
            i = recent.find(key, i + 1)
        return i >= 0

    def remember(self, key: bytes) -> None:
        """Add ``key`` as the newest, forgetting the oldest beyond ``RECENT_IDS``."""
        self.recent = (self.recent + key)[-RECENT_IDS * KEY_BYTES :]


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        # float32 row-major bytes plus the shape: exact, and a quarter of a list of floats.
        return (list(obj.shape), np.ascontiguousarray(obj, np.float32).tobytes())
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


def _dec_hook(kind: type, obj: Any) -> Any:
    if kind is np.ndarray:
        shape, data = obj
        return np.frombuffer(data, dtype=np.float32).reshape(shape).copy()
    raise NotImplementedError(f"cannot decode {kind}")


_encoder = msgspec.msgpack.Encoder(enc_hook=_enc_hook)
_memory_encoder = msgspec.msgpack.Encoder()
_memory_decoder = msgspec.msgpack.Decoder(StepMemory)
_decoder = msgspec.msgpack.Decoder(UserState, dec_hook=_dec_hook)


def encode_state(state: UserState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> UserState:
    return _decoder.decode(data)
