"""``deepcredit bench step``: what one event costs the live scorer, and what the hidden size
costs per event and per user. Per hidden size, in one run and in alternating order per repeat
(paired repeats, medians reported): the compiled step the flow runs (``scorer.model.advance``),
the numpy reference step it replaced (``scorer.model.advance_reference``, with the same repeat
check), and the bookkeeping alone (event key, fingerprint and ``scorer.steps.plan_step``: the
ledger and the features, no model), each timed one event at a time as the flow runs them, posts
apart from the other events; the compiled kernel alone per kind of step (``KERNEL_KINDS``:
``scorer.fast.step_seconds``, a loop inside the compiled code, so no Python call or dispatch);
and the snapshot bytes of a user's state. Weights are a fresh model's per hidden size, and a
trained model's per ``models`` folder: only the reasons' occlusion depends on the weights (how
many units of the heads move); events are a generated stream.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from deepcredit.events import Activity, ClickEvent
from scorer import fast
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, advance, advance_reference, warm_up
from scorer.steps import plan_step
from scorer.user_state import Seen, UserState, encode_state, event_fingerprint, event_key
from training.benchmark.generator import GeneratorConfig, generate
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig

__all__ = ["KERNEL_KINDS", "STEPS", "step_cost"]

#: The kernel's kinds of step timed (``scorer.fast.step``'s ``kind`` bits, reasons or not):
#: an activity (its TLSTM), a repay or missed payment (the loan-level TLSTM), a post (the
#: loan-level and state-level TLSTMs and the heads), and a post with its reason codes'
#: occlusion, as the live flow runs it.
KERNEL_KINDS: dict[str, tuple[int, bool]] = {
    "activity": (1, False), "loan": (2, False), "post": (6, False),
    "post_with_reasons": (6, True),
}  # fmt: skip


def _weights(hidden: int) -> ModelWeights:
    return export_scorer(DeepCredit(ModelConfig(hidden_size=hidden)), f"bench-d{hidden}")


def _numpy(w: ModelWeights, s: UserState, e: ClickEvent) -> object:
    key, fingerprint = event_key(e.event_id), event_fingerprint(e)
    if s.seen(key, fingerprint) is not Seen.NEW:
        return None
    return advance_reference(w, s, e, key, fingerprint)


def _bookkeeping(w: ModelWeights, s: UserState, e: ClickEvent) -> object:
    key, fingerprint = event_key(e.event_id), event_fingerprint(e)
    if s.seen(key, fingerprint) is not Seen.NEW:
        return None
    s.remember(key, fingerprint)
    return plan_step(s.memory, e)


#: The ways timed, by name: the flow's step, the numpy reference, the bookkeeping alone.
STEPS: dict[str, Callable[[ModelWeights, UserState, ClickEvent], object]] = {
    "compiled": advance,
    "numpy": _numpy,
    "bookkeeping": _bookkeeping,
}


def _run(
    step: Callable[[ModelWeights, UserState, ClickEvent], object],
    w: ModelWeights,
    events: list[ClickEvent],
) -> tuple[float, float, list[int]]:
    """Seconds per post and per other event over one pass, and the final states' bytes."""
    states: dict[str, UserState] = {}
    spent = {True: 0.0, False: 0.0}
    clock = time.perf_counter
    for e in events:
        s = states.get(e.user_id)
        if s is None:
            s = states[e.user_id] = UserState.new(w.version, w.hidden_size)
        t0 = clock()
        step(w, s, e)
        spent[e.activity is Activity.POST] += clock() - t0
    posts = sum(e.activity is Activity.POST for e in events)
    return (spent[True] / posts, spent[False] / (len(events) - posts),
            [len(encode_state(s)) for s in states.values()])  # fmt: skip


def step_cost(
    hidden_sizes: list[int], *, users: int, repeats: int, models: Sequence[Path] = ()
) -> list[dict]:
    """One row per hidden size (a fresh model) and per model folder (``model``: its path):
    µs per post and per other event of each way (``STEPS``), the ratio numpy / compiled per
    event (median over the paired repeats), the kernel per kind of step, the state bytes."""
    events = list(generate(GeneratorConfig(users=users, seed=0)))
    posts = sum(e.activity is Activity.POST for e in events)
    rows = []
    chosen = [(_weights(d), None) for d in hidden_sizes]
    chosen += [(load_scorer(m), str(m)) for m in models]
    for w, model in chosen:
        d = w.hidden_size
        started = time.perf_counter()
        warm_up(w)  # compiled, or loaded from numba's cache: not timed below
        warm_s = time.perf_counter() - started
        runs: dict[str, list[tuple[float, float, list[int]]]] = {name: [] for name in STEPS}
        kernel: dict[str, list[float]] = {name: [] for name in KERNEL_KINDS}
        for r in range(repeats):
            order = list(STEPS) if r % 2 == 0 else list(reversed(STEPS))
            for name in order:
                runs[name].append(_run(STEPS[name], w, events))
            for name, (kind, reasons) in KERNEL_KINDS.items():
                kernel[name].append(fast.step_seconds(w.packed, d, kind, reasons=reasons))

        def per_event(run: tuple[float, float, list[int]]) -> float:
            return (run[0] * posts + run[1] * (len(events) - posts)) / len(events)

        ratio = [per_event(a) / per_event(b)
                 for a, b in zip(runs["numpy"], runs["compiled"], strict=True)]  # fmt: skip
        row: dict = {"hidden_size": d} | ({"model": model} if model else {})
        for name, rs in runs.items():
            row[name] = {
                "us_per_post": round(1e6 * statistics.median(x[0] for x in rs), 2),
                "us_per_other_event": round(1e6 * statistics.median(x[1] for x in rs), 2),
                "us_per_event": round(1e6 * statistics.median(per_event(x) for x in rs), 2),
            }
        row["kernel_us"] = {name: round(1e6 * statistics.median(v), 2)
                            for name, v in kernel.items()}  # fmt: skip
        sizes = runs["compiled"][-1][2]
        row |= {
            "numpy_over_compiled": round(statistics.median(ratio), 2),
            "numpy_over_compiled_runs": [round(x, 2) for x in ratio],
            "warm_up_s": round(warm_s, 2),
            "state_bytes_median": int(np.median(sizes)),
            "state_bytes_empty": len(encode_state(UserState.new(w.version, d))),
            "events": len(events), "posts": posts, "repeats": repeats,
        }  # fmt: skip
        rows.append(row)
    return rows
