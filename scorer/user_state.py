"""One user's scoring state, and its compact msgpack form for recovery snapshots.

What a user costs: the step memory (open loans, held loan events, three timestamps, and the
count and first time of its events), the (h, c) pairs of the three TLSTMs as one (6, D)
float32 array, Y(i-1), the model version that produced them, and the keys and content
fingerprints of the user's last ``RECENT_IDS`` event ids (to skip a resent event and to refuse
a conflicting one, see ``UserState.recent``). States of different model versions must never
mix: after retraining they are rebuilt.

>>> s = UserState.new("m1", hidden_size=32)
>>> len(encode_state(s))  # bytes for a user with no history, D = 32
1016
>>> decode_state(encode_state(s)) == s
True
>>> key, fingerprint = event_key("e1"), b"abcd"
>>> s.seen(key, fingerprint), s.remember(key, fingerprint), s.seen(key, fingerprint)
(<Seen.NEW: 0>, None, <Seen.RESEND: 1>)
>>> s.seen(key, b"wxyz")  # the same id with other content
<Seen.CONFLICT: 2>
"""

from __future__ import annotations

import enum
import hashlib
from typing import Any, NamedTuple

import msgspec
import numpy as np

from deepcredit.events import ClickEvent
from scorer.steps import StepMemory

__all__ = [
    "FINGERPRINT_BYTES",
    "KEY_BYTES",
    "RECENT_IDS",
    "FrozenState",
    "Seen",
    "StateDecodeError",
    "UserState",
    "decode_state",
    "encode_state",
    "event_fingerprint",
    "event_key",
]


#: How many of a user's most recent event ids a state remembers. Resends land near the
#: original: a producer retries within its delivery timeout (seconds to two minutes), and a
#: user clicks a handful of times in that while (generated stream, 1,000 users: at most 7
#: events of one user in any 120 s, 17 in any 10 minutes). 32 covers that with room to spare
#: and costs 259 bytes per user for the keys (bin16 of 32 x 8 bytes) and 130 for their
#: fingerprints (bin8 of 32 x 4 bytes).
RECENT_IDS = 32
#: Bytes of an event id's key: a 64-bit BLAKE2b digest, stable across processes and versions
#: (unlike Python's salted ``hash``). A new id collides with one of 32 keys with probability
#: 32 / 2**64, about 2e-18 per event: at a billion events a day, one event wrongly taken for a
#: resend in about a million years.
KEY_BYTES = 8
#: Bytes of an event's content fingerprint (``event_fingerprint``). It only has to tell a
#: resend from other content under the same id, which is rare itself: a conflicting event is
#: taken for a resend with probability 2**-32.
FINGERPRINT_BYTES = 4

_content_encoder = msgspec.msgpack.Encoder()


def event_key(event_id: str) -> bytes:
    """The 8-byte key a state remembers an event id by."""
    return hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"),
                           digest_size=KEY_BYTES).digest()  # fmt: skip


def event_fingerprint(event: ClickEvent) -> bytes:
    """The 4-byte BLAKE2b fingerprint of an event's content: ts, activity, amount, loan_id,
    rate and term_days, as decoded (so a resend re-serialised differently, ``100`` for
    ``100.0`` or other key order, fingerprints alike). The ids are not content: the event id is
    what the fingerprint is compared under, and a state belongs to one user."""
    rate = None if event.rate is None else float(event.rate)
    content = (float(event.ts), event.activity.value, float(event.amount), event.loan_id, rate,
               event.term_days)  # fmt: skip
    return hashlib.blake2b(_content_encoder.encode(content),
                           digest_size=FINGERPRINT_BYTES).digest()  # fmt: skip


class Seen(enum.IntEnum):
    """What a state makes of an event id (``UserState.seen``)."""

    NEW = 0  # not among the remembered ids: the event advances the state
    RESEND = 1  # remembered, with the same content (or with none remembered): skipped
    CONFLICT = 2  # remembered, with other content: the id was reused; skipped and reported


class FrozenState(NamedTuple):
    """A ``UserState`` as ``UserState.frozen`` took it: its fields, the memory as msgpack."""

    model_version: str
    memory: bytes
    hc: np.ndarray
    y_prev: np.ndarray
    recent: bytes
    prints: bytes

    def thaw(self) -> UserState:
        """A new, independent state equal to the one frozen (each call makes another)."""
        return UserState(self.model_version, _memory_decoder.decode(self.memory), self.hc.copy(),
                         self.y_prev.copy(), self.recent, self.prints)  # fmt: skip


class UserState(msgspec.Struct, eq=False, array_like=True):
    """``recent``: the keys (``event_key``) of the last ``RECENT_IDS`` distinct event ids the
    state advanced by, oldest first, concatenated (at most 256 bytes); ``prints``: the content
    fingerprints (``event_fingerprint``) of those events, in the same order, aligned at the
    newest end (at most 128 bytes).

    An event whose id is among them is not advanced by (``scorer.model.is_repeat``): with the
    same fingerprint it is a resend (``Seen.RESEND``), with another a conflicting duplicate
    (``Seen.CONFLICT``: an id reused for other content; the live flow dead-letters it). This is
    a pure function of the state and the event, so the live flow, a recovery replay and a
    rebuild (``scorer.rebuild``) decide alike. Training (``training.core.dataset.first_copies``)
    keeps the first copy of every id and counts the later ones alike; the state only knows an
    id while the original is among the user's last ``RECENT_IDS`` advanced events, so a copy
    sent later than that is advanced again (see ``RECENT_IDS`` for why that does not happen in
    practice).

    Both fields are last and default to empty, so snapshots written before them still decode:
    with no ids remembered, or with ids but no fingerprints. An id remembered without a
    fingerprint counts as a resend whatever the content (the rule before fingerprints)."""

    model_version: str
    memory: StepMemory
    hc: np.ndarray  # (6, D) float32 rows: activity h, c; repay h, c; state h, c
    y_prev: np.ndarray  # (2,) float32: raw (uncalibrated) P(delinquent), P(default), last post
    recent: bytes = b""  # keys of the last RECENT_IDS advanced event ids, oldest first
    prints: bytes = b""  # their content fingerprints, aligned with the newest keys

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
            and self.prints == other.prints
        )

    def copy(self) -> UserState:
        """An independent copy: advancing it leaves this state as it is (the live flow keeps
        one to undo an event whose step failed). The memory goes through its msgpack form, so
        every field of it is copied, however the ledger grows."""
        memory = _memory_decoder.decode(_memory_encoder.encode(self.memory))
        return UserState(self.model_version, memory, self.hc.copy(), self.y_prev.copy(),
                         self.recent, self.prints)  # fmt: skip

    def frozen(self) -> FrozenState:
        """This state as it is now, given back by ``FrozenState.thaw``: ``copy`` at about a
        third of its cost (the memory is encoded now and decoded only at a thaw), for a copy
        that is rarely used (the live flow keeps one per batch to undo a failed event)."""
        return FrozenState(self.model_version, _memory_encoder.encode(self.memory),
                           self.hc.copy(), self.y_prev.copy(), self.recent,
                           self.prints)  # fmt: skip

    def seen(self, key: bytes, fingerprint: bytes) -> Seen:
        """What an event with id key ``key`` (``event_key``) and content ``fingerprint``
        (``event_fingerprint``) is to this state."""
        index = self._index(key)
        if index < 0:
            return Seen.NEW
        known = self._print_at(index)
        return Seen.RESEND if known is None or known == fingerprint else Seen.CONFLICT

    def fingerprint_of(self, key: bytes) -> bytes | None:
        """The fingerprint remembered with ``key``; None when the key is not remembered or was
        remembered without one."""
        index = self._index(key)
        return None if index < 0 else self._print_at(index)

    def remember(self, key: bytes, fingerprint: bytes) -> None:
        """Add ``key`` and its ``fingerprint`` as the newest, forgetting the oldest beyond
        ``RECENT_IDS``."""
        self.recent = (self.recent + key)[-RECENT_IDS * KEY_BYTES :]
        self.prints = (self.prints + fingerprint)[-RECENT_IDS * FINGERPRINT_BYTES :]

    def _index(self, key: bytes) -> int:
        """The position of ``key`` among the remembered keys (0: oldest), or -1."""
        recent = self.recent
        i = recent.find(key)
        while i > 0 and i % KEY_BYTES:  # a match across two keys' bytes: look further
            i = recent.find(key, i + 1)
        return i // KEY_BYTES if i >= 0 else -1

    def _print_at(self, index: int) -> bytes | None:
        # ``prints`` covers the newest keys: older ones were remembered before fingerprints.
        at = index - (len(self.recent) // KEY_BYTES - len(self.prints) // FINGERPRINT_BYTES)
        if at < 0:
            return None
        return self.prints[at * FINGERPRINT_BYTES : (at + 1) * FINGERPRINT_BYTES]


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


class StateDecodeError(ValueError):
    """Bytes that are not a user state the scorer can advance (the message says why)."""


def decode_state(data: bytes) -> UserState:
    """The UserState that ``encode_state`` wrote into ``data`` (a recovery snapshot, a seed's).

    Raises StateDecodeError for any other bytes: not msgpack, truncated, not a state's fields
    and types, nested too deep to decode, or a state the scorer cannot advance (``hc`` not
    (6, D) or ``y_prev`` not (2,) finite float32, ``recent`` not whole keys, a number in the
    step memory not finite or a count negative). Nothing else, whatever the bytes: they come
    from disk, where anything can happen to them.

    >>> decode_state(encode_state(UserState.new("m1", 4))[:-1])  # a torn snapshot
    Traceback (most recent call last):
    ...
    scorer.user_state.StateDecodeError: not a user state: Input data was truncated
    """
    try:
        state = _decoder.decode(data)
    except msgspec.DecodeError as exc:  # a ValidationError too, and what _dec_hook raises
        raise StateDecodeError(f"not a user state: {exc}") from None
    except RecursionError:  # msgspec recurses once per level of an ignored trailing field
        raise StateDecodeError("not a user state: nested too deep to decode") from None
    problem = _problem(state)
    if problem is not None:
        raise StateDecodeError(f"not a user state: {problem}")
    return state


def _problem(s: UserState) -> str | None:
    """Why the scorer cannot advance ``s``, or None when it can (every state it makes can)."""
    hc, y = s.hc, s.y_prev
    if hc.dtype != np.float32 or hc.ndim != 2 or hc.shape[0] != 6 or hc.shape[1] < 1:
        return f"hc must be (6, D) float32, got {hc.dtype} {hc.shape}"
    if y.dtype != np.float32 or y.shape != (2,):
        return f"y_prev must be (2,) float32, got {y.dtype} {y.shape}"
    if not (np.isfinite(hc).all() and np.isfinite(y).all()):
        return "hc and y_prev must be finite"
    if len(s.recent) % KEY_BYTES or len(s.recent) > RECENT_IDS * KEY_BYTES:
        return (f"recent must hold at most {RECENT_IDS} keys of {KEY_BYTES} bytes, got "
                f"{len(s.recent)} bytes")  # fmt: skip
    keys = len(s.recent) // KEY_BYTES
    if len(s.prints) % FINGERPRINT_BYTES or len(s.prints) > keys * FINGERPRINT_BYTES:
        return (f"prints must hold at most one {FINGERPRINT_BYTES}-byte fingerprint per "
                f"remembered key ({keys}), got {len(s.prints)} bytes")  # fmt: skip
    bad = _bad_number(msgspec.to_builtins(s.memory))
    return None if bad is None else f"the step memory holds {bad!r}"


def _bad_number(obj: Any) -> float | None:
    """A number in ``obj`` (builtins, nested) that no event makes: not finite, or a negative
    count; None when there is none. The memory holds event times, amounts and counts only."""
    if isinstance(obj, bool):
        return None
    if isinstance(obj, float):
        return None if np.isfinite(obj) else obj
    if isinstance(obj, int):
        return obj if obj < 0 else None
    items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    for v in items:
        bad = _bad_number(v)
        if bad is not None:
            return bad
    return None
