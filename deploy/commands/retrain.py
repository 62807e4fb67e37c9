"""``deepcredit retrain`` and ``deepcredit controller``: a challenger against the champion."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.models import add_models_dir
from deploy.commands.options import Option, add_options, from_args
from training.retraining.config import ControllerConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    retrain = command(
        sub, "retrain",
        "one retraining decision by hand: train a challenger on a window of the archive (or an "
        "events file), evaluate it and the current model on the latest labelled posts of the "
        "held-out users, promote it only if it wins on every target; log the decision",
        _retrain,
    )  # fmt: skip
    retrain.add_argument(
        "--events",
        required=True,
        type=Path,
        metavar="FILE_OR_ARCHIVE",
        help="an events file (.jsonl[.gz]) or a folder made by 'archive'",
    )
    retrain.add_argument(
        "--bootstrap",
        help="also write the decision to the model-events topic of this broker",
    )
    controller = command(
        sub, "controller",
        "the retraining controller: consume drift alerts; when K alerts fall within W days of "
        "event time, wait for the labels of the new regime (L days, longer when the gate has "
        "too few), then retrain and judge; cool down after each decision. Times are event "
        "times, so a replay decides as the live stream did",
        _controller,
    )  # fmt: skip
    controller.add_argument(
        "--archive",
        required=True,
        type=Path,
        help="the click archive folder ('deepcredit archive') to train on; its event time "
        "is the controller's clock",
    )
    controller.add_argument(
        "--until-end",
        action="store_true",
        help="stop at the alerts topic's end, after running what is due (default: run until "
        "Ctrl-C)",
    )
    add_options(controller, ControllerConfig, "alerts_needed", "within_days",
                Option("immediate_monitors", "--immediate"), "label_wait_days",
                "min_eval_labels", "recheck_days", "max_wait_days", "cooldown_days")  # fmt: skip
    controller.add_argument(
        "--state",
        type=Path,
        help="where the controller keeps its counted alerts and pending decision "
        "(default: controller-state.json in --models-dir)",
    )
    controller.add_argument(
        "--group",
        default="deepcredit-retrain-controller",
        help="Kafka consumer group: where to resume (default %(default)s)",
    )
    add_bootstrap(controller)
    for p in (retrain, controller):
        add_models_dir(p)
        add_options(p, ControllerConfig, "window_days", "eval_days", "min_auc_gain",
                    "min_brier_gain", "max_brier_loss",
                    Option("recalibrate", help="when the retrained challenger is rejected, do "
                                               "not try the champion recalibrated to the same "
                                               "period's outcomes"),
                    Option("hidden_size", "--hidden"), "epochs", "batch_users", "lr", "seed",
                    "max_minutes", "impact_posts", "by")  # fmt: skip
        p.add_argument("--quiet", action="store_true", help="no progress output")


def _registry(args: argparse.Namespace):  # -> ModelRegistry
    from scorer.registry import ModelRegistry

    args.models_dir.mkdir(parents=True, exist_ok=True)
    return ModelRegistry(args.models_dir)


def _report(result) -> None:  # result: training.retraining.controller.RetrainResult
    m = result.metrics
    for t in result.tried:
        if t["version"] != result.challenger:  # the other candidate of the same decision
            print(f"{t['action']}: {t['version']}: {t['reason']}")
    print(f"{result.action}: challenger {result.challenger} "
          f"(champion {result.champion or 'none'}): {result.reason}")  # fmt: skip
    for who in ("challenger", "champion"):
        if m["auc"][who] is not None:
            row = "  ".join(f"{t} AUC {v:.4f} Brier {m['brier'][who][t]:.4f}"
                            for t, v in m["auc"][who].items())  # fmt: skip
            print(f"  {who:<10} {row or '-'}")
    e = result.metrics["eval"]
    print(f"  judged on {e['posts']:,} labelled posts of {e['users']:,} held-out users")


def _retrain(args: argparse.Namespace) -> int:
    from deepcredit.settings import KafkaSettings, Topics
    from scorer.registry import RegistryError
    from training.retraining.controller import RetrainController

    if not args.events.exists():
        raise CliError(f"no such events file or archive: {args.events}")
    kafka = KafkaSettings(args.bootstrap) if args.bootstrap else None
    try:
        result = RetrainController(from_args(ControllerConfig, args)).retrain(
            args.events, _registry(args), kafka=kafka, topics=Topics.from_env(),
            progress=not args.quiet)  # fmt: skip
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    _report(result)
    return 0


def _controller(args: argparse.Namespace) -> int:
    from deepcredit.kafka_io import OffsetsOutOfRange
    from deepcredit.settings import KafkaSettings, Topics
    from training.retraining.controller import STATE_FILE, RetrainController, run_controller

    if not args.archive.is_dir():
        raise CliError(f"no such archive folder: {args.archive}")
    registry = _registry(args)
    state = args.state or registry.root / STATE_FILE
    try:
        controller = RetrainController.from_file(from_args(ControllerConfig, args), state)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        results = run_controller(controller, args.archive, registry,
                                 KafkaSettings(args.bootstrap), Topics.from_env(),
                                 until_end=args.until_end, group_id=args.group,
                                 state_path=state, progress=not args.quiet)  # fmt: skip
    except OffsetsOutOfRange as exc:
        raise CliError(str(exc)) from None
    if controller.state.pending is not None:
        p = controller.state.pending
        print(f"pending: retraining decided on {len(p.alert_ids)} alerts ({p.reason}), due at "
              f"event time {p.due_ts:.0f}")  # fmt: skip
    for result in results:
        _report(result)
    print(f"{len(results)} retraining decisions")
    return 0
