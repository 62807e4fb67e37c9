"""``deepcredit bench rebuild``: rebuilding every user's state for a new model three ways on the
same histories in the same run, in paired repeats (each repeat runs every way once, in turn):

- ``event_by_event``: ``advance`` per event (the live step, compiled model, Python bookkeeping);
- ``lockstep``: ``scorer.rebuild.rebuild_lockstep`` (Python bookkeeping, batched numpy math,
  the posts' reason codes included, as the cut-over ran it before the compiled rebuild);
- ``compiled``: ``scorer.rebuild.rebuild_states`` (``scorer.replay``: bookkeeping and model
  step compiled over columns), and ``compiled_with_reasons``: ``rebuild`` as a cut-over runs it,
  posts' probabilities, history and reason codes included.

Ratios are over ``event_by_event``, the median of each repeat's own ratio. For the compiled way
it also gives where the time goes: the compiled loop (``scorer.replay.replay``) against the
rest (decoding the events into columns, building the states' Python objects)."""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from collections.abc import Callable

from deepcredit.events import ClickEvent
from scorer import replay
from scorer.model import advance
from scorer.rebuild import rebuild, rebuild_lockstep, rebuild_states
from scorer.user_state import UserState
from training.benchmark.generator import GeneratorConfig, generate
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

__all__ = ["rebuild_cost"]

WAYS = ("event_by_event", "lockstep", "compiled", "compiled_with_reasons")


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

    runs: dict[str, Callable[[], object]] = {
        "event_by_event": one_by_one,
        "lockstep": lambda: rebuild_lockstep(w, histories),
        "compiled": lambda: rebuild_states(w, histories),
        "compiled_with_reasons": lambda: rebuild(w, histories),
    }
    rebuild_states(w, {u: histories[u] for u in list(histories)[:2]})  # compile or load now
    timings: dict[str, list[float]] = {k: [] for k in WAYS}
    loop_s: list[float] = []
    for _ in range(repeats):
        for name in WAYS:
            started = time.perf_counter()
            runs[name]()
            timings[name].append(time.perf_counter() - started)
        loop_s.append(_time_of_loop(lambda: rebuild_states(w, histories)))
    median = {k: statistics.median(v) for k, v in timings.items()}
    ratios = {k: [a / b for a, b in zip(timings["event_by_event"], v, strict=True)]
              for k, v in timings.items() if k != "event_by_event"}  # fmt: skip
    return {
        "users": users, "events": events, "hidden_size": hidden, "repeats": repeats,
        "seconds": {k: round(v, 3) for k, v in median.items()},
        "events_per_s": {k: round(events / v) for k, v in median.items()},
        "speedup_over_event_by_event": {k: round(statistics.median(v), 2)
                                        for k, v in ratios.items()},
        "compiled_profile": {
            "loop_s": round(statistics.median(loop_s), 3),
            "loop_share": round(statistics.median(loop_s) / median["compiled"], 2),
            "loop_us_per_event": round(statistics.median(loop_s) / events * 1e6, 2),
            "rest_us_per_event": round((median["compiled"] - statistics.median(loop_s))
                                       / events * 1e6, 2),
        },
        "runs": {k: [round(x, 3) for x in v] for k, v in timings.items()},
    }  # fmt: skip


def _time_of_loop(run: Callable[[], object]) -> float:
    """Seconds ``run`` spends in the compiled loop (``scorer.replay.replay``), timed by
    wrapping it for the one call."""
    spent: list[float] = []
    loop = replay.replay

    def timed(*args: object) -> int:
        started = time.perf_counter()
        try:
            return loop(*args)
        finally:
            spent.append(time.perf_counter() - started)

    replay.replay = timed
    try:
        run()
    finally:
        replay.replay = loop
    return sum(spent)
