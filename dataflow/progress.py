"""Progress lines for an operator watching a flow that reads to the end of the clicks topic.

Every ``interval_s``, from a daemon thread, and once more at stop: events read (accepted and
dead-lettered), resends skipped, posts scored, and each clicks partition's next offset against
the topic's end. The counts come from the metrics the flow keeps anyway (``dataflow.metrics``),
so the flow does no extra work; the thread asks the broker for the topic's ends.
"""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import Counter, Gauge

from dataflow import metrics
from deepcredit.kafka_io import watermarks
from deepcredit.settings import KafkaSettings

__all__ = ["Progress"]

log = logging.getLogger(__name__)


class Progress:
    """Log the flow's progress on ``topic`` (the clicks) every ``interval_s`` seconds after
    ``start()``; ``stop()`` logs the summary. Counts start at ``start()`` (the metrics are
    process-wide, and a process may run several flows)."""

    def __init__(self, kafka: KafkaSettings, topic: str, interval_s: float) -> None:
        self.kafka = kafka
        self.topic = topic
        self.interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._base: dict[str, int] = {}
        self._started = 0.0

    def start(self) -> None:
        self._base = self._counts()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and log the summary: totals, rate and where each partition is."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
        seconds = time.monotonic() - self._started
        read = self._since_start()["read"]
        log.info("done in %.1f s (%s events/s): %s", seconds,
                 f"{read / seconds if seconds > 0 else 0:,.0f}", self.line())  # fmt: skip

    def line(self) -> str:
        """Where the flow is now, in one line."""
        c = self._since_start()
        counts = (f"{c['read']:,} events read ({c['dead']:,} dead-lettered, {c['resends']:,} "
                  f"resends skipped), {c['scored']:,} posts scored")  # fmt: skip
        return f"{counts}; {self._positions()}"

    def _run(self) -> None:
        while not self._stopping.wait(self.interval_s):
            log.info("progress: %s", self.line())

    def _positions(self) -> str:
        at = {int(p): int(v) for p, v in _samples(metrics.CLICKS_NEXT_OFFSET).items()}
        try:
            ends = {p: high for p, (_, high) in watermarks(self.kafka, self.topic, 5.0).items()}
        except Exception as exc:  # progress must not stop the flow: say why it is missing
            return f"{self.topic} ends unknown ({exc})"
        lag = sum(end - at[p] for p, end in ends.items() if p in at)
        parts = ", ".join(f"p{p} {at[p]:,}/{end:,}" if p in at else f"p{p} -/{end:,}"
                          for p, end in sorted(ends.items()))  # fmt: skip
        return f"{self.topic} lag {lag:,} (next offset/end: {parts})"

    def _since_start(self) -> dict[str, int]:
        now = self._counts()
        return {k: now[k] - self._base.get(k, 0) for k in now}

    @staticmethod
    def _counts() -> dict[str, int]:
        accepted = _total(metrics.EVENTS)
        dead = _total(metrics.DEAD_LETTERS)
        return {"read": accepted + dead, "dead": dead, "resends": _total(metrics.DUPLICATES),
                "scored": _total(metrics.SCORES)}  # fmt: skip


def _total(counter: Counter) -> int:
    """A counter's value summed over its labels."""
    return int(sum(s.value for m in counter.collect() for s in m.samples
                   if s.name.endswith("_total")))  # fmt: skip


def _samples(gauge: Gauge) -> dict[str, float]:
    """A one-label gauge's values by that label."""
    return {next(iter(s.labels.values())): s.value for m in gauge.collect() for s in m.samples}
