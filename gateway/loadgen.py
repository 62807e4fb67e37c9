"""The load generator of ``deepcredit bench gateway``: unique loan posts sent to a gateway over
HTTP/1.1 keep-alive connections on asyncio streams.

Two ways to load it:
- ``closed_loop``: every connection sends its next post as soon as its last is answered; what
  comes back per second is the gateway's maximum throughput with that many connections.
- ``open_loop``: posts are due at a fixed rate whatever the answers do; a post's latency runs
  from the moment it was due, so a gateway that falls behind is charged the wait (no
  coordinated omission).

Why not wrk, locust or httpx: Debian's wrk is closed-loop only (no fixed rate, so no latency at
50% and 90% of the maximum; wrk2 is not packaged); locust and httpx spend several times more CPU
per request than this, and the generator shares the machine's cores with the gateway, the flow
and the broker. A post is a few hundred bytes and the answer's framing is Content-Length
(uvicorn's), which is all this client reads.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from deepcredit.codec import encode_click
from deepcredit.events import Activity, ClickEvent

__all__ = ["Load", "closed_loop", "open_loop", "posts", "summarise"]


def posts(run: str, users: int, start_ts: float = 1.7e9) -> Iterator[bytes]:
    """Endless loan posts, each with an event id and loan id of its own (``run`` keeps runs
    apart), spread over ``users`` users, each user's in time order."""
    for i in itertools.count():
        yield encode_click(ClickEvent(
            event_id=f"{run}-e{i}", user_id=f"{run}-u{i % users}", ts=start_ts + i,
            activity=Activity.POST, amount=100.0 + i % 900, loan_id=f"{run}-l{i}", rate=0.12,
            term_days=30))  # fmt: skip


@dataclass
class Load:
    """What came back: latencies (seconds) of the 200 answers, counts of the others by
    status (0: the connection failed), and the span from the first post due to the last
    answer."""

    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """POST ``body`` to /v1/score; the status (0 when the connection failed)."""
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            head = (f"POST /v1/score HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(body)}\r\n\r\n")  # fmt: skip
            self.writer.write(head.encode() + body)
            assert self.reader is not None
            status_line = await self.reader.readuntil(b"\r\n")
            headers = await self.reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await self.reader.readexactly(length)
            return int(status_line.split()[1])
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            self.close()
            return 0

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _record(load: Load, status: int, latency: float) -> None:
    if status == 200:
        load.latencies.append(latency)
    else:
        load.statuses[status] = load.statuses.get(status, 0) + 1


async def closed_loop(
    host: str, port: int, bodies: Iterator[bytes], connections: int, seconds: float
) -> Load:
    """``connections`` connections each sending post after post for ``seconds``."""
    load = Load()
    start = time.perf_counter()
    deadline = start + seconds

    async def one() -> None:
        conn = _Connection(host, port)
        while time.perf_counter() < deadline:
            sent = time.perf_counter()
            _record(load, await conn.post(next(bodies)), time.perf_counter() - sent)
        conn.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    load.seconds = time.perf_counter() - start
    return load


async def open_loop(
    host: str, port: int, bodies: Iterator[bytes], rate: float, seconds: float,
    connections: int,
) -> Load:  # fmt: skip
    """Posts due every 1/``rate`` s for ``seconds``, sent over up to ``connections``
    connections (a post waits for a free one, and that wait counts in its latency)."""
    load = Load()
    due: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
    start = time.perf_counter()
    total = int(rate * seconds)

    async def worker() -> None:
        conn = _Connection(host, port)
        while (item := await due.get()) is not None:
            at, body = item
            _record(load, await conn.post(body), time.perf_counter() - at)
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    for i in range(total):
        at = start + i / rate
        wait = at - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        due.put_nowait((at, next(bodies)))
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    load.seconds = time.perf_counter() - start
    return load


def summarise(load: Load) -> dict[str, float | int | dict[str, int]]:
    """Answers per second (200s only), p50 and p99 latency in milliseconds, and the other
    answers by status."""
    lat = sorted(load.latencies)

    def pct(q: float) -> float:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else float("nan")

    return {"answered_per_s": round(len(lat) / load.seconds, 1) if load.seconds else 0.0,
            "answered": len(lat), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "other_answers": {str(k): v for k, v in sorted(load.statuses.items())}}  # fmt: skip
