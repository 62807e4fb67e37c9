"""The paper-literal input, kept as a baseline: at every post, the last T loans re-encoded with
what was known at that post's time (the paper's repayment sequence P and activity subsequences
A_i), as opposed to the streaming form of ``training.core.dataset``.

For post k of a user (posts in time order, the same posts, labels and event ids as the POST
steps of ``build_sequences``) the window holds posts i = k−T+1 … k, each with

- p_i (``REPAY_FEATURES``): money(amount), rate, term/365, money(unpaid debt) and money(overdue)
  at post i's time (``scorer.ledger``), the normalised gap log1p(hours) since the previous post
  (``scorer.timegap``; 0 for a user's first post), then loan i's delinquency *as known at post
  k* and a flag saying whether it was knowable then. Known means: repaid by then (delinquent iff
  late, d > 0), or funded, unpaid and past due (delinquent). Undue, unfunded or funded later:
  flag 0, delinquency 0. This is exactly what ``loan_outcomes`` says of loan i when fed the
  user's events up to post k, with ``as_of`` = post k's time;
- A_i: the activities (every non-post event) between post i−1 and post i, truncated to the last
  ``max_activities`` (L, default 64) so memory and per-step cost stay bounded (on the benchmark
  a subsequence averages under 6 activities and fewer than 0.1% exceed 64). Each activity is
  ``activity_features`` with the gap since the previous activity or post, as in
  ``scorer.steps``.

Windows with fewer than T earlier posts are padded at the start, with a mask. Nothing after
post k enters window k: every input is read from events before it in the user's time order
(ties keep arrival order, like ``build_sequences``). Only the labels look ahead.

Storage is O(posts), not O(posts × T): the part of p_i that belongs to post i alone is stored
once per post, the (i, k)-dependent delinquency as two (N, T) bool arrays, activities ragged
(CSR). Windows are assembled per batch (``Windows.batch``), where each subsequence shared by
several windows is stored and encoded once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import Loan, LoanOutcome, due_ts, loan_outcomes, step_loan
from scorer.features import ACTIVITY_FEATURES, activity_features, money
from scorer.ledger import Ledger
from scorer.timegap import normalise_gap
from training.core.dataset import first_copies, offsets_from_lengths, outcome_label

__all__ = ["REPAY_FEATURES", "WindowBatch", "Windows", "build_windows"]

_TERM_SCALE_DAYS = 365.0
#: Features of p_i that depend on post i alone: amount, rate, term, unpaid, overdue, gap.
_POST_FEATURES = 6
#: p_i: the post features, then [delinquent as known at the window's post, known flag].
REPAY_FEATURES = _POST_FEATURES + 2
_NEVER = np.iinfo(np.int64).max


@dataclass
class WindowBatch:
    """B windows as dense arrays, and the S distinct non-empty activity subsequences they read.

    ``labels`` are the final labels of every slot's loan (the paper's o_i, for eq. 6), NaN on
    padding and where unknown. Subsequences are sorted longest first, so the activity TLSTM
    can drop finished rows as it goes."""

    repay_x: np.ndarray  # (B, T, REPAY_FEATURES) float32, zero on padding
    repay_gap: np.ndarray  # (B, T) float32, normalised Δt since the previous post
    mask: np.ndarray  # (B, T) bool, true on real slots (padding comes first)
    labels: np.ndarray  # (B, T, 2) float32
    slot_sub: np.ndarray  # (B, T) int64: row of sub_* the slot reads, -1 for none
    sub_x: np.ndarray  # (S, L, ACTIVITY_FEATURES) float32
    sub_gap: np.ndarray  # (S, L) float32, normalised Δt
    sub_len: np.ndarray  # (S,) int64, descending

    def tensors(self) -> dict[str, Tensor]:
        return {k: torch.from_numpy(v) for k, v in vars(self).items()}


@dataclass(frozen=True, eq=False)
class Windows:
    """Every post's re-encode window, stored compactly. Row g is one post (global order: users
    by id, posts in time order); ``post_offsets[u]:post_offsets[u+1]`` are user u's posts, and
    slot j of row g's window is post g − T + 1 + j when that is still user u's."""

    window: int  # T
    max_activities: int  # L
    user_ids: np.ndarray  # (U,) str, as in build_sequences (every user, with posts or not)
    post_offsets: np.ndarray  # (U+1,) int64
    post_x: np.ndarray  # (N, _POST_FEATURES) float32
    slot_delinquent: np.ndarray  # (N, T) bool: slot loan delinquent as known at post g
    slot_known: np.ndarray  # (N, T) bool: ... and that was knowable then
    labels: np.ndarray  # (N, 2) float32 [delinquent, default], final, NaN when unknown
    event_ids: np.ndarray  # (N,) str
    event_ts: np.ndarray  # (N,) float64
    sub_offsets: np.ndarray  # (N+1,) int64: act rows of A_g (at most L)
    act_x: np.ndarray  # (Na, ACTIVITY_FEATURES) float32
    act_gap: np.ndarray  # (Na,) float32, normalised Δt

    @property
    def users(self) -> int:
        return len(self.user_ids)

    @property
    def posts(self) -> int:
        return len(self.event_ids)

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))

    def rows(self, users: np.ndarray) -> np.ndarray:
        """Global post rows of these users (indices), user by user, in time order."""
        starts, ends = self.post_offsets[users], self.post_offsets[np.asarray(users) + 1]
        if len(starts) == 0:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(s, e) for s, e in zip(starts, ends, strict=True)])

    def batch(self, rows: np.ndarray) -> WindowBatch:
        """The windows of these post rows, padded at the start to T slots."""
        rows = np.asarray(rows, dtype=np.int64)
        t = self.window
        user = np.searchsorted(self.post_offsets, rows, side="right") - 1  # (B,)
        slot = rows[:, None] - (t - 1) + np.arange(t)  # (B, T) global post rows
        mask = slot >= self.post_offsets[user][:, None]  # (B, T)
        slot = np.where(mask, slot, 0)
        known = np.stack((self.slot_delinquent[rows], self.slot_known[rows]), axis=-1)
        x = np.concatenate((self.post_x[slot], known), axis=-1).astype(np.float32)  # (B, T, P)
        x[~mask] = 0.0
        gap = np.where(mask, self.post_x[slot, _POST_FEATURES - 1], 0.0).astype(np.float32)
        labels = np.where(mask[..., None], self.labels[slot], np.nan).astype(np.float32)
        # Distinct non-empty subsequences, longest first; consecutive windows share T − 1.
        sub_len_all = np.diff(self.sub_offsets)
        readable = mask & (sub_len_all[slot] > 0)  # (B, T)
        unique = np.unique(slot[readable])  # (S,) post rows, ascending
        order = np.argsort(-sub_len_all[unique], kind="stable")  # longest first
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        subs = unique[order]  # (S,)
        sub_len = sub_len_all[subs]  # (S,)
        slot_sub = np.full(slot.shape, -1, np.int64)
        slot_sub[readable] = rank[np.searchsorted(unique, slot[readable])]
        longest = int(sub_len.max()) if len(subs) else 0
        which = np.repeat(np.arange(len(subs)), sub_len)  # (ΣS,) subsequence of each activity
        step = np.arange(len(which)) - np.repeat(np.cumsum(sub_len) - sub_len, sub_len)
        act = np.repeat(self.sub_offsets[subs], sub_len) + step  # (ΣS,) act rows
        sub_x = np.zeros((len(subs), longest, ACTIVITY_FEATURES), np.float32)
        sub_gap = np.zeros((len(subs), longest), np.float32)
        sub_x[which, step] = self.act_x[act]
        sub_gap[which, step] = self.act_gap[act]
        return WindowBatch(x, gap, mask, labels, slot_sub, sub_x, sub_gap, sub_len)


def build_windows(
    events: Iterable[ClickEvent],
    *,
    window: int = 8,
    max_activities: int = 64,
    as_of: float | None = None,
    progress: bool = False,
) -> Windows:
    """Every post's window of the last ``window`` posts (T) and their activity subsequences.

    ``as_of`` is the moment the labels are judged (default: the last event's time), as in
    ``build_sequences``; repeated event ids count once.
    """
    if window < 1 or max_activities < 1:
        raise ValueError("window and max_activities must be >= 1")
    by_user: dict[str, list[ClickEvent]] = {}
    last_ts = -math.inf
    for event in events:
        by_user.setdefault(event.user_id, []).append(event)
        last_ts = max(last_ts, event.ts)
    as_of = last_ts if as_of is None else as_of
    builder = _Builder(max_activities)
    for user_id in tqdm(sorted(by_user), desc="building windows", unit="user",
                        disable=not progress):  # fmt: skip
        history = first_copies(by_user.pop(user_id)).events
        history.sort(key=lambda e: e.ts)  # stable: arrival order breaks ties
        builder.add_user(user_id, history, loan_outcomes(history, as_of=as_of))
    return builder.finish(window)


class _Slot(Loan, kw_only=True):
    """An open loan of the user, with the row of the post that opened it."""

    row: int


class _Builder:
    """Accumulates per-post rows as Python lists; windows are formed once, vectorised, at the end.

    Besides the inputs it records, per post, where in the user's history its loan was funded and
    repaid (``_NEVER`` when not), by ``deepcredit.loans.step_loan`` as ``loan_outcomes`` does,
    so that the delinquency known at any later post is a comparison of positions."""

    def __init__(self, max_activities: int) -> None:
        self.max_activities = max_activities
        self.user_ids: list[str] = []
        self.n_posts: list[int] = []
        self.post_x: list[tuple[float, ...]] = []
        self.post_gap_s: list[float] = []
        self.labels: list[tuple[float, float]] = []
        self.event_ids: list[str] = []
        self.event_ts: list[float] = []
        self.position: list[int] = []  # user-local index of the post in the history
        self.due_ts: list[float] = []
        self.funded_at: list[int] = []
        self.repaid_at: list[int] = []
        self.late: list[bool] = []
        self.sub_len: list[int] = []
        self.act_x: list[tuple[float, ...]] = []
        self.act_gap_s: list[float] = []

    def add_user(
        self, user_id: str, history: list[ClickEvent], outcomes: dict[str, LoanOutcome]
    ) -> None:
        ledger = Ledger()
        open_loans: dict[str, _Slot] = {}  # until repaid
        pending: list[tuple[ClickEvent, float]] = []  # activities since the last post, gap (s)
        activity_ts = post_ts = None
        first_row = len(self.event_ids)
        for position, event in enumerate(history):
            ledger.apply(event)
            ts, loan_id = event.ts, event.loan_id
            change = step_loan(open_loans, event, self._slot)
            if change is not None and change.activity is not Activity.POST:
                row = change.loan.row
                if change.activity is Activity.BORROW and self.funded_at[row] == _NEVER:
                    self.funded_at[row] = position
                elif change.activity is Activity.REPAY:
                    self.repaid_at[row] = position
                    self.late[row] = bool(change.loan.labels(ts, repaid=True).delinquent)
            if event.activity is not Activity.POST:
                pending.append((event, 0.0 if activity_ts is None else max(0.0, ts - activity_ts)))
                activity_ts = ts
                continue
            debt = ledger.debt(as_of=ts)
            term = event.term_days
            self.post_x.append((money(event.amount), event.rate or 0.0,
                                (term or 0) / _TERM_SCALE_DAYS, money(debt.unpaid),
                                money(debt.overdue)))  # fmt: skip
            self.post_gap_s.append(0.0 if post_ts is None else max(0.0, ts - post_ts))
            self.labels.append(outcome_label(outcomes.get(loan_id or "")))
            self.event_ids.append(event.event_id)
            self.event_ts.append(ts)
            self.position.append(position)
            self.due_ts.append(math.inf if term is None else due_ts(ts, term))
            self.funded_at.append(_NEVER)
            self.repaid_at.append(_NEVER)
            self.late.append(False)
            kept = pending[-self.max_activities :]
            self.sub_len.append(len(kept))
            self.act_x.extend(activity_features(e) for e, _ in kept)
            self.act_gap_s.extend(gap for _, gap in kept)
            pending = []
            activity_ts = post_ts = ts  # the next subsequence's first gap counts from this post
        self.user_ids.append(user_id)
        self.n_posts.append(len(self.event_ids) - first_row)

    def _slot(self, post: ClickEvent, due: float) -> _Slot:
        """The open loan of a post about to be added: its row is the next one."""
        return _Slot(post.amount, due, post.ts, row=len(self.event_ids))

    def finish(self, window: int) -> Windows:
        n = len(self.event_ids)
        post_offsets = offsets_from_lengths(np.array(self.n_posts, dtype=np.int64))
        gap = normalise_gap(np.array(self.post_gap_s, dtype=np.float64))
        post_x = np.column_stack(
            (np.array(self.post_x, dtype=np.float64).reshape(n, _POST_FEATURES - 1), gap)
        ).astype(np.float32)
        # Slot j of post g's window is post g − T + 1 + j; its loan as known at post g.
        start = np.repeat(post_offsets[:-1], self.n_posts)[:, None]  # (N, 1)
        slot = np.arange(n)[:, None] - (window - 1) + np.arange(window)  # (N, T)
        real = slot >= start
        slot = np.where(real, slot, 0)
        now = np.array(self.position, dtype=np.int64)[:, None]  # (N, 1)
        funded = np.array(self.funded_at, dtype=np.int64)[slot] < now
        repaid = np.array(self.repaid_at, dtype=np.int64)[slot] < now
        # Loan.past_due and Loan.labels' delinquent, for every slot at once.
        past_due = np.array(self.due_ts)[slot] < np.array(self.event_ts)[:, None]
        overdue = funded & ~repaid & past_due
        late = np.array(self.late, dtype=bool)[slot]
        return Windows(
            window=window,
            max_activities=self.max_activities,
            user_ids=np.array(self.user_ids, dtype=str),
            post_offsets=post_offsets,
            post_x=post_x,
            slot_delinquent=real & ((repaid & late) | overdue),
            slot_known=real & (repaid | overdue),
            labels=np.array(self.labels, dtype=np.float32).reshape(n, 2),
            event_ids=np.array(self.event_ids, dtype=str),
            event_ts=np.array(self.event_ts, dtype=np.float64),
            sub_offsets=offsets_from_lengths(np.array(self.sub_len, dtype=np.int64)),
            act_x=np.array(self.act_x, dtype=np.float32).reshape(-1, ACTIVITY_FEATURES),
            act_gap=normalise_gap(np.array(self.act_gap_s, dtype=np.float64)).astype(np.float32),
        )
