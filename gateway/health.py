"""The flow's readiness as the gateway sees it: each flow endpoint's ``/readyz`` polled in the
background (never per request), so a request learns in no time whether to wait for a score.

A flow is down when its endpoint refuses the connection or answers anything but 200 (503 while
it starts: ``dataflow.endpoint``), at once; or when it has not answered for ``SLOW_GRACE_S``
(a process that hangs). A single slow answer is no outage: the flow's endpoint shares its
process with the flow, and on a busy machine an answer can take a few hundred milliseconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

import httpx

__all__ = ["FlowHealth"]

log = logging.getLogger(__name__)

#: How long a flow endpoint may go without answering before it counts as down.
SLOW_GRACE_S = 2.0
#: The longest wait for one answer to a poll.
_POLL_TIMEOUT_S = 1.0


class FlowHealth:
    """Poll every URL's ``/readyz`` every ``interval_s`` (each poll bounded by the same time)
    from an asyncio task; ``problem`` is None while all are ready, else why not. ``on_down``
    runs (in the loop) each time the flow goes from ready to not ready."""

    def __init__(
        self, urls: Sequence[str], interval_s: float, on_down: Callable[[str], None]
    ) -> None:
        if not urls:
            raise ValueError("at least one flow endpoint URL is needed")
        self.urls = [u.rstrip("/") + "/readyz" for u in urls]
        self.interval_s = interval_s
        self.on_down = on_down
        self.problem: str | None = "the flow's readiness not polled yet"
        self._task: asyncio.Task[None] | None = None
        self._client = httpx.AsyncClient(timeout=_POLL_TIMEOUT_S)
        self._answered = time.monotonic()  # when every flow last answered

    async def start(self) -> None:
        """Poll once now, then keep polling in the background."""
        await self.poll()
        self._task = asyncio.create_task(self._loop(), name="flow-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._client.aclose()

    async def poll(self) -> None:
        checks = await asyncio.gather(*map(self._check, self.urls))
        now, was_ready = time.monotonic(), self.problem is None
        slow = any(kind == "slow" for kind, _ in checks)
        if not slow:
            self._answered = now
        problems = [why for kind, why in checks if kind == "down" or (
            kind == "slow" and now - self._answered > SLOW_GRACE_S)]  # fmt: skip
        if problems:
            self.problem = "; ".join(problems)  # type: ignore[arg-type]
        elif not slow:
            self.problem = None
        # else: slow within the grace: what was known stands
        if was_ready and self.problem is not None:
            log.warning("flow not ready: %s", self.problem)
            self.on_down(self.problem)
        elif not was_ready and self.problem is None:
            log.info("flow ready")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.poll()

    async def _check(self, url: str) -> tuple[str, str | None]:
        """("ready", None), ("down", why) or ("slow", why): no answer within the timeout."""
        try:
            r = await self._client.get(url)
        except httpx.TimeoutException as exc:
            return "slow", f"{url}: no answer for {SLOW_GRACE_S:g} s ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            return "down", f"{url}: {type(exc).__name__} {exc}".rstrip()
        if r.status_code != 200:
            return "down", f"{url}: {r.status_code} {r.text.strip()[:200]}"
        return "ready", None
