"""``deepcredit bench engine``: what Bytewax itself costs per item, with nothing to do in the
steps, beside what issue 17's two live goals leave the flow.

The goals, in CPU time per event (``deepcredit bench live``): K for Kafka and our codec (the
plain loop without the model), s for the step, E for the rest of the flow (the engine, its
operators, decoding into records, the drift step). Then the plain loop with the model costs
K + s, the pass-through flow K + E, the model flow K + E + s, and both goals together, flow
≥ 0.8 of the plain loop and ≥ 0.6 of the pass-through, hold for some step only if E is at most
``overhead_allowance(K)``, half of K, however fast or slow the step is.

This measures the floor under E that the engine alone sets: flows over an in-memory source of
``items`` (user, index) pairs of ``users`` users, in batches of the clicks source's size, into a
sink that drops them, one worker, in this process, each variant once per repeat in an order
that rotates from repeat to repeat:

- ``input_output``: source to sink;
- ``map``: one stateless map between them;
- ``keyed_step``: ``key_on``, a ``stateful_batch`` whose logic hands its batch on and keeps
  nothing, ``key_rm``: the shape of the flow's per-user score step, with no work in it;
- ``two_keyed_steps``: that twice, the second on one key: the score step and the drift step
  that every event crosses to when the monitors watch every user.

Per variant: the median over repeats of the CPU time of this process per item (every thread),
and of the wall time.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Iterable

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulBatchLogic
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from dataflow.config import FlowConfig

__all__ = ["VARIANTS", "overhead_allowance", "run_engine_floor"]

VARIANTS = ("input_output", "map", "keyed_step", "two_keyed_steps")


def overhead_allowance(
    kafka_codec_us: float, over_plain: float = 0.8, over_pass: float = 0.6
) -> float:
    """The most the flow may cost per event above Kafka and the codec (E, µs) for the model
    flow to reach ``over_plain`` of the plain loop and ``over_pass`` of the pass-through with
    some step (the module docstring's K, s, E).

    (K + s) / (K + E + s) ≥ a holds iff E ≤ c (K + s), c = (1 − a) / a; (K + E) / (K + E + s)
    ≥ b iff s ≤ d (K + E), d = (1 − b) / b. The first is loosest at the largest step the
    second allows, so both hold for some s iff E ≤ c K (1 + d) / (1 − c d).

    >>> round(overhead_allowance(7.0), 9)
    3.5
    """
    c, d = (1 - over_plain) / over_plain, (1 - over_pass) / over_pass
    return c * kafka_codec_us * (1 + d) / (1 - c * d)


class _Drop(StatelessSinkPartition):
    def write_batch(self, items: list) -> None:
        pass


class _DropSink(DynamicSink):
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Drop:
        return _Drop()


class _HandOn(StatefulBatchLogic):
    """Hands each batch on, keeps nothing: a stateful step with no work."""

    def __init__(self, resume_state: None) -> None:
        pass

    def on_batch(self, values: list) -> tuple[Iterable, bool]:
        return values, StatefulBatchLogic.RETAIN

    def snapshot(self) -> None:
        return None


def _keyed(name: str, stream: Stream, key: Callable[[tuple[str, int]], str]) -> Stream:
    keyed = op.key_on(f"{name}_key", stream, key)
    return op.key_rm(f"{name}_unkey", op.stateful_batch(name, keyed, _HandOn))


def _flow(
    variant: str, items: list[tuple[str, int]], batch_size: int, sink: DynamicSink | None = None
) -> Dataflow:
    flow = Dataflow(f"engine_{variant}")
    stream = op.input("in", flow, TestingSource(items, batch_size=batch_size))
    if variant == "map":
        stream = op.map("map", stream, lambda x: x)
    elif variant in ("keyed_step", "two_keyed_steps"):
        stream = _keyed("score", stream, lambda x: x[0])
        if variant == "two_keyed_steps":
            stream = _keyed("drift", stream, lambda _: "all")
    elif variant != "input_output":
        raise ValueError(f"no such variant: {variant} (there are {', '.join(VARIANTS)})")
    op.output("out", stream, sink or _DropSink())
    return flow


def run_engine_floor(
    items: int,
    users: int,
    repeats: int,
    *,
    batch_size: int = FlowConfig.batch_size,
    kafka_codec_us: float | None = None,
) -> dict:
    """Every variant once per repeat (the module docstring); ``kafka_codec_us``: K, from a live
    benchmark, to set the allowance beside the floor. Returns {"us_per_item": {variant: {cpu,
    wall}} (medians), "runs", "allowance_us" (None without K), "settings", "load_average_1m"
    (before and after)}. Raises ValueError
    for fewer than one item, user or repeat."""
    if min(items, users, repeats, batch_size) < 1:
        raise ValueError("items, users, repeats and batch_size must be at least 1")
    data = [(f"user-{i % users}", i) for i in range(items)]
    load_before = os.getloadavg()[0]  # the machine is shared: what else ran, in the record
    runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
    for r in range(repeats):
        for variant in VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]:
            flow = _flow(variant, data, batch_size)
            cpu, wall = time.process_time(), time.perf_counter()
            run_main(flow)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            runs[variant].append({"cpu_us": round(cpu / items * 1e6, 3),
                                  "wall_us": round(wall / items * 1e6, 3)})  # fmt: skip
    medians = {
        v: {k: round(statistics.median(run[k] for run in runs[v]), 2)
            for k in ("cpu_us", "wall_us")}
        for v in VARIANTS
    }  # fmt: skip
    return {
        "us_per_item": medians,
        "runs": runs,
        "kafka_codec_us": kafka_codec_us,
        "allowance_us": (None if kafka_codec_us is None
                         else round(overhead_allowance(kafka_codec_us), 2)),
        "settings": {"items": items, "users": users, "repeats": repeats,
                     "batch_size": batch_size, "workers": 1},
        "load_average_1m": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }  # fmt: skip
