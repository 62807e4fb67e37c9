"""The synthetic clickstream benchmark, calibrated to the DeepCredit paper's dataset.

``generate`` yields every user's click events merged into one stream in event-time order, as a
replay to the clicks topic would send them; ``write_jsonl`` writes that stream one JSON event per
line and returns what was realised, beside the paper's figures. Each user is simulated lazily
(``training.benchmark.user``), so memory grows with the number of users, never with the number
of events. Command line::

    deepcredit generate --users 10000 --out clicks.jsonl.gz --stats stats.json \
        --oracle oracle.jsonl.gz

>>> events = list(generate(GeneratorConfig(users=3, seed=7, horizon_days=60)))
>>> all(a.ts <= b.ts for a, b in zip(events, events[1:]))
True
"""

from __future__ import annotations

import heapq
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from deepcredit.atomic import atomic_writer
from deepcredit.codec import encode
from deepcredit.events import DAY_S, ClickEvent
from training.benchmark.config import GeneratorConfig
from training.benchmark.oracle import LoanOracle, write_oracle
from training.benchmark.stats import BenchmarkStats, StatsCollector
from training.benchmark.user import UserSimulator, user_id

__all__ = ["AtPost", "BenchmarkStats", "GeneratorConfig", "generate", "write_jsonl"]

#: Lines buffered per write: fewer system calls without holding much.
_WRITE_BATCH = 4096
#: gzip level: 6 is near 9's size at a fraction of its time.
_GZIP_LEVEL = 6


def generate(
    config: GeneratorConfig,
    oracle: list[LoanOracle] | None = None,
    at_post: AtPost | None = None,
) -> Iterator[ClickEvent]:
    """All users' events with ts non-decreasing across the whole stream (ties: lower user
    index first). Deterministic for a config. ``oracle``: a list each settled loan's true
    outcome probabilities are appended to as the stream is drawn (``training.benchmark.oracle``;
    never a model input), with those as of the post for the users ``at_post`` names; the
    events are the same with or without them."""
    streams = [
        UserSimulator(config, index, oracle,
                      0 if at_post is None else at_post.paths_for(user_id(index))).events()
        for index in range(config.users)
    ]  # fmt: skip
    return heapq.merge(*streams, key=_event_ts)


@dataclass(frozen=True)
class AtPost:
    """Which users' loans get the oracle as of their post, and over how many simulated futures
    (``training.benchmark.user.UserSimulator``). ``users``: their ids; None: every user."""

    paths: int
    users: frozenset[str] | None = None

    def paths_for(self, user: str) -> int:
        return self.paths if self.users is None or user in self.users else 0


def write_jsonl(
    config: GeneratorConfig,
    path: str | Path,
    progress: bool = True,
    oracle_path: str | Path | None = None,
    at_post: AtPost | None = None,
) -> BenchmarkStats:
    """Write the benchmark to ``path`` (gzip when it ends in ``.gz``), one encoded event per line.

    Same config, same bytes (the gzip header carries no name or time). Written to a side file
    and renamed at the end, so a reader never sees half a benchmark. ``oracle_path``: also
    write each settled loan's true probabilities of delinquency and default there
    (``training.benchmark.oracle``: the benchmark's ceiling, never an input to any model);
    the events file is the same bytes with or without it. ``at_post``: with the oracle, also
    the probabilities as of the post for these users. Raises ValueError for ``at_post``
    without ``oracle_path``: they would go nowhere.
    """
    path = Path(path)
    if at_post is not None and oracle_path is None:
        raise ValueError("probabilities as of the post need an oracle file to go to")
    if oracle_path is None:
        return _write_jsonl(config, path, progress, None, None)
    oracle: list[LoanOracle] = []
    stats = _write_jsonl(config, path, progress, oracle, at_post)
    write_oracle(oracle_path, oracle)
    return stats


def _write_jsonl(
    config: GeneratorConfig,
    path: Path,
    progress: bool,
    oracle: list[LoanOracle] | None,
    at_post: AtPost | None,
) -> BenchmarkStats:
    collector = StatsCollector(config)
    gzipped = path.name.endswith(".gz")
    with (
        atomic_writer(path, gzip=gzipped, compresslevel=_GZIP_LEVEL) as out,
        tqdm(
            total=round(config.horizon_days),
            unit="day",
            disable=not progress,
            desc=f"generating {config.users:,} users",
        ) as bar,
    ):
        _write_events(config, out, collector, bar, oracle, at_post)
    return collector.finish()


def _write_events(
    config: GeneratorConfig,
    out: io.BufferedIOBase,
    collector: StatsCollector,
    bar: tqdm,
    oracle: list[LoanOracle] | None,
    at_post: AtPost | None,
) -> None:
    """Encode the stream in batches of lines, counting every event, advancing the bar in days."""
    done_days = 0
    lines: list[bytes] = []
    for event in generate(config, oracle, at_post):
        collector.add(event)
        lines.append(encode(event))
        if len(lines) == _WRITE_BATCH:
            out.write(b"\n".join(lines) + b"\n")
            lines.clear()
            days = int((event.ts - config.start_ts) / DAY_S)
            bar.update(days - done_days)
            done_days = days
    if lines:
        out.write(b"\n".join(lines) + b"\n")
    bar.update(bar.total - done_days)


def _event_ts(event: ClickEvent) -> float:
    return event.ts
