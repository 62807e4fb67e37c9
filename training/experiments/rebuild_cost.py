"""``deepcredit bench rebuild``: rebuilding every user's state for a new model, lockstep across
users (``scorer.rebuild``) against ``advance`` event by event, on the same histories in the
same run (median of repeats)."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict

from deepcredit.events import ClickEvent
from scorer.model import advance
from scorer.rebuild import rebuild_states
from scorer.user_state import UserState
from training.benchmark.generator import GeneratorConfig, generate
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

__all__ = ["rebuild_cost"]


def rebuild_cost(*, users: int, hidden: int, repeats: int, seed: int = 0) -> dict:
    histories: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in generate(GeneratorConfig(users=users, seed=seed)):
        histories[e.user_id].append(e)
    w = export_scorer(DeepCredit(ModelConfig(hidden_size=hidden)), f"bench-d{hidden}")
    events = sum(len(h) for h in histories.values())

    def one_by_one() -> None:
        for events_of_user in histories.values():
            s = UserState.new(w.version, w.hidden_size)
            for e in events_of_user:
                advance(w, s, e)

    timings: dict[str, list[float]] = {"event_by_event": [], "lockstep": []}
    for _ in range(repeats):
        for name, run in (("event_by_event", one_by_one),
                          ("lockstep", lambda: rebuild_states(w, histories))):  # fmt: skip
            started = time.perf_counter()
            run()
            timings[name].append(time.perf_counter() - started)
    median = {k: statistics.median(v) for k, v in timings.items()}
    return {
        "users": users, "events": events, "hidden_size": hidden, "repeats": repeats,
        "seconds": {k: round(v, 3) for k, v in median.items()},
        "events_per_s": {k: round(events / v) for k, v in median.items()},
        "speedup": round(median["event_by_event"] / median["lockstep"], 2),
        "runs": {k: [round(x, 3) for x in v] for k, v in timings.items()},
    }  # fmt: skip
