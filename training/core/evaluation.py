"""Scores to numbers a risk team trusts: AUC, KS and Brier per target, on labelled posts only.

>>> import numpy as np
>>> m = binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
>>> round(m.auc, 3), round(m.ks, 3), round(m.brier, 4), m.positives
(0.75, 0.5, 0.1581, 2)
"""

from __future__ import annotations

import logging

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from scorer.card import TargetMetrics

__all__ = ["TARGETS", "binary_metrics", "measurable", "per_target"]

log = logging.getLogger(__name__)

#: The two labels, in the column order of every (N, 2) label and probability array.
TARGETS = ("delinquent", "default")


def binary_metrics(y: np.ndarray, p: np.ndarray) -> TargetMetrics:
    """Metrics over the finite labels in ``y`` (0/1) against probabilities ``p``."""
    known = np.isfinite(y)
    y, p = y[known].astype(np.int64), p[known].astype(np.float64)
    positives = int(y.sum())
    if positives == 0 or positives == len(y):
        raise ValueError(f"AUC needs both classes; got {positives} positives out of {len(y)}")
    fpr, tpr, _ = roc_curve(y, p)
    return TargetMetrics(
        auc=float(roc_auc_score(y, p)),
        ks=float(np.max(tpr - fpr)),
        brier=float(np.mean((p - y) ** 2)),
        n=len(y),
        positives=positives,
    )


def measurable(y: np.ndarray) -> bool:
    """Whether labels ``y`` hold both classes (AUC and KS need both)."""
    known = y[np.isfinite(y)]
    return bool(known.size) and 0 < known.sum() < known.size


def per_target(y: np.ndarray, p: np.ndarray) -> dict[str, TargetMetrics]:
    """Metrics of each target from (N, 2) labels and probabilities. A target whose labels hold
    only one class (a tiny split) is left out with a warning rather than failing the run.

    >>> sorted(per_target(np.array([[0, 0], [1, 0]]), np.array([[0.2, 0.1], [0.7, 0.2]])))
    ['delinquent']
    """
    out = {}
    for k, t in enumerate(TARGETS):
        if measurable(y[:, k]):
            out[t] = binary_metrics(y[:, k], p[:, k])
        else:
            log.warning("no AUC for %s: its labels hold one class only (%d labelled)", t,
                        int(np.isfinite(y[:, k]).sum()))  # fmt: skip
    return out
