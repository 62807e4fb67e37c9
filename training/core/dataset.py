"""Event log to per-user training sequences in the streaming form, with labels and a user split.

Each user's events go through ``scorer.steps.plan_step``, the very function the live scorer
uses, so training sees exactly the inputs scoring will see. The result is stored ragged
(CSR-style: all users' rows concatenated, with offsets), which keeps 10,000 users' five million
events in a few hundred MB and makes a user's slice a view.

Labels come from ``deepcredit.loans`` as known at the end of the log: a post is labelled when
its loan was funded and its outcome is known (not censored); other posts are scored but carry
no loss (NaN). Nothing after a post enters its inputs: ``plan_step`` only sees the past, and
labels never enter inputs.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm import tqdm

from deepcredit.events import ClickEvent
from deepcredit.loans import LoanOutcome, loan_outcomes
from scorer.aggregates import AGGREGATE_FEATURES
from scorer.features import ACTIVITY_FEATURES, LOAN_FEATURES, LoanStep
from scorer.steps import StepMemory, plan_step
from scorer.timegap import normalise_gap
from scorer.user_state import event_fingerprint

__all__ = [
    "TEST_SALT",
    "VALIDATION_SALT",
    "FirstCopies",
    "Sequences",
    "UserBatch",
    "build_sequences",
    "build_users",
    "first_copies",
    "labels_within",
    "log_duplicates",
    "offsets_from_lengths",
    "outcome_label",
    "split_masks",
    "split_users",
    "user_row_chunks",
    "user_rows",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Sequences:
    """All users' model steps, concatenated. Row i of ``act_*`` is one activity step; row j of
    ``loan_*`` one loan-level step. ``act_offsets[u]:act_offsets[u+1]`` are user u's rows."""

    user_ids: np.ndarray  # (U,) str
    act_offsets: np.ndarray  # (U+1,) int64
    act_x: np.ndarray  # (Na, ACTIVITY_FEATURES) float32
    act_gap: np.ndarray  # (Na,) float32, normalised Δt
    act_reset: np.ndarray  # (Na,) bool: a post came before this step, start from zero state
    loan_offsets: np.ndarray  # (U+1,) int64
    loan_x: np.ndarray  # (Nl, LOAN_FEATURES) float32
    loan_gap: np.ndarray  # (Nl,) float32, normalised Δt since the last loan-level step
    post_gap: np.ndarray  # (Nl,) float32, normalised Δt since the last post (posts only)
    loan_kind: np.ndarray  # (Nl,) int8 LoanStep
    act_idx: np.ndarray  # (Nl,) int64: user-local activity row whose h_a a post reads, or -1
    labels: np.ndarray  # (Nl, 2) float32 [delinquent, default]: 0/1, NaN when unlabelled
    loan_agg: np.ndarray  # (Nl, AGGREGATE_FEATURES) float32: the aggregates at posts, else 0
    event_ids: np.ndarray  # (Nl,) str: the event behind each loan-level step
    event_ts: np.ndarray  # (Nl,) float64

    @property
    def users(self) -> int:
        return len(self.user_ids)

    def subset(self, users: np.ndarray) -> Sequences:
        """The sequences of the users at these indices, in that order."""
        users = np.asarray(users, dtype=np.int64)
        act = user_rows(self.act_offsets, users)
        loan = user_rows(self.loan_offsets, users)
        parts: dict[str, np.ndarray] = {
            "user_ids": self.user_ids[users],
            "act_offsets": offsets_from_lengths(np.diff(self.act_offsets)[users]),
            "loan_offsets": offsets_from_lengths(np.diff(self.loan_offsets)[users]),
        }
        for name in _ACT_ROWS:
            parts[name] = getattr(self, name)[act]
        for name in _LOAN_ROWS:
            parts[name] = getattr(self, name)[loan]
        return Sequences(**parts)

    def save(self, file: Path | io.BufferedIOBase) -> None:
        """Every array into one ``.npz``: ``file`` a path (numpy adds ``.npz`` when it lacks it)
        or a binary file open for writing (``deepcredit.atomic.atomic_writer``'s)."""
        np.savez(file, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: Path) -> Sequences:
        """Every array of a ``save``'d ``.npz`` read into memory."""
        with np.load(path, allow_pickle=False) as archive:
            return cls(**{f.name: archive[f.name] for f in fields(cls)})

    def save_dir(self, folder: Path) -> None:
        """Each array as ``<folder>/<name>.npy``, the layout ``open`` maps; creates ``folder``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for f in fields(self):
            np.save(folder / f"{f.name}.npy", getattr(self, f.name), allow_pickle=False)

    @classmethod
    def open(cls, folder: Path) -> Sequences:
        """The arrays of a folder of ``.npy`` files (``save_dir``, ``training.core.bucketed``)
        mapped read-only (``np.load(mmap_mode="r")``): nothing is read until a row is used, so
        a batch reads its users' rows only, and the kernel may drop pages read earlier (they
        are the files' cache, not this process's own memory). Each array is a plain ndarray
        view of its ``np.memmap`` (its ``base``, which keeps the file mapped): indexing one
        element of a memmap goes through its Python-level ``__getitem__``, several times slower
        in ``batch``'s loops. Raises FileNotFoundError when an array is missing."""
        folder = Path(folder)
        return cls(**{f.name: np.asarray(np.load(folder / f"{f.name}.npy", mmap_mode="r",
                                                 allow_pickle=False))
                      for f in fields(cls)})  # fmt: skip

    def batch(self, users: np.ndarray) -> UserBatch:
        """Users padded into dense arrays for the torch model.

        Activity steps are laid out by subsequence (the activities between two posts), not by
        user: the activity TLSTM restarts at each post, so subsequences are independent and
        run side by side, and a batch costs the longest subsequence in steps, not the longest
        history. Only subsequences some post reads are included.
        """
        users = np.asarray(users, dtype=np.int64)
        loan_len = np.diff(self.loan_offsets)[users]
        b, tl = len(users), max(1, int(loan_len.max()))
        loan = UserBatch.empty_loan(b, tl)
        segments: list[tuple[int, int]] = []  # global activity rows [start, end)
        for row, u in enumerate(users):
            l0, l1 = self.loan_offsets[u], self.loan_offsets[u + 1]
            m = l1 - l0
            for name in _LOAN_ROWS[:-2]:  # every loan-level column but ids and times
                getattr(loan, name)[row, :m] = getattr(self, name)[l0:l1]
            a0 = self.act_offsets[u]
            for j in np.flatnonzero(self.act_idx[l0:l1] >= 0):
                last = a0 + self.act_idx[l0 + j]  # the subsequence's last row
                first = last
                while first > a0 and not self.act_reset[first]:
                    first -= 1
                loan.post_sub[row, j] = len(segments)
                segments.append((first, last + 1))
        longest = max((e - s for s, e in segments), default=1)
        n = max(1, len(segments))
        loan.sub_x = np.zeros((n, longest, ACTIVITY_FEATURES), np.float32)
        loan.sub_gap = np.zeros((n, longest), np.float32)
        loan.sub_len = np.zeros(n, np.int64)
        for k, (s0, s1) in enumerate(segments):
            loan.sub_x[k, : s1 - s0] = self.act_x[s0:s1]
            loan.sub_gap[k, : s1 - s0] = self.act_gap[s0:s1]
            loan.sub_len[k] = s1 - s0
        return loan


_ACT_ROWS = ("act_x", "act_gap", "act_reset")
_LOAN_ROWS = ("loan_x", "loan_gap", "post_gap", "loan_kind", "act_idx", "labels", "loan_agg",
              "event_ids", "event_ts")  # fmt: skip


@dataclass
class UserBatch:
    """Padded arrays for B users' loan-level steps (B, Tl, ...) and the S activity
    subsequences their posts read (S, L, ...). ``loan_kind`` is -1 on padding; ``post_sub``
    is the subsequence a post reads h_activity from, or -1 when none."""

    loan_x: np.ndarray  # (B, Tl, LOAN_FEATURES)
    loan_gap: np.ndarray  # (B, Tl)
    post_gap: np.ndarray  # (B, Tl)
    loan_kind: np.ndarray  # (B, Tl) int8
    act_idx: np.ndarray  # (B, Tl) user-local activity row, -1 when none
    labels: np.ndarray  # (B, Tl, 2)
    loan_agg: np.ndarray  # (B, Tl, AGGREGATE_FEATURES), zero but at posts
    post_sub: np.ndarray  # (B, Tl) int64
    sub_x: np.ndarray  # (S, L, ACTIVITY_FEATURES)
    sub_gap: np.ndarray  # (S, L)
    sub_len: np.ndarray  # (S,) int64, real steps of each subsequence

    @classmethod
    def empty_loan(cls, b: int, tl: int) -> UserBatch:
        return cls(
            loan_x=np.zeros((b, tl, LOAN_FEATURES), np.float32),
            loan_gap=np.zeros((b, tl), np.float32),
            post_gap=np.zeros((b, tl), np.float32),
            loan_kind=np.full((b, tl), -1, np.int8),
            act_idx=np.full((b, tl), -1, np.int64),
            labels=np.full((b, tl, 2), np.nan, np.float32),
            loan_agg=np.zeros((b, tl, AGGREGATE_FEATURES), np.float32),
            post_sub=np.full((b, tl), -1, np.int64),
            sub_x=np.zeros((0, 0, ACTIVITY_FEATURES), np.float32),
            sub_gap=np.zeros((0, 0), np.float32),
            sub_len=np.zeros(0, np.int64),
        )


def build_sequences(
    events: Iterable[ClickEvent], *, as_of: float | None = None, progress: bool = False
) -> Sequences:
    """Turn an event log (any order across users, time order within a user) into Sequences.

    ``as_of`` is the moment labels are judged (default: the last event's time). Repeated
    event ids (at-least-once delivery into the archive) count once, the first copy kept; the
    later copies with other content (conflicting duplicates) are counted in a warning.
    """
    by_user: dict[str, list[ClickEvent]] = {}
    last_ts = -math.inf
    for event in tqdm(events, desc="reading events", unit="ev", disable=not progress):
        by_user.setdefault(event.user_id, []).append(event)
        last_ts = max(last_ts, event.ts)
    as_of = last_ts if as_of is None else as_of
    seq, resends, conflicts = build_users(by_user, as_of=as_of, progress=progress)
    log_duplicates(resends, conflicts)
    return seq


def build_users(
    by_user: dict[str, list[ClickEvent]], *, as_of: float, progress: bool = False
) -> tuple[Sequences, int, int]:
    """The Sequences of these users (sorted by user id), each user's events in arrival order,
    labels judged at ``as_of``; with the resent events and the conflicting duplicates dropped
    (``first_copies``). Empties ``by_user`` as it goes, so each history is freed once built.
    The per-user part of ``build_sequences``, shared with the bucketed build
    (``training.core.bucketed``)."""
    builder = _Builder()
    resends = conflicts = 0
    for user_id in tqdm(sorted(by_user), desc="building sequences", unit="user",
                        disable=not progress):  # fmt: skip
        copies = first_copies(by_user.pop(user_id))
        resends += copies.resends
        conflicts += copies.conflicts
        history = copies.events
        history.sort(key=lambda e: e.ts)  # stable: arrival order breaks ties
        builder.add_user(user_id, history, loan_outcomes(history, as_of=as_of))
    return builder.finish(), resends, conflicts


def log_duplicates(resends: int, conflicts: int) -> None:
    """Say how many repeated event ids a build dropped (``first_copies``)."""
    if conflicts:
        log.warning("%d events reuse the id of an earlier event of their user with other "
                    "content (conflicting duplicates): dropped, the first copy kept, as the "
                    "live flow does (it dead-letters them)", conflicts)  # fmt: skip
    if resends:
        log.info("%d resent events (an earlier event's id and content) counted once", resends)


#: The salts of the split by user (``training.core.train.split``): test users, then
#: validation users among the others.
TEST_SALT = "test-split-v1"
VALIDATION_SALT = "validation-split-v1"


def split_masks(
    user_ids: np.ndarray, test_fraction: float, validation_fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The split by user (``training.core.train.split``) as boolean masks (test, validation):
    test users by a stable hash of the id, validation users likewise among the others."""
    test = split_users(user_ids, test_fraction, salt=TEST_SALT)
    return test, split_users(user_ids, validation_fraction, salt=VALIDATION_SALT) & ~test


def split_users(user_ids: np.ndarray, fraction: float, *, salt: str) -> np.ndarray:
    """A boolean mask choosing about ``fraction`` of users, stable per user id and salt.

    Hashing the id (not shuffling) keeps a user on the same side however the log grows.
    """

    def score(user_id: str) -> float:
        digest = hashlib.blake2b(f"{salt}:{user_id}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    return np.array([score(u) < fraction for u in user_ids], dtype=bool)


_NO_AGGREGATES = (0.0,) * AGGREGATE_FEATURES


class _Builder:
    """Accumulates users' rows as Python lists, converted to arrays once at the end."""

    def __init__(self) -> None:
        self.user_ids: list[str] = []
        self.act_len: list[int] = []
        self.loan_len: list[int] = []
        self.act_x: list[tuple[float, ...]] = []
        self.act_gap: list[float] = []
        self.act_reset: list[bool] = []
        self.loan_x: list[tuple[float, ...]] = []
        self.loan_gap: list[float] = []
        self.post_gap: list[float] = []
        self.loan_kind: list[int] = []
        self.act_idx: list[int] = []
        self.labels: list[tuple[float, float]] = []
        self.loan_agg: list[tuple[float, ...]] = []
        self.event_ids: list[str] = []
        self.event_ts: list[float] = []

    def add_user(
        self, user_id: str, history: list[ClickEvent], outcomes: dict[str, LoanOutcome]
    ) -> None:
        memory = StepMemory()
        n_act = n_loan = 0
        since_post = -1  # user-local index of the last activity step since the last post
        reset_next = False
        for event in history:
            plan = plan_step(memory, event)
            if plan.activity_x is not None:
                self.act_x.append(plan.activity_x)
                self.act_gap.append(plan.activity_gap_s)
                self.act_reset.append(reset_next)
                reset_next = False
                since_post = n_act
                n_act += 1
            if plan.loan_step is None:
                continue
            self.loan_x.append(plan.loan_x)
            self.loan_gap.append(plan.loan_gap_s)
            self.post_gap.append(plan.post_gap_s)
            self.loan_kind.append(int(plan.loan_step))
            self.event_ids.append(event.event_id)
            self.event_ts.append(event.ts)
            label = (math.nan, math.nan)
            self.loan_agg.append(plan.aggregates or _NO_AGGREGATES)
            if plan.loan_step is LoanStep.POST:
                self.act_idx.append(since_post)
                since_post, reset_next = -1, True
                label = outcome_label(outcomes.get(event.loan_id or ""))
            else:
                self.act_idx.append(-1)
            self.labels.append(label)
            n_loan += 1
        self.user_ids.append(user_id)
        self.act_len.append(n_act)
        self.loan_len.append(n_loan)

    def finish(self) -> Sequences:
        def matrix(rows: list[tuple[float, ...]], width: int) -> np.ndarray:
            return np.array(rows, dtype=np.float32).reshape(len(rows), width)

        return Sequences(
            user_ids=np.array(self.user_ids, dtype=str),
            act_offsets=offsets_from_lengths(np.array(self.act_len, dtype=np.int64)),
            act_x=matrix(self.act_x, ACTIVITY_FEATURES),
            act_gap=normalise_gap(np.array(self.act_gap, dtype=np.float64)).astype(np.float32),
            act_reset=np.array(self.act_reset, dtype=bool),
            loan_offsets=offsets_from_lengths(np.array(self.loan_len, dtype=np.int64)),
            loan_x=matrix(self.loan_x, LOAN_FEATURES),
            loan_gap=normalise_gap(np.array(self.loan_gap, dtype=np.float64)).astype(np.float32),
            post_gap=normalise_gap(np.array(self.post_gap, dtype=np.float64)).astype(np.float32),
            loan_kind=np.array(self.loan_kind, dtype=np.int8),
            act_idx=np.array(self.act_idx, dtype=np.int64),
            labels=matrix(self.labels, 2),
            loan_agg=matrix(self.loan_agg, AGGREGATE_FEATURES),
            event_ids=np.array(self.event_ids, dtype=str),
            event_ts=np.array(self.event_ts, dtype=np.float64),
        )


def outcome_label(outcome: LoanOutcome | None) -> tuple[float, float]:
    """(delinquent, default) as 0/1, NaN where unknown; a label is usable on its own."""
    if outcome is None or not outcome.funded:
        return (math.nan, math.nan)

    def value(flag: bool | None) -> float:
        return math.nan if flag is None else float(flag)

    return (value(outcome.delinquent), value(outcome.default))


class FirstCopies(NamedTuple):
    """A user's history with each event id's first copy only, and what was dropped."""

    events: list[ClickEvent]
    resends: int  # later copies with the first one's content
    conflicts: int  # later copies with other content: the id was reused


def first_copies(history: list[ClickEvent]) -> FirstCopies:
    """The history with repeated event ids dropped, first copy kept: producers may resend. A
    later copy with other content (``scorer.user_state.event_fingerprint``, compared as the
    live state compares them) is a conflicting duplicate: dropped too (the live flow
    dead-letters it), and counted apart."""
    first: dict[str, bytes] = {}
    unique = []
    conflicts = 0
    for event in history:
        fingerprint = event_fingerprint(event)
        known = first.get(event.event_id)
        if known is None:
            first[event.event_id] = fingerprint
            unique.append(event)
        elif known != fingerprint:
            conflicts += 1
    return FirstCopies(unique, len(history) - len(unique) - conflicts, conflicts)


def offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    """Row offsets of concatenated runs: lengths [2, 3] -> [0, 2, 5]."""
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def user_rows(offsets: np.ndarray, users: np.ndarray) -> np.ndarray:
    """The rows of ``users`` in arrays laid out by ``offsets`` (user u: offsets[u]..[u+1])."""
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(offsets[u], offsets[u + 1]) for u in users])


#: Rows per piece of ``user_row_chunks``: 8 MiB of int64 indices.
ROWS_PER_CHUNK = 1 << 20


def user_row_chunks(
    offsets: np.ndarray, users: np.ndarray, rows: int | None = None
) -> Iterator[np.ndarray]:
    """``user_rows`` of ``users`` in pieces of at most ``rows`` rows (``ROWS_PER_CHUNK`` when
    None; more only for one user longer than that), whole users each, in ``users``' order: a
    pass over every training user's rows that holds one piece's indices at a time, not every
    user's (training memory that does not grow with users, README "Training memory")."""
    rows = ROWS_PER_CHUNK if rows is None else rows
    users = np.asarray(users, dtype=np.int64)
    ends = np.cumsum(offsets[users + 1] - offsets[users])
    start = 0
    while start < len(users):
        before = int(ends[start - 1]) if start else 0
        stop = max(int(np.searchsorted(ends, before + rows, side="right")), start + 1)
        yield user_rows(offsets, users[start:stop])
        start = stop


def labels_within(seq: Sequences, start_ts: float, end_ts: float = math.inf) -> np.ndarray:
    """The labels (Nl, 2) of the loan steps with start_ts <= event time < end_ts, NaN elsewhere:
    what judging a model on the posts of a period needs."""
    labels = seq.labels.copy()
    labels[(seq.event_ts < start_ts) | (seq.event_ts >= end_ts)] = np.nan
    return labels
