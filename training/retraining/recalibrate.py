"""Recalibrate a model: the same weights, each target's probabilities refitted to recent
outcomes (Platt scaling), saved as a new version whose parent is the model.

Why: a shift that moves the level of risk can leave a model's ranking intact and its
probabilities wrong, and every approve or decline is a threshold on those probabilities. A
retrained challenger must win on every target; when it loses one, recalibrating the champion
repairs what the shift broke (the levels) and keeps what still works (the ranking: with a
positive slope the map is monotone, so each target's AUC is unchanged).

Per target, p' = sigmoid(a * logit(p) + b), fitted by logistic regression of the outcome on the
model's logit over the labelled posts of a period, of the *training-split* users only (never
the test users a gate judges on). The model's own input Y(i-1) stays the raw probability, so
states are those of the uncalibrated model (``scorer.model``). A target keeps the identity
(a = 1, b = 0) when either class has too few labels, when the fit's slope is not positive,
or when the fit does not carry over to other users: fitted on four fifths of the users and
scored on the fifth, in turn (folds by user, since one user's loans go bad together), it must
lower the Brier score by ``min_cv_gain``. So a target the shift left calibrated is left alone,
and one it broke is refitted.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> logit = rng.normal(-2.0, 1.0, 4000)
>>> y = (rng.random(4000) < 1 / (1 + np.exp(-(logit + 1.5)))).astype(float)  # risk went up
>>> a, b = fit_platt(logit, y, min_labels=20)
>>> round(a, 1), round(b, 1)
(1.0, 1.5)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from training.core.evaluation import TARGETS

__all__ = ["CV_FOLDS", "Recalibrated", "fit_platt", "recalibrate"]

CV_FOLDS = 5  # folds of users for the carry-over check


def fit_platt(logit: np.ndarray, y: np.ndarray, *, min_labels: int) -> tuple[float, float]:
    """(a, b) maximising the likelihood of ``y`` (0/1) under sigmoid(a * logit + b)
    (scikit-learn's logistic regression, practically unpenalised); the identity (1, 0) when
    either class has fewer than ``min_labels`` or the slope comes out non-positive."""
    from sklearn.linear_model import LogisticRegression

    logit, y = np.asarray(logit, np.float64), np.asarray(y, np.float64)
    positives = int(y.sum())
    if positives < min_labels or len(y) - positives < min_labels:
        return 1.0, 0.0
    fit = LogisticRegression(C=1e6, max_iter=1000).fit(logit[:, None], y.astype(int))
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    return (a, b) if a > 0 and np.isfinite([a, b]).all() else (1.0, 0.0)


@dataclass(frozen=True)
class Recalibrated:
    version: str  # the new version (parent: the model it recalibrates)
    calibration: dict[str, list[float]]  # target -> [a, b]
    fitted_on: dict[str, dict[str, Any]]  # target -> positives, negatives, cv_brier_gain, refitted


def recalibrate(
    model_dir: Path,
    events: Path,
    out_dir: Path,
    *,
    start_ts: float,
    end_ts: float,
    test_fraction: float,
    min_labels: int = 20,
    min_cv_gain: float = 0.05,
    progress: bool = False,
) -> Recalibrated:
    """Fit the model in ``model_dir`` to the outcomes of the posts in [start_ts, end_ts) of the
    training-split users of ``events`` (labels as the file knows them), and save the result as
    a new version under ``out_dir``."""
    import torch

    from training.core.artifact import load_model, save_model
    from training.core.dataset import labels_within
    from training.core.eventlog import load_sequences
    from training.core.train import TrainConfig, split

    model, card = load_model(Path(model_dir))
    seq, data = load_sequences(events, progress=progress)
    parts = split(seq, TrainConfig(test_fraction=test_fraction))
    fit_users = np.concatenate([parts.train, parts.validation])
    recent = dataclasses.replace(seq, labels=labels_within(seq, start_ts, end_ts))
    model.calibration = None  # fit on the raw logits
    folds = [_fold_rows(model, recent, fit_users[f::CV_FOLDS]) for f in range(CV_FOLDS)]
    params, counts = [], {}
    for k, target in enumerate(TARGETS):
        per_fold = [(z[:, k][np.isfinite(y[:, k])], y[:, k][np.isfinite(y[:, k])])
                    for z, y in folds]  # fmt: skip
        z_all = np.concatenate([z for z, _ in per_fold])
        y_all = np.concatenate([y for _, y in per_fold])
        fitted = fit_platt(z_all, y_all, min_labels=min_labels)
        gain = _cv_gain(per_fold, min_labels)
        kept = fitted != (1.0, 0.0) and gain >= min_cv_gain
        params.append(fitted if kept else (1.0, 0.0))
        counts[target] = {"positives": int(y_all.sum()), "negatives": int(len(y_all) - y_all.sum()),
                          "cv_brier_gain": round(gain, 4), "refitted": kept}  # fmt: skip
    model.calibration = torch.tensor(np.array(params, np.float32).T)  # rows: a, b
    fields = {
        "train_config": card.train_config,
        "data": data,
        "split": {"train": len(parts.train), "validation": len(parts.validation),
                  "test": len(parts.test)},
        "metrics": {},
        "training": {"recalibrated_from": card.version, "fit_posts": counts,
                     "from_ts": start_ts, "to_ts": end_ts},
        "parent_version": card.version,
    }  # fmt: skip
    saved = save_model(Path(out_dir), model, None, 0, fields)
    calibration = {
        t: [float(np.float32(a)), float(np.float32(b))]
        for t, (a, b) in zip(TARGETS, params, strict=True)
    }  # as the card holds them
    return Recalibrated(saved.version, calibration, counts)


def _fold_rows(model, seq, users) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits and labels (N, 2) at the labelled posts of ``users``."""
    from training.core.train import predict

    if len(users) == 0:
        return np.zeros((0, len(TARGETS))), np.zeros((0, len(TARGETS)))
    y, p = predict(model, seq, users)
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p)), y


def _cv_gain(parts: list[tuple[np.ndarray, np.ndarray]], min_labels: int) -> float:
    """The share of Brier score a fit on the other folds removes on each fold, all folds pooled
    (0 when nothing could be scored)."""
    raw = fitted = 0.0
    for i, (z, y) in enumerate(parts):
        if len(y) == 0:
            continue
        z_rest = np.concatenate([zz for j, (zz, _) in enumerate(parts) if j != i])
        y_rest = np.concatenate([yy for j, (_, yy) in enumerate(parts) if j != i])
        a, b = fit_platt(z_rest, y_rest, min_labels=min_labels)
        raw += float(np.sum((1 / (1 + np.exp(-z)) - y) ** 2))
        fitted += float(np.sum((1 / (1 + np.exp(-(a * z + b))) - y) ** 2))
    return 1.0 - fitted / raw if raw > 0 else 0.0
