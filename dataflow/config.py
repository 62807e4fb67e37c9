"""How the live flow runs (``FlowConfig``) and how ``deepcredit serve`` starts it
(``ServeOptions``), free of Bytewax: the command line reads these defaults for
``deepcredit serve --help`` without loading it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dataflow.reorder import DRIFT_REORDER
from deepcredit.settings import KafkaSettings, Topics
from scorer.monitor_config import MonitorConfig, UserSample

__all__ = ["FlowConfig", "ServeOptions"]


@dataclass(frozen=True)
class FlowConfig:
    """Where the flow reads and writes, and how it consumes."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    # False: stop at the end of the clicks topic (tests, benchmarks, replays)
    tail: bool = field(default=True, metadata={
        "help": "keep waiting for clicks at the end of the clicks topic"
    })  # fmt: skip
    batch_size: int = 1000  # most messages per poll of each clicks partition
    # The drift monitors' warm-up, cool-down and ADWIN delta (one config for all three
    # monitors); None: no monitors, nothing written to the drift-alerts topic.
    monitors: MonitorConfig | None = field(default_factory=MonitorConfig)
    # Items the drift step holds to put them back in event-time order (dataflow.reorder).
    drift_reorder: int = field(default=DRIFT_REORDER, metadata={
        "help": "events the drift step holds to feed the monitors in event-time order (the "
                "flow hands them over user by user); a few polls of every clicks partition; "
                "0 = none"
    })  # fmt: skip
    # Which users the drift monitors watch, and the most they keep state for.
    drift_sample: UserSample = field(default_factory=UserSample)


@dataclass(frozen=True)
class ServeOptions:
    model: Path | None  # None: the pass-through flow (no model step), for the benchmark
    flow: FlowConfig
    workers: int = field(default=1, metadata={"help": "worker threads in this process"})
    process_id: int | None = field(default=None, metadata={
        "help": "this process's index in a cluster, given with the addresses of all"
    })  # fmt: skip
    addresses: tuple[str, ...] = field(default=(), metadata={
        "help": 'host:port of every process of the cluster, ";"-separated, in order'
    })  # fmt: skip
    recovery_dir: Path | None = field(default=None, metadata={
        "help": "keep state and offsets here (Bytewax recovery), so a restart after a crash "
                "loses nothing; without it every start begins with empty states"
    })  # fmt: skip
    recovery_partitions: int = 4  # SQLite files, made once when the folder is empty
    snapshot_s: int = field(default=5, metadata={
        "help": "seconds between snapshots of state and offsets; a crash replays at most this "
                "much input"
    })  # fmt: skip
    metrics_port: int = field(default=9464, metadata={
        "help": "HTTP endpoint port (/metrics, /healthz, /readyz), plus the process id in a "
                "cluster; 0 = none"
    })  # fmt: skip
    seed: Path | None = field(default=None, metadata={
        "help": "a folder made by 'deepcredit cutover' for this model: each clicks partition "
                "starts at the cut-over offset, each user at the rebuilt state (with a "
                "recovery folder, its snapshots win once there are some)"
    })  # fmt: skip
    progress_s: float = field(default=0.0, metadata={
        "help": "log progress this often (seconds), and a summary at the end; 0: neither"
    })  # fmt: skip
