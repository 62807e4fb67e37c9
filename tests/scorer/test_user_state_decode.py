"""Decoding a user state from bytes read off disk (a recovery snapshot, a seed's state): a state
the scorer can advance, or StateDecodeError and nothing else, whatever the bytes."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import torch

from scorer.model import ModelWeights, advance
from scorer.user_state import StateDecodeError, UserState, decode_state, encode_state
from tests.strategies import make_events
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig


def broken(change: str) -> bytes:
    """The snapshot of a new state (D = 2) with one thing in it broken, as ``change`` says."""
    nan = np.full(12, np.nan, np.float32).tobytes()
    fields = msgspec.msgpack.decode(encode_state(UserState.new("m1", 2)))
    tail = b""
    if change == "hc (6, 2, 1)":
        fields[2] = [[6, 2, 1], fields[2][1]]
    elif change == "hc (12,)":
        fields[2] = [[12], fields[2][1]]
    elif change == "hc (-1,)":
        fields[2] = [[-1], fields[2][1]]
    elif change == "hc NaN":
        fields[2] = [[6, 2], nan]
    elif change == "y_prev (3,)":
        fields[3] = [[3], bytes(12)]
    elif change == "recent 7 bytes":
        fields[4] = bytes(7)
    elif change == "activity_ts NaN":
        fields[1][1] = float("nan")
    elif change == "on_time -1":
        fields[1][0][1] = -1
    elif change == "deep extra field":
        fields.append(None)  # the decoder skips trailing fields: there, nest past the limit
        tail = b"\x91" * 5000 + b"\xc0"
    data = msgspec.msgpack.encode(fields)
    return data[:-1] + tail if tail else data


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("truncated", "truncated"),
        ("not msgpack", "not a user state"),
        ("a map", "Expected `array`, got `object`"),
        ("hc (6, 2, 1)", r"hc must be \(6, D\) float32, got float32 \(6, 2, 1\)"),
        ("hc (12,)", r"hc must be \(6, D\)"),
        ("hc (-1,)", "not a user state"),
        ("hc NaN", "hc and y_prev must be finite"),
        ("y_prev (3,)", r"y_prev must be \(2,\) float32"),
        ("recent 7 bytes", "recent must hold at most 32 keys of 8 bytes, got 7"),
        ("activity_ts NaN", "the step memory holds nan"),
        ("on_time -1", "the step memory holds -1"),
        ("deep extra field", "nested too deep to decode"),
    ],
)
def test_bytes_that_are_no_state_raise_state_decode_error_only(change: str, says: str) -> None:
    # Recovery and seeds read these bytes from disk: whatever they hold, one error type.
    data = {"truncated": encode_state(UserState.new("m1", 2))[:-1], "not msgpack": b"\xc1",
            "a map": msgspec.msgpack.encode({"model_version": "m1"})}.get(change)  # fmt: skip
    with pytest.raises(StateDecodeError, match=says):
        decode_state(broken(change) if data is None else data)


def test_every_state_the_scorer_makes_decodes() -> None:
    torch.manual_seed(0)
    w: ModelWeights = export_scorer(DeepCredit(ModelConfig(hidden_size=8, head_sizes=(8,))), "m1")
    s = UserState.new(w.version, w.hidden_size)
    for e in make_events(300, users=1, seed=2):
        advance(w, s, e)
        assert decode_state(encode_state(s)) == s
    assert s.memory.ledger.loans and s.recent
