"""``deepcredit bench rebuild``: rebuilding every user's state for a new model three ways on the
same histories in the same run, in paired repeats (each repeat runs every way once, in turn):

- ``event_by_event``: ``advance`` per event (the live step, compiled model, Python bookkeeping);
- ``lockstep``: ``scorer.rebuild.rebuild_lockstep`` (Python bookkeeping, batched numpy math,
  the posts' reason codes included, as the cut-over ran it before the compiled rebuild);
- ``compiled``: ``scorer.rebuild.rebuild_states`` (``scorer.replay``: bookkeeping and model
  step compiled over columns), and ``compiled_with_reasons``: ``rebuild`` as a cut-over runs it,
  posts' probabilities, history and reason codes included.

Ratios are over ``event_by_event``, the median of each repeat's own ratio. For the compiled way
it also gives where the time goes, in the same runs: the compiled loop (``scorer.replay.replay``,
bookkeeping and model) against the rest (reading the events' fields into columns, building the
states' Python objects), and event by event over the loop alone: the ratio a source that gives
the history as columns already would see."""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

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
    load_before = os.getloadavg()[0]  # the machine is shared: what else ran, in the record
    timings: dict[str, list[float]] = {k: [] for k in WAYS}
    loop_s: list[float] = []  # of each compiled run, in the compiled loop
    for _ in range(repeats):
        for name in WAYS:
            with _loop_timed(loop_s if name == "compiled" else []):
                started = time.perf_counter()
                runs[name]()
                timings[name].append(time.perf_counter() - started)
    median = {k: statistics.median(v) for k, v in timings.items()}
    rest_s = [a - b for a, b in zip(timings["compiled"], loop_s, strict=True)]
    ratios = {k: [a / b for a, b in zip(timings["event_by_event"], v, strict=True)]
              for k, v in timings.items() if k != "event_by_event"}  # fmt: skip
    return {
        "users": users, "events": events, "hidden_size": hidden, "repeats": repeats,
        "seconds": {k: round(v, 3) for k, v in median.items()},
        "events_per_s": {k: round(events / v) for k, v in median.items()},
        "speedup_over_event_by_event": {k: round(statistics.median(v), 2)
                                        for k, v in ratios.items()},
        "compiled_profile": {
            "loop_share": round(statistics.median(b / a for a, b in zip(
                timings["compiled"], loop_s, strict=True)), 2),
            "loop_us_per_event": round(statistics.median(loop_s) / events * 1e6, 2),
            "rest_us_per_event": round(statistics.median(rest_s) / events * 1e6, 2),
            "event_by_event_us_per_event": round(median["event_by_event"] / events * 1e6, 2),
            "event_by_event_over_loop": round(statistics.median(a / b for a, b in zip(
                timings["event_by_event"], loop_s, strict=True)), 2),
        },
        "runs": {k: [round(x, 3) for x in v] for k, v in timings.items()},
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }  # fmt: skip


@contextlib.contextmanager
def _loop_timed(spent: list[float]) -> Iterator[None]:
    """Within it, the seconds each rebuild spends in the compiled loop (``scorer.replay.replay``)
    are added up into one new entry of ``spent`` (the loop wrapped: two clock reads a chunk)."""
    loop = replay.replay
    total = [0.0]

    def timed(*args: object) -> int:
        started = time.perf_counter()
        try:
            return loop(*args)
        finally:
            total[0] += time.perf_counter() - started

    replay.replay = timed
    try:
        yield
    finally:
        replay.replay = loop
        spent.append(total[0])
