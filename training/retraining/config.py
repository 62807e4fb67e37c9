"""How the retraining controller decides and trains (``ControllerConfig``), free of numpy and
torch: the command line reads these defaults for ``deepcredit retrain --help`` and
``deepcredit controller --help`` without loading them. ``training.retraining.controller`` says
what each step does."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepcredit.records import Monitor
from training.core.config import ModelConfig, TrainConfig

__all__ = ["REPORTS_DIR", "ControllerConfig"]

#: The drift reports (``training.retraining.drift_report``) go to this folder of the registry's
#: (``--models-dir``), the controller's and ``deepcredit drift report``'s alike.
REPORTS_DIR = "drift-reports"


@dataclass(frozen=True)
class ControllerConfig:
    """Raises ValueError for fewer than one alert, a negative span of days, or no recheck."""

    # debounce, labels, cool-down (event time)
    alerts_needed: int = field(default=3, metadata={
        "help": "drift alerts within the window of event days that decide a retraining"
    })  # fmt: skip
    within_days: float = field(default=30.0, metadata={
        "help": "that window: event days the deciding alerts must fall within"
    })  # fmt: skip
    immediate_monitors: frozenset[Monitor] = field(default=frozenset(), metadata={
        "help": "a monitor whose single alert decides"
    })  # fmt: skip
    label_wait_days: float = field(default=120.0, metadata={
        "help": "event days from the decision to the retraining, for outcomes to arrive"
    })  # fmt: skip
    min_eval_labels: int = field(default=20, metadata={
        "help": "positives and negatives of each target the gate needs among the posts since "
                "the first alert; fewer: wait the recheck days more"
    })  # fmt: skip
    recheck_days: float = field(default=30.0, metadata={
        "help": "event days more to wait when the gate has too few labels"
    })  # fmt: skip
    max_wait_days: float = field(default=365.0, metadata={
        "help": "most event days of extra waiting for labels, then judge what is measurable"
    })  # fmt: skip
    cooldown_days: float = field(default=90.0, metadata={
        "help": "no new decision this many event days after one's due time"
    })  # fmt: skip
    # data
    window_days: float = field(default=365.0, metadata={
        "help": "event days to train on, ending at the decision's due time or, without a "
                "decision, at the newest event"
    })  # fmt: skip
    eval_days: float = field(default=90.0, metadata={
        "help": "without a decision ('retrain'): the latest event days both models are judged "
                "on; the controller judges the posts since the first alert"
    })  # fmt: skip
    # the gate
    min_auc_gain: float = field(default=0.005, metadata={
        "help": "AUC the challenger must gain on every target; also the most AUC it may lose "
                "when it wins on calibration"
    })  # fmt: skip
    min_brier_gain: float = field(default=0.10, metadata={
        "help": "or it wins on calibration: it removes at least this share of the Brier score "
                "on one target, 0.1 being 10%"
    })  # fmt: skip
    max_brier_loss: float = field(default=0.02, metadata={
        "help": "and raises no target's Brier score by more than this share"
    })  # fmt: skip
    recalibrate: bool = field(default=True, metadata={
        "help": "when the retrained challenger is rejected, try the champion recalibrated to "
                "the same period's outcomes"
    })  # fmt: skip
    # the challenger: trained as 'deepcredit train' trains, unless told otherwise
    hidden_size: int = field(default=ModelConfig.hidden_size,
                             metadata={"help": "challenger hidden size"})  # fmt: skip
    use_aggregates: bool = field(default=ModelConfig.use_aggregates, metadata={
        "help": "the challenger's heads read the running aggregates beside the TLSTM state "
                "(wide-and-deep; its scores carry reason codes)"
    })  # fmt: skip
    epochs: int = field(default=TrainConfig.epochs, metadata={"help": "most epochs"})
    batch_users: int = field(default=TrainConfig.batch_users,
                             metadata={"help": "users per batch"})  # fmt: skip
    lr: float = field(default=TrainConfig.lr, metadata={"help": "learning rate"})
    seed: int = field(default=TrainConfig.seed, metadata={"help": "training seed"})
    max_minutes: float | None = field(default=TrainConfig.max_minutes, metadata={
        "help": "training time budget, minutes (default: none)"
    })  # fmt: skip
    impact_posts: int = field(default=50_000, metadata={
        "help": "on a promotion: compare both models' decisions at the live thresholds on "
                "this many of the window's most recent posts, kept with the promotion (0: not)"
    })  # fmt: skip
    by: str = field(default="retrain-controller",
                    metadata={"help": "who the registry logs as deciding"})  # fmt: skip

    def __post_init__(self) -> None:
        if self.alerts_needed < 1:
            raise ValueError(f"alerts_needed must be >= 1, got {self.alerts_needed}")
        for name in ("within_days", "label_wait_days", "recheck_days", "max_wait_days",
                     "cooldown_days", "window_days", "eval_days"):  # fmt: skip
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.recheck_days <= 0:
            raise ValueError(f"recheck_days must be > 0, got {self.recheck_days}")

    def train_config(self) -> TrainConfig:
        """How the challenger is trained (the champion should be trained alike to compare)."""
        return TrainConfig(epochs=self.epochs, batch_users=self.batch_users, lr=self.lr,
                           seed=self.seed, max_minutes=self.max_minutes)  # fmt: skip
