"""``deepcredit``: the one command-line entry point. Each subcommand is a small function, in
``deploy.commands`` (one module per command group).

Run ``deepcredit --help`` or ``deepcredit SUBCOMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from deploy.commands import (
    ablate,
    archive,
    bench,
    challengers,
    cutover,
    dashboard,
    drift,
    fuzz,
    gateway,
    generate,
    kafka,
    models,
    replay,
    report,
    retrain,
    roundtrip,
    schemas,
    scores,
    serve,
    statements,
    thresholds,
    train,
    uci,
)
from deploy.commands.common import CliError

__all__ = ["CliError", "main"]

_EPILOG = """\
examples:
  deepcredit kafka up                 start a local Apache Kafka broker and create the topics
  deepcredit kafka status             is it up? which Kafka version, which cluster id?
  deepcredit kafka down               stop it
  deepcredit generate --users 200 --out events.jsonl
                                      a synthetic clickstream calibrated to the paper
  deepcredit statements --table UCI_Credit_Card.csv --out uci.jsonl
                                      real data: a monthly statement table as clicks
  deepcredit train --events events.jsonl
                                      train DeepCredit, save a versioned model artifact
  deepcredit evaluate --model artifacts/models/dc-... --events events.jsonl
                                      AUC, KS and Brier on the held-out users
  deepcredit ablate --events events.jsonl
                                      the paper's Table 1 on our data: every variant and baseline
  deepcredit challengers uci --paper 004
                                      paper 004's BiLSTM and its benchmarks on the UCI table,
                                      its Tables 2-4 beside ours (results/challengers.json)
  deepcredit challengers uci --paper 001
                                      paper 001's CNN-LSTM + LightGBM/XGBoost/RF ensemble on
                                      the UCI table, its split and 004's folds
  deepcredit report predict --model artifacts/models/dc-... --events events.jsonl --out dc.jsonl.gz
  deepcredit report build dc.jsonl.gz gbdt.jsonl.gz --out results/report
                                      the risk team's evaluation of any models from prediction
                                      files: intervals, calibration, bands, tests, PSI, plots
  deepcredit roundtrip events.jsonl   send a file of events through Kafka and check them
  deepcredit replay events.jsonl --rate 500
                                      feed a clickstream to the live flow, 500 events/s
  deepcredit serve --model artifacts/models/dc-... --recovery-dir state/recovery
                                      the live scoring flow: clicks in, risk scores out
  deepcredit models list              the trained models, their lineage, test AUC, the current one
  deepcredit models promote dc-... --by alice --reason "beats dc-... on test AUC"
                                      make a model current ('serve --model current' loads it),
                                      after showing what it does to decisions on recent posts
  deepcredit models rollback --reason "approvals fell" --out cutover/back
                                      serve the model before again: a cut-over back (see --help)
  deepcredit archive --folder archive/clicks
                                      keep every click on disk (gzip segments + offset manifest)
  deepcredit retrain --events archive/clicks --window-days 365
                                      train a challenger; promote it only if it beats the current
  deepcredit controller --archive archive/clicks
                                      retrain on persistent drift alerts, with a cool-down
  deepcredit cutover --model current --out cutover/dc-...
                                      (old flow stopped) rebuild every user's state for the new
                                      model, then 'serve --model current --seed cutover/dc-...'
  deepcredit gateway --port 8080      score a loan post on request (HTTP), through the live flow
  deepcredit dashboard --port 8090    the risk-operations page: decisions, scores, bad rates,
                                      drift alerts, thresholds and models, live
  deepcredit scores                   what the risk-scores topic holds: decisions, latest scores
  deepcredit thresholds show          the decision thresholds in force
  deepcredit thresholds simulate --default-decline 0.25 --plot curve.png
                                      what that change would do to approvals and bad rates
  deepcredit thresholds set --default-decline 0.25 --reason "tighter after Q3"
                                      change one threshold live, without a restart (kept in
                                      'thresholds history'; 'thresholds rollback --to N' undoes)
  deepcredit fuzz --seconds 60        fuzz every decoder of outside bytes against its contract

Environment: DEEPCREDIT_BOOTSTRAP (default 127.0.0.1:9092) and DEEPCREDIT_TOPIC_PREFIX
set the broker and a prefix for every topic name.
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for results that record the command that made them
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from deepcredit.errors import DeployError

    try:
        return args.run(args)
    except (CliError, DeployError) as exc:
        print(f"deepcredit: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deepcredit: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepcredit",
        description="DeepCredit Stream: real-time credit-risk scores from lending clickstreams.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for group in (kafka, generate, statements, train, ablate, uci, challengers, roundtrip,
                  replay, thresholds, serve, gateway, dashboard, scores, schemas, bench, drift,
                  models, archive,
                  retrain, cutover, report, fuzz):  # fmt: skip
        group.add(sub)  # the order here is the order of 'deepcredit --help'
    return parser


if __name__ == "__main__":
    sys.exit(main())
