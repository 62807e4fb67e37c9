"""What every non-neural baseline offers: fit on training users, predict at labelled posts.

Same contract as the neural model's ``training.core.train.fit`` / ``predict``: fit sees only the
training users and the validation users (early stopping or one small choice), and predict gives
labels and probabilities (N, 2) [delinquent, default] at the posts of ``users`` that carry at
least one finite label, so metrics compare like with like.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

import numpy as np
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from training.core.dataset import Sequences

__all__ = ["Baseline", "validation_auc"]


class Baseline(ABC):
    """One model per target, with what it chose on the validation users (``chosen``).

    ``threads`` caps the native thread pools (OpenMP, BLAS) while fitting and predicting; None
    leaves them alone. With other busy processes on the machine, OpenMP's spinning threads can
    make gradient boosting a hundred times slower, so tests and shared machines pass 1.
    """

    name: str = "baseline"
    threads: int | None = None

    def fit(self, seq: Sequences, train_users: np.ndarray, validation_users: np.ndarray) -> Self:
        with threadpool_limits(self.threads):
            self._fit(seq, np.asarray(train_users), np.asarray(validation_users))
        return self

    def predict(self, seq: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Labels and probabilities (N, 2) at the labelled posts of ``users``."""
        with threadpool_limits(self.threads):
            return self._predict(seq, np.asarray(users))

    @property
    @abstractmethod
    def chosen(self) -> dict[str, Any]:
        """What the last ``fit`` chose on the validation users (the ablation records it)."""

    @abstractmethod
    def _fit(self, seq: Sequences, train_users: np.ndarray, validation_users: np.ndarray) -> None:
        """Learn from ``train_users``; use ``validation_users`` only to stop or choose."""

    @abstractmethod
    def _predict(self, seq: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``predict`` within the thread limit."""


def validation_auc(y: np.ndarray, p: np.ndarray) -> float:
    """AUC over the finite labels, NaN when they hold one class only (a small validation set):
    a choice made on it then falls back to the first candidate."""
    known = np.isfinite(y)
    if len(np.unique(y[known])) < 2:
        return float("nan")
    return float(roc_auc_score(y[known], p[known]))
