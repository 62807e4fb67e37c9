"""``deepcredit serve``: load the model (and a cut-over seed), start the live thresholds and the
metrics endpoint, set up Bytewax recovery, and run the flow until stopped (or, with
``tail=False``, until the clicks topic is consumed). ``from_env`` is the same flow for
``python -m bytewax.run "dataflow.serve:from_env()"``."""

from __future__ import annotations

import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main

from dataflow import metrics
from dataflow.config import FlowConfig, ServeOptions
from dataflow.flow import build_flow, load_seed
from deepcredit.records import ThresholdUpdate
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import LiveThresholds
from scorer.artifact import load_scorer
from scorer.model import ModelWeights
from scorer.monitor_config import MonitorConfig
from state.recovery_store import state_model_version
from state.seed import Seed, SeedError

__all__ = ["MetricsPortInUse", "ServeOptions", "from_env", "serve", "start_runtime"]

log = logging.getLogger(__name__)


class MetricsPortInUse(RuntimeError):
    """The Prometheus port is held by another process (often a flow that is still running)."""


def start_runtime(
    cfg: FlowConfig, weights: ModelWeights | None, metrics_port: int
) -> LiveThresholds:
    """What the flow needs beside Bytewax: the live thresholds watcher and the metrics endpoint."""

    def changed(t: ThresholdUpdate) -> None:
        metrics.THRESHOLDS_VERSION.set(t.version)
        metrics.THRESHOLDS_APPLY_LATENCY.set(live.last_change_latency_s or 0.0)

    live = LiveThresholds(cfg.kafka, cfg.topics.thresholds, on_change=changed)
    live.start()
    metrics.MODEL.info({"version": weights.version if weights else "pass-through",
                        "hidden_size": str(weights.hidden_size if weights else 0)})  # fmt: skip
    metrics.THRESHOLDS_VERSION.set(live.current().version)
    try:
        metrics.serve_metrics(metrics_port)
    except OSError as exc:
        live.stop()
        raise MetricsPortInUse(
            f"cannot serve metrics on 127.0.0.1:{metrics_port} ({exc.strerror}); is another "
            "'deepcredit serve' still running? Stop it, or pass another --metrics-port"
        ) from None
    return live


def _stop_on_signals() -> None:
    """Make SIGTERM and SIGINT stop the flow cleanly (Bytewax checks for KeyboardInterrupt).

    A job started with ``&`` by a non-interactive shell inherits SIGINT as ignored, and Python
    leaves it so; without this, ``kill -INT`` would do nothing and ``kill`` (TERM) would skip
    the clean shutdown."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)


def _check_recovery_matches(recovery_dir: Path, seed: Seed) -> None:
    """A seeded flow resumes only its own snapshots: the old flow's would restart the clicks
    before the seed's offsets and score them again, with the new model."""
    version = state_model_version(recovery_dir)
    if version is not None and version != seed.model_version:
        raise SeedError(f"{recovery_dir} holds states of model {version}, the seed is for "
                        f"{seed.model_version}: give the new flow a new, empty "
                        "--recovery-dir")  # fmt: skip


def serve(opts: ServeOptions) -> None:
    """Run the flow in this process (blocks)."""
    weights = load_scorer(opts.model) if opts.model is not None else None
    seed = None
    if opts.seed is not None:
        seed = load_seed(opts.seed, weights, opts.flow.topics.clicks)
    recovery = None
    if opts.recovery_dir is not None:
        opts.recovery_dir.mkdir(parents=True, exist_ok=True)
        if not any(opts.recovery_dir.iterdir()):
            init_db_dir(opts.recovery_dir, opts.recovery_partitions)
        elif seed is not None:
            _check_recovery_matches(opts.recovery_dir, seed)
        recovery = RecoveryConfig(opts.recovery_dir)
    port = opts.metrics_port + (opts.process_id or 0) if opts.metrics_port else 0
    live = start_runtime(opts.flow, weights, port)
    _stop_on_signals()
    try:
        flow = build_flow(opts.flow, weights, live.current, seed=seed)
        cli_main(flow, workers_per_process=opts.workers, process_id=opts.process_id,
                 addresses=list(opts.addresses) or None,
                 epoch_interval=timedelta(seconds=opts.snapshot_s),
                 recovery_config=recovery)  # fmt: skip
    except BytewaxRuntimeError as exc:
        interrupt = _interrupt_in(exc)
        if interrupt is None:
            raise
        # Stopped by a signal: the last snapshot is on disk and a restart resumes from it.
        log.info("stopped by %s", interrupt)
    finally:
        live.stop()


def _interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind a Bytewax error, however deep Bytewax wrapped it (a signal
    during start-up comes wrapped twice: in the source's list_parts, then in the run)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def from_env() -> Dataflow:
    """The flow configured from the environment, for ``python -m bytewax.run``:
    DEEPCREDIT_MODEL (model folder, required), DEEPCREDIT_BOOTSTRAP, DEEPCREDIT_TOPIC_PREFIX,
    DEEPCREDIT_METRICS_PORT (default 9464; 0 = off), DEEPCREDIT_DRIFT_MONITORS (0 = off),
    DEEPCREDIT_DRIFT_WARMUP_DAYS (default 30), DEEPCREDIT_SEED (a 'deepcredit cutover' folder
    made for this model)."""
    model = os.environ.get("DEEPCREDIT_MODEL")
    if not model:
        raise SystemExit("set DEEPCREDIT_MODEL to a model folder made by 'deepcredit train'")
    weights = load_scorer(Path(model))
    monitors = None
    if os.environ.get("DEEPCREDIT_DRIFT_MONITORS", "1") != "0":
        warmup = os.environ.get("DEEPCREDIT_DRIFT_WARMUP_DAYS")
        monitors = MonitorConfig() if warmup is None else MonitorConfig(warmup_days=float(warmup))
    cfg = FlowConfig(KafkaSettings.from_env(), Topics.from_env(), monitors=monitors)
    folder = os.environ.get("DEEPCREDIT_SEED")
    seed = load_seed(Path(folder), weights, cfg.topics.clicks) if folder else None
    port = int(os.environ.get("DEEPCREDIT_METRICS_PORT", ServeOptions.metrics_port))
    live = start_runtime(cfg, weights, port)
    return build_flow(cfg, weights, live.current, seed=seed)
