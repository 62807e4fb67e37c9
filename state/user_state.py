"""One user's scoring state, and its compact msgpack form for recovery snapshots.

What a user costs: the step memory (open loans and three timestamps), the (h, c) pairs of the
three TLSTMs as one (6, D) float32 array, Y(i-1), and the model version that produced them.
States of different model versions must never mix: after retraining they are rebuilt.

>>> s = UserState.new("m1", hidden_size=32)
>>> len(encode_state(s))  # bytes for a user with no history, D = 32
801
>>> decode_state(encode_state(s)) == s
True
"""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np

from scorer.steps import StepMemory

__all__ = ["UserState", "decode_state", "encode_state"]


class UserState(msgspec.Struct, eq=False, array_like=True):
    model_version: str
    memory: StepMemory
    hc: np.ndarray  # (6, D) float32 rows: activity h, c; repay h, c; state h, c
    y_prev: np.ndarray  # (2,) float32: P(delinquent), P(default) at the last post

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
        )


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
_decoder = msgspec.msgpack.Decoder(UserState, dec_hook=_dec_hook)


def encode_state(state: UserState) -> bytes:
    return _encoder.encode(state)


def decode_state(data: bytes) -> UserState:
    return _decoder.decode(data)
