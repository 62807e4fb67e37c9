"""``deepcredit retrain`` and ``deepcredit controller``: a challenger against the champion."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.models import add_models_dir

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
        default=None,
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
    controller.add_argument(
        "--alerts-needed",
        type=int,
        default=3,
        help="alerts within --within-days that decide a retraining (default 3)",
    )
    controller.add_argument(
        "--within-days", type=float, default=30.0, help="event days (default 30)"
    )
    controller.add_argument(
        "--immediate",
        action="append",
        default=[],
        choices=["scores", "inputs", "performance"],
        help="a monitor whose single alert decides (repeatable)",
    )
    controller.add_argument(
        "--label-wait-days",
        type=float,
        default=120.0,
        help="event days from the decision to the retraining, for outcomes to arrive (default 120)",
    )
    controller.add_argument(
        "--min-eval-labels",
        type=int,
        default=20,
        help="positives and negatives of each target the gate needs among the posts since "
        "the first alert; fewer: wait --recheck-days more (default 20)",
    )
    controller.add_argument("--recheck-days", type=float, default=30.0, help="default 30")
    controller.add_argument(
        "--max-wait-days",
        type=float,
        default=365.0,
        help="most extra waiting for labels, then judge what is measurable (default 365)",
    )
    controller.add_argument(
        "--cooldown-days",
        type=float,
        default=90.0,
        help="no new decision this many event days after one's due time (default 90)",
    )
    controller.add_argument(
        "--state",
        type=Path,
        help="where the controller keeps its counted alerts and pending decision "
        "(default: controller-state.json in --models-dir)",
    )
    controller.add_argument(
        "--group",
        default="deepcredit-retrain-controller",
        help="Kafka consumer group (where to resume)",
    )
    add_bootstrap(controller)
    for p in (retrain, controller):
        add_models_dir(p)
        p.add_argument(
            "--window-days",
            type=float,
            default=365.0,
            help="event time to train on, ending at the newest event (default 365)",
        )
        p.add_argument(
            "--eval-days",
            type=float,
            default=90.0,
            help="without a decision ('retrain'): the latest event days both models are judged "
            "on (default 90); the controller judges the posts since the first alert",
        )
        p.add_argument(
            "--min-auc-gain",
            type=float,
            default=0.005,
            help="AUC the challenger must gain on every target; also the most AUC it may "
            "lose when it wins on calibration (default 0.005)",
        )
        p.add_argument(
            "--min-brier-gain",
            type=float,
            default=0.10,
            help="or: the share of Brier score it must remove on one target (default 0.10) ...",
        )
        p.add_argument(
            "--max-brier-loss",
            type=float,
            default=0.02,
            help="... while no target's Brier score rises by more than this share (default 0.02)",
        )
        p.add_argument(
            "--no-recalibrate",
            action="store_true",
            help="when the retrained challenger is rejected, do not try the champion "
            "recalibrated to the same period's outcomes",
        )
        p.add_argument("--hidden", type=int, default=32, help="challenger hidden size")
        p.add_argument("--epochs", type=int, default=20, help="most epochs (default 20)")
        p.add_argument("--batch-users", type=int, default=32, help="default 32")
        p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--max-minutes", type=float, help="training time budget")
        p.add_argument("--by", default="retrain-controller", help="who decides (logged)")
        p.add_argument("--quiet", action="store_true", help="no progress output")


def _config(args: argparse.Namespace, **more):  # -> training.retraining.controller.ControllerConfig
    from training.retraining.controller import ControllerConfig

    return ControllerConfig(window_days=args.window_days, eval_days=args.eval_days,
                            min_auc_gain=args.min_auc_gain,
                            min_brier_gain=args.min_brier_gain,
                            max_brier_loss=args.max_brier_loss,
                            recalibrate=not args.no_recalibrate, hidden_size=args.hidden,
                            epochs=args.epochs, batch_users=args.batch_users, lr=args.lr,
                            seed=args.seed, max_minutes=args.max_minutes, by=args.by,
                            **more)  # fmt: skip


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
        result = RetrainController(_config(args)).retrain(
            args.events, _registry(args), kafka=kafka, topics=Topics.from_env(),
            progress=not args.quiet)  # fmt: skip
    except (RegistryError, FileNotFoundError, ValueError) as exc:
        raise CliError(str(exc)) from None
    _report(result)
    return 0


def _controller(args: argparse.Namespace) -> int:
    from deepcredit.kafka_io import OffsetsOutOfRange
    from deepcredit.records import Monitor
    from deepcredit.settings import KafkaSettings, Topics
    from training.retraining.controller import STATE_FILE, RetrainController, run_controller

    if not args.archive.is_dir():
        raise CliError(f"no such archive folder: {args.archive}")
    config = _config(args, alerts_needed=args.alerts_needed, within_days=args.within_days,
                     immediate_monitors=frozenset(Monitor(m) for m in args.immediate),
                     label_wait_days=args.label_wait_days, min_eval_labels=args.min_eval_labels,
                     recheck_days=args.recheck_days, max_wait_days=args.max_wait_days,
                     cooldown_days=args.cooldown_days)  # fmt: skip
    registry = _registry(args)
    state = args.state or registry.root / STATE_FILE
    try:
        controller = RetrainController.from_file(config, state)
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
