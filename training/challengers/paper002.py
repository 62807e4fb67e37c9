"""Paper 002's HUIHEN on the benchmark: its inputs built from the event log, fitted on Table
1's training users (early-stopped on its validation users), scored at Table 1's test posts,
and judged against the Table 1 baselines on the same posts.

The posts and labels are ``Sequences``' (``training.core.dataset``): the labelled posts of the
users given, in the order ``training.core.train.predict`` and the baselines give them, so
predictions line up row for row. Each post's behaviours are the user's events before it (the
same first copies in the same time order as ``build_users``), cut into sessions
(``training.challengers.huihen``). Its profile (the paper's "profile feature", 3.2) is what the
contract knows at the post, read from the same ``Sequences`` row: the target item's terms
(log amount, rate, term, the time since the user's previous post) and the user's record (debt,
undue loans, on-time and late repayments, recency of the last late one, and the running
aggregates of ``scorer.aggregates``), each column normalised by the training posts' mean and
standard deviation (3.2).

The baselines are not imported here (they are a sibling room): the caller fits them and passes
their test probabilities to ``paper002_rows``, and gradient boosting's probabilities on the
training posts to ``fit_huihen`` as the teacher of the transfer auxiliary network (4.2).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from deepcredit.events import Activity, ClickEvent
from scorer.features import money
from training.challengers.config import MODELS_002, HuihenConfig, Paper002Config
from training.challengers.events import benchmark_rows
from training.challengers.huihen import (
    ACTIVITY_KINDS,
    Behaviours,
    Huihen,
    batch,
    post_sessions,
    session_starts,
)
from training.challengers.results import Row
from training.core.dataset import Sequences, first_copies, user_rows

__all__ = ["EventHistory", "HuihenFit", "PostInputs", "fit_huihen", "paper002_rows",
           "post_inputs", "predict_aux", "predict_huihen", "read_history"]  # fmt: skip

_KIND = {Activity(k): i for i, k in enumerate(ACTIVITY_KINDS)}
_TERMS = slice(3, 6)  # loan_x: a post's money(amount), rate, term / 365
_RECORD = slice(6, 12)  # loan_x: unpaid, overdue, undue loans, on time, late, late recency


@dataclass(frozen=True, eq=False)
class EventHistory:
    """The behaviours of ``Sequences``' users (same order), and where each post sits among them."""

    behaviours: Behaviours
    offsets: np.ndarray  # (U+1,) int64: user u's behaviours are rows offsets[u]:offsets[u+1]
    starts: np.ndarray  # (N,) bool: session openings (``session_starts`` per user)
    post_row: dict[tuple[int, str], int]  # (user index, post event id) → global row


def read_history(events: Iterable[ClickEvent], seq: Sequences, gap_s: float) -> EventHistory:
    """The users of ``seq`` from their events (any order across users): each user's first
    copies in time order, ties in arrival order (``training.core.dataset.build_users``), cut
    into sessions at gaps over ``gap_s`` seconds. Users of ``seq`` with no events get none."""
    by_user: dict[str, list[ClickEvent]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    ts, kind, amount, terms, starts, lengths = [], [], [], [], [], []
    post_row: dict[tuple[int, str], int] = {}
    row = 0
    for u, user_id in enumerate(seq.user_ids):
        history = first_copies(by_user.pop(str(user_id), [])).events
        history.sort(key=lambda e: e.ts)
        t = np.array([e.ts for e in history], dtype=np.float64)
        ts.append(t)
        starts.append(session_starts(t, gap_s))
        for e in history:
            kind.append(_KIND[e.activity])
            amount.append(money(e.amount))
            if e.activity is Activity.POST:
                terms.append((money(e.amount), e.rate or 0.0, (e.term_days or 0) / 365.0))
                post_row[(u, e.event_id)] = row
            else:
                terms.append((0.0, 0.0, 0.0))
            row += 1
        lengths.append(len(history))
    all_starts = np.concatenate(starts) if starts else np.zeros(0, bool)
    beh = Behaviours.from_arrays(np.concatenate(ts) if ts else np.zeros(0), np.array(kind),
                                 np.array(amount), np.array(terms), all_starts)  # fmt: skip
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return EventHistory(beh, offsets, all_starts, post_row)


@dataclass(frozen=True, eq=False)
class PostInputs:
    """The labelled posts of some users (``predict``'s rows, in its order) as HUIHEN reads them."""

    pairs: np.ndarray  # (P, M, 2) int64: session windows, global behaviour rows
    item: np.ndarray  # (P, F_item) float32, raw (normalise with ``standardise``)
    user: np.ndarray  # (P, F_user) float32, raw
    labels: np.ndarray  # (P, 2) float32, NaN where unknown
    users: np.ndarray  # (P,) int64 user index into seq
    event_ids: np.ndarray | None = None  # (P,) str: each post's event id

    def __len__(self) -> int:
        return len(self.labels)


def post_inputs(seq: Sequences, hist: EventHistory, users: np.ndarray,
                cfg: HuihenConfig) -> PostInputs:  # fmt: skip
    """The labelled posts of ``users`` (indices into ``seq``), users in the order given.
    Raises KeyError when a post of ``seq`` is not among the events (another event log)."""
    users = np.asarray(users, dtype=np.int64)
    rows = user_rows(seq.loan_offsets, users)
    owner = np.repeat(users, np.diff(seq.loan_offsets)[users])
    known = np.isfinite(seq.labels[rows]).any(axis=1)
    rows, owner = rows[known], owner[known]
    pairs = np.full((len(rows), cfg.sessions, 2), -1, np.int64)
    for u in np.unique(owner):
        mine = np.flatnonzero(owner == u)
        base = hist.offsets[u]
        local = np.array([hist.post_row[(int(u), str(seq.event_ids[r]))] - base
                          for r in rows[mine]], dtype=np.int64)  # fmt: skip
        found = post_sessions(hist.starts[base : hist.offsets[u + 1]], local,
                              sessions=cfg.sessions, min_behaviours=cfg.min_behaviours)  # fmt: skip
        pairs[mine] = np.where(found >= 0, found + base, -1)
    item = np.column_stack([seq.loan_x[rows, _TERMS], seq.post_gap[rows]])
    user = np.column_stack([seq.loan_x[rows, _RECORD], seq.loan_agg[rows]])
    return PostInputs(pairs, item.astype(np.float32), user.astype(np.float32),
                      seq.labels[rows].astype(np.float32), owner, seq.event_ids[rows])  # fmt: skip


def standardise(train: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """x ↦ (x − mean) / sd with the training rows' mean and sd (sd 0 → 1)."""
    mean, sd = train.mean(axis=0), train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return lambda x: ((x - mean) / sd).astype(np.float32)


@dataclass
class HuihenFit:
    """A fitted HUIHEN with its profile scalers, and how it got there."""

    model: Huihen
    item_scale: Callable[[np.ndarray], np.ndarray]
    user_scale: Callable[[np.ndarray], np.ndarray]
    epochs: int
    pretrain_epochs: int
    seconds: float
    validation_loss: float
    history: list[dict]
    aux: Huihen | None = None  # the model after pre-training: the auxiliary network (4.2)


def _loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 15's binary cross-entropy, averaged over the known labels of both targets together
    (a post with both labels known counts twice)."""
    known = torch.isfinite(labels)
    return F.binary_cross_entropy_with_logits(
        logits[known], labels[known], reduction="sum") / max(1, int(known.sum()))  # fmt: skip


def _sym_kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p‖q) + KL(q‖p) of Bernoulli probabilities, elementwise (eq. 16's bracket)."""
    p, q = p.clamp(1e-6, 1 - 1e-6), q.clamp(1e-6, 1 - 1e-6)
    return (p - q) * (torch.log(p / q) - torch.log((1 - p) / (1 - q)))


def _chunks(n: int, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Consecutive runs of posts (a user's posts share most sessions), in shuffled order."""
    chunks = [np.arange(i, min(i + size, n)) for i in range(0, n, size)]
    if rng is not None:
        rng.shuffle(chunks)
    return chunks


def _logits(fit: HuihenFit, hist: EventHistory, posts: PostInputs, idx: np.ndarray) -> torch.Tensor:
    b = batch(hist.behaviours, posts.pairs[idx], fit.item_scale(posts.item[idx]),
              fit.user_scale(posts.user[idx]), fit.model.cfg.behaviours)  # fmt: skip
    return fit.model(b)


def fit_huihen(
    hist: EventHistory,
    train: PostInputs,
    validation: PostInputs,
    cfg: HuihenConfig,
    *,
    teacher: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> HuihenFit:
    """Train on ``train``'s posts, keeping the weights of the lowest validation loss (eq. 15 on
    ``validation``); stop after ``cfg.patience`` epochs without a lower one, after
    ``cfg.epochs``, or when ``cfg.max_minutes`` is spent (checked after each epoch).

    With ``teacher`` (P_train, 2): gradient boosting's probabilities at the training posts, the
    UPI layer is first pre-trained on profiles alone for ``cfg.pretrain_epochs`` epochs with
    eq. 16's loss, BCE + α/2 (KL(p, p_aux) + KL(p_aux, p)), α = 1 (section 4.2)."""
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    started = time.monotonic()
    budget = math.inf if cfg.max_minutes is None else 60.0 * cfg.max_minutes
    model = Huihen(cfg, train.item.shape[1], train.user.shape[1])
    fit = HuihenFit(model, standardise(train.item), standardise(train.user), 0, 0, 0.0,
                    math.inf, [])  # fmt: skip
    say = progress or (lambda _: None)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    y_train = torch.from_numpy(train.labels)
    if teacher is not None and cfg.pretrain_epochs > 0:
        item, user = (torch.from_numpy(fit.item_scale(train.item)),
                      torch.from_numpy(fit.user_scale(train.user)))  # fmt: skip
        p_aux = torch.from_numpy(np.asarray(teacher, np.float32))
        for epoch in range(cfg.pretrain_epochs):
            model.train()
            total = 0.0
            for idx in _chunks(len(train), cfg.batch, rng):
                logits = model.profile_only(item[idx], user[idx])
                known = torch.isfinite(y_train[idx])
                kl = _sym_kl(torch.sigmoid(logits), p_aux[idx])[known].mean()
                loss = _loss(logits, y_train[idx]) + 0.5 * kl
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            fit.pretrain_epochs = epoch + 1
            say(f"   pre-training epoch {epoch + 1}: loss {total / len(train):.4f}")
        fit.aux = copy.deepcopy(model).eval()
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    best, waited = copy.deepcopy(model.state_dict()), 0
    for epoch in range(cfg.epochs):
        model.train()
        total = 0.0
        for idx in _chunks(len(train), cfg.batch, rng):
            loss = _loss(_logits(fit, hist, train, idx), y_train[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += loss.item() * len(idx)
        val = _validation_loss(fit, hist, validation)
        fit.epochs = epoch + 1
        fit.history.append({"epoch": epoch + 1, "train_loss": round(total / len(train), 5),
                            "validation_loss": round(val, 5),
                            "seconds": round(time.monotonic() - started, 1)})  # fmt: skip
        say(f"   epoch {epoch + 1}: train {total / len(train):.4f}, validation {val:.4f} "
            f"({time.monotonic() - started:.0f} s)")  # fmt: skip
        if val < fit.validation_loss:
            fit.validation_loss, best, waited = val, copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
        if waited >= cfg.patience or time.monotonic() - started > budget:
            break
    model.load_state_dict(best)
    fit.seconds = round(time.monotonic() - started, 1)
    return fit


@torch.no_grad()
def _validation_loss(fit: HuihenFit, hist: EventHistory, posts: PostInputs) -> float:
    fit.model.eval()
    y = torch.from_numpy(posts.labels)
    total = 0.0
    for idx in _chunks(len(posts), 1024, None):
        total += float(_loss(_logits(fit, hist, posts, idx), y[idx])) * len(idx)
    return total / max(1, len(posts))


@torch.no_grad()
def predict_huihen(fit: HuihenFit, hist: EventHistory, posts: PostInputs) -> np.ndarray:
    """Probabilities (P, 2) [delinquent, default] at ``posts``, in their order."""
    fit.model.eval()
    out = [torch.sigmoid(_logits(fit, hist, posts, idx)).numpy()
           for idx in _chunks(len(posts), 1024, None)]  # fmt: skip
    return np.concatenate(out) if out else np.zeros((0, 2), np.float32)


@torch.no_grad()
def predict_aux(fit: HuihenFit, posts: PostInputs) -> np.ndarray:
    """Probabilities (P, 2) of the transfer auxiliary network alone (the UPI layer after
    pre-training, T_m and H_m zero) at ``posts``: what the profile gives without the
    behaviours. Raises ValueError when the fit had no pre-training."""
    if fit.aux is None:
        raise ValueError("this fit had no pre-training (no teacher or pretrain_epochs 0)")
    item = torch.from_numpy(fit.item_scale(posts.item))
    user = torch.from_numpy(fit.user_scale(posts.user))
    return torch.sigmoid(fit.aux.profile_only(item, user)).numpy()


def paper002_rows(y: np.ndarray, users: np.ndarray, predictions: dict[str, np.ndarray],
                  cfg: Paper002Config, command: str, *, data: str = "benchmark",
                  detail: dict[str, dict] | None = None) -> list[Row]:  # fmt: skip
    """``training.challengers.events.benchmark_rows`` for paper 002: ``predictions`` by
    ``MODELS_002`` names, HUIHEN the reference of the differences."""
    return benchmark_rows("002", y, users, predictions, "huihen", MODELS_002,
                          bootstrap=cfg.bootstrap, level=cfg.level, command=command, data=data,
                          detail=detail)  # fmt: skip
