"""The benchmark's labelled posts in the input form of the UCI challengers (papers 001, 003 and
004): a temporal part, the user's last loan-level steps up to and including the post, and a
non-temporal part, what the post's row says beside its windows.

On UCI those models read six months of (repayment status, bill, paid) and a client's static
columns. The event contract's nearest equivalent of a month's statement line is a loan-level
step (``Sequences.loan_x``: a post with its terms, a repayment with its delay, a missed due
date, each with the debt and repayment record at that moment) and its time gap, so:

- temporal (P, T, C): the last ``steps`` loan-level steps of the user, oldest first, the post
  itself last; each step's ``loan_x`` (``scorer.features.loan_features``), its normalised gap
  and a present flag; zero where the history is shorter. C = ``LOAN_FEATURES`` + 2.
- static (P, S): the post's own terms, debt, record and gaps, the activities since the
  previous post and the user's loan-level history (``training.core.postfeatures.post_context``),
  and the running aggregates at the post (``Sequences.loan_agg``, ``scorer.aggregates``).

Rows are the posts ``training.core.train.predict`` and the baselines score: the posts of the
users given, users in that order, posts in time order, those with at least one known label.
Nothing after a post enters its row. Every column is standardised with the training posts' mean
and spread (``fit_scaler``); absent steps stay zero.

>>> from training.benchmark.generator import GeneratorConfig, generate
>>> from training.core.dataset import build_sequences
>>> seq = build_sequences(generate(GeneratorConfig(users=20, seed=3)))
>>> posts = post_arrays(seq, np.arange(20), steps=6)
>>> posts.temporal.shape[1:], posts.temporal.shape[0] == len(posts.static) == len(posts)
((6, 15), True)
>>> bool(posts.temporal[:, -1, -1].all())  # the post itself is always the last step
True
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.core.dataset import Sequences
from training.core.postfeatures import gathered, post_context, post_index, window_rows

__all__ = ["PostArrays", "fit_scaler", "flatten", "post_arrays"]


@dataclass(frozen=True, eq=False)
class PostArrays:
    """Labelled posts in the UCI models' input form (module docstring)."""

    temporal: np.ndarray  # (P, T, C) float32, oldest first, the post last
    static: np.ndarray  # (P, S) float32
    labels: np.ndarray  # (P, 2) float32 [delinquent, default], NaN where unknown
    users: np.ndarray  # (P,) int64: each row's user, an index into the Sequences
    event_ids: np.ndarray  # (P,) str: each post's event id

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: np.ndarray) -> PostArrays:
        """The rows at ``index`` (an integer or boolean array)."""
        return PostArrays(self.temporal[index], self.static[index], self.labels[index],
                          self.users[index], self.event_ids[index])  # fmt: skip

    def flat(self, last: int) -> np.ndarray:
        """What the trees see: the last ``last`` steps flattened oldest first beside the
        static part, (P, last * C + S) float32 (paper 004's "all temporal data was
        flattened"; a short window, the aggregates in the static part cover the rest)."""
        return flatten(self.temporal[:, -last:], self.static)


def flatten(temporal: np.ndarray, static: np.ndarray) -> np.ndarray:
    """Temporal (P, T, C) flattened step by step, oldest first, beside static (P, S):
    (P, T * C + S)."""
    return np.hstack([temporal.reshape(len(temporal), -1), static])


def post_arrays(seq: Sequences, users: np.ndarray, steps: int = 24) -> PostArrays:
    """The labelled posts of ``users`` (indices into ``seq``), raw (unscaled). Raises
    ValueError when ``steps`` < 1."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, not {steps}")
    users = np.asarray(users, dtype=np.int64)
    sub = seq.subset(users)
    at = post_index(sub)
    rows = window_rows(at.rows, at.first_loan, steps)
    temporal = gathered(np.column_stack([sub.loan_x, sub.loan_gap]), rows, flat=False)
    static = np.hstack([post_context(sub, at), sub.loan_agg[at.rows]])
    labels = sub.labels[at.rows]
    known = np.isfinite(labels).any(axis=1)
    return PostArrays(temporal[known].astype(np.float32), static[known].astype(np.float32),
                      labels[known].astype(np.float32), users[at.user[known]],
                      sub.event_ids[at.rows[known]])  # fmt: skip


def fit_scaler(train: PostArrays) -> Callable[[PostArrays], PostArrays]:
    """Posts ↦ the same posts with every temporal channel and static column standardised by
    ``train``'s mean and spread (a channel's over the present steps only; spread 0 → 1), absent
    steps left at zero."""
    present = train.temporal[..., -1] > 0
    steps = train.temporal[present]  # (n, C)
    t_mean, t_sd = steps.mean(axis=0), steps.std(axis=0)
    t_mean[-1], t_sd[-1] = 0.0, 1.0  # the present flag stays 0/1
    s_mean, s_sd = train.static.mean(axis=0), train.static.std(axis=0)
    t_sd, s_sd = np.where(t_sd > 0, t_sd, 1.0), np.where(s_sd > 0, s_sd, 1.0)

    def scale(posts: PostArrays) -> PostArrays:
        mask = (posts.temporal[..., -1:] > 0).astype(np.float32)
        t = ((posts.temporal - t_mean) / t_sd * mask).astype(np.float32)
        s = ((posts.static - s_mean) / s_sd).astype(np.float32)
        return PostArrays(t, s, posts.labels, posts.users, posts.event_ids)

    return scale
