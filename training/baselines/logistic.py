"""Logistic regression on the flat post features: the paper's LR baseline (Table 1).

Features are standardised (train-user statistics) so one L2 strength fits all columns; the
strength is chosen from a short grid by validation AUC. No class weighting: AUC and KS do not
depend on it, while the Brier score needs probabilities on the real base rate, which balanced
weights would inflate (default is ~5% of funded loans).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from training.baselines.base import Baseline, validation_auc
from training.core.dataset import Sequences
from training.core.model import TARGETS
from training.core.postfeatures import labelled_post_features

__all__ = ["LogisticBaseline"]


class LogisticBaseline(Baseline):
    """Standardised L2 logistic regression per target over ``post_features(window)``."""

    name = "logistic"

    def __init__(
        self,
        window: int = 8,
        strengths: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0),
        max_iter: int = 500,
        threads: int | None = None,
    ) -> None:
        self.window = window
        self.strengths = strengths  # candidate inverse L2 strengths C
        self.max_iter = max_iter
        self.threads = threads
        self._models: list[Pipeline] = []
        self._chosen: list[float] = []

    def _fit(self, seq: Sequences, train_users: np.ndarray, validation_users: np.ndarray) -> None:
        x, y = labelled_post_features(seq, train_users, self.window)
        xv, yv = labelled_post_features(seq, validation_users, self.window)
        self._models, self._chosen = [], []
        for k in range(len(TARGETS)):
            known = np.isfinite(y[:, k])
            models, aucs = [], []
            for c in self.strengths:
                model = make_pipeline(
                    StandardScaler(), LogisticRegression(C=c, max_iter=self.max_iter)
                )
                model.fit(x[known], y[known, k])
                models.append(model)
                aucs.append(validation_auc(yv[:, k], model.predict_proba(xv)[:, 1]))
            best = 0 if np.isnan(aucs).all() else int(np.nanargmax(aucs))
            self._models.append(models[best])
            self._chosen.append(self.strengths[best])

    @property
    def chosen(self) -> dict[str, Any]:
        """The regularisation strength C picked per target (``TARGETS`` order)."""
        return {"C": list(self._chosen)}

    def _predict(self, seq: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = labelled_post_features(seq, users, self.window)
        p = np.column_stack([m.predict_proba(x)[:, 1] for m in self._models])
        return y, p.astype(np.float32)
