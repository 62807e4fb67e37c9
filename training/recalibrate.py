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
states are those of the uncalibrated model (``scorer.model``). A target with too few labels of
either class keeps the identity (a = 1, b = 0), and so does a fit whose slope is not positive.

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

import numpy as np

from training.evaluation import TARGETS

__all__ = ["Recalibrated", "fit_platt", "recalibrate"]


def fit_platt(logit: np.ndarray, y: np.ndarray, *, min_labels: int) -> tuple[float, float]:
    """(a, b) maximising the likelihood of ``y`` (0/1) under sigmoid(a * logit + b), by
    Newton's method; the identity (1, 0) when either class has fewer than ``min_labels`` or
    the slope comes out non-positive."""
    logit, y = np.asarray(logit, np.float64), np.asarray(y, np.float64)
    positives = int(y.sum())
    if positives < min_labels or len(y) - positives < min_labels:
        return 1.0, 0.0
    x = np.stack([logit, np.ones_like(logit)], axis=1)
    w = np.array([1.0, 0.0])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    a, b = float(w[0]), float(w[1])
    return (a, b) if a > 0 and np.isfinite([a, b]).all() else (1.0, 0.0)


@dataclass(frozen=True)
class Recalibrated:
    version: str  # the new version (parent: the model it recalibrates)
    calibration: dict[str, list[float]]  # target -> [a, b]
    fitted_on: dict[str, dict[str, int]]  # target -> positives, negatives


def recalibrate(
    model_dir: Path,
    events: Path,
    out_dir: Path,
    *,
    start_ts: float,
    end_ts: float,
    test_fraction: float,
    min_labels: int = 20,
    progress: bool = False,
) -> Recalibrated:
    """Fit the model in ``model_dir`` to the outcomes of the posts in [start_ts, end_ts) of the
    training-split users of ``events`` (labels as the file knows them), and save the result as
    a new version under ``out_dir``."""
    import torch

    from training.artifact import load_model, save_model
    from training.controller import labels_within
    from training.eventlog import load_sequences
    from training.train import TrainConfig, predict, split

    model, card = load_model(Path(model_dir))
    seq, data = load_sequences(events, progress=progress)
    parts = split(seq, TrainConfig(test_fraction=test_fraction))
    fit_users = np.concatenate([parts.train, parts.validation])
    recent = dataclasses.replace(seq, labels=labels_within(seq, start_ts, end_ts))
    model.calibration = None  # fit on the raw logits
    y, p = predict(model, recent, fit_users)
    p = np.clip(p.astype(np.float64), 1e-7, 1 - 1e-7)
    logits = np.log(p / (1 - p))
    params, counts = [], {}
    for k, target in enumerate(TARGETS):
        known = np.isfinite(y[:, k])
        yk = y[known, k]
        counts[target] = {"positives": int(yk.sum()), "negatives": int(len(yk) - yk.sum())}
        params.append(fit_platt(logits[known, k], yk, min_labels=min_labels))
    model.calibration = torch.tensor(np.array(params, np.float32).T)  # rows: a, b
    fields = {
        "model_config": card.model_config,
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
    calibration = {t: [float(np.float32(a)), float(np.float32(b))]
                   for t, (a, b) in zip(TARGETS, params, strict=True)}  # as the card holds them
    return Recalibrated(saved.version, calibration, counts)
