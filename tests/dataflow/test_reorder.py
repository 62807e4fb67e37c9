"""The drift step's reorder buffer: bounded, loses nothing, restores event-time order."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflow.reorder import Reorder


def run(buffer: Reorder[tuple[float, int]], items: list[tuple[float, int]]) -> list:
    out = []
    for item in items:
        out += buffer.push(item[0], item)
        assert len(buffer) <= buffer.size  # bounded
    return out + buffer.flush()


@given(st.lists(st.integers(0, 50), max_size=200), st.integers(0, 30), st.randoms())
@settings(max_examples=200, deadline=None)
def test_blocks_shuffled_within_the_buffer_size_come_out_in_order(
    times: list[int], size: int, rng: random.Random
) -> None:
    """Items displaced by fewer positions than the buffer holds (here: a sorted stream
    shuffled within blocks of size + 1) come out sorted; equal times in arrival order."""
    ordered = [(float(t), i) for i, t in enumerate(sorted(times))]
    shuffled = []
    for start in range(0, len(ordered), size + 1):
        block = ordered[start : start + size + 1]
        rng.shuffle(block)
        shuffled += block
    arrival = {item: k for k, item in enumerate(shuffled)}
    out = run(Reorder(size), shuffled)
    assert [t for t, _ in out] == sorted(t for t, _ in shuffled)
    for a, b in itertools.pairwise(out):
        if a[0] == b[0]:
            assert arrival[a] < arrival[b]  # ties keep arrival order (a user's own events)


@given(st.lists(st.floats(0, 1e9), max_size=200), st.integers(0, 30))
@settings(max_examples=100, deadline=None)
def test_nothing_is_lost_or_repeated_whatever_the_order(times: list[float], size: int) -> None:
    items = [(t, i) for i, t in enumerate(times)]
    assert sorted(run(Reorder(size), items)) == sorted(items)


def test_a_late_item_goes_through_at_once_and_size_zero_is_a_pass_through() -> None:
    r = Reorder(2)
    assert r.push(10, "a") == [] and r.push(11, "b") == [] and r.push(12, "c") == ["a"]
    assert r.push(1, "late") == ["late"]  # older than what was released: not held
    assert r.held() == ["b", "c"] and len(r) == 2  # held() leaves them in
    r.hold(5, "restored")
    assert r.push(13, "d") == ["restored", "b"]
    assert Reorder(0).push(3, "x") == ["x"]
    with pytest.raises(ValueError, match="size"):
        Reorder(-1)
