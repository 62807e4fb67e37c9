"""The cold-start signal on each score (``scorer.steps.history_at``): how many of the user's
events the state took in before a post, and the days since the first."""

from __future__ import annotations

import msgspec

from deepcredit.events import DAY_S, Activity, ClickEvent
from scorer.model import advance
from scorer.steps import StepMemory, history_at, plan_step
from scorer.user_state import UserState, decode_state, encode_state
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

T0 = 1.6e9


def event(i: int, days: float, activity: Activity = Activity.RECHARGE) -> ClickEvent:
    loan = {"loan_id": f"L{i}", "rate": 0.1, "term_days": 30} if activity is Activity.POST else {}
    return ClickEvent(event_id=f"e{i}", user_id="u", ts=T0 + days * DAY_S, activity=activity,
                      amount=100.0, **loan)  # fmt: skip


def scored_history(events: list[ClickEvent]) -> dict[str, tuple[int, float]]:
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=4)), "v")
    s = UserState.new(w.version, w.hidden_size)
    out = {}
    for e in events:
        if advance(w, s, e) is not None:
            out[e.event_id] = history_at(s.memory, e.ts)
    return out


def test_a_first_time_users_post_has_no_history_and_later_posts_count_what_came_before() -> None:
    post = Activity.POST
    events = [event(0, 0.0, post), event(1, 1.0), event(2, 1.5), event(3, 3.0, post)]
    assert scored_history(events) == {"e0": (0, 0.0), "e3": (3, 3.0)}


def test_resends_do_not_count_and_an_event_read_late_moves_the_first_day_back() -> None:
    first, late = event(1, 10.0), event(0, 4.0)  # e0 happened first but is read second
    post = event(2, 12.0, Activity.POST)
    assert scored_history([first, first, late, post, post]) == {"e2": (2, 8.0)}


def test_a_memory_from_before_the_counts_decodes_and_counts_from_its_next_event() -> None:
    memory = StepMemory()
    plan_step(memory, event(0, 0.0))
    old = msgspec.msgpack.encode(msgspec.msgpack.decode(msgspec.msgpack.encode(memory))[:4])
    restored = msgspec.msgpack.decode(old, type=StepMemory)
    assert (restored.events, restored.first_ts) == (0, None)
    plan_step(restored, event(1, 2.0, Activity.POST))
    assert history_at(restored, T0 + 2.0 * DAY_S) == (0, 0.0)
    s = UserState.new("v", 4)
    s.memory = restored
    assert decode_state(encode_state(s)).memory == restored
