"""The per-user state survives a snapshot exactly: scoring after a round trip is unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.model import ModelWeights, StateVersionError, advance
from state.user_state import UserState, decode_state, encode_state
from tests.strategies import make_events
from training.export import export_scorer
from training.model import DeepCredit, ModelConfig


def weights(hidden: int = 8, version: str = "m1") -> ModelWeights:
    torch.manual_seed(0)
    return export_scorer(DeepCredit(ModelConfig(hidden_size=hidden, head_sizes=(8,))), version)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 200), st.integers(0, 200))
def test_snapshot_in_the_middle_changes_nothing(seed: int, before: int, after: int) -> None:
    w = weights()
    events = make_events(before + after, users=1, seed=seed)
    straight = UserState.new(w.version, w.hidden_size)
    restored = UserState.new(w.version, w.hidden_size)
    for e in events[:before]:
        advance(w, straight, e)
        advance(w, restored, e)
    restored = decode_state(encode_state(restored))
    assert restored == straight
    for e in events[before:]:
        assert advance(w, restored, e) == advance(w, straight, e)
    assert restored == straight


def test_state_size_grows_with_open_loans_not_history() -> None:
    w = weights(hidden=32)
    s = UserState.new(w.version, w.hidden_size)
    sizes = []
    for e in make_events(2000, users=1, seed=1):
        advance(w, s, e)
        sizes.append(len(encode_state(s)))
    assert sizes[-1] < 4 * sizes[0]  # bounded by open loans, whatever the history length
    assert np.isfinite(s.hc).all()


def test_a_state_of_another_model_version_is_refused() -> None:
    w = weights(version="m2")
    event = make_events(1, users=1, seed=0)[0]
    with pytest.raises(StateVersionError, match="rebuild"):
        advance(w, UserState.new("m1", w.hidden_size), event)
