"""What each experiment runs with, free of torch, Bytewax and the Kafka client: the command line
reads these defaults (``deepcredit ablate|drift|bench --help``) without loading them. Each
experiment's module says what it does with them.

>>> DriftMeasureConfig(users=10).shift_at_ts - DEFAULT_START_TS == 730 * DAY_S
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataflow.config import ServeOptions
from deepcredit.events import DAY_S
from deepcredit.settings import KafkaSettings
from scorer.monitor_config import MonitorConfig, UserSample
from training.benchmark.config import DEFAULT_HORIZON_DAYS, DEFAULT_START_TS, GeneratorConfig
from training.core.config import ModelConfig, TrainConfig
from training.retraining.config import ControllerConfig

__all__ = [
    "MEMORY_STAGES",
    "MEMORY_STAGES_UNBOUNDED",
    "AblationConfig",
    "DriftLoopConfig",
    "DriftMeasureConfig",
    "GatewayBenchConfig",
    "LiveBenchConfig",
    "ScalingBenchConfig",
    "TrainBenchConfig",
]


@dataclass(frozen=True)
class AblationConfig:
    """How every row of the paper's Table 1 is fitted (``training.experiments.ablation``): as
    'deepcredit train' trains, unless told otherwise."""

    hidden_size: int = field(default=ModelConfig.hidden_size,
                             metadata={"help": "TLSTM hidden size of the neural rows"})  # fmt: skip
    head_sizes: tuple[int, ...] = field(default=ModelConfig.head_sizes, metadata={
        "help": "widths of the neural rows' head layers, widest first, written 256-128-64"
    })  # fmt: skip
    epochs: int = field(default=TrainConfig.epochs, metadata={"help": "most epochs per model"})
    batch_users: int = field(default=TrainConfig.batch_users,
                             metadata={"help": "users per batch"})  # fmt: skip
    lr: float = field(default=TrainConfig.lr, metadata={"help": "learning rate"})
    patience: int = TrainConfig.patience
    seed: int = field(default=TrainConfig.seed, metadata={"help": "training seed of every row"})
    max_minutes_per_model: float | None = field(default=None, metadata={
        "help": "training time budget of each model, minutes (default: none)"
    })  # fmt: skip
    window: int = 8  # T: loans looked back by the re-encode and the flat-feature baselines
    alpha: float = 0.5  # eq. 6 weight of past loans in the re-encode's loss
    threads: int = TrainConfig.threads

    def train_config(self) -> TrainConfig:
        return TrainConfig(epochs=self.epochs, batch_users=self.batch_users, lr=self.lr,
                           patience=self.patience, seed=self.seed,
                           max_minutes=self.max_minutes_per_model,
                           threads=self.threads)  # fmt: skip


@dataclass(frozen=True)
class DriftMeasureConfig:
    """The streams and the monitors' settings (``training.experiments.drift_measure``).

    The default warm-up covers the benchmark's own ramp: users join during the first 30% of
    the horizon and build up debts and delinquency histories, so the mean score of the stream
    without a shift climbs from about 0.05 to 0.18 until day 540 or so and stays flat after.
    Alerts on that climb would be true drift, but not the drift we measure.

    Raises ValueError for a shift outside the horizon.
    """

    users: int = field(default=2000, metadata={
        "help": "users per stream; the default makes about 1M events each, 1.5 minutes on 2 cores"
    })  # fmt: skip
    seed: int = field(default=0, metadata={"help": "generator seed of both streams"})
    shift_at_day: float = field(default=730.0, metadata={
        "help": "day of the horizon at which the shift starts"
    })  # fmt: skip
    horizon_days: float = DEFAULT_HORIZON_DAYS
    warmup_days: float = field(default=600.0, metadata={
        "help": "no alerts before this many days of each monitor's stream: the synthetic "
                "population matures until about day 540"
    })  # fmt: skip
    cooldown_days: float = field(default=30.0, metadata={
        "help": "no alert from a monitor for this many days after its last"
    })  # fmt: skip
    delta: float = field(default=MonitorConfig.delta, metadata={"help": "ADWIN's delta"})
    auc_window: int = 1000
    samples: tuple[float, ...] = field(default=(), metadata={
        "help": "also run monitors that watch only this share of the users (the live flow's "
                "--drift-sample), each on the same scores; reported under 'samples'"
    })  # fmt: skip

    def __post_init__(self) -> None:
        for fraction in self.samples:
            UserSample(fraction)  # raises ValueError outside (0, 1]
        if not 0.0 < self.shift_at_day < self.horizon_days:
            raise ValueError(
                f"shift_at_day must lie inside the horizon (0, {self.horizon_days:g}), "
                f"got {self.shift_at_day:g}"
            )

    @property
    def shift_at_ts(self) -> float:
        return DEFAULT_START_TS + self.shift_at_day * DAY_S

    def generator(self, shifted: bool) -> GeneratorConfig:
        return GeneratorConfig(users=self.users, seed=self.seed, horizon_days=self.horizon_days,
                               shift_at_ts=self.shift_at_ts if shifted else None)  # fmt: skip


@dataclass(frozen=True)
class DriftLoopConfig:
    """The scenario (``training.experiments.drift_loop``). Defaults: the CI size, about 160,000
    events of 300 users over three years (the drift measurement's timeline), and the
    controller's and the models' settings unless said otherwise.

    Raises ValueError for a shift outside the stream, a warm-up past it, no partition, parts of
    no length, or what the generator's and the controller's configs refuse.
    """

    # the stream (training.benchmark.generator)
    users: int = field(default=300, metadata={"help": "users in the stream"})
    seed: int = field(default=0, metadata={"help": "generator seed"})
    horizon_days: float = DriftMeasureConfig.horizon_days
    shift_at_day: float = DriftMeasureConfig.shift_at_day  # S
    shift_term_risk: float = field(default=2.0, metadata={
        "help": "in the crisis, the risk a loan adds per unit of log(term / shortest term), "
                "longer loans going bad; 0 is the generator's calibrated shift alone"
    })  # fmt: skip
    step_days: float = field(default=30.0, metadata={
        "help": "after the monitors' warm-up the stream arrives in parts of this many event days"
    })  # fmt: skip
    # Three, as a real topic has several; the flow's drift step puts the partitions'
    # interleaved, user-grouped batches back in event-time order (dataflow.reorder), without
    # which the first alert came 66 days after the shift, not 8.
    partitions: int = field(default=3, metadata={"help": "partitions of the clicks topic"})
    # The flow's drift monitors: the population matures until about day 540 and keeps drifting
    # slowly (README, "Drift monitors"), which ADWIN flags at this size too (day 684 with this
    # stream), so the warm-up ends 30 days before S.
    warmup_days: float = 700.0
    # the controller (training.retraining.controller.ControllerConfig)
    alerts_needed: int = ControllerConfig.alerts_needed
    within_days: float = ControllerConfig.within_days
    label_wait_days: float = field(default=150.0, metadata={
        "help": "the controller's wait for outcomes after a decision, event days"
    })  # fmt: skip
    min_eval_labels: int = ControllerConfig.min_eval_labels
    cooldown_days: float = 365.0  # one decision in the run
    window_days: float = ControllerConfig.window_days  # champion and challenger alike
    min_auc_gain: float = ControllerConfig.min_auc_gain
    min_brier_gain: float = ControllerConfig.min_brier_gain
    max_brier_loss: float = ControllerConfig.max_brier_loss
    recalibrate: bool = ControllerConfig.recalibrate
    # both models (training.core.config): small, to train in seconds
    hidden_size: int = field(default=8, metadata={"help": "hidden size of both models"})
    use_aggregates: bool = field(default=ModelConfig.use_aggregates, metadata={
        "help": "both models' heads read the running aggregates (wide-and-deep)"
    })  # fmt: skip
    epochs: int = field(default=5, metadata={"help": "most epochs of both models"})
    batch_users: int = 16
    lr: float = 3e-3
    train_seed: int = TrainConfig.seed
    timeout_s: float = 300.0  # most seconds the flow may take to score one part

    def __post_init__(self) -> None:
        if not 0.0 < self.shift_at_day < self.horizon_days:
            raise ValueError("the shift must fall within the stream (0 < shift_at_day < "
                             f"horizon_days), got {self.shift_at_day} and "
                             f"{self.horizon_days}")  # fmt: skip
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if self.step_days <= 0:
            raise ValueError(f"step_days must be > 0, got {self.step_days}")
        if not 0.0 <= self.warmup_days < self.shift_at_day:
            raise ValueError("warmup_days must end before the shift (a warm-up past it hides "
                             "the shift)")  # fmt: skip
        self.generator()  # validates users and seed
        self.controller()  # validates the controller's knobs

    def ts(self, day: float) -> float:
        """Event time of a day of the stream."""
        return DEFAULT_START_TS + day * DAY_S

    def cuts(self) -> list[float]:
        """The event days each part of the stream ends at (the last: the horizon)."""
        days, day = [], self.warmup_days
        while day < self.horizon_days:
            days.append(day)
            day += self.step_days
        return [*days, self.horizon_days]

    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(users=self.users, seed=self.seed, horizon_days=self.horizon_days,
                               shift_at_ts=self.ts(self.shift_at_day),
                               shift_term_risk=self.shift_term_risk)  # fmt: skip

    def controller(self) -> ControllerConfig:
        return ControllerConfig(alerts_needed=self.alerts_needed, within_days=self.within_days,
                                label_wait_days=self.label_wait_days,
                                min_eval_labels=self.min_eval_labels,
                                cooldown_days=self.cooldown_days, window_days=self.window_days,
                                min_auc_gain=self.min_auc_gain,
                                min_brier_gain=self.min_brier_gain,
                                max_brier_loss=self.max_brier_loss,
                                recalibrate=self.recalibrate, hidden_size=self.hidden_size,
                                use_aggregates=self.use_aggregates, epochs=self.epochs,
                                batch_users=self.batch_users, lr=self.lr,
                                seed=self.train_seed)  # fmt: skip


#: The stages of ``deepcredit bench memory`` (``training.experiments.memory_bench``), in the
#: order they run.
MEMORY_STAGES = ("build_in_memory", "build_on_disk", "epoch_in_memory", "epoch_mapped",
                 "rebuild_in_memory", "rebuild_bucketed", "drift_every_user",
                 "drift_sampled")  # fmt: skip
#: The stages that hold what grows with the users, run only up to ``--in-memory-up-to``.
MEMORY_STAGES_UNBOUNDED = ("build_in_memory", "epoch_in_memory", "rebuild_in_memory",
                           "drift_every_user")  # fmt: skip


@dataclass(frozen=True)
class LiveBenchConfig:
    """The live benchmark (``training.experiments.live_bench``)."""

    events: Path = field(metadata={
        "help": "a generated clickstream (JSON lines, .gz allowed)"
    })  # fmt: skip
    model: Path = field(metadata={"help": "a model folder made by 'deepcredit train'"})
    kafka: KafkaSettings
    limit: int = field(default=100_000, metadata={"help": "events of the file used for throughput"})
    repeats: int = field(default=3, metadata={
        "help": "throughput runs per flow, the median is reported"
    })  # fmt: skip
    partitions: int = 3
    snapshot_s: int = ServeOptions.snapshot_s  # as served
    latency_rate: float = field(default=500.0, metadata={
        "help": "replay rate of the latency run, events/s"
    })  # fmt: skip
    latency_events: int = field(default=10_000, metadata={"help": "events replayed for latency"})
    drift_sample: float = field(default=0.125, metadata={
        "help": "share of the users the drift monitors watch in the 'model_drift_sample' run "
                "(the flow as served watches every user)"
    })  # fmt: skip
    progress: bool = True

    def __post_init__(self) -> None:
        UserSample(self.drift_sample)  # raises ValueError outside (0, 1]


@dataclass(frozen=True)
class GatewayBenchConfig:
    """The gateway benchmark (``training.experiments.gateway_bench``)."""

    model: Path = field(metadata={"help": "a model folder made by 'deepcredit train'"})
    kafka: KafkaSettings
    processes: tuple[int, ...] = field(default=(1, 2), metadata={
        "help": "gateway process counts to measure, one after the other"
    })  # fmt: skip
    seconds: float = field(default=10.0, metadata={"help": "length of each load, seconds"})
    connections: int = field(default=32, metadata={
        "help": "HTTP connections of the load generator"
    })  # fmt: skip
    fractions: tuple[float, ...] = field(default=(0.5, 0.9), metadata={
        "help": "fixed rates to measure latency at, as fractions of the measured maximum"
    })  # fmt: skip
    users: int = field(default=2000, metadata={"help": "users the posts are spread over"})
    repeats: int = field(default=3, metadata={
        "help": "measurements of each process count, interleaved; medians are reported"
    })  # fmt: skip
    partitions: int = 3


@dataclass(frozen=True)
class TrainBenchConfig:
    """The training-speed benchmark (``training.experiments.train_speed``)."""

    events: Path = field(metadata={
        "help": "a generated clickstream (JSON lines, .gz allowed)"
    })  # fmt: skip
    epochs: int = field(default=3, metadata={"help": "epochs of every arm"})
    users: int = field(default=0, metadata={
        "help": "only the first this many users of the log (0: all)"
    })  # fmt: skip
    hidden_size: int = field(default=ModelConfig.hidden_size, metadata={
        "help": "TLSTM hidden size"
    })  # fmt: skip
    batch_users: int = field(default=TrainConfig.batch_users, metadata={
        "help": "users per batch of the baseline and the fast arm"
    })  # fmt: skip
    lr: float = field(default=TrainConfig.lr, metadata={
        "help": "learning rate (AdamW) of the baseline and the fast arm"
    })  # fmt: skip
    large_batch_users: int = field(default=128, metadata={
        "help": "users per batch of the large-batch arm, its lr scaled by the square root of "
                "the batch ratio (0: no such arm)"
    })  # fmt: skip
    seed: int = field(default=TrainConfig.seed, metadata={
        "help": "seed of the initial weights (the same in every arm) and the batch order"
    })  # fmt: skip
    threads: int = field(default=TrainConfig.threads, metadata={"help": "torch intra-op threads"})


@dataclass(frozen=True)
class ScalingBenchConfig:
    """Training on one and on several processes (``training.experiments.scaling``)."""

    events: Path = field(metadata={
        "help": "a generated clickstream (JSON lines, .gz allowed)"
    })  # fmt: skip
    users: int = field(default=3000, metadata={
        "help": "only the first this many users of the log (0: all)"
    })  # fmt: skip
    epochs: int = field(default=3, metadata={"help": "epochs of every arm"})
    repeats: int = field(default=2, metadata={"help": "runs of every arm, in rotating order"})
    processes: tuple[int, ...] = field(default=(1, 2), metadata={
        "help": "process counts measured beside one process"
    })  # fmt: skip
    hidden_size: int = field(default=ModelConfig.hidden_size, metadata={
        "help": "TLSTM hidden size"
    })  # fmt: skip
    batch_users: int = field(default=TrainConfig.batch_users, metadata={
        "help": "users per batch of each process"
    })  # fmt: skip
    lr: float = field(default=TrainConfig.lr, metadata={
        "help": "learning rate (AdamW) of one process and of the unscaled arms"
    })  # fmt: skip
    seed: int = field(default=TrainConfig.seed, metadata={
        "help": "seed of the initial weights (the same in every arm) and the batch order"
    })  # fmt: skip
    results: Path = field(default=Path("results"), metadata={
        "help": "folder of live.json and rebuild.json, the projection's measured live and "
                "rebuild costs"
    })  # fmt: skip

    def __post_init__(self) -> None:
        if min(self.epochs, self.repeats, *self.processes) < 1:
            raise ValueError(f"--epochs, --repeats and --processes must be at least 1, not "
                             f"{self.epochs}, {self.repeats} and {list(self.processes)}")
