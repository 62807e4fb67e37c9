"""``deepcredit serve``: the live scoring flow, clicks in, risk scores out."""

from __future__ import annotations

import argparse
from pathlib import Path

from dataflow.reorder import DRIFT_REORDER as DRIFT_REORDER_DEFAULT
from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.models import add_models_dir, resolve_model

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "serve",
        "run the live scoring flow (Bytewax): read the clicks topic, keep each user's model "
        "state, write a score with a decision for every loan post to the risk-scores topic, "
        "malformed messages to the dead-letter topic and drift alerts (River monitors on the "
        "scores, the input mix and realised performance) to the drift-alerts topic; Prometheus "
        "metrics on /metrics, liveness on /healthz, readiness on /readyz",
        _run,
    )  # fmt: skip
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path,
                       help="a model folder made by 'deepcredit train', or the word 'current' "
                            "for the one promoted in --models-dir")  # fmt: skip
    which.add_argument("--pass-through", action="store_true",
                       help="no model: every post scores 0 (benchmarks only)")  # fmt: skip
    add_models_dir(p)
    add_bootstrap(p)
    p.add_argument(
        "--recovery-dir",
        type=Path,
        help="keep state and offsets here (Bytewax recovery), so a restart after a "
        "crash loses nothing; without it every start begins with empty states",
    )
    p.add_argument("--seed", type=Path, metavar="DIR",
                   help="a folder made by 'deepcredit cutover' for this model: each clicks "
                        "partition starts at the cut-over offset, each user at the rebuilt "
                        "state (with --recovery-dir, its snapshots win once there are "
                        "some)")  # fmt: skip
    p.add_argument("--snapshot-seconds", type=int, default=5,
                   help="how often state is snapshotted (default 5; a crash replays at most "
                        "this much input)")  # fmt: skip
    p.add_argument(
        "--until-end",
        action="store_true",
        help="stop at the end of the clicks topic instead of waiting for more",
    )
    p.add_argument("--progress-seconds", type=float, metavar="S",
                   help="log events read, scored and dead-lettered and the clicks lag every S "
                        "seconds, and a summary at the end (default: 5 with --until-end, "
                        "else 0 = never)")  # fmt: skip
    p.add_argument("--workers", type=int, default=1, help="worker threads (default 1)")
    p.add_argument("--process-id", type=int,
                   help="this process's index in a cluster (with --addresses)")  # fmt: skip
    p.add_argument(
        "--addresses", help='host:port of every process of the cluster, ";"-separated, in order'
    )
    p.add_argument("--metrics-port", type=int, default=9464,
                   help="HTTP endpoint port (/metrics, /healthz, /readyz), plus the process "
                        "id in a cluster (default 9464; 0 = none)")  # fmt: skip
    p.add_argument(
        "--no-drift-monitors",
        action="store_true",
        help="run no drift monitors (nothing goes to the drift-alerts topic)",
    )
    p.add_argument("--drift-warmup-days", type=float,
                   help="event-time days after a monitor's first observation during which it "
                        "learns its reference and raises no alert (default 30)")  # fmt: skip
    p.add_argument("--drift-reorder", type=int, default=DRIFT_REORDER_DEFAULT, metavar="N",
                   help="events the drift step holds to feed the monitors in event-time order "
                        "(the flow hands them over user by user); a few polls of every clicks "
                        f"partition (default {DRIFT_REORDER_DEFAULT:,}; 0 = none)")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import logging

    from dataflow.flow import FlowConfig
    from dataflow.serve import MetricsPortInUse, ServeOptions, serve
    from deepcredit.kafka_io import OffsetsOutOfRange
    from deepcredit.thresholds import ThresholdsUnavailable
    from scorer.artifact import ArtifactError
    from scorer.model import StateVersionError
    from scorer.monitors import MonitorConfig
    from state.seed import SeedError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.process_id is None) != (args.addresses is None):
        raise CliError("--process-id and --addresses go together (a cluster needs both)")
    if args.snapshot_seconds < 1:
        raise CliError("--snapshot-seconds must be at least 1")
    monitors = None
    if not args.no_drift_monitors:
        if args.drift_warmup_days is None:
            monitors = MonitorConfig()
        elif args.drift_warmup_days >= 0:
            monitors = MonitorConfig(warmup_days=args.drift_warmup_days)
        else:
            raise CliError("--drift-warmup-days must be >= 0")
    if args.drift_reorder < 0:
        raise CliError("--drift-reorder must be >= 0")
    progress_s = args.progress_seconds
    if progress_s is None:
        progress_s = 5.0 if args.until_end else 0.0
    elif progress_s < 0:
        raise CliError("--progress-seconds must be >= 0")
    flow = FlowConfig(KafkaSettings(args.bootstrap), Topics.from_env(), tail=not args.until_end,
                      monitors=monitors, drift_reorder=args.drift_reorder)  # fmt: skip
    model = None if args.pass_through else resolve_model(args.model, args.models_dir)
    opts = ServeOptions(model=model, flow=flow,
                        workers=args.workers, process_id=args.process_id,
                        addresses=tuple(args.addresses.split(";")) if args.addresses else (),
                        recovery_dir=args.recovery_dir, snapshot_s=args.snapshot_seconds,
                        metrics_port=args.metrics_port, seed=args.seed,
                        progress_s=progress_s)  # fmt: skip
    try:
        serve(opts)
    except (ArtifactError, MetricsPortInUse, OffsetsOutOfRange, SeedError, StateVersionError,
            ThresholdsUnavailable) as exc:  # fmt: skip
        raise CliError(str(exc)) from None
    return 0
