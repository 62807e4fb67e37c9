"""A resent event (an id among the user's last RECENT_IDS) changes nothing: the state after a
history with such copies is the state after the history without them, event by event and in
the rebuild; a copy further back is advanced again. A copy with other content (a conflicting
duplicate: the id reused) changes nothing either, and the rebuild lists it, as training keeps
the first copy and counts it."""

from __future__ import annotations

import copy
from collections import defaultdict

import msgspec
import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepcredit.events import Activity, ClickEvent
from scorer.model import ModelWeights, advance, is_repeat
from scorer.rebuild import rebuild
from scorer.user_state import (
    RECENT_IDS,
    Seen,
    UserState,
    encode_state,
    event_fingerprint,
    event_key,
)
from tests.strategies import make_events
from training.core.dataset import first_copies
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig


def weights() -> ModelWeights:
    torch.manual_seed(0)
    return export_scorer(DeepCredit(ModelConfig(hidden_size=8, head_sizes=(8,))), "m1")


W = weights()


def run(events: list[ClickEvent]) -> tuple[UserState, list[tuple[float, float] | None]]:
    s = UserState.new(W.version, W.hidden_size)
    return s, [advance(W, s, e) for e in events]


def with_copies(events: list[ClickEvent], copies: list[tuple[int, int]]) -> list[ClickEvent]:
    """``events`` with a copy of event i right after event j for each (i, j), i <= j."""
    after: dict[int, list[ClickEvent]] = defaultdict(list)
    for i, j in copies:
        after[j].append(events[i])
    out = []
    for j, e in enumerate(events):
        out += [e, *after[j]]
    return out


def test_a_repeated_event_leaves_the_state_as_it_was() -> None:
    events = make_events(80, users=1, seed=2)
    s = UserState.new(W.version, W.hidden_size)
    for n, e in enumerate(events):
        advance(W, s, e)
        for earlier in events[max(0, n - RECENT_IDS + 1) : n + 1]:  # all still remembered
            before = copy.deepcopy(s)
            assert is_repeat(s, earlier)
            assert advance(W, s, earlier) is None
            assert s == before and encode_state(s) == encode_state(before)


def test_a_repeated_post_is_scored_once() -> None:
    events = make_events(60, users=1, seed=7)
    posts = [i for i, e in enumerate(events) if e.activity is Activity.POST]
    assert len(posts) >= 3
    stream = with_copies(events, [(i, i) for i in posts] + [(posts[0], posts[0] + 5)])
    _, scores = run(stream)
    _, expected = run(events)
    assert [p for p in scores if p is not None] == [p for p in expected if p is not None]


def test_a_copy_within_reach_is_skipped_and_one_beyond_it_is_advanced() -> None:
    events = make_events(3 * RECENT_IDS, users=1, seed=9)
    i = next(i for i, e in enumerate(events) if e.activity is Activity.POST)
    last_within = with_copies(events, [(i, i + RECENT_IDS - 1)])  # 31 newer ids: remembered
    assert i < RECENT_IDS
    state, scores = run(last_within)
    dedup_state, _ = run(events)
    assert state == dedup_state
    assert scores[i + RECENT_IDS] is None  # the copy
    beyond = with_copies(events, [(i, i + RECENT_IDS)])  # 32 newer ids: forgotten
    state, scores = run(beyond)
    assert scores[i + RECENT_IDS + 1] is not None  # the post is scored a second time
    assert state != dedup_state


@st.composite
def copies_within_reach(draw: st.DrawFn, n: int) -> list[tuple[int, int]]:
    """(i, j): a copy of event i after event j, with fewer than RECENT_IDS events from i to j."""
    originals = draw(st.lists(st.integers(0, n - 1), max_size=2 * n))
    return [(i, draw(st.integers(i, min(n, i + RECENT_IDS) - 1))) for i in originals]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 150), st.data())
def test_copies_within_reach_give_the_state_of_the_history_without_them(
    seed: int, n: int, data: st.DataObject
) -> None:
    events = make_events(n, users=1, seed=seed)
    copies = data.draw(copies_within_reach(n))
    stream = with_copies(events, copies)
    state, scores = run(stream)
    dedup_state, dedup_scores = run(events)
    assert state == dedup_state and encode_state(state) == encode_state(dedup_state)
    assert [p for p in scores if p is not None] == [p for p in dedup_scores if p is not None]
    assert sum(p is None for p in scores) == sum(p is None for p in dedup_scores) + len(copies)
    # The rebuild decides the same: the same ids remembered, the same math within float32.
    rebuilt = rebuild(W, {"u": stream})
    r = rebuilt.states["u"]
    assert rebuilt.repeats == len(copies)
    assert r.recent == dedup_state.recent and r.memory == dedup_state.memory
    np.testing.assert_allclose(r.hc, dedup_state.hc, atol=1e-5, rtol=0)
    np.testing.assert_allclose(r.y_prev, dedup_state.y_prev, atol=1e-5, rtol=0)
    expected_posts = {
        e.event_id: p for e, p in zip(events, dedup_scores, strict=True) if p is not None
    }
    assert rebuilt.posts.keys() == expected_posts.keys()
    for k, p in expected_posts.items():
        np.testing.assert_allclose(rebuilt.posts[k], p, atol=1e-5, rtol=0)


def reused(event: ClickEvent, k: int) -> ClickEvent:
    """Another event under ``event``'s id: other content, each ``k`` another."""
    return msgspec.structs.replace(event, ts=event.ts + 1.0 + k, amount=event.amount + k)


def test_an_id_reused_for_other_content_is_a_conflict_and_changes_nothing() -> None:
    events = make_events(60, users=1, seed=12)
    i = next(i for i, e in enumerate(events) if e.activity is Activity.POST)
    s = UserState.new(W.version, W.hidden_size)
    for e in events[: i + 5]:
        advance(W, s, e)
    before = copy.deepcopy(s)
    other = reused(events[i], 1)
    key = event_key(other.event_id)
    assert s.seen(key, event_fingerprint(other)) is Seen.CONFLICT
    assert s.fingerprint_of(key) == event_fingerprint(events[i]) != event_fingerprint(other)
    assert is_repeat(s, other) and advance(W, s, other) is None
    assert s == before and encode_state(s) == encode_state(before)
    assert s.seen(key, event_fingerprint(events[i])) is Seen.RESEND  # the first copy stands


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 120), st.data())
def test_conflicting_copies_within_reach_change_nothing_and_are_listed_as_training_counts(
    seed: int, n: int, data: st.DataObject
) -> None:
    events = make_events(n, users=1, seed=seed)
    copies = data.draw(copies_within_reach(n))
    conflicting = data.draw(st.lists(st.booleans(), min_size=len(copies), max_size=len(copies)))
    after: dict[int, list[ClickEvent]] = defaultdict(list)
    for k, ((i, j), other) in enumerate(zip(copies, conflicting, strict=True)):
        after[j].append(reused(events[i], k) if other else events[i])
    stream = [x for j, e in enumerate(events) for x in (e, *after[j])]
    state, scores = run(stream)
    dedup_state, dedup_scores = run(events)
    assert state == dedup_state
    assert [p for p in scores if p is not None] == [p for p in dedup_scores if p is not None]
    rebuilt = rebuild(W, {"u": stream})
    expected = [x for j in range(n) for x in after[j] if x not in events]
    assert rebuilt.conflicts == expected and rebuilt.repeats == len(copies)
    assert rebuilt.states["u"].prints == dedup_state.prints
    kept = first_copies(stream)
    assert (kept.events, kept.resends, kept.conflicts) == (events, len(copies) - len(expected),
                                                           len(expected))  # fmt: skip
