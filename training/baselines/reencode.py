"""The paper-literal re-encode baseline end to end: windows, model, fit, predict, benchmark.

Same conventions as ``training.core.train``: users split by ``training.core.train.split`` (test 20%
by user hash, validation 10% of the rest; ``align_split`` maps a split of a ``Sequences`` onto the
windows by user id), early stopping on the validation users (``TrainConfig.stop_on``), test users
only in the final measurement. A training example is one window whose own post is labelled;
batches are runs of consecutive windows of users drawn in a random order each epoch, so windows
in a batch share most of their activity subsequences.

It is one row of ``deepcredit ablate``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from scorer.card import TargetMetrics
from training.baselines.reencode_data import WindowBatch, Windows, build_windows
from training.baselines.reencode_model import ReencodeDeepCredit, window_loss
from training.core.evaluation import per_target
from training.core.model import ModelConfig
from training.core.train import Split, TrainConfig, TrainResult, train_loop

__all__ = [
    "ReencodeDeepCredit",
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
    return per_target(y, p)


def fit_reencode(
    windows: Windows,
    users: Split,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    alpha: float = 0.5,
    batch_windows: int = 256,
    progress: bool = True,
) -> TrainResult:
    """Train on ``users.train`` with eq. 6's loss, early-stop on the validation users
    (``TrainConfig.stop_on``; the last slot's prediction at validation users' labelled posts),
    return the best model.

    ``alpha`` weights the past loans' predictions (eq. 6). 0.5 sits inside the paper's range:
    its Figure 16(b) finds an interior optimum, smaller for default than for delinquency, and
    one α serves both targets here. ``config.batch_users`` is unused: batches are counted in
    windows (``batch_windows``), as a user's window count varies a hundredfold."""
    torch.manual_seed(config.seed)
    model = ReencodeDeepCredit(model_config)

    def loss_of(rows: np.ndarray) -> torch.Tensor | None:
        return model(windows.batch(rows).tensors(), alpha=alpha)[1]

    return train_loop(
        model,
        config,
        batches=lambda rng: list(window_batches(windows, users.train, batch_windows, rng)),
        loss_of=loss_of,
        validate=lambda: evaluate_reencode(model, windows, users.validation),
        progress=progress,
    )
