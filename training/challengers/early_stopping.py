"""Early stopping on a validation loss for the challengers' own training loops: keep the
weights of the epoch with the lowest loss, stop after ``patience`` epochs without a lower one,
or once a time budget is spent (checked after each epoch).

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
import time

import torch

__all__ = ["EarlyStopping"]


class EarlyStopping:
    """The best epoch so far of ``model`` (its validation loss, number and weights; epoch 0 is
    the initial weights at an infinite loss). ``max_minutes``: the training budget from now
    (None: none); ``out_of_time`` says whether it ran out."""

    def __init__(self, model: torch.nn.Module, patience: int,
                 max_minutes: float | None = None) -> None:  # fmt: skip
        self.model, self.patience = model, patience
        self.best_loss, self.best_epoch = math.inf, 0
        self.state = copy.deepcopy(model.state_dict())
        self.deadline = math.inf if max_minutes is None else time.monotonic() + 60 * max_minutes
        self.out_of_time = False

    def update(self, loss: float, epoch: int) -> bool:
        """Record ``epoch``'s validation loss (epochs count from 1); True when training should
        stop: ``patience`` epochs have passed since the best one, or the budget is spent."""
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.state = copy.deepcopy(self.model.state_dict())
        self.out_of_time = time.monotonic() >= self.deadline
        return self.out_of_time or epoch - self.best_epoch >= self.patience

    def restore(self) -> None:
        """Load the best epoch's weights back into the model."""
        self.model.load_state_dict(self.state)
