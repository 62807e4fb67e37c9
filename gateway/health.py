"""The flow's readiness as the gateway sees it: each flow endpoint's ``/readyz`` polled in the
background (never per request), so a request learns in no time whether to wait for a score.

A flow is down when its endpoint refuses the connection, does not answer within the poll's
timeout, or answers anything but 200 (503 while it starts: ``dataflow.endpoint``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

import httpx

__all__ = ["FlowHealth"]

log = logging.getLogger(__name__)


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
        self._client = httpx.AsyncClient(timeout=max(interval_s, 0.1))

    async def start(self) -> None:
        """Poll once now, then keep polling in the background."""
        await self.poll()
        self._task = asyncio.create_task(self._loop(), name="flow-health")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._client.aclose()

    async def poll(self) -> None:
        problems = [p for p in await asyncio.gather(*map(self._check, self.urls)) if p]
        was_ready = self.problem is None
        self.problem = "; ".join(problems) or None
        if was_ready and self.problem is not None:
            log.warning("flow not ready: %s", self.problem)
            self.on_down(self.problem)
        elif not was_ready and self.problem is None:
            log.info("flow ready")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.poll()

    async def _check(self, url: str) -> str | None:
        try:
            r = await self._client.get(url)
        except httpx.HTTPError as exc:
            return f"{url}: {type(exc).__name__} {exc}".rstrip()
        if r.status_code != 200:
            return f"{url}: {r.status_code} {r.text.strip()[:200]}"
        return None
