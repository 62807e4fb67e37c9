"""``deepcredit bench step``: what the hidden size costs the live scorer, per event and per
user: the numpy step's time (median over repeats, one event at a time as the flow runs it) and
the snapshot bytes of a user's state, for each hidden size. Weights are a fresh model's (the
cost does not depend on their values); events are a generated stream.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from deepcredit.events import Activity, ClickEvent
from scorer.model import ModelWeights, advance
from scorer.user_state import UserState, encode_state
from training.benchmark.generator import GeneratorConfig, generate
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

__all__ = ["step_cost"]


def _weights(hidden: int) -> ModelWeights:
    return export_scorer(DeepCredit(ModelConfig(hidden_size=hidden)), f"bench-d{hidden}")


def _run(w: ModelWeights, events: list[ClickEvent]) -> tuple[float, float, list[int]]:
    """Seconds per post and per other event over one pass, and the final states' bytes."""
    states: dict[str, UserState] = {}
    spent = {True: 0.0, False: 0.0}
    for e in events:
        s = states.get(e.user_id)
        if s is None:
            s = states[e.user_id] = UserState.new(w.version, w.hidden_size)
        t0 = time.perf_counter()
        advance(w, s, e)
        spent[e.activity is Activity.POST] += time.perf_counter() - t0
    posts = sum(e.activity is Activity.POST for e in events)
    return (spent[True] / posts, spent[False] / (len(events) - posts),
            [len(encode_state(s)) for s in states.values()])  # fmt: skip


def step_cost(hidden_sizes: list[int], *, users: int, repeats: int) -> list[dict]:
    events = list(generate(GeneratorConfig(users=users, seed=0)))
    rows = []
    for d in hidden_sizes:
        w = _weights(d)
        runs = [_run(w, events) for _ in range(repeats)]
        sizes = runs[-1][2]
        rows.append({
            "hidden_size": d,
            "us_per_post": round(1e6 * statistics.median(r[0] for r in runs), 2),
            "us_per_other_event": round(1e6 * statistics.median(r[1] for r in runs), 2),
            "state_bytes_median": int(np.median(sizes)),
            "state_bytes_empty": len(encode_state(UserState.new(w.version, d))),
            "events": len(events), "repeats": repeats,
        })  # fmt: skip
    return rows
