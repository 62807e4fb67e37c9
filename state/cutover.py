"""Cut the live flow over to a new model at a known offset of the clicks topic, with no score lost,
none scored by a mix of model versions, and the old flow down only for the last clicks
(``deepcredit cutover``).

Old hidden states mean nothing under new weights, so every user's state is rebuilt by replaying
their history through the new model. That rebuild is most of the work, and it needs no pause:
offsets below a partition's end never change. So the cut-over has two phases.

**Prepare** (``prepare_cutover``, ``deepcredit cutover --prepare``), with the old flow still
running; nothing is written to Kafka:

1. The prepared offsets: the end (high watermark) of each clicks partition now, H_p.
2. The history: every click with offset < H_p, from the topic, and from a click archive
   (``--archive``) for the offsets retention dropped; decoded as the flow decodes them (dead
   letters skipped and counted), each user's in offset order (a user's clicks are keyed to
   one partition). It is spilled to disk as it is read, each click to its user's bucket
   (``deepcredit.buckets``; ``bucket_events`` clicks a bucket, in ``DIR/history.spill``, about
   the history's size as JSON, removed at the end), so the prepare holds one bucket of users
   at a time, never the whole history. Repeated event ids stay in the history: the rebuild
   skips them by the flow's own rule (an id among the user's last 32 advanced ids,
   ``scorer.model.is_repeat``; an older copy is replayed, as the flow would have advanced
   it), and each rebuilt state remembers its user's last 32 ids and their content
   fingerprints, so the new flow also skips resends of earlier clicks and refuses conflicting
   duplicates of them. A conflicting duplicate (an id reused for other content) is counted
   (``conflicting_duplicates`` in the summary) and logged; the old flow dead-lettered the
   ones it read.
3. The rebuild, a bucket at a time (``rebuild_in_buckets``): each user's state after their
   history under the new model, the users of a bucket in lockstep (``scorer.rebuild``), and
   the new model's probabilities and reason codes at each post on the way.
4. The prepared cut-over (``Prepared``: H_p, the states, the posts and their probabilities),
   written aside a bucket's part (``PreparedPart``) at a time and renamed to
   ``DIR/prepared.msgpack``. A file, not only memory: the two phases run as two commands,
   minutes or hours apart (stop the old flow in between), and a finish that dies during the
   downtime is rerun from the file without redoing the rebuild. It costs about the seed's size
   plus the posts that may need a score: the prepare reads the answers on the risk-scores
   topic (scores and not_scored records) up to its ends when it began, spilled to the same
   buckets by user, and keeps only each user's posts after their last answered one (with a
   running old flow and its answers retained, the few in flight), counting the rest. A post
   counted as answered stays so if retention drops its answer before the finish. Retention
   on the risk-scores topic drops answers too: with the old flow's recovery folder
   (``old_recovery``, ``--old-recovery-dir``) every post it had read as of the snapshots a
   restart would load counts as answered (every step finished those epochs, its answers
   written); without it, a post whose answer expired counts as unanswered and the finish
   scores it again (the prepare warns when the topic has dropped answers). The finish holds
   all of it (``read_prepared``). The states stay encoded as the seed holds them, so the
   finish decodes only the users the tail touches and passes the others' bytes to the seed
   as they are. One prepare of a part into DIR runs at a time: it holds ``DIR/prepare.lock``
   (a part's ``prepare-partitions-0-2.lock``; the file stays).

**Finish** (``finish_cutover``, ``deepcredit cutover --finish``), after the old flow is stopped
(SIGTERM); the downtime is this phase only:

1. The known offset: the end of each clicks partition now, O_p >= H_p. Nothing consumes past
   it; clicks produced from now on get offsets >= O_p and are the new flow's. The ends of the
   risk-scores topic too, to notice a flow that is still writing. Refused, changing nothing,
   when the prepared model or topic is not this cut-over's, or when a partition now ends below
   H_p or the partitions changed (the topic was recreated): prepare again.
2. The tail: the clicks with H_p <= offset < O_p (from the archive too, if retention dropped
   some since), decoded as in prepare 2.
3. The tail's users advanced click by click by the flow's own step (``UserScorer``'s:
   ``scorer.reasons.advance_with_reasons``, the model and a post's reason codes compiled)
   from their prepared states, users first seen in the tail from ``UserState.new``; each tail
   post's probabilities and reason codes on the way. Repeats are skipped here
   too (``advance``), conflicting duplicates counted and logged. A user's clicks are in one
   partition, in offset order, so this is their whole history replayed (the lockstep rebuild
   equals ``advance`` within float32 rounding, 1e-5; tested).
4. No score lost: a post before O_p with no record at all on the risk-scores topic is scored
   now by the new model, with its probabilities at that post and the live thresholds; a post
   the old flow scored keeps that score, so each post has one model version. Only posts after
   the user's last scored post qualify: the old flow scored each user in order, so an unscored
   post before a scored one lost its score to retention (counted, left alone). The posts
   looked at are the ones the prepare kept and the tail's; the topic is read from the
   prepare's ends on (``_scored`` says why that is enough) and only the answers to those
   posts are held. A tail click that repeats an earlier post beyond its state's memory of
   ids is a new post to the flow, and is scored like one. Refused when the risk-scores topic
   grew since 1. (a flow still running would score past O_p, with the old model).
5. The seed (states and O_p, ``state/seed.py``), written aside and renamed; then a
   readable ``summary.json`` beside it, with both phases' durations and the tail's size.

``cutover`` is both at once (prepare, in memory only, then finish), for a flow already stopped:
the risk-scores ends are taken before the rebuild, so a flow still running is caught.

The new flow then starts from the seed: ``deepcredit serve --model B --seed DIR
--recovery-dir NEW_EMPTY_DIR``; it reads each partition from O_p. Once it runs, do not run the
finish (or ``cutover``) into DIR again: it would overwrite the seed under a running flow.

| dies in            | left behind                        | run it again, and                      |
|--------------------|------------------------------------|----------------------------------------|
| prepare 1.-3.      | an older prepared file; killed:    | it clears those first, then does the   |
|                    | the spill and a partial file       | same                                   |
| prepare 4.         | the older prepared file or the new | it does the same                       |
| finish 1.-3.       | nothing                            | it does the same (clicks that came     |
|                    |                                    | meanwhile make the tail longer)        |
| finish 4.          | some of the new scores             | those posts count as scored; the rest  |
|                    |                                    | are scored                             |
| finish 5.          | no seed, or the seed alone         | the seed is written (again), then the  |
|                    |                                    | summary                                |
| ``cutover``        | as its finish's rows               | it does it all again                   |

The prepared file is kept after the finish (a rerun of a finish that died needs it); a prepare
run again into DIR replaces it.

**Split by clicks partition** (``CutoverConfig.partitions``, ``--partitions``): a cut-over of
some partitions reads, rebuilds and seeds only them and their users (a user's clicks are keyed
to one partition), so the processes of a cluster each rebuild their own users side by side. Each
part writes its own files into the same DIR (``prepared-partitions-0-2.msgpack``,
``seed-partitions-0-2.msgpack``, ``summary-partitions-0-2.json``; ``state.seed.part_file``),
and the new flow reads every part of DIR as one seed (``state.seed.read_seed``, which refuses
parts that do not make one cut-over). Each part's seed records every partition the topic had
at its prepare, and the time of that prepare (0 for a part done in one go). The finishes
run one after another: each takes the risk-scores ends at its start, and another part's
fill-ins would make the topic grow under it (refused as a flow still running; rerun it).
"""

from __future__ import annotations

import fcntl
import logging
import os
import pickle
import shutil
import sqlite3
import time
from collections import ChainMap, defaultdict, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import msgspec
from tqdm import tqdm

from deepcredit.archive import read_offsets
from deepcredit.atomic import atomic_writer, write_json
from deepcredit.buckets import BucketFiles, bucket_count
from deepcredit.codec import decode_click, encode
from deepcredit.events import Activity, ClickEvent
from deepcredit.kafka_io import UndeliveredError, delivering, produce, read_range, watermarks
from deepcredit.records import kafka_headers, score_record
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS, read_latest
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, StateVersionError
from scorer.reasons import advance_with_reasons
from scorer.rebuild import rebuild
from scorer.steps import history_at
from scorer.user_state import (
    RECENT_IDS,
    Seen,
    UserState,
    decode_state,
    encode_state,
    event_fingerprint,
    event_key,
)
from state.recovery_store import read_input_offsets
from state.seed import Seed, part_file, partitions_option, write_seed

__all__ = [
    "PREPARED_FILE",
    "SUMMARY_FILE",
    "BucketsRebuilt",
    "CutoverConfig",
    "CutoverError",
    "CutoverSummary",
    "Prepared",
    "PreparedPart",
    "SpilledHistory",
    "cutover",
    "finish_cutover",
    "prepare_cutover",
    "read_prepared",
    "rebuild_in_buckets",
    "write_part",
]

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.json"
PREPARED_FILE = "prepared.msgpack"
#: The folder beside the prepared file where a prepare spills its history (removed when the
#: prepare ends; one left by a prepare that died is cleared by the next).
_SPILL_DIR = "history.spill"
#: Held by a prepare while it runs, so that two of the same part do not share a spill.
_LOCK_FILE = "prepare.lock"

#: Clicks per bucket of the history a prepare spills to disk (``CutoverConfig.bucket_events``).
BUCKET_EVENTS = 200_000
#: The first bytes of a prepared cut-over's file (``read_prepared``: what follows).
_PREPARED_MAGIC = b"deepcredit prepared cut-over, in parts\n"
_PART, _HEADER = b"P", b"H"

Probabilities = tuple[float, float]  # (P(delinquent), P(default))
History = tuple[int, float]  # (events before a post, days of history: a score's cold start)


class CutoverError(RuntimeError):
    """The cut-over cannot be done safely; the message says why and what to do."""


@dataclass(frozen=True)
class CutoverConfig:
    kafka: KafkaSettings
    topics: Topics
    model: Path  # the new model's folder
    out: Path  # where the prepared cut-over, the seed and its summary go
    archive: Path | None = None  # a click archive for the offsets the topic no longer holds
    progress: bool = False
    timeout_s: float = 60.0  # most seconds without a message while reading a topic
    partitions: tuple[int, ...] = ()  # the clicks partitions of this part; () all of them
    # Clicks per bucket of the spilled history (prepare 2.): a bucket is what the prepare holds
    # in memory at a time, about 1 KB a click as objects with its rebuild.
    bucket_events: int = BUCKET_EVENTS
    # The old flow's recovery folder: the clicks it had read by its latest snapshot count as
    # answered, even where the risk-scores topic's retention dropped the answers.
    old_recovery: Path | None = None


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """Every user's state under one model after the clicks before ``offsets`` (H_p), and the
    posts before them with that model's probabilities at each: what the finish starts from."""

    model_version: str
    topic: str  # the clicks topic the offsets belong to
    offsets: dict[int, int]  # clicks partition -> H_p, the first offset not in the states
    states: dict[str, bytes]  # user id -> scorer.user_state.encode_state bytes
    # The posts before H_p that the finish may have to score, each user's in offset order:
    # those after the user's last post answered by ``scores_offsets`` (every post when empty)
    posts: list[ClickEvent]
    probabilities: dict[str, Probabilities]  # post event id -> the model's, at that post
    events: int  # valid clicks replayed
    from_archive: int  # messages of which read from the archive
    dead_letters: int  # messages before H_p that are not clicks
    rebuild_s: float  # the lockstep rebuild alone
    prepare_s: float  # the whole prepare: read, rebuild, encode
    created_at: float  # wall clock, Unix s
    conflicts: int = 0  # clicks skipped as conflicting duplicates (an id reused)
    # post event id -> (events before it, days since the first: ``scorer.steps.history_at``);
    # empty in a cut-over prepared before scores carried it (the finish asks to prepare again)
    history: dict[str, History] = {}
    # post event id -> its reason codes (``scorer.reasons``); empty in a cut-over prepared
    # before scores carried them (its fill-ins then carry none)
    reasons: dict[str, list[str]] = {}
    topic_partitions: list[int] = []  # every partition of the topic at 1. (a part's seed says)
    users: int = 0  # users with a state (``prepare_cutover`` returns the rest without them)
    # The risk-scores topic's ends when the prepare began (partition -> end). Posts answered
    # on it by then are counted here and left out of ``posts`` (the finish never scores
    # them), as are unanswered ones before an answered post of the same user; empty in a
    # cut-over prepared before that (``posts`` then holds every post).
    scores_offsets: dict[int, int] = {}
    answered: int = 0  # distinct posts of the history answered by ``scores_offsets``
    left_unscored: int = 0  # distinct unanswered posts before an answered one of their user

    def problem(
        self, model_version: str, topic: str, ends: Mapping[int, int] | None = None
    ) -> str | None:
        """Why a cut-over to ``model_version`` on ``topic``, whose partitions end at ``ends``
        now, must not finish from this: None when it may."""
        again = "prepare again: 'deepcredit cutover --prepare --model MODEL --out DIR'"
        if self.model_version != model_version:
            return (f"the cut-over was prepared for model {self.model_version}, not for "
                    f"{model_version}: finish with the model it was prepared for, or {again} "
                    "(the old flow may run meanwhile)")  # fmt: skip
        if self.topic != topic:
            return (f"the cut-over was prepared on topic {self.topic!r}, this one reads "
                    f"{topic!r} (DEEPCREDIT_TOPIC_PREFIX?)")  # fmt: skip
        if ends is None:
            return None
        if set(ends) != set(self.offsets):
            return (f"{topic} has partitions {sorted(ends)} now, {sorted(self.offsets)} when "
                    f"the cut-over was prepared: {again}")  # fmt: skip
        behind = {p: (self.offsets[p], end) for p, end in ends.items() if end < self.offsets[p]}
        if behind:
            where = ", ".join(f"[{p}] ends at {end} < {h}" for p, (h, end) in behind.items())
            return (f"{topic} ends before the offsets the cut-over was prepared at ({where}): "
                    f"the topic was recreated? The prepared states are of other clicks; "
                    f"{again}")  # fmt: skip
        return None


class PreparedPart(msgspec.Struct, frozen=True, kw_only=True):
    """The states and posts of one bucket of users (``Prepared``'s fields of the same names):
    the prepare writes a part at a time, so it never holds every user's. ``posts`` are those
    still unanswered after the user's last answered post, and the three maps are of them."""

    states: dict[str, bytes]
    posts: list[ClickEvent]  # each user's in offset order, user after user
    probabilities: dict[str, Probabilities]
    history: dict[str, History]
    reasons: dict[str, list[str]]


class CutoverSummary(msgspec.Struct, kw_only=True):
    """What a cut-over did, for the operator (``summary.json``) and the tests."""

    model_version: str
    topic: str
    offsets: dict[int, int]  # clicks partition -> O_p, where the new flow starts
    users: int
    events: int  # valid clicks replayed (prepared history and tail)
    from_archive: int  # of which read from the archive
    dead_letters: int  # messages before O_p that are not clicks (skipped, as the flow does)
    posts: int  # distinct posts before O_p
    already_scored: int  # of which the old flow had scored (they keep that score)
    filled_in: int  # of which scored now by the new model
    left_unscored: int  # of which unscored but before a scored post of the user (retention)
    thresholds_version: int  # of the decisions filled in
    rebuild_s: float  # the lockstep rebuild of the prepared history
    events_per_s: float  # of the rebuild
    created_at: float
    prepared_offsets: dict[int, int] = {}  # clicks partition -> H_p, where the tail starts
    tail_events: int = 0  # valid clicks in [H_p, O_p), advanced one by one in the finish
    tail_users: int = 0  # users with a click in the tail
    prepare_s: float = 0.0  # the prepare phase (the old flow may run meanwhile)
    finish_s: float = 0.0  # the finish phase: the downtime, with the old flow stopped
    conflicting_duplicates: int = 0  # clicks skipped: an event id reused for other content


@dataclass
class _Clicks:
    """Clicks of a range of offsets, decoded as the flow decodes them (dead letters counted),
    each valid one handed to ``_keep``."""

    events: int = 0
    from_archive: int = 0
    dead_letters: int = 0

    def add(self, value: bytes | None, partition: int, offset: int) -> None:
        event = decode_click(value)
        if not isinstance(event, ClickEvent):
            self.dead_letters += 1
            return
        self.events += 1
        self._keep(event, partition, offset)

    def _keep(self, event: ClickEvent, partition: int, offset: int) -> None:
        raise NotImplementedError


@dataclass
class _History(_Clicks):
    """Clicks as the flow would have fed them to each user, held in memory (the finish's
    tail: the clicks since the prepare)."""

    by_user: dict[str, list[ClickEvent]] = field(default_factory=lambda: defaultdict(list))
    posts: list[ClickEvent] = field(default_factory=list)  # in each partition's offset order

    def _keep(self, event: ClickEvent, partition: int, offset: int) -> None:
        self.by_user[event.user_id].append(event)
        if event.activity is Activity.POST:
            self.posts.append(event)


@dataclass(kw_only=True)
class SpilledHistory(_Clicks):
    """Clicks each written to its user's bucket on disk (prepare 2.), with the clicks
    partition and offset it came from: the history can be far larger than memory. A click is
    written re-encoded (msgspec's compact JSON, one line, the floats exact), so a message
    spread over lines stays one line."""

    spill: BucketFiles

    def _keep(self, event: ClickEvent, partition: int, offset: int) -> None:
        self.spill.write(event.user_id, _spill_encoder.encode((partition, offset, event)))

    def users(
        self, bucket: int, places: bool = True
    ) -> tuple[dict[str, list[ClickEvent]], dict[str, list[tuple[int, int]]]]:
        """The clicks of ``bucket``'s users, each user's in offset order, and with ``places``
        the (partition, offset) of each (an archived click's: an offset at or above its own,
        below the topic's; empty without)."""
        by_user: dict[str, list[ClickEvent]] = defaultdict(list)
        where: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for line in self.spill.lines(bucket):
            partition, offset, event = _spill_decoder.decode(line)
            by_user[event.user_id].append(event)
            if places:
                where[event.user_id].append((partition, offset))
        return by_user, where


_spill_encoder = msgspec.json.Encoder()
_spill_decoder = msgspec.json.Decoder(tuple[int, int, ClickEvent])


class _Merged:
    """Parts merged into one ``Prepared`` in memory (``cutover``, both phases in one go)."""

    def __init__(self) -> None:
        self.states: dict[str, bytes] = {}
        self.posts: list[ClickEvent] = []
        self.probabilities: dict[str, Probabilities] = {}
        self.history: dict[str, History] = {}
        self.reasons: dict[str, list[str]] = {}

    def add(self, part: PreparedPart) -> None:
        self.states.update(part.states)
        self.posts += part.posts
        self.probabilities.update(part.probabilities)
        self.history.update(part.history)
        self.reasons.update(part.reasons)

    def prepared(self, header: Prepared) -> Prepared:
        return msgspec.structs.replace(header, states=self.states, posts=self.posts,
                                       probabilities=self.probabilities, history=self.history,
                                       reasons=self.reasons)  # fmt: skip


def cutover(cfg: CutoverConfig) -> CutoverSummary:
    """Both phases at once, with the old flow already stopped: rebuild every user's state under
    ``cfg.model`` at the clicks topic's end, score the posts before it that have no score, write
    the seed; see the module's steps. Writes no prepared file."""
    weights = load_scorer(cfg.model)
    scores_end = watermarks(cfg.kafka, cfg.topics.risk_scores, cfg.timeout_s)
    merged = _Merged()
    with _prepare_lock(cfg) as spill:
        header = _prepare(cfg, weights, merged.add, spill)
    prepared = merged.prepared(header)
    return _finish(cfg, weights, prepared, time.perf_counter(), scores_end, one_shot=True)


def prepare_cutover(cfg: CutoverConfig) -> Prepared:
    """Prepare 1.-4., with the old flow still running: every user's state under ``cfg.model``
    at the clicks topic's ends now, written to ``cfg.out``/prepared.msgpack (the part's file
    for ``cfg.partitions``) a bucket of users at a time. Returns its figures: the
    ``Prepared`` without the states and posts (``users`` says how many), which stay in the
    file for the finish."""
    weights = load_scorer(cfg.model)
    path = cfg.out / part_file(PREPARED_FILE, cfg.partitions)
    with _prepare_lock(cfg) as spill, atomic_writer(path, durable=True) as f:
        f.write(_PREPARED_MAGIC)
        header = _prepare(cfg, weights, lambda part: write_part(f, part), spill)
        _write_frame(f, _HEADER, header)
    return header


@contextmanager
def _prepare_lock(cfg: CutoverConfig) -> Iterator[Path]:
    """The spill folder of this part's prepare in ``cfg.out``, held by this process alone: a
    second prepare (or one-shot cut-over) of the same part into the same folder is refused,
    since it would wipe this one's spill. What a prepare that was killed left there (its
    spill, the partial of its prepared file) is removed first; the spill again at the end."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    with open(cfg.out / part_file(_LOCK_FILE, cfg.partitions), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CutoverError(f"another cut-over is preparing{partitions_option(cfg.partitions)}"
                               f" into {cfg.out}: let it finish (or stop it) "
                               "first") from None  # fmt: skip
        spill = cfg.out / part_file(_SPILL_DIR, cfg.partitions)
        try:
            for stale in cfg.out.glob(f".{part_file(PREPARED_FILE, cfg.partitions)}.*.partial"):
                stale.unlink(missing_ok=True)
            shutil.rmtree(spill, ignore_errors=True)
            yield spill
        finally:
            shutil.rmtree(spill, ignore_errors=True)
            fcntl.flock(lock, fcntl.LOCK_UN)


def finish_cutover(cfg: CutoverConfig, prepared: Prepared | None = None) -> CutoverSummary:
    """Finish 1.-5., after the old flow is stopped: from ``prepared`` (by default the one in
    ``cfg.out``), advance the users by the clicks that came since, score what the old flow left
    unscored, write the seed at the clicks topic's ends now. CutoverError when ``prepared`` is
    for another model or topic, or the topic ends before its offsets; ValueError for the
    figures ``prepare_cutover`` returns (its states are in the file: pass None)."""
    started = time.perf_counter()
    if prepared is not None and prepared.users > len(prepared.states):
        raise ValueError("the prepared cut-over's figures, without its states: finish from its "
                         "file (prepared=None)")  # fmt: skip
    weights = load_scorer(cfg.model)
    if prepared is None:
        prepared = read_prepared(cfg.out, cfg.partitions)
    return _finish(cfg, weights, prepared, started, None)


def write_part(f: BinaryIO, part: PreparedPart) -> None:
    """Append ``part`` to a prepared cut-over's file being written (``read_prepared``)."""
    _write_frame(f, _PART, part)


def _write_frame(f: BinaryIO, kind: bytes, obj: PreparedPart | Prepared) -> None:
    data = msgspec.msgpack.encode(obj)
    f.write(kind + len(data).to_bytes(8, "little"))
    f.write(data)


def read_prepared(folder: Path, partitions: Sequence[int] = ()) -> Prepared:
    """The prepared cut-over in ``folder`` (the part's for ``partitions``), its parts merged;
    CutoverError when there is none or it is unreadable.

    The file: ``_PREPARED_MAGIC``, then frames of one kind byte, an 8-byte little-endian
    length and that many bytes of msgpack: a ``PreparedPart`` per bucket of users ("P"), then
    the ``Prepared`` with its figures and without states or posts ("H"), last."""
    name = part_file(PREPARED_FILE, partitions)
    path = Path(folder) / name
    part = partitions_option(partitions)
    again = "prepare again"
    merged, header = _Merged(), None
    try:
        with open(path, "rb") as f:
            magic = f.read(len(_PREPARED_MAGIC))
            if magic != _PREPARED_MAGIC:  # one Prepared in msgpack, as written before parts
                return msgspec.msgpack.decode(magic + f.read(), type=Prepared)
            size_left = os.fstat(f.fileno()).st_size - len(magic)
            while header is None and (head := f.read(9)):
                kind, size = head[:1], int.from_bytes(head[1:], "little")
                size_left -= len(head)
                if len(head) < 9 or kind not in (_PART, _HEADER) or size > size_left:
                    raise msgspec.DecodeError("a frame cut short or of no known kind")
                data = f.read(size)
                size_left -= size
                if kind == _PART:
                    merged.add(msgspec.msgpack.decode(data, type=PreparedPart))
                else:
                    header = msgspec.msgpack.decode(data, type=Prepared)
    except FileNotFoundError:
        raise CutoverError(f"no prepared cut-over in {folder} (no {name}): while the "
                           "old flow still runs, run 'deepcredit cutover --prepare --model "
                           f"MODEL --out {folder}{part}' first") from None  # fmt: skip
    except msgspec.DecodeError as exc:
        raise CutoverError(f"{path} is not a prepared cut-over ({exc}): {again}") from None
    if header is None:
        raise CutoverError(f"{path} ends before its figures: {again}")
    return merged.prepared(header)


# -- prepare ----------------------------------------------------------------------------------


def _prepare(
    cfg: CutoverConfig, weights: ModelWeights, keep: Callable[[PreparedPart], None], spill: Path
) -> Prepared:
    """Prepare 1.-3., the history spilled under ``spill`` (``_prepare_lock``'s): ``keep`` gets
    the states and posts a bucket of users at a time; returns the rest (``Prepared`` without
    them)."""
    started = time.perf_counter()
    # The answers' ends before the clicks': a post past the clicks' ends is answered past
    # these, so the finish reads every answer to a post it may have to score.
    scores_end = watermarks(cfg.kafka, cfg.topics.risk_scores, cfg.timeout_s)
    ends, topic_partitions = _clicks_ends(cfg)  # 1.
    # Every offset below the ends is a message to read, from the topic or the archive.
    buckets = bucket_count(sum(high for _, high in ends.values()), cfg.bucket_events)
    read_by_old = _read_by_old(cfg, scores_end, topic_partitions)
    # The answers first, while the topic still holds what its low watermark said; one spill's
    # files open at a time.
    with BucketFiles(spill / "answers", buckets) as answers:
        _spill_answers(cfg, scores_end, answers)
        answers.close()
        with BucketFiles(spill / "clicks", buckets) as files:
            history = SpilledHistory(spill=files)
            _read_clicks(cfg, {}, ends, "history", history)  # 2.
            rebuilt = rebuild_in_buckets(weights, history, keep, cfg.progress, answers,
                                         read_by_old)  # 3. # fmt: skip
    _warn_conflicts(rebuilt.conflicts, rebuilt.first_conflict, "history")
    if rebuilt.left_unscored:
        log.warning("%d posts have no answer on %s but a later post of the same user has "
                    "(answers dropped by retention?): left as they are", rebuilt.left_unscored,
                    cfg.topics.risk_scores)  # fmt: skip
    return Prepared(model_version=weights.version, topic=cfg.topics.clicks,
                    offsets={p: high for p, (_, high) in ends.items()}, states={}, posts=[],
                    probabilities={}, events=history.events, from_archive=history.from_archive,
                    dead_letters=history.dead_letters, rebuild_s=rebuilt.rebuild_s,
                    prepare_s=time.perf_counter() - started, created_at=time.time(),
                    conflicts=rebuilt.conflicts, topic_partitions=topic_partitions,
                    users=rebuilt.users,
                    scores_offsets={p: high for p, (_, high) in scores_end.items()},
                    answered=rebuilt.answered,
                    left_unscored=rebuilt.left_unscored)  # fmt: skip


def _read_by_old(
    cfg: CutoverConfig, scores_end: dict[int, tuple[int, int]], topic_partitions: list[int]
) -> dict[int, int] | None:
    """Where the old flow resumes each clicks partition (``cfg.old_recovery``; from the
    snapshots a restart would load, so every answer before it was written), or None; without
    it, a warning when the risk-scores topic no longer holds its first answers. Warns of the
    partitions it has read nothing of."""
    if cfg.old_recovery is None:
        if any(low > 0 for low, _ in scores_end.values()):
            log.warning("%s no longer holds its first answers (retention): a post whose answer "
                        "it dropped counts as unanswered, and the finish scores it again with "
                        "the new model unless a later post of its user is answered; pass "
                        "--old-recovery-dir (the old flow's recovery folder) to count every "
                        "post the old flow read as answered", cfg.topics.risk_scores)  # fmt: skip
        return None
    try:
        offsets = read_input_offsets(cfg.old_recovery, cfg.topics.clicks, resumed=True)
    except (OSError, sqlite3.Error, pickle.UnpicklingError) as exc:
        raise CutoverError(f"--old-recovery-dir {cfg.old_recovery}: not a recovery folder "
                           f"the flow can resume from ({exc})") from None  # fmt: skip
    unread = sorted(p for p in (cfg.partitions or topic_partitions) if offsets.get(p, -1) <= 0)
    if unread:
        log.warning("the old flow's recovery folder %s has read nothing of %s partitions %s "
                    "(a wrong folder, or DEEPCREDIT_TOPIC_PREFIX?): their posts count as "
                    "unread", cfg.old_recovery, cfg.topics.clicks, unread)  # fmt: skip
    return {p: max(0, o) for p, o in offsets.items()}


@dataclass(frozen=True)
class BucketsRebuilt:
    """What ``rebuild_in_buckets`` did."""

    users: int
    conflicts: int  # clicks skipped as conflicting duplicates
    first_conflict: ClickEvent | None
    rebuild_s: float  # the rebuild alone (``scorer.rebuild.rebuild``), every bucket
    answered: int = 0  # distinct posts answered (``answers``)
    left_unscored: int = 0  # distinct unanswered posts before an answered one of their user


def rebuild_in_buckets(
    weights: ModelWeights,
    history: SpilledHistory,
    keep: Callable[[PreparedPart], None],
    progress: bool = False,
    answers: BucketFiles | None = None,
    read_by_old: Mapping[int, int] | None = None,
) -> BucketsRebuilt:
    """Prepare 3. a bucket of users at a time: each bucket of ``history`` (written, closed now)
    read back, its file removed, its users rebuilt under ``weights`` (``scorer.rebuild``, the
    posts' reason codes included) and handed to ``keep`` as a ``PreparedPart``. Holds one
    bucket's clicks and states at a time.

    ``answers``: the event ids answered on the risk-scores topic, spilled to the same buckets
    by their user (``_spill_answers``); a part then keeps only the posts the finish may have
    to score (``_pending``). None: every post is kept. ``read_by_old``: clicks partition ->
    the offset the old flow resumes from (its recovery folder): a post below it was read, so
    answered, even when the topic's retention dropped the answer."""
    files = history.spill
    files.close()
    if answers is not None:
        answers.close()
    rebuild_s, users, conflicts, first, answered, left = 0.0, 0, 0, None, 0, 0
    with tqdm(total=history.events, desc="rebuild", unit="ev", disable=not progress) as bar:
        for b in range(files.buckets):
            by_user, where = history.users(b, places=read_by_old is not None)
            files.drop(b)
            started = time.perf_counter()
            rebuilt = rebuild(weights, by_user, on_step=bar.update)
            rebuild_s += time.perf_counter() - started
            ids: set[tuple[str, str]] = set()
            if answers is not None:
                ids = {_answer_decoder.decode(line) for line in answers.lines(b)}
                answers.drop(b)
            read: dict[str, list[bool]] = {}
            if read_by_old is not None:
                read = {u: [o < read_by_old.get(p, 0) for p, o in at] for u, at in where.items()}
            pending, a, left_b = _pending(by_user, ids, read)
            answered, left = answered + a, left + left_b
            kept = {e.event_id for e in pending}
            keep(PreparedPart(
                states={u: encode_state(s) for u, s in rebuilt.states.items()}, posts=pending,
                probabilities={k: v for k, v in rebuilt.posts.items() if k in kept},
                history={k: v for k, v in rebuilt.history.items() if k in kept},
                reasons={k: v for k, v in rebuilt.reasons.items() if k in kept}))  # fmt: skip
            users += len(rebuilt.states)
            conflicts += len(rebuilt.conflicts)
            first = first or next(iter(rebuilt.conflicts), None)
    return BucketsRebuilt(users, conflicts, first, rebuild_s, answered, left)


def _pending(
    by_user: Mapping[str, Sequence[ClickEvent]],
    answered: set[tuple[str, str]],
    read: Mapping[str, Sequence[bool]] | None = None,
) -> tuple[list[ClickEvent], int, int]:
    """The posts after each user's last answered post (every post of a user with none
    answered), user after user, each user's in order: what a finish may have to score. And
    how many distinct posts are answered, and unanswered before an answered post of their
    user (the old flow scored each user in order: those lost their answer to retention).

    A post is answered when (its user id, its event id) is in ``answered``, or when
    ``read[user][i]`` is true for it, the user's i-th click (read by the old flow, whose
    answer to it may have expired since). A click the flow skips as a repeat (its id among
    the user's last ``RECENT_IDS`` advanced ids, ``scorer.model.is_repeat``) is no post of its
    own: the flow never answered it, and the finish must not either.

    >>> from deepcredit.events import Activity, ClickEvent
    >>> def post(i):
    ...     return ClickEvent(event_id=f"p{i}", user_id="u", ts=1e9 + i, activity=Activity.POST,
    ...                       amount=1.0, loan_id=f"L{i}", rate=0.1, term_days=30)
    >>> pending, answered, left = _pending({"u": [post(i) for i in range(5)]},
    ...                                    {("u", "p0"), ("u", "p2"), ("v", "p4")})
    >>> [e.event_id for e in pending], answered, left
    (['p3', 'p4'], 2, 1)
    >>> pending, answered, left = _pending({"u": [post(1), post(2), post(1)]}, {("u", "p2")})
    >>> [e.event_id for e in pending], answered, left  # p1 again: a repeat, not a post
    ([], 1, 1)
    >>> pending, answered, left = _pending({"u": [post(1), post(1)]}, set(), {"u": [True, False]})
    >>> [e.event_id for e in pending], answered, left  # read, then resent: nothing to score
    ([], 1, 0)
    >>> pending, answered, left = _pending({"u": [post(i) for i in range(4)]}, set(),
    ...                                    {"u": [True, True, False, False]})
    >>> [e.event_id for e in pending], answered, left  # the old flow read p0 and p1
    (['p2', 'p3'], 2, 0)
    """
    pending: list[ClickEvent] = []
    hit: set[str] = set()
    left: set[str] = set()
    read = read or {}
    for user, events in by_user.items():
        flags = read.get(user)
        recent: deque[str] = deque(maxlen=RECENT_IDS)  # the ids the flow advanced, newest last
        at: list[int] = []
        for i, e in enumerate(events):
            if e.event_id in recent:
                continue  # a repeat: skipped by the flow, as by the rebuild
            recent.append(e.event_id)
            if e.activity is Activity.POST:
                at.append(i)
        posts = [events[i] for i in at]
        mine = [(user, e.event_id) in answered or (flags is not None and flags[i])
                for i, e in zip(at, posts, strict=True)]  # fmt: skip
        last = max((i for i, hit_i in enumerate(mine) if hit_i), default=-1)
        for i, e in enumerate(posts):
            if mine[i]:
                hit.add(e.event_id)
            elif i < last:
                left.add(e.event_id)
            else:
                pending.append(e)
    # An id beyond its user's memory of ids comes again as a new post: counted where it is.
    left -= {e.event_id for e in pending}
    return pending, len(hit), len(left)


def _spill_answers(
    cfg: CutoverConfig, ends: dict[int, tuple[int, int]], files: BucketFiles
) -> None:
    """The (user id, event id) of each answer on the risk-scores topic below ``ends``, to that
    user's bucket (an answer with no readable user or event id names no post of the
    history)."""
    decoder = msgspec.json.Decoder(_Answer)
    total = sum(high - low for low, high in ends.values())
    with tqdm(total=total, desc="answers", unit="msg", disable=not cfg.progress) as bar:
        for m in read_range(cfg.kafka, cfg.topics.risk_scores, ends, cfg.timeout_s):
            answer = decoder.decode(m.value())
            if answer.event_id is not None and answer.user_id is not None:
                files.write(answer.user_id,
                            _spill_encoder.encode((answer.user_id, answer.event_id)))  # fmt: skip
            bar.update()


_answer_decoder = msgspec.json.Decoder(tuple[str, str])


def _warn_conflicts(count: int, first: ClickEvent | None, where: str) -> None:
    if count and first is not None:
        log.warning("%d clicks of the %s reuse an event id of an earlier click of their user "
                    "with other content (conflicting duplicates): skipped, as the flow skips "
                    "them (first: %s of user %s)", count, where, first.event_id,
                    first.user_id)  # fmt: skip


# -- reading the clicks (prepare 2., finish 2.) -----------------------------------------------


def _clicks_ends(cfg: CutoverConfig) -> tuple[dict[int, tuple[int, int]], list[int]]:
    """The (low, high) watermarks of the clicks partitions of this cut-over (``cfg.partitions``,
    else every one), and every partition the topic has. CutoverError for a partition the topic
    does not have."""
    ends = watermarks(cfg.kafka, cfg.topics.clicks, cfg.timeout_s)
    if not cfg.partitions:
        return ends, sorted(ends)
    unknown = sorted(set(cfg.partitions) - set(ends))
    if unknown:
        raise CutoverError(f"{cfg.topics.clicks} has no partitions {unknown} (it has "
                           f"{sorted(ends)})")  # fmt: skip
    return {p: ends[p] for p in sorted(set(cfg.partitions))}, sorted(ends)


def _read_clicks(
    cfg: CutoverConfig,
    starts: Mapping[int, int],
    ends: dict[int, tuple[int, int]],
    what: str,
    history: _Clicks,
) -> None:
    """Every message from ``starts`` (0 where absent) to each partition's end into ``history``:
    what retention dropped from the archive, the rest from the topic (archive first, so each
    partition stays in offset order)."""
    ranges: dict[int, tuple[int, int]] = {}
    for p, (low, high) in ends.items():
        start = starts.get(p, 0)
        if low > start:
            lines, start = _archived(cfg.archive, cfg.topics.clicks, p, start, low, high)
            for line in lines:  # at offsets below ``start`` (the exact one may be unknown)
                history.add(line, p, start - 1)
                history.from_archive += 1
        ranges[p] = (start, high)
    total = sum(max(0, end - start) for start, end in ranges.values())
    with tqdm(total=total, desc=what, unit="ev", disable=not cfg.progress) as bar:
        for m in read_range(cfg.kafka, cfg.topics.clicks, ranges, cfg.timeout_s):
            history.add(m.value(), m.partition(), m.offset())
            bar.update()


def _archived(
    folder: Path | None, topic: str, partition: int, start: int, low: int, high: int
) -> tuple[Iterator[bytes], int]:
    """The archive's messages of ``partition`` from offset ``start``, whole segments until the
    topic's low watermark ``low`` is reached (none at or past ``high``), and the offset after
    them (``deepcredit.archive.read_offsets``). CutoverError without an archive or when it
    leaves a hole before ``low``; ArchiveError when a segment cannot be cut where needed."""
    where = f"{topic}[{partition}]"
    if folder is None:
        raise CutoverError(f"{where} starts at offset {low} (retention dropped the clicks before "
                           "it): pass --archive DIR, a click archive ('deepcredit archive') "
                           f"that holds offsets {start} to {low - 1}")  # fmt: skip
    lines, cursor = read_offsets(folder, topic, partition, start, low, high)
    if cursor < low:
        raise CutoverError(f"offsets {cursor} to {low - 1} of {where} are neither on the topic "
                           f"(it starts at {low}) nor in the archive {folder}")  # fmt: skip
    return lines, cursor


# -- finish -----------------------------------------------------------------------------------


def _finish(
    cfg: CutoverConfig,
    weights: ModelWeights,
    prepared: Prepared,
    started: float,
    scores_end: dict[int, tuple[int, int]] | None,
    one_shot: bool = False,
) -> CutoverSummary:
    topic = cfg.topics.clicks
    problem = prepared.problem(weights.version, topic)
    if problem is not None:
        raise CutoverError(problem)
    ends, _ = _clicks_ends(cfg)  # 1.
    problem = prepared.problem(weights.version, topic, {p: h for p, (_, h) in ends.items()})
    if problem is not None:
        raise CutoverError(problem)
    if scores_end is None:
        scores_end = watermarks(cfg.kafka, cfg.topics.risk_scores, cfg.timeout_s)
    tail = _History()
    _read_clicks(cfg, prepared.offsets, ends, "tail", tail)  # 2.
    advanced, tail_p, conflicts = _advance_tail(weights, prepared, tail)  # 3.
    posts = prepared.posts + tail.posts
    before = {e: (p, prepared.history.get(e), prepared.reasons.get(e, []))
              for e, p in prepared.probabilities.items()}  # fmt: skip
    probabilities = ChainMap(tail_p, before)  # a repeated id: its last
    filled = _fill_in(cfg, weights.version, posts, probabilities, scores_end,
                      prepared.scores_offsets)  # 4.
    part = bool(cfg.partitions)  # a part records what read_seed checks the parts against
    seed = Seed(model_version=weights.version, topic=topic,
                offsets={p: high for p, (_, high) in ends.items()},
                states=prepared.states | advanced, created_at=time.time(),
                topic_partitions=prepared.topic_partitions if part else [],
                prepared_at=prepared.created_at if part and not one_shot else 0.0)  # fmt: skip
    write_seed(cfg.out, seed, cfg.partitions)  # 5.
    summary = _summary(seed, prepared, tail, posts, filled, time.perf_counter() - started,
                       prepared.conflicts + conflicts)  # fmt: skip
    _write_summary(cfg.out / part_file(SUMMARY_FILE, cfg.partitions), summary)
    return summary


def _advance_tail(
    w: ModelWeights, prepared: Prepared, tail: _History
) -> tuple[dict[str, bytes], dict[str, tuple[Probabilities, History, list[str]]], int]:
    """The tail's users' states after their tail clicks, one by one from the prepared states
    (copies: ``prepared`` stays as it is), the probabilities, history and reason codes at each
    tail post, and how many tail clicks were conflicting duplicates."""
    states: dict[str, bytes] = {}
    probabilities: dict[str, tuple[Probabilities, History, list[str]]] = {}
    conflicts: list[ClickEvent] = []
    for user, events in tail.by_user.items():
        seeded = prepared.states.get(user)
        s = UserState.new(w.version, w.hidden_size) if seeded is None else decode_state(seeded)
        if s.model_version != w.version:
            raise StateVersionError(f"the prepared state of user {user} is of model "
                                    f"{s.model_version}, not {w.version}: prepare "
                                    "again")  # fmt: skip
        for e in events:
            key, fingerprint = event_key(e.event_id), event_fingerprint(e)
            seen = s.seen(key, fingerprint)
            if seen is not Seen.NEW:  # a repeat, skipped as ``advance`` skips it
                if seen is Seen.CONFLICT:
                    conflicts.append(e)
                continue
            # The flow's own step: the model and, at a post, its reason codes compiled.
            p, reasons = advance_with_reasons(w, s, e, key, fingerprint)
            if p is not None:
                probabilities[e.event_id] = (p, history_at(s.memory, e.ts), reasons)
        states[user] = encode_state(s)
    _warn_conflicts(len(conflicts), next(iter(conflicts), None), "tail")
    return states, probabilities, len(conflicts)


# -- finish 4. no score lost ------------------------------------------------------------------


class _Answer(msgspec.Struct):
    """An event id on the risk-scores topic, with its user: a score's, or a not_scored's (None
    when the refused message had no readable id)."""

    event_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True)
class _FillIn:
    filled: int  # posts scored now
    left: int  # posts without a score that come before a score of the same user
    thresholds_version: int
    repeats: int = 0  # tail repeats of posts the prepare counted (not posts of their own)


def _fill_in(
    cfg: CutoverConfig,
    version: str,
    posts: list[ClickEvent],
    probabilities: Mapping[str, tuple[Probabilities, History | None, list[str]]],
    scores_end: dict[int, tuple[int, int]],
    since: Mapping[int, int],
) -> _FillIn:
    """Score by ``version`` the posts of ``posts`` that have no answer yet (a score or a
    not_scored): the posts the prepare kept and the tail's; their answers are on the topic
    from ``since`` on (``_scored``)."""
    topic = cfg.topics.risk_scores
    # A tail click the tail skipped as a repeat of a post the prepare counted and left out has
    # no probabilities here: not a post of its own, neither scored nor counted.
    repeats = len({e.event_id for e in posts if e.event_id not in probabilities})
    posts = [e for e in posts if e.event_id in probabilities]
    scored = _scored(cfg, scores_end, {e.event_id for e in posts}, since)
    missing, left = _unscored(posts, scored)
    if left:
        log.warning("%d posts have no score on %s but a later post of the same user has "
                    "(scores dropped by retention?): left as they are", left, topic)  # fmt: skip
    thresholds = read_latest(cfg.kafka, cfg.topics.thresholds, cfg.timeout_s) or DEFAULT_THRESHOLDS
    try:
        with delivering(cfg.kafka, cfg.timeout_s) as producer:
            for e in missing:
                p, history, reasons = probabilities[e.event_id]
                if history is None:
                    raise CutoverError("the cut-over was prepared by an older version, whose "
                                       "states do not say each post's history: prepare "
                                       "again")  # fmt: skip
                score = score_record(e, p, thresholds, version, history, reasons)
                produce(producer, topic, encode(score), score.key,
                        headers=kafka_headers(score))  # fmt: skip
    except UndeliveredError as exc:
        raise CutoverError(f"not every new score reached {topic} ({exc}): run the cut-over "
                           "again") from None  # fmt: skip
    return _FillIn(len(missing), left, thresholds.version, repeats)


def _scored(
    cfg: CutoverConfig,
    scores_end: dict[int, tuple[int, int]],
    wanted: set[str],
    since: Mapping[int, int],
) -> set[str]:
    """The event ids of ``wanted`` on the risk-scores topic from ``since`` (the prepare's
    ends; the start where a partition has none or the topic no longer holds it) up to its ends
    at 1. (scored, or refused with a not_scored record: answered either way), refused if it
    grew since. Only those are kept: the topic holds every answer ever written.

    Why from the prepare's ends: no post the finish looks at was answered before them. The
    prepare kept only posts after their user's last answer; a tail click came after the
    prepare read the ends, so its answer did too, unless it repeats an earlier post: within
    its state's memory of ids the tail skips it, beyond it the flow would score it again
    (a new event to the flow), and so does the finish. So the finish's time does not grow
    with the answers of the whole history."""
    topic = cfg.topics.risk_scores
    ranges = {p: (since[p] if low <= since.get(p, -1) <= high else low, high)
              for p, (low, high) in scores_end.items()}  # fmt: skip
    decoder = msgspec.json.Decoder(_Answer)
    answered = (decoder.decode(m.value()).event_id
                for m in read_range(cfg.kafka, topic, ranges, cfg.timeout_s))  # fmt: skip
    scored = {e for e in answered if e in wanted}
    before = {p: high for p, (_, high) in scores_end.items()}
    now = {p: high for p, (_, high) in watermarks(cfg.kafka, topic, cfg.timeout_s).items()}
    if now != before:
        raise CutoverError(f"{topic} grew during the cut-over (ends {before} -> {now}): is "
                           "the old flow still running? Stop it, then run the cut-over "
                           "(or its finish) again")  # fmt: skip
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


# -- finish 5. the summary --------------------------------------------------------------------


def _summary(
    seed: Seed,
    prepared: Prepared,
    tail: _History,
    posts_before: list[ClickEvent],
    filled: _FillIn,
    finish_s: float,
    conflicts: int,
) -> CutoverSummary:
    # The posts the prepare counted and left out, then those it kept and the tail's.
    posts = (prepared.answered + prepared.left_unscored + len({e.event_id for e in posts_before})
             - filled.repeats)
    left = prepared.left_unscored + filled.left
    rebuild_s = prepared.rebuild_s
    return CutoverSummary(model_version=seed.model_version, topic=seed.topic,
                          offsets=seed.offsets, users=len(seed.states),
                          events=prepared.events + tail.events,
                          from_archive=prepared.from_archive + tail.from_archive,
                          dead_letters=prepared.dead_letters + tail.dead_letters,
                          posts=posts, already_scored=posts - filled.filled - left,
                          filled_in=filled.filled, left_unscored=left,
                          thresholds_version=filled.thresholds_version, rebuild_s=rebuild_s,
                          events_per_s=prepared.events / rebuild_s if rebuild_s else 0.0,
                          created_at=seed.created_at, prepared_offsets=prepared.offsets,
                          tail_events=tail.events, tail_users=len(tail.by_user),
                          prepare_s=prepared.prepare_s, finish_s=finish_s,
                          conflicting_duplicates=conflicts)  # fmt: skip


def _write_summary(path: Path, summary: CutoverSummary) -> None:
    write_json(path, msgspec.to_builtins(summary))
