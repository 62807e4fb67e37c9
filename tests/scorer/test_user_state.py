"""The per-user state survives a snapshot exactly: scoring after a round trip is unchanged; and
snapshots written before the state remembered recent event ids still decode."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.model import ModelWeights, StateVersionError, advance
from scorer.user_state import (
    KEY_BYTES,
    RECENT_IDS,
    UserState,
    decode_state,
    encode_state,
    event_key,
)
from tests.strategies import make_events
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig


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


# The snapshot of UserState.new("m1", hidden_size=1) as written before ``recent`` existed
# (four fields: version, memory, hc, y_prev), by the code of that time.
OLD_EMPTY_D1 = bytes.fromhex(
    "94a26d319494800000c0c0c0c092920601c41800000000000000000000000000000000000000000000000092"
    "9102c4080000000000000000"
)


def test_a_snapshot_of_the_old_layout_decodes_with_no_recent_ids() -> None:
    old = decode_state(OLD_EMPTY_D1)
    assert old == UserState.new("m1", hidden_size=1) and old.recent == b""
    # Written back: an array of five fields (0x95), the fifth an empty bin (0xc4 0x00).
    assert encode_state(old) == b"\x95" + OLD_EMPTY_D1[1:] + b"\xc4\x00"


def test_an_old_snapshot_of_a_user_with_history_decodes_and_scores_on() -> None:
    w = weights()
    events = make_events(120, users=1, seed=3)
    s = UserState.new(w.version, w.hidden_size)
    for e in events[:80]:
        advance(w, s, e)
    fields = msgspec.msgpack.decode(encode_state(s))  # the array of fields, generically
    assert len(fields) == 5 and fields[-1] == s.recent
    old_layout = msgspec.msgpack.encode(fields[:4])  # what the code before ``recent`` wrote
    restored = decode_state(old_layout)
    assert restored.recent == b""
    assert restored.memory == s.memory and np.array_equal(restored.hc, s.hc)
    assert np.array_equal(restored.y_prev, s.y_prev)
    for e in events[80:]:  # no ids to skip: it scores on exactly as before
        assert advance(w, restored, e) == advance(w, s, e)
    np.testing.assert_array_equal(restored.hc, s.hc)
    assert restored.memory == s.memory


def test_the_state_remembers_the_last_recent_ids_oldest_first() -> None:
    w = weights()
    events = make_events(100, users=1, seed=4)
    s = UserState.new(w.version, w.hidden_size)
    for n, e in enumerate(events, 1):
        advance(w, s, e)
        assert s.recent == b"".join(
            event_key(x.event_id) for x in events[max(0, n - RECENT_IDS) : n]
        )
    assert len(s.recent) == RECENT_IDS * KEY_BYTES == 256
    assert all(s.has_seen(event_key(e.event_id)) for e in events[-RECENT_IDS:])
    assert not any(s.has_seen(event_key(e.event_id)) for e in events[:-RECENT_IDS])


def test_a_key_found_across_two_remembered_keys_is_not_seen() -> None:
    s = UserState.new("m1", 1)
    a, b = event_key("a"), event_key("b")
    s.remember(a)
    s.remember(b)
    straddling = a[3:] + b[:3]  # the bytes are there, but not as one key
    assert s.recent.find(straddling) == 3
    assert not s.has_seen(straddling)
    assert s.has_seen(a) and s.has_seen(b) and not s.has_seen(event_key("c"))
    also_kept = a[4:] + b[:4]  # remembered: found across a and b first, then as itself
    s.remember(also_kept)
    assert s.recent.find(also_kept) == 4
    assert s.has_seen(also_kept)


def test_event_keys_are_stable_across_processes() -> None:
    # BLAKE2b-64 of the UTF-8 id: the same in every process (Python's hash() is salted).
    assert event_key("e1").hex() == "1b5d5e51f54f0f04"
    assert len(event_key("é" * 100)) == KEY_BYTES


def test_remembering_ids_costs_2_bytes_empty_and_259_once_full() -> None:
    w = weights(hidden=32)
    s = UserState.new(w.version, w.hidden_size)
    assert len(encode_state(s)) == 803  # 801 before the state remembered ids
    for e in make_events(200, users=1, seed=1):
        advance(w, s, e)
    without = msgspec.msgpack.encode(msgspec.msgpack.decode(encode_state(s))[:4])
    assert len(encode_state(s)) - len(without) == 3 + RECENT_IDS * KEY_BYTES == 259
