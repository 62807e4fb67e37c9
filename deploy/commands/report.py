"""``deepcredit report``: the risk team's evaluation of any set of models from their prediction
files; ``deepcredit report predict``: the prediction file of a DeepCredit artifact or a
baseline on an event log."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import add_options, from_args
from training.report.config import ReportConfig

__all__ = ["add"]

_FORMAT = """\
A prediction file is JSON lines (.jsonl or .jsonl.gz): one 'model' record per model
  {"kind": "model", "name": "gbdt", "family": "gbdt", "streaming": false,
   "description": "...", "source": "...", "data": "..."}
then one 'prediction' record per row and target
  {"kind": "prediction", "model": "gbdt", "user_id": "u1", "event_id": "e9",
   "target": "default", "label": 0, "probability": 0.031, "split": "test"}
target: delinquent, default or y; label: 0/1; split: train, validation or test (test rows are
judged; train and validation rows give the population stability index). Any model family can
be reported by writing one (training/core/predictions.py).
"""


def add(sub: Subparsers) -> None:
    report = sub.add_parser(
        "report",
        help="the risk team's evaluation of any models from prediction files: AUC with "
        "intervals, Gini, KS, Brier, H-measure, calibration, score bands, pairwise tests, PSI "
        "(results/report/)",
        description="The risk team's evaluation, one command: 'report build' judges any set of "
        "models from their prediction files; 'report predict' writes the prediction file of a "
        "DeepCredit model or a baseline.",
        epilog=_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = report.add_subparsers(title="actions", metavar="ACTION")
    p = command(
        actions, "build",
        "read prediction files and write report.json (every figure) and index.html (tables "
        "and plots) to --out: per target and model on its test rows, AUC with DeLong's "
        "interval, Gini, KS, Brier, H-measure, calibration in the large, bad rate and "
        "reliability by score band, ROC and KS plots, PSI of train/validation against test "
        "scores; per pair of models, DeLong's test of the AUC difference and McNemar's test",
        _build,
    )  # fmt: skip
    p.add_argument("predictions", nargs="+", type=Path, metavar="FILE",
                   help="prediction files (.jsonl or .jsonl.gz), any number of models")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/report"),
                   help="folder of report.json, index.html and the plots (default "
                        "%(default)s)")  # fmt: skip
    add_options(p, ReportConfig, "level", "bands", "cutoff", "bootstrap_draws", "severity_ratio")

    p = command(
        actions, "predict",
        "write the prediction file of a DeepCredit model artifact (--model) or of a baseline "
        "fitted on that model's split (--baseline, with --model for its split), at the "
        "labelled posts of the event log's users of each --splits",
        _predict,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--model", type=Path, help="a model folder made by 'train'")
    p.add_argument("--baseline", choices=["gbdt", "lr"],
                   help="fit this baseline on the training users instead (the split of "
                        "--model's card when given, else the default split)")  # fmt: skip
    p.add_argument("--splits", nargs="+", choices=["train", "validation", "test"],
                   default=["validation", "test"],
                   help="whose posts to predict (default: %(default)s; train or validation "
                        "rows give the report's PSI)")  # fmt: skip
    p.add_argument("--name", help="the model's name in the report (default: the artifact's "
                                  "version, or the baseline's name)")  # fmt: skip
    p.add_argument("--out", required=True, type=Path,
                   help="prediction file to write (.jsonl or .jsonl.gz)")  # fmt: skip


def _build(args: argparse.Namespace) -> int:
    from training.core.predictions import PredictionsError, read_predictions
    from training.report.page import write_report
    from training.report.report import build_report

    for path in args.predictions:
        if not path.is_file():
            raise CliError(f"no such prediction file: {path}")
    try:
        manifests, rows = read_predictions(args.predictions)
        report = build_report(manifests, rows, from_args(ReportConfig, args))
    except (PredictionsError, ValueError) as exc:
        raise CliError(str(exc)) from None
    if not rows:
        raise CliError("the prediction files hold no predictions")
    report["command"] = "deepcredit " + " ".join(args.argv)
    write_report(report, args.out)
    for target, body in report["targets"].items():
        for name, m in body["models"].items():
            if "error" in m:
                print(f"{target:<10} {name}: {m['error']}")
                continue
            lo, hi = m["auc_interval"]
            print(f"{target:<10} {name:<28} AUC {m['auc']:.4f} [{lo:.4f}, {hi:.4f}]  "
                  f"KS {m['ks']:.4f}  Brier {m['brier']:.4f}  H {m['h_measure']:.4f}  "
                  f"(n={m['n']:,})")  # fmt: skip
    print(f"wrote {args.out / 'report.json'} and {args.out / 'index.html'}")
    return 0


def _predict(args: argparse.Namespace) -> int:
    from scorer.card import CardError, read_card
    from training.core.config import TrainConfig
    from training.core.predictions import write_predictions
    from training.report.predict import baseline_predictions, deepcredit_predictions

    if args.model is None and args.baseline is None:
        raise CliError("give --model (a DeepCredit artifact) or --baseline")
    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    try:
        if args.baseline:
            train_config = None
            if args.model is not None:
                train_config = TrainConfig(**read_card(args.model).train_config)
            manifest, rows = baseline_predictions(args.baseline, args.events, args.splits,
                                                  train_config=train_config, name=args.name,
                                                  progress=True)  # fmt: skip
        else:
            manifest, rows = deepcredit_predictions(args.model, args.events, args.splits,
                                                    name=args.name, progress=True)  # fmt: skip
    except (FileNotFoundError, CardError) as exc:
        raise CliError(str(exc)) from None
    count = write_predictions(args.out, manifest, rows)
    print(f"{count:,} predictions of {manifest.name} ({', '.join(args.splits)}) in {args.out}")
    return 0
