"""What to build and how to train it, free of torch: the command line reads these defaults for
``deepcredit train --help`` without loading it.

>>> ModelConfig.from_dict(ModelConfig(hidden_size=8).to_dict()) == ModelConfig(hidden_size=8)
True
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field

__all__ = ["ModelConfig", "StopOn", "TrainConfig", "layer_sizes"]


def layer_sizes(text: str) -> tuple[int, ...]:
    """The widths of the heads' layers as written on a command line, widest first: "256-128-64"
    is (256, 128, 64). Raises ValueError for anything but positive integers joined by "-".

    >>> layer_sizes("128-64")
    (128, 64)
    """
    try:
        sizes = tuple(int(part) for part in text.split("-"))
    except ValueError:
        sizes = ()
    if not sizes or min(sizes) < 1:
        raise ValueError(f"{text!r} is not layer widths such as 256-128-64")
    return sizes


class StopOn(enum.StrEnum):
    """What early stopping and the choice of the best epoch read on the validation users."""

    #: The pooled Brier skill score of the targets, 1 - sum_t n_t Brier_t / sum_t n_t q_t
    #: (1 - q_t), with n_t the target's labelled validation posts and q_t its prevalence there:
    #: every labelled post counts, so it does not rest on a handful of positives as an AUC
    #: does, and a target weighs by the variance of its labels, so a target with a dozen
    #: positives in thousands of posts cannot sway it.
    BRIER_SKILL = "brier_skill"
    #: The mean of the targets' AUCs (ranking only; noisy when a target has few positives).
    AUC = "auc"


@dataclass(frozen=True)
class ModelConfig:
    """What to build. Saved in every checkpoint so the scorer rebuilds the same model. The
    switches are the ablations of the paper's Table 1 (``training.core.variants``)."""

    hidden_size: int = field(default=32, metadata={
        "help": "TLSTM hidden size, state numbers per layer: the README's sweep chose the "
                "default, the paper used 256"
    })  # fmt: skip
    head_sizes: tuple[int, ...] = field(default=(256, 128, 64), metadata={
        "help": "widths of the heads' layers, widest first, written 256-128-64 (the paper's "
                "FCN)"
    })  # fmt: skip
    use_time: bool = True  # False: plain LSTM cells (H-LSTM)
    complementary: bool = True  # False: no Y(i-1) input (H-TLSTM without CL)
    use_activity: bool = True  # False: TLSTM(repay) only
    use_repay: bool = True  # False: TLSTM(activity) only
    # False: the heads read the state-level hidden state alone (no wide input); a card written
    # before this switch existed reads as False (``from_dict``).
    use_aggregates: bool = field(default=True, metadata={
        "help": "feed the running aggregates (scorer.aggregates) to the heads beside the "
                "state-level hidden state (wide and deep)"
    })  # fmt: skip

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        return cls(**{**d, "head_sizes": tuple(d["head_sizes"]),
                      "use_aggregates": d.get("use_aggregates", False)})  # fmt: skip


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = field(default=20, metadata={"help": "most epochs (passes over the users)"})
    batch_users: int = field(default=32, metadata={"help": "users per batch"})
    lr: float = field(default=1e-3, metadata={"help": "learning rate (AdamW)"})
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    patience: int = field(default=3, metadata={
        "help": "stop after this many epochs without a better validation figure (--stop-on)"
    })  # fmt: skip
    stop_on: StopOn = field(default=StopOn.BRIER_SKILL, metadata={
        "help": "the validation figure that early-stops training and picks the best epoch: "
                "brier_skill (the targets' pooled Brier skill score; every labelled post "
                "counts) or auc (mean AUC; noisy when a target has few positives)"
    })  # fmt: skip
    seed: int = field(default=0, metadata={
        "help": "seed of the initial weights and the batch order: the same seed and data, the "
                "same model"
    })  # fmt: skip
    test_fraction: float = 0.2
    validation_fraction: float = 0.1  # of the training users
    max_minutes: float | None = field(default=None, metadata={
        "help": "stop after the epoch that crosses this many minutes (default: no limit)"
    })  # fmt: skip
    # Intra-op threads. The steps are small (B x D matmuls) and sequential, so a second thread
    # only adds hand-offs (README, "The model in the streaming form": two threads were far
    # slower on 2 shared cores).
    threads: int = field(default=1, metadata={"help": "torch intra-op threads"})
    processes: int = field(default=1, metadata={
        "help": "train on this many processes, each with its own batches and --threads "
                "threads, gradients averaged after each step (torch DDP over gloo on "
                "loopback): a step then reads processes x batch-users users"
    })  # fmt: skip

    def __post_init__(self) -> None:
        if self.processes < 1:
            raise ValueError(f"processes must be at least 1, not {self.processes}")

    def to_dict(self) -> dict:
        return asdict(self)
