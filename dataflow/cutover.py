"""Cut the live flow over to a new model at a known offset of the clicks topic, with no score lost
and none scored by a mix of model versions (``deepcredit cutover``).

Old hidden states mean nothing under new weights, so every user's state is rebuilt by replaying
their history through the new model. The old flow is stopped first; then:

1. The known offset: the end (high watermark) of each clicks partition now, O_p. Nothing
   consumes past it; clicks produced from now on get offsets >= O_p and are the new flow's.
   The ends of the risk-scores topic too, to notice a flow that is still writing.
2. The history: every click with offset < O_p, from the topic, and from a click archive
   (``--archive``) for the offsets retention dropped; decoded as the flow decodes them (dead
   letters skipped and counted, repeats kept: the flow keeps them too), each user's in offset
   order (a user's clicks are keyed to one partition).
3. The rebuild: every user's state after their history under the new model, all users in
   lockstep (``scorer.rebuild``), and the new model's probabilities at each post on the way.
4. No score lost: a post of the history with no record at all on the risk-scores topic is
   scored now by the new model, with its probabilities at that post and the live thresholds;
   a post the old flow scored keeps that score, so each post has one model version. Only
   posts after the user's last scored post qualify: the old flow scored each user in order, so
   an unscored post before a scored one lost its score to retention (counted, left alone).
   Refused when the risk-scores topic grew since 1. (a flow still running would score past
   O_p, with the old model).
5. The seed (states and O_p, ``dataflow/seed.py``), written aside and renamed; then a
   readable ``summary.json`` beside it.

The new flow then starts from the seed: ``deepcredit serve --model B --seed DIR
--recovery-dir NEW_EMPTY_DIR``; it reads each partition from O_p.

| dies in | left behind                     | run it again, and                                    |
|---------|---------------------------------|------------------------------------------------------|
| 1.-3.   | nothing                         | it does the same                                     |
| 4.      | some of the new scores          | those posts count as scored; the rest are scored     |
| 5.      | no seed, or the seed alone      | the seed is written (again), then the summary        |
"""

from __future__ import annotations

import gzip
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
from confluent_kafka import Producer
from tqdm import tqdm

from dataflow.seed import Seed, write_seed
from dataflow.steps import score_message, score_record
from deepcredit.atomic import write_json
from deepcredit.codec import decode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.kafka_io import produce, read_range, watermarks
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS, read_latest
from scorer.artifact import load_scorer
from scorer.model import ModelWeights
from scorer.rebuild import Rebuilt, rebuild
from state.user_state import encode_state
from training.archive import Segment, read_segments

__all__ = ["SUMMARY_FILE", "CutoverConfig", "CutoverError", "CutoverSummary", "cutover"]

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"


class CutoverError(RuntimeError):
    """The cut-over cannot be done safely; the message says why and what to do."""


@dataclass(frozen=True)
class CutoverConfig:
    kafka: KafkaSettings
    topics: Topics
    model: Path  # the new model's folder
    out: Path  # where the seed and its summary go
    archive: Path | None = None  # a click archive for the offsets the topic no longer holds
    progress: bool = False
    timeout_s: float = 60.0  # most seconds without a message while reading a topic


class CutoverSummary(msgspec.Struct, kw_only=True):
    """What a cut-over did, for the operator (``summary.json``) and the tests."""

    model_version: str
    topic: str
    offsets: dict[int, int]  # clicks partition -> O_p, where the new flow starts
    users: int
    events: int  # valid clicks replayed
    from_archive: int  # of which read from the archive
    dead_letters: int  # messages before O_p that are not clicks (skipped, as the flow does)
    posts: int  # distinct posts before O_p
    already_scored: int  # of which the old flow had scored (they keep that score)
    filled_in: int  # of which scored now by the new model
    left_unscored: int  # of which unscored but before a scored post of the user (retention)
    thresholds_version: int  # of the decisions filled in
    rebuild_s: float
    events_per_s: float  # of the rebuild
    created_at: float


@dataclass
class _History:
    """The clicks before O_p, decoded, as the flow would have fed them to each user."""

    by_user: dict[str, list[ClickEvent]] = field(default_factory=lambda: defaultdict(list))
    posts: list[ClickEvent] = field(default_factory=list)  # in each partition's offset order
    events: int = 0
    from_archive: int = 0
    dead_letters: int = 0

    def add(self, value: bytes | None) -> None:
        event = decode_click(value)
        if not isinstance(event, ClickEvent):
            self.dead_letters += 1
            return
        self.events += 1
        self.by_user[event.user_id].append(event)
        if event.activity is Activity.POST:
            self.posts.append(event)


def cutover(cfg: CutoverConfig) -> CutoverSummary:
    """Rebuild every user's state under ``cfg.model`` at the clicks topic's current end, score
    the posts before it that have no score, write the seed; see the module's steps."""
    weights = load_scorer(cfg.model)
    ends = watermarks(cfg.kafka, cfg.topics.clicks, cfg.timeout_s)  # 1.
    scores_end = watermarks(cfg.kafka, cfg.topics.risk_scores, cfg.timeout_s)
    history = _read_history(cfg, ends)  # 2.
    started = time.perf_counter()  # 3.
    rebuilt = _rebuild(weights, history, cfg.progress)
    rebuild_s = time.perf_counter() - started
    filled = _fill_in(cfg, weights.version, history.posts, rebuilt, scores_end)  # 4.
    offsets = {p: high for p, (_, high) in ends.items()}
    seed = Seed(model_version=weights.version, topic=cfg.topics.clicks, offsets=offsets,
                states={u: encode_state(s) for u, s in rebuilt.states.items()},
                created_at=time.time())  # fmt: skip
    write_seed(cfg.out, seed)  # 5.
    summary = _summary(seed, history, filled, rebuild_s)
    _write_summary(cfg.out, summary)
    return summary


# -- 2. the history ---------------------------------------------------------------------------


def _read_history(cfg: CutoverConfig, ends: dict[int, tuple[int, int]]) -> _History:
    """Every message before O_p: a partition's dropped start from the archive, the rest from
    the topic (archive first, so each partition stays in offset order)."""
    history = _History()
    starts: dict[int, int] = {}
    for p, (low, high) in ends.items():
        starts[p] = 0
        if low > 0:
            lines, starts[p] = _archived(cfg.archive, cfg.topics.clicks, p, low, high)
            for line in lines:
                history.add(line)
            history.from_archive += len(lines)
    ranges = {p: (starts[p], high) for p, (_, high) in ends.items()}
    total = sum(end - start for start, end in ranges.values())
    with tqdm(total=total, desc="history", unit="ev", disable=not cfg.progress) as bar:
        for m in read_range(cfg.kafka, cfg.topics.clicks, ranges, cfg.timeout_s):
            history.add(m.value())
            bar.update()
    return history


def _archived(
    folder: Path | None, topic: str, partition: int, low: int, high: int
) -> tuple[list[bytes], int]:
    """The archive's messages of ``partition`` from offset 0, whole segments until the topic's
    low watermark ``low`` is reached (none at or past ``high``), and the offset after them."""
    where = f"{topic}[{partition}]"
    if folder is None:
        raise CutoverError(f"{where} starts at offset {low} (retention dropped the clicks before "
                           "it): pass --archive DIR, a click archive ('deepcredit archive') "
                           f"that holds offsets 0 to {low - 1}")  # fmt: skip
    segments = sorted((s for s in read_segments(folder)
                       if s.topic == topic and s.partition == partition),
                      key=lambda s: s.first_offset)  # fmt: skip
    lines: list[bytes] = []
    cursor = 0
    for s in segments:
        if cursor >= low or s.first_offset > cursor:
            break  # enough, or a hole
        if s.next_offset > cursor:
            lines += _segment_lines(folder, s, cursor, high)
            cursor = min(s.next_offset, high)
    if cursor < low:
        raise CutoverError(f"offsets {cursor} to {low - 1} of {where} are neither on the topic "
                           f"(it starts at {low}) nor in the archive {folder}")  # fmt: skip
    return lines, cursor


def _segment_lines(folder: Path, s: Segment, start: int, stop: int) -> list[bytes]:
    """The lines of segment ``s`` with start <= offset < stop. Cutting a segment needs each
    line's offset, known only when it skipped no offset (the archiver drops empty messages)."""
    with gzip.open(folder / s.file, "rb") as f:
        lines = [line.rstrip(b"\n") for line in f]
    if start <= s.first_offset and s.next_offset <= stop:
        return lines
    if len(lines) != s.next_offset - s.first_offset:
        raise CutoverError(f"archive segment {s.file} skips offsets, so it cannot be cut at "
                           f"offsets {start} to {stop}: run the cut-over again")  # fmt: skip
    return lines[max(0, start - s.first_offset) : stop - s.first_offset]


# -- 3. the rebuild ---------------------------------------------------------------------------


def _rebuild(weights: ModelWeights, history: _History, progress: bool) -> Rebuilt:
    with tqdm(total=history.events, desc="rebuild", unit="ev", disable=not progress) as bar:
        return rebuild(weights, history.by_user, on_step=bar.update)


# -- 4. no score lost -------------------------------------------------------------------------


class _ScoreId(msgspec.Struct):
    event_id: str


@dataclass(frozen=True)
class _FillIn:
    filled: int  # posts scored now
    left: int  # posts without a score that come before a score of the same user
    thresholds_version: int


def _fill_in(
    cfg: CutoverConfig,
    version: str,
    posts: list[ClickEvent],
    rebuilt: Rebuilt,
    scores_end: dict[int, tuple[int, int]],
) -> _FillIn:
    """Score by ``version`` the posts that have no score yet."""
    topic = cfg.topics.risk_scores
    scored = _scored(cfg, scores_end)
    missing, left = _unscored(posts, scored)
    if left:
        log.warning("%d posts have no score on %s but a later post of the same user has "
                    "(scores dropped by retention?): left as they are", left, topic)  # fmt: skip
    thresholds = read_latest(cfg.kafka, cfg.topics.thresholds) or DEFAULT_THRESHOLDS
    producer = Producer(cfg.kafka.client_config())
    for e in missing:
        msg = score_message(score_record(e, rebuilt.posts[e.event_id], thresholds, version))
        produce(producer, topic, msg.value, msg.key)
    if producer.flush(cfg.timeout_s) != 0:
        raise CutoverError(f"not every new score reached {topic}: run the cut-over again")
    return _FillIn(len(missing), left, thresholds.version)


def _scored(cfg: CutoverConfig, scores_end: dict[int, tuple[int, int]]) -> set[str]:
    """The event ids on the risk-scores topic up to its ends at 1., refused if it grew since."""
    topic = cfg.topics.risk_scores
    decoder = msgspec.json.Decoder(_ScoreId)
    scored = {decoder.decode(m.value()).event_id
              for m in read_range(cfg.kafka, topic, scores_end, cfg.timeout_s)}  # fmt: skip
    before = {p: high for p, (_, high) in scores_end.items()}
    now = {p: high for p, (_, high) in watermarks(cfg.kafka, topic, cfg.timeout_s).items()}
    if now != before:
        raise CutoverError(f"{topic} grew during the cut-over (ends {before} -> {now}): is "
                           "the old flow still running? Stop it, then run the cut-over "
                           "again")  # fmt: skip
    return scored


def _unscored(posts: list[ClickEvent], scored: set[str]) -> tuple[list[ClickEvent], int]:
    """The posts to score now, once each, in order: those with no score after their user's last
    scored post (the old flow scored each user's posts in order, so what it left is a suffix);
    and how many unscored posts come before a scored one (retention dropped their scores)."""
    last = {e.user_id: i for i, e in enumerate(posts) if e.event_id in scored}
    missing: dict[str, ClickEvent] = {}
    left: set[str] = set()
    for i, e in enumerate(posts):
        if e.event_id in scored:
            continue
        if i > last.get(e.user_id, -1):
            missing.setdefault(e.event_id, e)
        else:
            left.add(e.event_id)
    return list(missing.values()), len(left)


# -- 5. the summary ---------------------------------------------------------------------------


def _summary(seed: Seed, history: _History, filled: _FillIn, rebuild_s: float) -> CutoverSummary:
    posts = len({e.event_id for e in history.posts})
    return CutoverSummary(model_version=seed.model_version, topic=seed.topic,
                          offsets=seed.offsets, users=len(seed.states), events=history.events,
                          from_archive=history.from_archive, dead_letters=history.dead_letters,
                          posts=posts, already_scored=posts - filled.filled - filled.left,
                          filled_in=filled.filled, left_unscored=filled.left,
                          thresholds_version=filled.thresholds_version, rebuild_s=rebuild_s,
                          events_per_s=history.events / rebuild_s if rebuild_s else 0.0,
                          created_at=seed.created_at)  # fmt: skip


def _write_summary(folder: Path, summary: CutoverSummary) -> None:
    write_json(folder / SUMMARY_FILE, msgspec.to_builtins(summary))
