"""Intervals of the difference between two models' AUC, KS and Brier on the same rows, from a
bootstrap over users: one user's loans go bad together, so rows are not independent and an
interval over rows would be too narrow. Each draw takes users with replacement and weighs each
row by how many times its user was drawn.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400).astype(float)
>>> good, poor = 0.7 * y + 0.3 * rng.random(400), rng.random(400)
>>> d = paired_differences(y, good, poor, users=np.arange(400), draws=200)
>>> d["auc"]["difference"] > 0.4 and d["auc"]["interval"][0] > 0.3
True
>>> d["brier"]["difference"] < 0 and d["brier"]["interval"][1] < 0
True
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

__all__ = ["METRICS", "paired_differences", "weighted_metrics"]

#: The figures compared: AUC and KS (higher is better), Brier (lower is better).
METRICS = ("auc", "ks", "brier")


def weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, float]:
    """AUC, KS and Brier of probabilities ``p`` (N,) against 0/1 labels ``y`` (N,), rows
    weighted by ``w`` (N,) (None: all 1). Raises ValueError when the weighted rows hold one
    class only."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    positives = float(np.sum(w * y))
    if not 0 < positives < float(np.sum(w)):
        raise ValueError("AUC and KS need both classes among the weighted rows")
    fpr, tpr, _ = roc_curve(y, p, sample_weight=w)
    return {"auc": float(roc_auc_score(y, p, sample_weight=w)),
            "ks": float(np.max(tpr - fpr)),
            "brier": float(np.sum(w * (p - y) ** 2) / np.sum(w))}  # fmt: skip


def paired_differences(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    users: np.ndarray,
    *,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float | list[float]]]:
    """For each of ``METRICS``: model A's figure minus model B's on the same rows (labels ``y``
    (N,) 0/1, probabilities ``p_a``, ``p_b`` (N,), ``users`` (N,) any ids), and its ``level``
    interval from ``draws`` bootstrap draws over users (percentile method; draws whose rows hold
    one class only are skipped and counted). A positive AUC or KS difference, or a negative
    Brier difference, says A is better. Raises ValueError when the rows hold one class only."""
    point_a, point_b = weighted_metrics(y, p_a), weighted_metrics(y, p_b)
    ids, row_user = np.unique(np.asarray(users), return_inverse=True)
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {m: [] for m in METRICS}
    skipped = 0
    for _ in range(draws):
        w = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))[row_user]
        try:
            a, b = weighted_metrics(y, p_a, w), weighted_metrics(y, p_b, w)
        except ValueError:
            skipped += 1
            continue
        for m in METRICS:
            samples[m].append(a[m] - b[m])
    tail = (1.0 - level) / 2.0
    out: dict[str, dict[str, float | list[float]]] = {}
    for m in METRICS:
        lo, hi = (np.quantile(samples[m], [tail, 1.0 - tail]) if samples[m]
                  else (np.nan, np.nan))  # fmt: skip
        out[m] = {"a": point_a[m], "b": point_b[m], "difference": point_a[m] - point_b[m],
                  "interval": [float(lo), float(hi)]}  # fmt: skip
    out["bootstrap"] = {"draws": draws - skipped, "skipped": skipped, "level": level,
                        "users": len(ids), "seed": seed}  # fmt: skip
    return out
