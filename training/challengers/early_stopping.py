"""Early stopping on a validation loss for the challengers' own training loops: keep the
weights of the epoch with the lowest loss, stop after ``patience`` epochs without a lower one.

>>> model = torch.nn.Linear(1, 1)
>>> stop = EarlyStopping(model, patience=2)
>>> [stop.update(loss, epoch) for epoch, loss in enumerate([0.5, 0.4, 0.45, 0.41], start=1)]
[False, False, False, True]
>>> stop.best_epoch, stop.best_loss
(2, 0.4)
"""

from __future__ import annotations

import copy
import math

import torch

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """The best epoch so far of ``model`` (its validation loss, number and weights; epoch 0 is
    the initial weights at an infinite loss)."""

    def __init__(self, model: torch.nn.Module, patience: int) -> None:
        self.model, self.patience = model, patience
        self.best_loss, self.best_epoch = math.inf, 0
        self.state = copy.deepcopy(model.state_dict())

    def update(self, loss: float, epoch: int) -> bool:
        """Record ``epoch``'s validation loss (epochs count from 1); True when training should
        stop: ``patience`` epochs have passed since the best one."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.state = copy.deepcopy(self.model.state_dict())
            return False
        return epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Load the best epoch's weights back into the model."""
        self.model.load_state_dict(self.state)
