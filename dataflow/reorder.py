"""Put a nearly time-ordered stream back in event-time order, with a bounded buffer.

The drift step's input is not in event time: the score step hands each batch over grouped by
user (Bytewax's ``stateful_batch`` calls its logic key by key), and the clicks partitions'
batches interleave. In a live stream a batch spans seconds and this hardly matters; in a
backlog (a replay, a catch-up after an outage) one batch spans days of event time, and a
monitor that reads user after user sees a drift of its own. Measured in the drift loop: with
three clicks partitions the first input alert came 66 days after the shift instead of 11.

``Reorder`` keeps the latest ``size`` items in a heap and releases the oldest beyond that, so
an item displaced by fewer than ``size`` positions comes out in place; ties keep their arrival
order (so each user's events, which arrive in order, stay in order). An item older than one
already released goes through at once (late), never held. ``flush`` releases the rest (end of
input). Size it to the displacement: a few batches of every partition (the flow's default,
``DRIFT_REORDER``, is 10,000 items: 1,000-message polls of up to ten partitions).

>>> r = Reorder(size=2)
>>> [r.push(ts, name) for ts, name in [(3, "c"), (1, "a"), (2, "b"), (5, "e"), (4, "d")]]
[[], [], ['a'], ['b'], ['c']]
>>> r.flush()
['d', 'e']
"""

from __future__ import annotations

import heapq
from typing import Generic, TypeVar

__all__ = ["DRIFT_REORDER", "Reorder"]

#: Items the flow's drift step holds to restore event-time order.
DRIFT_REORDER = 10_000

T = TypeVar("T")


class Reorder(Generic[T]):
    """A bounded event-time reorder buffer (see the module)."""

    def __init__(self, size: int) -> None:
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size}")
        self.size = size
        self._heap: list[tuple[float, int, T]] = []
        self._count = 0  # arrivals: the tie-breaker that keeps arrival order

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, ts: float, item: T) -> list[T]:
        """Add one item; the items it pushes out of the buffer, oldest first."""
        self._count += 1
        heapq.heappush(self._heap, (ts, self._count, item))
        out = []
        while len(self._heap) > self.size:
            out.append(heapq.heappop(self._heap)[2])
        return out

    def hold(self, ts: float, item: T) -> None:
        """Add one item without releasing any (restoring a snapshot; the next push releases
        what is beyond ``size``)."""
        self._count += 1
        heapq.heappush(self._heap, (ts, self._count, item))

    def held(self) -> list[T]:
        """The items held, oldest first (for a snapshot), without releasing them."""
        return [item for _, _, item in sorted(self._heap, key=lambda e: e[:2])]

    def flush(self) -> list[T]:
        """Every held item, oldest first; the buffer is empty afterwards."""
        out = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        return out
