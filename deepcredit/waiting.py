"""Waiting for a condition that something else makes true: a broker answering, topics getting
leaders, a flow writing its scores.

>>> calls = iter([0, 0, 7])
>>> wait_until(lambda: next(calls), timeout_s=5, interval_s=0.001)
7
>>> wait_until(lambda: False, timeout_s=0.01, interval_s=0.005, what="nothing")
Traceback (most recent call last):
...
TimeoutError: nothing: not within 0.01 s
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

__all__ = ["wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.2,
    *,
    what: str = "the condition",
) -> T:
    """Call ``predicate`` every ``interval_s`` seconds until it returns a truthy value, and
    return that value. It is called at least once, and once more at the deadline.

    Raises TimeoutError (``what`` and ``timeout_s`` in its message) when it is still falsy
    after ``timeout_s`` seconds; whatever ``predicate`` raises goes through at once.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if result:
            return result
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: not within {timeout_s:g} s")
        time.sleep(min(interval_s, left))
