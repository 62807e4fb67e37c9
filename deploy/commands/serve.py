"""``deepcredit serve``: the live scoring flow, clicks in, risk scores out."""

from __future__ import annotations

import argparse
from pathlib import Path

from dataflow.config import FlowConfig, ServeOptions
from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.models import add_models_dir, resolve_model
from deploy.commands.options import Option, add_options, from_args
from scorer.monitor_config import MonitorConfig, UserSample

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
    add_options(p, ServeOptions, "recovery_dir", Option("seed", metavar="DIR"),
                Option("snapshot_s", "--snapshot-seconds"))  # fmt: skip
    add_options(p, FlowConfig, Option("tail", "--until-end",
                                      help="stop at the end of the clicks topic instead of "
                                           "waiting for more"))  # fmt: skip
    add_options(p, ServeOptions, "workers", "process_id",
                Option("addresses", type=_addresses), "metrics_port")  # fmt: skip
    p.add_argument("--progress-seconds", type=float, metavar="S",
                   help="log events read, scored and dead-lettered and the clicks lag every S "
                        "seconds, and a summary at the end (default: 5 with --until-end, "
                        "else 0 = never)")  # fmt: skip
    p.add_argument(
        "--no-drift-monitors",
        action="store_true",
        help="run no drift monitors (nothing goes to the drift-alerts topic)",
    )
    add_options(p, MonitorConfig, Option("warmup_days", "--drift-warmup-days"))
    add_options(p, FlowConfig, Option("drift_reorder", "--drift-reorder", metavar="N"))
    add_options(p, UserSample, Option("fraction", "--drift-sample", metavar="FRACTION"),
                Option("max_users", "--drift-max-users", metavar="N"))  # fmt: skip


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(text.split(";"))


def _run(args: argparse.Namespace) -> int:
    import logging

    from dataflow.serve import MetricsPortInUse, serve
    from deepcredit.kafka_io import OffsetsOutOfRange
    from deepcredit.thresholds import ThresholdsUnavailable
    from scorer.artifact import ArtifactError
    from scorer.model import StateVersionError
    from state.seed import SeedError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.process_id is None) != (not args.addresses):
        raise CliError("--process-id and --addresses go together (a cluster needs both)")
    if args.snapshot_s < 1:
        raise CliError("--snapshot-seconds must be at least 1")
    if args.drift_reorder < 0:
        raise CliError("--drift-reorder must be >= 0")
    try:
        monitors = None if args.no_drift_monitors else from_args(MonitorConfig, args)
    except ValueError as exc:
        raise CliError(f"--drift-warmup-days: {exc}") from None
    try:
        sample = from_args(UserSample, args)
    except ValueError as exc:
        raise CliError(f"--drift-sample / --drift-max-users: {exc}") from None
    if args.no_drift_monitors and sample != UserSample():
        raise CliError("--drift-sample and --drift-max-users set the drift monitors' sample: "
                       "not with --no-drift-monitors")  # fmt: skip
    flow = from_args(FlowConfig, args, kafka=KafkaSettings(args.bootstrap),
                     topics=Topics.from_env(), monitors=monitors,
                     drift_sample=sample)  # fmt: skip
    model = None if args.pass_through else resolve_model(args.model, args.models_dir)
    progress_s = args.progress_seconds
    if progress_s is None:
        progress_s = 5.0 if not args.tail else 0.0  # --until-end
    elif progress_s < 0:
        raise CliError("--progress-seconds must be >= 0")
    opts = from_args(ServeOptions, args, model=model, flow=flow, progress_s=progress_s)
    try:
        serve(opts)
    except (ArtifactError, MetricsPortInUse, OffsetsOutOfRange, SeedError, StateVersionError,
            ThresholdsUnavailable) as exc:  # fmt: skip
        raise CliError(str(exc)) from None
    return 0
