"""The per-user state survives a snapshot exactly: scoring after a round trip is unchanged; and
snapshots written before the state remembered recent event ids, or their content fingerprints,
or held loan events, still decode."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.model import ModelWeights, StateVersionError, advance
from scorer.user_state import (
    FINGERPRINT_BYTES,
    KEY_BYTES,
    RECENT_IDS,
    Seen,
    UserState,
    decode_state,
    encode_state,
    event_fingerprint,
    event_key,
)
from tests.strategies import make_events
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig


def weights(hidden: int = 8, version: str = "m1") -> ModelWeights:
    torch.manual_seed(0)
    return export_scorer(DeepCredit(ModelConfig(hidden_size=hidden, head_sizes=(8,))), version)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 150), st.integers(1, 50))
def test_a_frozen_state_thaws_as_it_was_however_often(seed: int, before: int, after: int) -> None:
    w = weights()
    events = make_events(before + after, users=1, seed=seed)
    state = UserState.new(w.version, w.hidden_size)
    for e in events[:before]:
        advance(w, state, e)
    frozen, copied = state.frozen(), state.copy()
    for e in events[before:]:
        advance(w, state, e)
    first = frozen.thaw()
    assert first == copied and state != copied
    for e in events[before:]:  # advancing a thawed state leaves the frozen one as it was
        advance(w, first, e)
    assert first == state and frozen.thaw() == copied


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
# (four fields: version, memory, hc, y_prev; the ledger of four fields), by the code of that
# time.
OLD_EMPTY_D1 = bytes.fromhex(
    "94a26d319494800000c0c0c0c092920601c41800000000000000000000000000000000000000000000000092"
    "9102c4080000000000000000"
)


def test_a_snapshot_of_the_old_layout_decodes_with_no_recent_ids() -> None:
    old = decode_state(OLD_EMPTY_D1)
    assert old == UserState.new("m1", hidden_size=1) and old.recent == old.prints == b""
    assert old.memory.ledger.held == [] and old.memory.ledger.given_up == 0
    # Written back: six fields (0x96), the last two empty bins (0xc4 0x00); the ledger has
    # eleven (0x9b), the fifth and sixth an empty list (0x90) and 0, then the five running
    # outcome figures: three integer zeros (cents, counts), 0.0 (the delays' sum in seconds,
    # a 9-byte float) and nil.
    new = encode_state(old)
    assert new[:1] == b"\x96" and new.endswith(b"\xc4\x00\xc4\x00")
    assert bytes.fromhex("9b800000c09000000000cb0000000000000000c0") in new


def test_an_old_snapshot_of_a_user_with_history_decodes_and_scores_on() -> None:
    w = weights()
    events = make_events(120, users=1, seed=3)
    s = UserState.new(w.version, w.hidden_size)
    for e in events[:80]:
        advance(w, s, e)
    fields = msgspec.msgpack.decode(encode_state(s))  # the array of fields, generically
    assert len(fields) == 6 and fields[-2:] == [s.recent, s.prints]
    old_layout = msgspec.msgpack.encode(fields[:4])  # what the code before ``recent`` wrote
    restored = decode_state(old_layout)
    assert restored.recent == restored.prints == b""
    assert restored.memory == s.memory and np.array_equal(restored.hc, s.hc)
    assert np.array_equal(restored.y_prev, s.y_prev)
    for e in events[80:]:  # no ids to skip: it scores on exactly as before
        assert advance(w, restored, e) == advance(w, s, e)
    np.testing.assert_array_equal(restored.hc, s.hc)
    assert restored.memory == s.memory


def test_ids_remembered_without_fingerprints_take_any_content_as_a_resend() -> None:
    """A snapshot written before fingerprints: its ids still skip resends, and a copy with
    other content is skipped as a resend too (the rule of that time); ids remembered since
    have fingerprints, and the two line up however many of each there are."""
    w = weights()
    events = make_events(60, users=1, seed=5)
    s = UserState.new(w.version, w.hidden_size)
    for e in events[:40]:
        advance(w, s, e)
    before = msgspec.msgpack.encode(msgspec.msgpack.decode(encode_state(s))[:5])
    old = decode_state(before)
    assert old.recent == s.recent and old.prints == b""
    other = msgspec.structs.replace(events[39], amount=events[39].amount + 1.0)
    key = event_key(other.event_id)
    assert s.seen(key, event_fingerprint(other)) is Seen.CONFLICT
    assert old.seen(key, event_fingerprint(other)) is Seen.RESEND
    for n, e in enumerate(events[40:], 1):
        advance(w, old, e)
        assert len(old.prints) == min(n, RECENT_IDS) * FINGERPRINT_BYTES
        newest = events[40 : 40 + n][-RECENT_IDS:]
        for x in newest:  # the newest ids have their own fingerprints
            assert old.fingerprint_of(event_key(x.event_id)) == event_fingerprint(x)
        remembered = events[: 40 + n][-RECENT_IDS:]
        for x in remembered[: len(remembered) - len(newest)]:
            assert old.fingerprint_of(event_key(x.event_id)) is None
            assert old.seen(event_key(x.event_id), b"none") is Seen.RESEND


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
    assert s.prints == b"".join(event_fingerprint(x) for x in events[-RECENT_IDS:])
    assert all(s.seen(event_key(e.event_id), event_fingerprint(e)) is Seen.RESEND
               for e in events[-RECENT_IDS:])  # fmt: skip
    assert all(s.seen(event_key(e.event_id), event_fingerprint(e)) is Seen.NEW
               for e in events[:-RECENT_IDS])  # fmt: skip


def test_a_key_found_across_two_remembered_keys_is_not_seen() -> None:
    s = UserState.new("m1", 1)
    a, b = event_key("a"), event_key("b")
    fa, fb, fc = b"\x01" * 4, b"\x02" * 4, b"\x03" * 4
    s.remember(a, fa)
    s.remember(b, fb)
    straddling = a[3:] + b[:3]  # the bytes are there, but not as one key
    assert s.recent.find(straddling) == 3
    assert s.seen(straddling, fa) is Seen.NEW
    assert s.seen(a, fa) is s.seen(b, fb) is Seen.RESEND and s.seen(event_key("c"), fa) is Seen.NEW
    assert s.seen(a, fb) is Seen.CONFLICT and s.fingerprint_of(a) == fa
    also_kept = a[4:] + b[:4]  # remembered: found across a and b first, then as itself
    s.remember(also_kept, fc)
    assert s.recent.find(also_kept) == 4
    assert s.seen(also_kept, fc) is Seen.RESEND and s.fingerprint_of(also_kept) == fc


def test_event_keys_are_stable_across_processes() -> None:
    # BLAKE2b-64 of the UTF-8 id: the same in every process (Python's hash() is salted).
    assert event_key("e1").hex() == "1b5d5e51f54f0f04"
    assert len(event_key("é" * 100)) == KEY_BYTES


def test_fingerprints_are_of_the_content_as_decoded_not_of_the_ids() -> None:
    e = make_events(1, users=1, seed=0)[0]
    same = msgspec.structs.replace(e, event_id="other-id", user_id="other-user")
    assert event_fingerprint(same) == event_fingerprint(e)
    as_ints = msgspec.structs.replace(e, ts=int(e.ts), amount=int(e.amount))
    assert event_fingerprint(as_ints) == event_fingerprint(msgspec.structs.replace(
        e, ts=float(int(e.ts)), amount=float(int(e.amount))))  # fmt: skip
    for change in ({"ts": e.ts + 1}, {"amount": e.amount + 0.01}, {"loan_id": "x"}):
        assert event_fingerprint(msgspec.structs.replace(e, **change)) != event_fingerprint(e)
    # BLAKE2b-32 of the content: the same in every process.
    assert len(event_fingerprint(e)) == FINGERPRINT_BYTES == 4


def test_remembering_ids_costs_4_bytes_empty_and_389_once_full() -> None:
    w = weights(hidden=32)
    s = UserState.new(w.version, w.hidden_size)
    # 801 before the state remembered ids, 803 before their fingerprints, 805 before the
    # ledger held loan events (an empty list and a count of those given up: 2 bytes), 807
    # before the memory counted its history (a 0 and a nil: 2 bytes), 809 before the running
    # aggregates (the ledger's five outcome figures, three integer zeros, a 9-byte 0.0 and a
    # nil: 13 bytes; the activity rates, two lists of ten 9-byte floats with a time, the quick
    # withdrawals and the last loan time: 194 bytes).
    assert len(encode_state(s)) == 809 + 13 + 194 == 1016
    for e in make_events(200, users=1, seed=1):
        advance(w, s, e)
    without = msgspec.msgpack.encode(msgspec.msgpack.decode(encode_state(s))[:4])
    keys, prints = 3 + RECENT_IDS * KEY_BYTES, 2 + RECENT_IDS * FINGERPRINT_BYTES
    assert len(encode_state(s)) - len(without) == keys + prints == 259 + 130
