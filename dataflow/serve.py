"""``deepcredit serve``: start the live flow and run it until stopped (or, with ``tail=False``,
until the clicks topic is consumed). ``from_env`` is the same flow for ``python -m bytewax.run
"dataflow.serve:from_env()"``.

Start-up, in order; a failure stops it with a message, before anything is read:

1. SIGTERM and SIGINT are set to stop the flow cleanly (from here on, a signal at any step);
2. the HTTP endpoint (``dataflow.endpoint``): a taken port fails at once (MetricsPortInUse),
   and /readyz says what the start is still waiting for;
3. the model (its compiled step warmed up: compiled, or loaded from numba's cache), and the
   cut-over seed;
4. the recovery directory, and the check that the clicks topic holds the offsets the flow
   resumes from, the recovery store's or else the seed's (OffsetsOutOfRange);
5. the live thresholds;
6. the flow, with CPython's cyclic garbage collector tuned first (``tune_gc``). Bytewax's
   workers run on threads of their own, the main thread only waits and takes the signals: a
   signal raised inside a Python step would panic a worker running on the main thread (a
   Rust backtrace on every clean stop).

A stop leaves the last completed epoch's snapshot on disk; a restart resumes from it.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from datetime import timedelta
from pathlib import Path

from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main

from dataflow import metrics
from dataflow.config import FlowConfig, ServeOptions
from dataflow.endpoint import Endpoint
from dataflow.flow import build_flow, load_seed
from dataflow.progress import Progress
from deepcredit.kafka_io import check_resume
from deepcredit.records import ThresholdUpdate
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import LiveThresholds
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, warm_up
from scorer.monitor_config import MonitorConfig, UserSample
from state.recovery_store import read_input_offsets, state_model_version
from state.seed import Seed, SeedError

__all__ = ["GC_THRESHOLDS", "MetricsPortInUse", "ServeOptions", "from_env", "serve", "tune_gc"]

log = logging.getLogger(__name__)

#: The cyclic collector's thresholds while the flow runs (CPython's default: 700, 10, 10). The
#: flow allocates several short-lived containers per event (messages, events, records), which
#: reference counting frees; at 700 the youngest generation is scanned every few dozen events
#: for cycles that are not there. The older generations keep their ratios to it.
GC_THRESHOLDS = (50_000, 20, 10)


def tune_gc() -> None:
    """Collect once, then freeze what is alive (``gc.freeze``: modules, the model, the compiled
    step; never scanned again) and collect less often (``GC_THRESHOLDS``): for a long-running
    flow, after start-up. Its effect is measured by ``deepcredit bench live``
    (``model_default_gc``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


_RECOVERY_REMEDY = (
    "To start anyway, start with an empty --recovery-dir: every user's state then starts empty "
    "('deepcredit cutover' with --archive can rebuild them first, for 'serve --seed'). Or point "
    "--bootstrap and DEEPCREDIT_TOPIC_PREFIX at the topic these offsets came from."
)
_SEED_REMEDY = (
    "Run the cut-over again ('deepcredit cutover', with --archive for what retention dropped) "
    "and start from its new seed with an empty --recovery-dir."
)


class MetricsPortInUse(RuntimeError):
    """The Prometheus port is held by another process (often a flow that is still running)."""


class _Readiness:
    """What /readyz waits for, filled in as ``serve`` starts the flow."""

    def __init__(self, model: bool = False) -> None:
        self.model = model
        self.thresholds: LiveThresholds | None = None

    def missing(self) -> list[str]:
        missing = [] if self.model else ["model"]
        # Read off the gauge itself, not the registry: deepcredit_ready calls this on a scrape.
        if not metrics.CLICKS_PARTITIONS.collect()[0].samples[0].value:
            missing.append("kafka_partitions")
        if self.thresholds is None or not self.thresholds.caught_up:
            missing.append("thresholds")
        return missing


def _start_endpoint(port: int, ready: _Readiness) -> Endpoint | None:
    """The HTTP endpoint on 127.0.0.1:``port`` (``dataflow.endpoint``); None for port 0.
    Raises MetricsPortInUse when the port is taken."""
    if not port:
        return None
    metrics.READY.set_function(lambda: 0.0 if ready.missing() else 1.0)
    try:
        return Endpoint(port, ready.missing)
    except OSError as exc:
        raise MetricsPortInUse(
            f"cannot serve metrics on 127.0.0.1:{port} ({exc.strerror}); is another "
            "'deepcredit serve' still running? Stop it, or pass another --metrics-port"
        ) from None


def _start_thresholds(cfg: FlowConfig, weights: ModelWeights | None) -> LiveThresholds:
    """The live thresholds watcher, caught up with the topic (or warned); with the model and
    thresholds metrics set. Raises ThresholdsUnavailable when the topic cannot be read."""

    def changed(t: ThresholdUpdate) -> None:
        metrics.THRESHOLDS_VERSION.set(t.version)
        metrics.THRESHOLDS_APPLY_LATENCY.set(live.last_change_latency_s or 0.0)

    live = LiveThresholds(cfg.kafka, cfg.topics.thresholds, on_change=changed)
    live.start()
    metrics.MODEL.info({"version": weights.version if weights else "pass-through",
                        "hidden_size": str(weights.hidden_size if weights else 0)})  # fmt: skip
    metrics.THRESHOLDS_VERSION.set(live.current().version)
    return live


def _stop_on_signals() -> None:
    """Make SIGTERM and SIGINT stop the flow cleanly: Python raises KeyboardInterrupt in the
    main thread, which Bytewax's wait there turns into a shutdown of its workers.

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


def _check_offsets(opts: ServeOptions, seed: Seed | None) -> None:
    """Refuse to start where the clicks topic does not hold the offsets the flow would resume
    from: each partition's in the recovery store, else the seed's. Raises OffsetsOutOfRange."""
    kafka, topic = opts.flow.kafka, opts.flow.topics.clicks
    recovered = read_input_offsets(opts.recovery_dir, topic) if opts.recovery_dir else {}
    check_resume(kafka, topic, recovered, whose=f"the recovery directory {opts.recovery_dir}",
                 remedy=_RECOVERY_REMEDY)  # fmt: skip
    if seed is not None:
        unrecovered = {p: o for p, o in seed.offsets.items() if p not in recovered}
        check_resume(kafka, topic, unrecovered, whose=f"the cut-over seed {opts.seed}",
                     remedy=_SEED_REMEDY)  # fmt: skip


def _recovery(opts: ServeOptions, seed: Seed | None) -> RecoveryConfig | None:
    if opts.recovery_dir is None:
        return None
    opts.recovery_dir.mkdir(parents=True, exist_ok=True)
    if not any(opts.recovery_dir.iterdir()):
        init_db_dir(opts.recovery_dir, opts.recovery_partitions)
    elif seed is not None:
        _check_recovery_matches(opts.recovery_dir, seed)
    return RecoveryConfig(opts.recovery_dir)


def serve(opts: ServeOptions) -> None:
    """Run the flow in this process (blocks) until the end of the clicks topic (``tail=False``)
    or a stop signal. Raises MetricsPortInUse, ArtifactError, SeedError, StateVersionError,
    OffsetsOutOfRange or ThresholdsUnavailable when it cannot start."""
    _stop_on_signals()  # 1.
    ready = _Readiness()
    port = opts.metrics_port + (opts.process_id or 0) if opts.metrics_port else 0
    endpoint: Endpoint | None = None
    live: LiveThresholds | None = None
    progress: Progress | None = None
    try:
        endpoint = _start_endpoint(port, ready)  # 2.
        weights = load_scorer(opts.model) if opts.model is not None else None  # 3.
        if weights is not None:
            warm_up(weights)  # the compiled step, before the first event (and /readyz)
        ready.model = True
        seed = None
        if opts.seed is not None:
            seed = load_seed(opts.seed, weights, opts.flow.topics.clicks)
        recovery = _recovery(opts, seed)  # 4.
        _check_offsets(opts, seed)
        live = ready.thresholds = _start_thresholds(opts.flow, weights)  # 5.
        flow = build_flow(opts.flow, weights, live.current, seed=seed)  # 6.
        tune_gc()
        if opts.progress_s > 0:
            progress = Progress(opts.flow.kafka, opts.flow.topics.clicks, opts.progress_s)
            progress.start()
        cluster_main(flow, list(opts.addresses), opts.process_id or 0,
                     worker_count_per_proc=opts.workers,
                     epoch_interval=timedelta(seconds=opts.snapshot_s),
                     recovery_config=recovery)  # fmt: skip
    except KeyboardInterrupt as stop:
        log.info("stopped by %s", stop)
    finally:
        if progress is not None:
            progress.stop()
        if live is not None:
            live.stop()
        if endpoint is not None:
            endpoint.close()


def from_env() -> Dataflow:
    """The flow configured from the environment, for ``python -m bytewax.run``:
    DEEPCREDIT_MODEL (model folder, required), DEEPCREDIT_BOOTSTRAP, DEEPCREDIT_TOPIC_PREFIX,
    DEEPCREDIT_METRICS_PORT (default 9464; 0 = off), DEEPCREDIT_DRIFT_MONITORS (0 = off),
    DEEPCREDIT_DRIFT_WARMUP_DAYS (default 30), DEEPCREDIT_DRIFT_SAMPLE and
    DEEPCREDIT_DRIFT_MAX_USERS (``UserSample``'s defaults), DEEPCREDIT_SEED (a 'deepcredit
    cutover' folder made for this model)."""
    model = os.environ.get("DEEPCREDIT_MODEL")
    if not model:
        raise SystemExit("set DEEPCREDIT_MODEL to a model folder made by 'deepcredit train'")
    weights = load_scorer(Path(model))
    warm_up(weights)
    monitors = None
    if os.environ.get("DEEPCREDIT_DRIFT_MONITORS", "1") != "0":
        warmup = os.environ.get("DEEPCREDIT_DRIFT_WARMUP_DAYS")
        monitors = MonitorConfig() if warmup is None else MonitorConfig(warmup_days=float(warmup))
    try:
        sample = UserSample(
            float(os.environ.get("DEEPCREDIT_DRIFT_SAMPLE", UserSample.fraction)),
            int(os.environ.get("DEEPCREDIT_DRIFT_MAX_USERS", UserSample.max_users)),
        )
    except ValueError as exc:
        raise SystemExit(f"DEEPCREDIT_DRIFT_SAMPLE / DEEPCREDIT_DRIFT_MAX_USERS: {exc}") from None
    cfg = FlowConfig(KafkaSettings.from_env(), Topics.from_env(), monitors=monitors,
                     drift_sample=sample)  # fmt: skip
    folder = os.environ.get("DEEPCREDIT_SEED")
    seed = load_seed(Path(folder), weights, cfg.topics.clicks) if folder else None
    ready = _Readiness(model=True)
    port = int(os.environ.get("DEEPCREDIT_METRICS_PORT", ServeOptions.metrics_port))
    _start_endpoint(port, ready)
    live = ready.thresholds = _start_thresholds(cfg, weights)
    flow = build_flow(cfg, weights, live.current, seed=seed)
    tune_gc()
    return flow
