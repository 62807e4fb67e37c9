"""The paper-literal re-encode baseline end to end: windows, model, fit, predict, benchmark.

Same conventions as ``training.train``: users split by ``training.train.split`` (test 20% by
user hash, validation 10% of the rest; ``align_split`` maps a split of a ``Sequences`` onto the
windows by user id), early stopping on the mean validation AUC, test users only in the final
measurement. A training example is one window whose own post is labelled; batches are runs of
consecutive windows of users drawn in a random order each epoch, so windows in a batch share
most of their activity subsequences.

It is one row of ``deepcredit ablate``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from training.evaluation import TargetMetrics, binary_metrics
from training.model import TARGETS, ModelConfig
from training.reencode_data import WindowBatch, Windows, build_windows
from training.reencode_model import ReencodeDeepCredit, window_loss
from training.train import Split, TrainConfig

__all__ = [
    "ReencodeDeepCredit",
    "ReencodeResult",
    "WindowBatch",
    "Windows",
    "align_split",
    "build_windows",
    "evaluate_reencode",
    "fit_reencode",
    "predict_reencode",
    "window_batches",
    "window_loss",
]

log = logging.getLogger(__name__)


def align_split(parts: Split, user_ids: np.ndarray, windows: Windows) -> Split:
    """A split given as indices into ``user_ids`` (e.g. ``Sequences.user_ids``) as indices into
    ``windows.user_ids``; users the windows lack are dropped."""
    index = {str(u): i for i, u in enumerate(windows.user_ids)}

    def remap(users: np.ndarray) -> np.ndarray:
        found = [index.get(str(user_ids[u])) for u in users]
        return np.array([i for i in found if i is not None], dtype=np.int64)

    return Split(remap(parts.train), remap(parts.validation), remap(parts.test))


def window_batches(
    windows: Windows, users: np.ndarray, size: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Post rows of the labelled posts of ``users`` in chunks of ``size``: users in a random
    order when rng is given (else as given), each user's posts consecutive and in time order."""
    if rng is not None:
        users = rng.permutation(users)
    rows = windows.rows(users)
    rows = rows[np.isfinite(windows.labels[rows]).any(axis=1)]
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


@torch.no_grad()
def predict_reencode(
    model: ReencodeDeepCredit, windows: Windows, users: np.ndarray, batch_windows: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and probabilities (N, 2) at the labelled posts of ``users`` (the last slot of
    each post's window)."""
    model.eval()
    ys, ps = [], []
    for rows in window_batches(windows, users, batch_windows, rng=None):
        logits, _ = model(windows.batch(rows).tensors(), targets=False)  # (B, T, 2)
        ys.append(windows.labels[rows])
        ps.append(torch.sigmoid(logits[:, -1]).numpy())
    if not ys:
        return np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)
    return np.concatenate(ys), np.concatenate(ps)


def evaluate_reencode(
    model: ReencodeDeepCredit, windows: Windows, users: np.ndarray
) -> dict[str, TargetMetrics]:
    y, p = predict_reencode(model, windows, users)
    return {t: binary_metrics(y[:, k], p[:, k]) for k, t in enumerate(TARGETS)}


@dataclass
class ReencodeResult:
    model: ReencodeDeepCredit
    best_epoch: int
    epochs_run: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def fit_reencode(
    windows: Windows,
    users: Split,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    alpha: float = 0.5,
    batch_windows: int = 256,
    progress: bool = True,
) -> ReencodeResult:
    """Train on ``users.train`` with eq. 6's loss, early-stop on the mean validation AUC (the
    last slot's prediction at validation users' labelled posts), return the best model.

    ``alpha`` weights the past loans' predictions (eq. 6). 0.5 sits inside the paper's range:
    its Figure 16(b) finds an interior optimum, smaller for default than for delinquency, and
    one α serves both targets here. ``config.batch_users`` is unused: batches are counted in
    windows (``batch_windows``), as a user's window count varies a hundredfold."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    model = ReencodeDeepCredit(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    best_auc, best_epoch, best_state = -math.inf, 0, None
    history: list[dict] = []
    started = time.monotonic()
    epoch = 0
    for epoch in range(1, config.epochs + 1):
        model.train()
        losses = []
        epoch_started = time.monotonic()
        groups = list(window_batches(windows, users.train, batch_windows, rng))
        bar = tqdm(groups, desc=f"epoch {epoch}", unit="batch", disable=not progress, leave=False)
        for rows in bar:
            _, loss = model(windows.batch(rows).tensors(), alpha=alpha)
            if loss is None:
                continue
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        train_seconds = time.monotonic() - epoch_started
        val = evaluate_reencode(model, windows, users.validation)
        mean_auc = float(np.mean([m.auc for m in val.values()]))
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan,
               "train_seconds": round(train_seconds, 1),
               "seconds": round(time.monotonic() - started, 1),
               **{f"val_auc_{t}": round(m.auc, 4) for t, m in val.items()}}  # fmt: skip
        history.append(row)
        if progress:
            print("  ".join(f"{k} {v}" for k, v in row.items()), flush=True)
        if mean_auc > best_auc:
            best_auc, best_epoch = mean_auc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= config.patience:
            break
        if config.max_minutes is not None and time.monotonic() - started > 60 * config.max_minutes:
            log.warning("stopping after epoch %d: time budget of %s min used", epoch,
                        config.max_minutes)  # fmt: skip
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return ReencodeResult(model, best_epoch, epoch, time.monotonic() - started, history)
