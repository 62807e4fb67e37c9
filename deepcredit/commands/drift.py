"""``deepcredit drift measure``: the drift monitors' detection delay and false alarms."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.commands.common import CliError, Subparsers, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    drift = sub.add_parser(
        "drift",
        help="measure the drift monitors (writes results/drift.json)",
        description="The River drift monitors of the live flow, measured.",
    )
    drift_sub = drift.add_subparsers(title="actions", metavar="ACTION")
    p = command(
        drift_sub, "measure",
        "score two generated streams event by event, one with the generator's regime shift "
        "and one without, feed the drift monitors, and report per monitor the detection delay "
        "after the shift (events and days) and the false alarms without it",
        _measure,
    )  # fmt: skip
    p.add_argument("--model", required=True, type=Path, help="a model folder made by 'train'")
    p.add_argument(
        "--users",
        type=int,
        default=2000,
        help="users per stream (default 2000: about 1M events each, 1.5 minutes on 2 cores)",
    )
    p.add_argument("--seed", type=int, default=0, help="generator seed of both streams")
    p.add_argument(
        "--shift-at-day",
        type=float,
        default=730.0,
        help="day of the 1095-day horizon at which the shift starts (default 730)",
    )
    p.add_argument("--warmup-days", type=float, default=600.0,
                   help="no alerts before this many days of each monitor's stream (default 600: "
                        "the synthetic population matures until about day 540)")  # fmt: skip
    p.add_argument(
        "--cooldown-days",
        type=float,
        default=30.0,
        help="no alert from a monitor for this long after its last (default 30)",
    )
    p.add_argument("--delta", type=float, default=1e-5, help="ADWIN's delta (default 1e-5)")
    p.add_argument("--out", type=Path, default=Path("results/drift.json"),
                   help="result JSON (default results/drift.json)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _measure(args: argparse.Namespace) -> int:
    import json
    import shlex

    from scorer.artifact import ArtifactError, load_scorer
    from training.ablation import machine
    from training.drift_measure import DriftMeasureConfig, measure_drift

    try:
        weights = load_scorer(args.model)
        config = DriftMeasureConfig(
            users=args.users,
            seed=args.seed,
            shift_at_day=args.shift_at_day,
            warmup_days=args.warmup_days,
            cooldown_days=args.cooldown_days,
            delta=args.delta,
        )
        config.generator(True)  # validates users, seed and the shift time before any work
    except (ArtifactError, ValueError) as exc:
        raise CliError(str(exc)) from None
    result = measure_drift(weights, config, progress=not args.quiet)
    result |= {"command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    streams = result["streams"]
    print(
        f"model {result['model_version']}, {args.users:,} users, seed {args.seed}, shift at "
        f"day {args.shift_at_day:g}: {streams['shifted']['events']:,} events with the shift "
        f"({streams['shifted']['events_after_shift']:,} after it), "
        f"{streams['no_shift']['events']:,} without"
    )
    print(
        "| monitor | detected by | delay (events) | delay (days) | false alarms without shift "
        "(first after the shift time, days) | alarms before shift |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, m in result["monitors"].items():
        delay_e, delay_d = m["detection_delay_events"], m["detection_delay_days"]
        print(
            f"| {name} ({m['detector']}) | {m['detected_by'] or 'never'} "
            f"| {'-' if delay_e is None else f'{delay_e:,}'} "
            f"| {'-' if delay_d is None else f'{delay_d:.1f}'} "
            f"| {m['false_alarms_no_shift']} ({m['first_false_alarm_after_shift_days'] or '-'}) "
            f"| {m['alarms_before_shift']} |"
        )
    print(f"written to {args.out}")
    return 0
