"""One flat feature row per loan post, for the non-neural baselines (paper Table 1: XGB, LR) and
the challengers' input forms (``training.challengers.eventform``).

The paper's XGB "takes each variable in the elements of repayment and activity sequences as
the model feature"; LR uses the same input. We build that from the very ``Sequences`` the neural
model trains on, so every model sees the same events and is scored on the same labelled posts.

A post's row uses only rows before it or at it (its own loan-level row, earlier loan-level
rows, activity rows up to the last one before the post): nothing after the post enters, as in
the streaming model. Everything is vectorised over all posts at once.

Feature groups, in column order (``window`` = W):

1. own: the post's loan input without its kind one-hot (terms, debt, record and delay
   columns of ``scorer.features.loan_features``), its loan-level gap and its post gap;
2. loan window: the last W loan-level rows before the post, each loan_x + gap + present flag,
   oldest first, zero where absent (the repayment sequence's elements);
3. activity window: the last W activity rows before the post, each act_x + gap + present flag
   (the activity sequence's elements);
4. subsequence: over the activities since the previous post, the count of each activity type,
   sum and mean money, mean and max gap, and the number of steps;
5. history: over the user's earlier loan-level rows, log1p counts of posts, repayments, late
   repayments and misses, mean and max repayment delay, and the gap since the last miss with a
   has-missed flag.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from scorer.features import ACTIVITY_FEATURES, LOAN_FEATURES, STEP_ACTIVITIES, LoanStep
from scorer.timegap import normalise_gap
from training.core.dataset import Sequences

__all__ = [
    "PostIndex",
    "feature_names",
    "gathered",
    "labelled_post_features",
    "post_context",
    "post_features",
    "post_index",
    "window_rows",
]

#: loan_x columns (``scorer.features.loan_features`` order): kind one-hot, then these.
_KINDS = len(LoanStep)
_DELAY = LOAN_FEATURES - 1
#: act_x columns: activity one-hot, then log money.
_MONEY = ACTIVITY_FEATURES - 1
#: Grouped running maxima add user index × this, larger than any delay's range (≤ 3.05 + 1).
_USER_STRIDE = 10.0


class PostIndex(NamedTuple):
    """Where each post sits in ``Sequences``, as global row numbers; -1 where there is none."""

    rows: np.ndarray  # (P,) loan-level row of the post
    user: np.ndarray  # (P,) user index
    first_loan: np.ndarray  # (P,) the user's first loan-level row
    first_act: np.ndarray  # (P,) the user's first activity row
    last_act: np.ndarray  # (P,) the last activity row before the post, or -1
    sub_start: np.ndarray  # (P,) first activity row since the previous post, or -1 when none


def post_index(seq: Sequences) -> PostIndex:
    """Locate every post, in the order posts appear in ``seq``."""
    loan_user = np.repeat(np.arange(seq.users), np.diff(seq.loan_offsets))
    rows = np.flatnonzero(seq.loan_kind == LoanStep.POST)
    user = loan_user[rows]
    first_act = seq.act_offsets[user]
    local = seq.act_idx[rows]
    since_post = np.where(local >= 0, first_act + local, -1)
    # A post with no activity since the previous post sees the previous post's last activity.
    pos = np.arange(len(rows))
    last_with = np.maximum.accumulate(np.where(since_post >= 0, pos, -1))
    user_first_post = np.searchsorted(user, user, side="left")
    has = last_with >= user_first_post
    last_act = np.where(has, since_post[np.maximum(last_with, 0)], -1)
    opens = _segment_starts(seq)
    first_of = np.maximum.accumulate(np.where(opens, np.arange(len(opens)), 0))
    sub_start = np.where(since_post >= 0, first_of[np.maximum(since_post, 0)], -1)
    return PostIndex(rows, user, seq.loan_offsets[user], first_act, last_act, sub_start)


def window_rows(last: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """(P, width) row numbers ending at ``last`` (inclusive), oldest first, not before
    ``first``; -1 where the history is shorter (or ``last`` is -1)."""
    rows = last[:, None] - np.arange(width - 1, -1, -1)[None, :]
    valid = (last[:, None] >= 0) & (rows >= first[:, None])
    return np.where(valid, rows, -1)


def post_features(seq: Sequences, window: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X (P, F) float32, labels (P, 2), user index (P,)), one row per post in ``seq`` order."""
    at = post_index(seq)
    loan_rows = window_rows(at.rows - 1, at.first_loan, window)
    act_rows = window_rows(at.last_act, at.first_act, window)
    groups = [
        _own(seq, at),
        gathered(np.column_stack([seq.loan_x, seq.loan_gap]), loan_rows),
        gathered(np.column_stack([seq.act_x, seq.act_gap]), act_rows),
        _subsequence(seq, at),
        _history(seq, at),
    ]
    x = np.hstack(groups).astype(np.float32)
    return x, seq.labels[at.rows], at.user


def feature_names(window: int = 8) -> list[str]:
    """Names of ``post_features``' columns, in order (loan_x columns by index)."""
    loan = [f"loan_x{i}" for i in range(LOAN_FEATURES)]
    act = [a.value for a in STEP_ACTIVITIES] + ["money"]
    lags = range(window, 0, -1)  # oldest first
    return [
        *(f"post.loan_x{i}" for i in range(_KINDS, LOAN_FEATURES)),
        "post.loan_gap",
        "post.post_gap",
        *(f"loan[-{k}].{c}" for k in lags for c in [*loan, "gap", "present"]),
        *(f"act[-{k}].{c}" for k in lags for c in [*act, "gap", "present"]),
        *(f"sub.n_{a.value}" for a in STEP_ACTIVITIES),
        *("sub.money_sum", "sub.money_mean", "sub.gap_mean", "sub.gap_max", "sub.log1p_steps"),
        *("hist.log1p_posts", "hist.log1p_repays", "hist.log1p_late", "hist.log1p_misses"),
        *("hist.delay_mean", "hist.delay_max", "hist.since_miss", "hist.missed"),
    ]


def labelled_post_features(
    seq: Sequences, users: np.ndarray, window: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels at the posts of ``users`` that carry at least one finite label
    (the rows ``training.core.train.predict`` scores), users in the order given."""
    x, y, _ = post_features(seq.subset(users), window)
    known = np.isfinite(y).any(axis=1)
    return x[known], y[known]


def _segment_starts(seq: Sequences) -> np.ndarray:
    """Mask of activity rows that open a subsequence: the first after a post, or a user's first.
    Subsequences partition the activity rows, and each post's ends right before the next."""
    starts = seq.act_reset.copy()
    firsts = seq.act_offsets[:-1]
    starts[firsts[firsts < len(starts)]] = True
    return starts


def _own(seq: Sequences, at: PostIndex) -> np.ndarray:
    return np.column_stack(
        [seq.loan_x[at.rows, _KINDS:], seq.loan_gap[at.rows], seq.post_gap[at.rows]]
    )


def gathered(values: np.ndarray, rows: np.ndarray, flat: bool = True) -> np.ndarray:
    """Each window row's values (``values`` (N, C)) and a present flag, for ``rows`` (P, W)
    from ``window_rows``: (P, W, C + 1), zeros where absent, or flattened to (P, W * (C + 1))."""
    present = rows >= 0
    picked = values[np.maximum(rows, 0)] * present[..., None]  # (P, W, C)
    both = np.concatenate([picked, present[..., None]], axis=-1)  # (P, W, C + 1)
    return both.reshape(len(rows), -1) if flat else both


def post_context(seq: Sequences, at: PostIndex) -> np.ndarray:
    """Groups 1, 4 and 5 of the module docstring (own, subsequence, history) at the posts of
    ``at``: what a post's row says beside its windows, (P, 2 * len(STEP_ACTIVITIES) + ...)
    float64, columns as ``feature_names``' of those groups."""
    return np.hstack([_own(seq, at), _subsequence(seq, at), _history(seq, at)])


def _subsequence(seq: Sequences, at: PostIndex) -> np.ndarray:
    """Counts per activity type, money sum/mean, gap mean/max and length since the last post."""
    has = at.sub_start >= 0
    start = np.maximum(at.sub_start, 0)
    end = np.where(has, np.maximum(at.last_act, 0) + 1, start)  # exclusive; empty when none
    values = np.column_stack([seq.act_x, seq.act_gap]).astype(np.float64)
    cums = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    sums = cums[end] - cums[start]
    length = (end - start).astype(np.float64)
    per_step = np.maximum(length, 1.0)
    opens = np.flatnonzero(_segment_starts(seq))
    gap_max = np.zeros(len(start))
    if has.any():  # each post's subsequence is one whole segment between consecutive opens
        seg_max = np.maximum.reduceat(seq.act_gap, opens)
        gap_max[has] = seg_max[np.searchsorted(opens, start[has])]
    return np.column_stack([
        sums[:, :_MONEY],  # counts of each activity type
        sums[:, _MONEY], sums[:, _MONEY] / per_step,  # money
        sums[:, -1] / per_step, gap_max,  # gaps
        np.log1p(length),
    ])  # fmt: skip


def _history(seq: Sequences, at: PostIndex) -> np.ndarray:
    """Aggregates over the user's loan-level rows before the post."""
    kind = seq.loan_kind
    delay = seq.loan_x[:, _DELAY].astype(np.float64)
    is_repay = kind == LoanStep.REPAY
    flags = np.column_stack([kind == LoanStep.POST, is_repay, is_repay & (delay > 0),
                             kind == LoanStep.MISS, np.where(is_repay, delay, 0.0)])  # fmt: skip
    cums = np.vstack([np.zeros((1, flags.shape[1])), np.cumsum(flags, axis=0)])
    before = cums[at.rows] - cums[at.first_loan]  # rows [first, post)
    posts, repays, late, misses, delay_sum = before.T
    loan_user = np.repeat(np.arange(seq.users), np.diff(seq.loan_offsets)).astype(np.float64)
    # Running max within each user: the user stride keeps earlier users' values below.
    shifted = np.where(is_repay, delay, -1.0) + _USER_STRIDE * loan_user
    delay_max = np.maximum.accumulate(shifted)[at.rows] - _USER_STRIDE * at.user
    rows = np.arange(len(kind))
    last_miss = np.maximum.accumulate(np.where(kind == LoanStep.MISS, rows, -1))[at.rows]
    missed = last_miss >= at.first_loan
    since_miss = normalise_gap(seq.event_ts[at.rows] - seq.event_ts[np.maximum(last_miss, 0)])
    return np.column_stack([
        np.log1p(posts), np.log1p(repays), np.log1p(late), np.log1p(misses),
        delay_sum / np.maximum(repays, 1.0), np.where(repays > 0, delay_max, 0.0),
        np.where(missed, since_miss, 0.0), missed,
    ])  # fmt: skip
