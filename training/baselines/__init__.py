"""The paper's non-neural baselines (Table 1: XGB, HMM, LR), run on our data and our split.

Each baseline sees the same ``Sequences`` as the neural model, trains on ``split.train`` (with
``split.validation`` for early stopping or one small choice) and is scored on the labelled posts
of ``split.test``, so its numbers sit beside the neural model's in one table:

- ``GradientBoostingBaseline`` (``gbdt``): boosted trees over flat post features;
- ``LogisticBaseline`` (``logistic``): logistic regression over the same features;
- ``HMMBaseline`` (``hmm``): class-conditional HMMs over both sequences.
"""

from __future__ import annotations

import logging

from training.baselines.base import Baseline
from training.baselines.gbdt import GradientBoostingBaseline
from training.baselines.hmm import HMMBaseline
from training.baselines.logistic import LogisticBaseline

__all__ = [
    "Baseline",
    "GradientBoostingBaseline",
    "HMMBaseline",
    "LogisticBaseline",
    "default_baselines",
]

log = logging.getLogger(__name__)


def default_baselines(seed: int = 0, threads: int | None = None) -> list[Baseline]:
    """The three baselines of Table 1 with their default settings."""
    return [
        GradientBoostingBaseline(seed=seed, threads=threads),
        LogisticBaseline(threads=threads),
        HMMBaseline(seed=seed, threads=threads),
    ]
