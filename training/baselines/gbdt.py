"""Gradient-boosted trees on the flat post features: the paper's XGB baseline (Table 1).

scikit-learn's histogram gradient boosting stands in for XGBoost (same family: second-order
boosting over binned features, LightGBM-style leaf-wise trees), so no extra dependency. One
classifier per target, early-stopped on the validation users' log loss.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from training.baselines.base import Baseline
from training.core.dataset import Sequences
from training.core.model import TARGETS
from training.core.postfeatures import labelled_post_features

__all__ = ["GradientBoostingBaseline"]


class GradientBoostingBaseline(Baseline):
    """Boosted trees per target over ``post_features(window)``."""

    name = "gbdt"

    def __init__(
        self,
        window: int = 8,
        max_iter: int = 500,
        learning_rate: float = 0.1,
        max_leaf_nodes: int = 31,
        patience: int = 20,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.window = window
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.patience = patience  # boosting rounds without a better validation loss
        self.seed = seed
        self.threads = threads
        self._models: list[HistGradientBoostingClassifier] = []

    def _fit(self, seq: Sequences, train_users: np.ndarray, validation_users: np.ndarray) -> None:
        x, y = labelled_post_features(seq, train_users, self.window)
        xv, yv = labelled_post_features(seq, validation_users, self.window)
        self._models = []
        for k in range(len(TARGETS)):
            known, known_v = np.isfinite(y[:, k]), np.isfinite(yv[:, k])
            model = HistGradientBoostingClassifier(
                learning_rate=self.learning_rate,
                max_iter=self.max_iter,
                max_leaf_nodes=self.max_leaf_nodes,
                early_stopping=True,
                scoring="loss",
                n_iter_no_change=self.patience,
                random_state=self.seed,
            )
            model.fit(x[known], y[known, k], X_val=xv[known_v], y_val=yv[known_v, k])
            self._models.append(model)

    @property
    def chosen(self) -> dict[str, Any]:
        """Boosting rounds kept per target (``TARGETS`` order) after early stopping."""
        return {"rounds": [int(m.n_iter_) for m in self._models]}

    def _predict(self, seq: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x, y = labelled_post_features(seq, users, self.window)
        p = np.column_stack([m.predict_proba(x)[:, 1] for m in self._models])
        return y, p.astype(np.float32)
