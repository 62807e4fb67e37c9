"""The rebuild, compiled (``rebuild``) and in lockstep (``rebuild_lockstep``, its reference),
gives the states, and the probabilities at each post, that ``advance`` gives event by event:
also for histories with resent events, which both skip alike while the
original is among the user's last RECENT_IDS ids (and both advance again beyond that)."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import pytest

from deepcredit.events import ClickEvent
from scorer.model import ModelWeights, advance
from scorer.reasons import post_reasons
from scorer.rebuild import rebuild, rebuild_lockstep, rebuild_states
from scorer.steps import history_at
from scorer.user_state import RECENT_IDS, UserState
from training.benchmark.generator import GeneratorConfig, generate
from training.core.export import export_scorer
from training.core.model import VARIANTS, DeepCredit, ModelConfig


@pytest.fixture(scope="module")
def histories() -> dict[str, list[ClickEvent]]:
    by_user: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in generate(GeneratorConfig(users=25, seed=5, horizon_days=300)):
        by_user[e.user_id].append(e)
    return dict(by_user)


@pytest.fixture(scope="module")
def with_repeats(histories: dict[str, list[ClickEvent]]) -> dict[str, list[ClickEvent]]:
    """The histories with copies of a third of their events (posts included), each resent
    after 0 to 2 x RECENT_IDS later events: about half within the state's reach, half beyond."""
    rng = random.Random(3)
    out = {}
    for user, events in histories.items():
        after: dict[int, list[ClickEvent]] = defaultdict(list)
        for i, e in enumerate(events):
            if rng.random() < 1 / 3:
                after[min(len(events) - 1, i + rng.randrange(2 * RECENT_IDS))].append(e)
        out[user] = [x for j, e in enumerate(events) for x in (e, *after[j])]
    return out


def test_the_histories_with_repeats_have_repeats_within_and_beyond_reach(
    histories: dict[str, list[ClickEvent]], with_repeats: dict[str, list[ClickEvent]]
) -> None:
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=4)), "v")
    copies = sum(len(h) for h in with_repeats.values()) - sum(len(h) for h in histories.values())
    advanced = one_by_one(w, with_repeats)  # a copy beyond reach moves the state on
    assert copies > 500
    plain = one_by_one(w, histories)
    assert sum(advanced[u] != plain[u] for u in plain) > 5


#: The compiled rebuild on both sets of histories, its reference on the one with repeats.
WAYS = [("histories", "compiled"), ("with_repeats", "compiled"), ("with_repeats", "lockstep")]


def one_by_one(w: ModelWeights, histories: dict[str, list[ClickEvent]]) -> dict[str, UserState]:
    out = {}
    for user, events in histories.items():
        s = out[user] = UserState.new(w.version, w.hidden_size)
        for e in events:
            advance(w, s, e)
    return out


@pytest.mark.parametrize(("which", "how"), WAYS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rebuild_equals_advancing_each_user_event_by_event(
    variant: str, which: str, how: str, request: pytest.FixtureRequest
) -> None:
    histories = request.getfixturevalue(which)
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant])), "v2")
    expected = one_by_one(w, histories)
    rebuilt = rebuild_states(w, histories) if how == "compiled" \
        else rebuild_lockstep(w, histories).states  # fmt: skip
    assert set(rebuilt) == set(expected)
    for user, s in rebuilt.items():
        e = expected[user]
        assert s.model_version == "v2" and s.memory == e.memory
        assert s.recent == e.recent  # the same ids remembered, byte for byte
        np.testing.assert_allclose(s.hc, e.hc, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.y_prev, e.y_prev, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("which", "how"), WAYS)
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rebuild_gives_each_post_the_probabilities_advance_returns(
    variant: str, which: str, how: str, request: pytest.FixtureRequest
) -> None:
    histories = request.getfixturevalue(which)
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant])), "v2")
    expected: dict[str, tuple[float, float]] = {}
    history: dict[str, tuple[int, float]] = {}  # the cold-start signal each post's score gets
    codes: dict[str, list[str]] = {}  # the reasons the live flow gives each post
    for events in histories.values():
        s = UserState.new(w.version, w.hidden_size)
        for e in events:
            p = advance(w, s, e)
            if p is not None:
                expected[e.event_id] = p
                history[e.event_id] = history_at(s.memory, e.ts)
                codes[e.event_id] = post_reasons(w, s, e)
    steps: list[int] = []
    rebuilt = (rebuild if how == "compiled" else rebuild_lockstep)(
        w, histories, on_step=steps.append
    )
    posts = rebuilt.posts
    assert set(posts) == set(expected) and len(posts) > 50
    assert rebuilt.history == history
    assert rebuilt.reasons == codes  # streaming and offline reasons alike, post by post
    assert (sum(map(len, codes.values())) > 0) == w.aggregates
    got = np.array([posts[k] for k in expected])
    np.testing.assert_allclose(got, np.array(list(expected.values())), atol=1e-5, rtol=0)
    assert sum(steps) == sum(len(h) for h in histories.values())  # progress counts every event


def test_no_histories_no_states() -> None:
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=4)), "v")
    assert rebuild_states(w, {}) == {}
    assert rebuild(w, {}).posts == {} and rebuild_lockstep(w, {}).posts == {}
