"""``deepcredit drift measure``: the drift monitors' detection delay and false alarms; ``deepcredit
drift loop``: the loop from a regime shift to a promoted model, end to end on the broker;
``deepcredit drift report``: an alert's drift report, per input, as a page and JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, add_bootstrap, command, merge_json
from deploy.commands.models import MODELS_DIR
from deploy.commands.options import Option, add_options, from_args
from training.experiments.config import DriftLoopConfig, DriftMeasureConfig
from training.retraining.config import REPORTS_DIR

__all__ = ["add"]

_RESULTS = Path("results/drift.json")  # both actions write it: each its own part


def add(sub: Subparsers) -> None:
    drift = sub.add_parser(
        "drift",
        help="measure the drift monitors; run the loop from a shift to a promoted model "
        "(results/drift.json)",
        description="The River drift monitors of the live flow, measured, and the loop they "
        "start, run end to end.",
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
    add_options(p, DriftMeasureConfig, "users", "seed", "shift_at_day", "warmup_days",
                "cooldown_days", "delta", Option("samples", metavar="FRACTION"))  # fmt: skip
    p.add_argument("--out", type=Path, default=_RESULTS,
                   help="result JSON (default %(default)s)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    p = command(
        drift_sub, "loop",
        "the drift loop end to end on the broker, unattended: a generated stream with a regime "
        "shift replayed into fresh topics, the live flow with its drift monitors, the click "
        "archiver, the retraining controller deciding on alerts, waiting for labels and "
        "promoting a challenger, the cut-over to it; "
        "reports detection, the decision, the posts scored per model version and both models' "
        "AUC on post-shift posts of held-out users (merged into the results file under "
        "'end_to_end')",
        _loop,
    )  # fmt: skip
    add_options(p, DriftLoopConfig,
                Option("users", default=1000),  # the README's scenario; the config's is CI's
                "seed", Option("shift_term_risk", "--term-risk"), Option("hidden_size", "--hidden"),
                "partitions", "step_days", "label_wait_days", "epochs")  # fmt: skip
    p.add_argument("--work-dir", type=Path, metavar="DIR",
                   help="models, archive, seed, stream and the flow's log (default "
                        "data/drift-loop/<start time>)")  # fmt: skip
    add_bootstrap(p)
    p.add_argument("--out", type=Path, default=_RESULTS,
                   help="result JSON to merge into (default %(default)s)")  # fmt: skip
    p.add_argument("--keep-topics", action="store_true",
                   help="keep the scenario's topics on the broker afterwards (default: deleted "
                        "once read; kept anyway when the run fails)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress lines")

    p = command(
        drift_sub, "report",
        "the drift report of an alert on the drift-alerts topic (the latest, or --alert ID, or "
        "--offset P:O): for each input the input monitor watches (activity mix, amount, gap "
        "between a user's events), its distribution over the alert's reference period against "
        "its current window, read from the click archive, as overlaid histograms with the "
        "population stability index (PSI: below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 "
        "major), inputs sorted by PSI, the alert's own fields at the top. Writes "
        "<out>/<alert-id>.html (open it in a browser; the plots are inside) and "
        "<out>/<alert-id>.json (the figures). The retraining controller writes the same for "
        "every alert it reads, into <models-dir>/drift-reports",
        _report,
    )  # fmt: skip
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alert", metavar="ID", help="the alert with this alert_id (its last "
                       "copy on the topic)")  # fmt: skip
    which.add_argument("--offset", metavar="PARTITION:OFFSET",
                       help="the alert at this place of the drift-alerts topic")  # fmt: skip
    which.add_argument("--latest", action="store_true",
                       help="the alert detected last (the default)")  # fmt: skip
    which.add_argument("--pending", action="store_true",
                       help="instead: make again the reports left incomplete because the "
                            "archive had not reached their alert's window")  # fmt: skip
    p.add_argument("--archive", required=True, type=Path, metavar="FOLDER_OR_FILE",
                   help="the click archive folder ('deepcredit archive'), or an events "
                        "file")  # fmt: skip
    p.add_argument("--out", type=Path, default=MODELS_DIR / REPORTS_DIR,
                   help="folder of the reports (default %(default)s, where the controller "
                        "writes them)")  # fmt: skip
    add_bootstrap(p)


def _measure(args: argparse.Namespace) -> int:
    import shlex

    from scorer.artifact import ArtifactError, load_scorer
    from training.experiments.ablation import machine
    from training.experiments.drift_measure import measure_drift

    try:
        weights = load_scorer(args.model)
        config = from_args(DriftMeasureConfig, args)
        config.generator(True)  # validates users, seed and the shift time before any work
    except (ArtifactError, ValueError) as exc:
        raise CliError(str(exc)) from None
    result = measure_drift(weights, config, progress=not args.quiet)
    result |= {"command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    merge_json(args.out, result)  # keeps what 'drift loop' wrote
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


def _loop(args: argparse.Namespace) -> int:
    import shlex
    import time

    import msgspec

    from deepcredit.settings import KafkaSettings, Topics
    from training.experiments.ablation import machine
    from training.experiments.drift_loop import DriftLoopError, run_drift_loop

    try:
        config = from_args(DriftLoopConfig, args)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    # New topics: the scenario needs empty ones, and must not feed a synthetic stream to
    # whatever serves the real clicks topic.
    prefix = Topics.from_env().clicks.removesuffix("clicks") + f"drift-loop-{started}-"
    folder = args.work_dir or Path("data/drift-loop") / started
    if not args.quiet:
        print(f"topics {prefix}*, files in {folder}", flush=True)
    try:
        result = run_drift_loop(config, KafkaSettings(args.bootstrap), prefix, folder,
                                keep_topics=args.keep_topics,
                                progress=not args.quiet)  # fmt: skip
    except DriftLoopError as exc:
        raise CliError(str(exc)) from None
    print(result.describe())
    record = {**msgspec.to_builtins(result), "work_dir": str(folder),
              "command": "deepcredit " + shlex.join(args.argv), "machine": machine()}  # fmt: skip
    merge_json(args.out, {"end_to_end": record})
    print(f"merged into {args.out} under 'end_to_end'")
    return 0


def _report(args: argparse.Namespace) -> int:
    from deepcredit.archive import ArchiveError
    from deepcredit.settings import KafkaSettings, Topics
    from training.retraining.drift_report import DriftReportError, make_report, remake_pending

    if not args.archive.exists():
        raise CliError(f"no such click archive or events file: {args.archive}")
    if args.pending:
        made = remake_pending(args.archive, args.out)
        print(f"{len(made)} pending drift reports made" + "".join(f"\n{p}" for p in made))
        return 0
    alert = _find_alert(KafkaSettings(args.bootstrap), Topics.from_env().drift_alerts,
                        args.alert, args.offset)  # fmt: skip
    try:
        report, page, figures = make_report(alert, args.archive, args.out)
    except (DriftReportError, ArchiveError) as exc:
        raise CliError(str(exc)) from None
    a = report.alert
    print(f"alert {a.alert_id}: {a.monitor.value} {a.signal} {a.direction or 'moved'}, "
          f"{a.severity or '-'} severity, model {a.model_version}")  # fmt: skip
    print(f"reference {report.reference.events:,} clicks, current window "
          f"{report.current.events:,} clicks")  # fmt: skip
    for d in report.inputs:
        print(f"  {d.input:<10} PSI {d.psi:.4f}  {d.reading}")
    if not report.complete:
        print("incomplete: the archive has not reached the end of the alert's window yet; "
              "run this again later")  # fmt: skip
    print(f"open {page.resolve().as_uri()}\nfigures in {figures}")
    return 0


def _find_alert(kafka, topic: str, alert_id: str | None, offset: str | None):  # -> DriftAlert
    """The alert asked for on the drift-alerts topic: at ``offset`` ("P:O"), the last copy of
    ``alert_id``, or else the one detected last. Records that are no alert are skipped."""
    from deepcredit.control import Rejected, decode_record
    from deepcredit.kafka_io import KafkaReadError, read_range, read_to_end
    from deepcredit.records import DriftAlert

    try:
        if offset is not None:
            try:
                partition, at = (int(x) for x in offset.split(":"))
            except ValueError:
                raise CliError(f"--offset wants PARTITION:OFFSET, got {offset!r}") from None
            messages = list(read_range(kafka, topic, {partition: (at, at + 1)}, timeout_s=10))
        else:
            messages = read_to_end(kafka, topic, timeout_s=10)
    except (TimeoutError, KafkaReadError, ValueError) as exc:
        raise CliError(f"cannot read {topic}: {exc}") from None
    alerts = []
    for m in messages:
        record = decode_record(m.value(), DriftAlert)
        if isinstance(record, Rejected):
            if offset is not None:
                raise CliError(f"{topic}[{m.partition()}]@{m.offset()}: {record.detail}")
            continue
        alerts.append(record)
    if alert_id is not None:
        alerts = [a for a in alerts if a.alert_id == alert_id]
    if not alerts:
        raise CliError(f"no drift alert {'' if alert_id is None else repr(alert_id) + ' '}on "
                       f"{topic}" + ("" if offset is None else f" at {offset}"))  # fmt: skip
    return alerts[-1] if alert_id is not None else max(alerts, key=lambda a: a.detected_at)
