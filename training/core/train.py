"""Training in small named stages: split users, batch, fit with early stopping, predict.

The split is by user (the paper's 80/20), and the validation users for early stopping are
carved from the training users; the test users are never looked at until ``evaluate``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from scorer.card import TargetMetrics
from training.core.config import StopOn, TrainConfig
from training.core.dataset import Sequences, split_masks, user_row_chunks
from training.core.evaluation import TARGETS, per_target
from training.core.model import (
    DeepCredit,
    ModelConfig,
    batch_to_tensors,
    probabilities,
    set_reference,
)

__all__ = [
    "MIN_VALIDATION_POSITIVES",
    "Shard",
    "Split",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "check_trainable",
    "fit",
    "predict",
    "split",
    "stopping_score",
    "train_loop",
]

#: Early stopping reads the validation AUC of each target: below this many positives (or
#: negatives) it is noise, and with none it is undefined.
MIN_VALIDATION_POSITIVES = 5


class TrainingDataError(ValueError):
    """The event log cannot train a model; the message says why and what the data lacks."""

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Split:
    train: np.ndarray  # user indices
    validation: np.ndarray
    test: np.ndarray


def split(seq: Sequences, config: TrainConfig) -> Split:
    """Test users by a stable hash of the user id; validation users likewise among the rest."""
    is_test, is_val = split_masks(seq.user_ids, config.test_fraction, config.validation_fraction)
    users = np.arange(seq.users)
    return Split(users[~is_test & ~is_val], users[is_val], users[is_test])


def batches(
    seq: Sequences, users: np.ndarray, size: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Users grouped by history length (little padding); batch order shuffled when rng given."""
    order = users[np.argsort(np.diff(seq.act_offsets)[users], kind="stable")]
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    if rng is not None:
        rng.shuffle(groups)
    yield from groups


@torch.no_grad()
def predict(
    model: DeepCredit, seq: Sequences, users: np.ndarray, batch_users: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities (N, 2) at the labelled posts of ``users``: calibrated when
    ``model.calibration`` is set (``training.core.model.probabilities``), raw otherwise."""
    y, p, _ = predict_rows(model, seq, users, batch_users)
    return y, p


@torch.no_grad()
def predict_rows(
    model: DeepCredit, seq: Sequences, users: np.ndarray, batch_users: int = 64
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``predict``, and the user (an index into ``seq``) of each row: what a bootstrap over
    users needs (one user's loans are not independent)."""
    model.eval()
    ys, ps, us = [], [], []
    for group in batches(seq, users, batch_users, rng=None):
        batch = seq.batch(group)
        logits, _ = model(batch_to_tensors(batch), targets=False)
        known = np.isfinite(batch.labels).any(axis=-1)  # (B, Tl)
        ys.append(batch.labels[known])
        ps.append(probabilities(model, logits).numpy()[known])
        us.append(np.broadcast_to(np.asarray(group)[:, None], known.shape)[known])
    if not ys:
        empty = np.zeros((0, 2), np.float32)
        return empty, empty, np.zeros(0, np.int64)
    return np.concatenate(ys), np.concatenate(ps), np.concatenate(us)


def evaluate(model: DeepCredit, seq: Sequences, users: np.ndarray) -> dict[str, TargetMetrics]:
    y, p = predict(model, seq, users)
    return per_target(y, p)


def stopping_score(val: dict[str, TargetMetrics], stop_on: StopOn) -> float:
    """The validation figure early stopping maximises, from each measurable target's metrics
    (``StopOn`` says what each choice means); -inf when no target is measurable.

    >>> m = TargetMetrics(auc=0.8, ks=0.5, brier=0.08, n=100, positives=10)  # q(1-q) = 0.09
    >>> round(stopping_score({"delinquent": m}, StopOn.BRIER_SKILL), 4), stopping_score(
    ...     {"delinquent": m}, StopOn.AUC)
    (0.1111, 0.8)
    >>> rare = TargetMetrics(auc=0.5, ks=0.0, brier=0.0098, n=1000, positives=10)  # no skill
    >>> round(stopping_score({"delinquent": m, "default": rare}, StopOn.BRIER_SKILL), 4)
    0.0582
    """
    if not val:
        return -math.inf
    if stop_on == StopOn.AUC:
        return float(np.mean([m.auc for m in val.values()]))
    error = sum(m.n * m.brier for m in val.values())
    variance = sum(m.positives * (1.0 - m.positives / m.n) for m in val.values())  # n q (1-q)
    return 1.0 - error / variance


@dataclass(frozen=True)
class Shard:
    """This process's part in a training on ``size`` processes (``train_loop``)."""

    rank: int
    size: int
    #: rank 0's answer to a yes-or-no question, on every process (a collective: all ask).
    agree: Callable[[bool], bool]

    def mine(self, batches: list[Any]) -> list[Any]:
        """This process's batches: every ``size``-th from the ``rank``-th, of the whole rounds."""
        whole = len(batches) - len(batches) % self.size
        return batches[self.rank : whole : self.size]


@dataclass
class TrainResult:
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def check_trainable(
    seq: Sequences,
    users: Split,
    *,
    strict: bool = True,
    min_validation: int = MIN_VALIDATION_POSITIVES,
) -> list[str]:
    """Whether ``seq`` can train a model on ``users.train``, early-stopped on
    ``users.validation``. A post is labelled when it was funded and its outcome was decided by
    the end of the log (``deepcredit.loans``).

    Raises TrainingDataError when the training users hold no labelled post, or no target with
    both classes; with ``strict`` (``deepcredit train``) also when a target has one class only
    among the training users, or no target has both among the validation users (early stopping
    reads the mean validation AUC of the targets that have both). Returns warnings for the rest:
    a target whose validation posts hold fewer than ``min_validation`` of a class, and without
    ``strict`` each one-class target."""
    warnings: list[str] = []
    for part, idx in (("training", users.train), ("validation", users.validation)):
        if len(idx) == 0:
            raise TrainingDataError(f"no {part} users: the log has {seq.users} users in all")
        labelled = np.zeros(len(TARGETS), np.int64)
        positive = np.zeros(len(TARGETS), np.int64)
        for rows in user_row_chunks(seq.loan_offsets, idx):
            y = seq.labels[rows]
            known = ~np.isnan(y)
            labelled += known.sum(axis=0)
            positive += (known & (y == 1.0)).sum(axis=0)
        one_class = []
        for k, target in enumerate(TARGETS):
            n = int(labelled[k])
            if n == 0 and part == "training":
                raise TrainingDataError(
                    f"no labelled posts among the {len(idx):,} {part} users: no post was funded "
                    "(a borrow of its loan) with an outcome known by the end of the log"
                )
            positives = int(positive[k])
            least = min(positives, n - positives)
            counted = f"{positives:,} {target} of {n:,} labelled posts"
            if least == 0:
                one_class.append(counted)
            if part == "validation" and 0 < least < min_validation:
                warnings.append(f"the validation AUC of {target} rests on {counted}: early "
                                "stopping on it is noisy")  # fmt: skip
        if not one_class:
            continue
        every = len(one_class) == len(TARGETS)
        fatal = (every or strict) if part == "training" else (every and strict)
        message = (f"one class only among the {part} users: {', '.join(one_class)} ("
                   + ("nothing to learn" if part == "training" else "no AUC to stop on")
                   + "; a longer log or more users)")  # fmt: skip
        if fatal:
            raise TrainingDataError(message)
        warnings.append(message)
    return warnings


def fit(
    seq: Sequences,
    users: Split,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    strict: bool = False,
    progress: bool = True,
    on_epoch: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train on ``users.train``, early-stop on the validation users (``config.stop_on``), return
    the best model. ``on_epoch(epoch, score)`` runs after each epoch's validation (a search's
    pruner; whatever it raises ends the training).
    Raises TrainingDataError when the data cannot train one (``check_trainable``, ``strict``
    as there)."""
    for warning in check_trainable(seq, users, strict=strict):
        log.warning("%s", warning)
        if progress:
            print(f"warning: {warning}", flush=True)
    torch.manual_seed(config.seed)
    model = DeepCredit(model_config)
    set_reference(model, seq, users.train)
    return train_loop(
        model,
        config,
        batches=lambda rng: list(batches(seq, users.train, config.batch_users, rng)),
        loss_of=lambda group: model(batch_to_tensors(seq.batch(group)))[1],
        validate=lambda: evaluate(model, seq, users.validation),
        progress=progress,
        on_epoch=on_epoch,
    )


def train_loop(
    model: torch.nn.Module,
    config: TrainConfig,
    *,
    batches: Callable[[np.random.Generator], list[Any]],
    loss_of: Callable[[Any], torch.Tensor | None],
    validate: Callable[[], dict[str, TargetMetrics]],
    progress: bool,
    on_epoch: Callable[[int, float], None] | None = None,
    shard: Shard | None = None,
) -> TrainResult:
    """Epochs of AdamW with gradient clipping; after each, the validation figure
    (``stopping_score`` of ``config.stop_on``) decides the best weights and early stopping; a
    time budget ends it after an epoch.
    Shared by every neural model we train, so they are trained alike.

    ``shard``: this process is one of several training one model (``training.core.distributed``:
    ``model`` wrapped so that each backward averages the gradients of all of them). Every
    process draws the same batch order and takes every ``shard.size``-th batch from its
    ``shard.rank``-th (the epoch's last batches that do not fill a round are left out, so every
    process steps as often); ``validate`` must give every process the same figures, so they
    keep the same best epoch and stop together; the time budget is rank 0's clock."""
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    best_score, best_epoch, best_state = -math.inf, 0, None
    history: list[dict] = []
    started = time.monotonic()
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        drawn = batches(rng)
        if shard is not None:
            drawn = shard.mine(drawn)
        bar = tqdm(drawn, desc=f"epoch {epoch}", unit="batch", disable=not progress,
                   leave=False)  # fmt: skip
        epoch_started = time.monotonic()
        for group in bar:
            loss = loss_of(group)
            if loss is None:
                if shard is not None:  # the others would wait for this process's gradients
                    raise RuntimeError("a distributed training drew a batch without a "
                                       "labelled post (distributed.step_batches leaves them "
                                       "out)")  # fmt: skip
                continue  # no labelled post in this batch
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        trained_s = time.monotonic() - epoch_started
        val = validate()
        # No measurable target (a tiny validation split): keep the latest weights.
        score = stopping_score(val, config.stop_on)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
               "seconds": round(time.monotonic() - started, 1),
               "train_seconds": round(trained_s, 2),  # this epoch's, validation excluded
               **{f"val_auc_{t}": round(m.auc, 4) for t, m in val.items()},
               **{f"val_brier_{t}": round(m.brier, 5) for t, m in val.items()},
               f"val_{config.stop_on}": round(score, 4) if val else None}  # fmt: skip
        history.append(row)
        if progress:
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        if on_epoch is not None:
            on_epoch(epoch, score)
        if score > best_score or not val:
            best_score, best_epoch = max(best_score, score), epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
        budget = config.max_minutes
        spent = budget is not None and time.monotonic() - started > 60 * budget
        if shard is not None:
            spent = shard.agree(spent)
        if spent:
            log.warning("stopping after epoch %d: time budget of %s min used", epoch,
                        config.max_minutes)  # fmt: skip
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return TrainResult(model, optimizer, best_epoch, epoch, time.monotonic() - started, history)
