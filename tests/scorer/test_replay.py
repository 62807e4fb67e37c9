"""The compiled rebuild (``scorer.replay`` through ``scorer.rebuild.rebuild``) equals ``advance``
event by event on random histories: the step memory (ledger, held events, aggregates, times,
counts) and the remembered ids exactly, the model state and each post's probabilities within
1e-5, the posts' history and reason codes, the repeats and the conflicting ones. The
histories are built to hit the rules: loans posted, funded, repaid, missed and re-posted from
a small pool of loan ids, events read out of time order (the ledger holds and releases them,
gives them up beyond its bound), resends and conflicting duplicates within and beyond the
state's ``RECENT_IDS``, posts unfunded past the ledger's funding TTL."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.model import ModelWeights
from scorer.reasons import advance_with_reasons
from scorer.rebuild import CHUNK_EVENTS, rebuild, rebuild_states
from scorer.steps import history_at
from scorer.user_state import RECENT_IDS, Seen, UserState, event_fingerprint, event_key
from training.core.export import export_scorer
from training.core.model import VARIANTS, DeepCredit, ModelConfig

T0 = 1.5e9
_WEIGHTS: dict[str, ModelWeights] = {}


def weights(variant: str) -> ModelWeights:
    if variant not in _WEIGHTS:
        model = DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant]))
        w = export_scorer(model, f"v-{variant}")
        if variant == "deepcredit":  # calibrated: the posts' probabilities are, the states not
            w = dataclasses.replace(
                w, version="v-cal", calibration=np.array([[1.3, 0.7], [-0.2, 0.4]])
            )
        _WEIGHTS[variant] = w
    return _WEIGHTS[variant]


def history(seed: int, n: int) -> list[ClickEvent]:
    """``n`` events of one user (plus copies) from ``seed``: a loan's life at a time from a pool
    of four loan ids, other activity between, then shuffled locally (disorder), and a share of
    them resent or reused under their id with other content."""
    rng = random.Random(seed)
    acts = list(Activity)
    events: list[ClickEvent] = []
    t = T0
    for i in range(n):
        t += rng.choice((0.0, 60.0, 3600.0, DAY_S, 9 * DAY_S, 20 * DAY_S)) * rng.random()
        act = rng.choice(acts + [Activity.POST, Activity.BORROW, Activity.REPAY] * 2)
        loan = rng.choice("abcd") if act in (Activity.POST, Activity.BORROW, Activity.REPAY,
                                             Activity.MISS_PAYMENT) else None  # fmt: skip
        post = act is Activity.POST
        events.append(ClickEvent(
            event_id=f"e{i}", user_id="u", ts=t, activity=act,
            amount=rng.choice((1.0, 99.5, 1234.56, 5e4)), loan_id=loan,
            rate=rng.choice((None, 0.08, 0.2)) if post else None,
            term_days=rng.choice((None, 7, 30, 90, 90)) if post else None,
        ))  # fmt: skip
    for i in range(len(events) - 1):  # disorder: neighbours swapped, now and then far ones
        if rng.random() < 0.25:
            j = min(len(events) - 1, i + rng.choice((1, 1, 2, 6)))
            events[i], events[j] = events[j], events[i]
    later: dict[int, list[ClickEvent]] = {}
    for i, e in enumerate(events):  # copies 0 to 2 x RECENT_IDS events later: within reach or not
        if rng.random() < 0.2:
            copy = e if rng.random() < 0.7 else ClickEvent(
                event_id=e.event_id, user_id="u", ts=e.ts + 1.0, activity=Activity.RECHARGE,
                amount=3.0)  # fmt: skip
            later.setdefault(i + rng.randrange(2 * RECENT_IDS), []).append(copy)
    out = [x for i, e in enumerate(events) for x in (e, *later.get(i, ()))]
    out += [x for i in sorted(later) if i >= len(events) for x in later[i]]
    return out


def event_by_event(w: ModelWeights, histories: dict[str, list[ClickEvent]]) -> dict:
    """What the live flow does with each history: states, posts, history, reasons, repeats."""
    states, posts, hist, codes, conflicts = {}, {}, {}, {}, []
    repeats = 0
    for user, events in histories.items():
        s = states[user] = UserState.new(w.version, w.hidden_size)
        for e in events:
            key, fingerprint = event_key(e.event_id), event_fingerprint(e)
            seen = s.seen(key, fingerprint)
            if seen is not Seen.NEW:
                repeats += 1
                if seen is Seen.CONFLICT:
                    conflicts.append(e)
                continue
            p, why = advance_with_reasons(w, s, e, key, fingerprint)
            if p is not None:
                posts[e.event_id], codes[e.event_id] = p, why
                hist[e.event_id] = history_at(s.memory, e.ts)
    return {"states": states, "posts": posts, "history": hist, "reasons": codes,
            "repeats": repeats, "conflicts": conflicts}  # fmt: skip


def assert_rebuild_equals_event_by_event(w: ModelWeights, histories: dict) -> None:
    expected = event_by_event(w, histories)
    got = rebuild(w, histories)
    assert set(got.states) == set(expected["states"])
    for user, s in got.states.items():
        e = expected["states"][user]
        assert s.model_version == e.model_version
        assert s.memory == e.memory  # the bookkeeping, exactly
        assert (s.recent, s.prints) == (e.recent, e.prints)
        np.testing.assert_allclose(s.hc, e.hc, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.y_prev, e.y_prev, atol=1e-5, rtol=0)
    assert set(got.posts) == set(expected["posts"])
    for k, p in expected["posts"].items():
        np.testing.assert_allclose(got.posts[k], p, atol=1e-5, rtol=0)
    assert got.history == expected["history"]
    assert got.reasons == expected["reasons"]
    assert got.repeats == expected["repeats"]
    assert [e.event_id for e in got.conflicts] == [e.event_id for e in expected["conflicts"]]


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(seeds=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
       n=st.integers(1, 90), variant=st.sampled_from(sorted(VARIANTS)))  # fmt: skip
def test_the_compiled_rebuild_equals_advance_on_random_histories(
    seeds: list[int], n: int, variant: str
) -> None:
    histories = {f"u{k}": history(seed, n) for k, seed in enumerate(seeds)}
    assert_rebuild_equals_event_by_event(weights(variant), histories)


def test_the_random_histories_reach_the_rules() -> None:
    """The generator above makes what the property test claims to cover."""
    w = weights("deepcredit")
    histories = {f"u{k}": history(k, 80) for k in range(40)}
    expected = event_by_event(w, histories)
    ledgers = [s.memory.ledger for s in expected["states"].values()]
    assert expected["repeats"] > 100 and len(expected["conflicts"]) > 10
    assert sum(g.given_up for g in ledgers) > 0 and sum(bool(g.held) for g in ledgers) > 0
    assert sum(g.late for g in ledgers) > 0 and sum(g.on_time for g in ledgers) > 0
    beyond = {f"u{k}": [*h, *h] for k, h in enumerate(history(k, 2 * RECENT_IDS)
                                                      for k in range(3))}  # fmt: skip
    assert_rebuild_equals_event_by_event(w, beyond)  # every copy beyond reach: replayed again


@pytest.mark.parametrize("variant", ["deepcredit", "deep-only"])
def test_chunks_split_users_without_changing_anything(variant: str) -> None:
    """More events than a chunk: several chunks, the progress counting every event."""
    w = weights(variant)
    histories = {f"u{k}": history(k, 400) for k in range(CHUNK_EVENTS // 400 + 8)}
    steps: list[int] = []
    got = rebuild(w, histories, on_step=steps.append)
    assert len(steps) > 1 and sum(steps) == sum(map(len, histories.values()))
    one = {u: rebuild_states(w, {u: histories[u]})[u] for u in list(histories)[-3:]}
    for u, s in one.items():
        assert s.memory == got.states[u].memory and np.array_equal(s.hc, got.states[u].hc)


def test_empty_histories_give_new_states() -> None:
    w = weights("deep-only")
    got = rebuild(w, {"a": [], "b": history(1, 5)})
    assert got.states["a"] == UserState.new(w.version, w.hidden_size)
    assert rebuild(w, {}).states == {}
