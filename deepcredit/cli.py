"""``deepcredit``: the one command-line entry point. Each subcommand is a small function.

Run ``deepcredit --help`` or ``deepcredit SUBCOMMAND --help``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics

__all__ = ["main"]

_EPILOG = """\
examples:
  deepcredit kafka up                 start a local Apache Kafka broker and create the topics
  deepcredit kafka status             is it up? which Kafka version, which cluster id?
  deepcredit kafka down               stop it
  deepcredit generate --users 200 --out events.jsonl
                                      a synthetic clickstream calibrated to the paper
  deepcredit train --events events.jsonl
                                      train DeepCredit, save a versioned model artifact
  deepcredit evaluate --model artifacts/models/dc-... --events events.jsonl
                                      AUC, KS and Brier on the held-out users
  deepcredit ablate --events events.jsonl
                                      the paper's Table 1 on our data: every variant and baseline
  deepcredit roundtrip events.jsonl   send a file of events through Kafka and check them
  deepcredit replay events.jsonl --rate 500
                                      feed a clickstream to the live flow, 500 events/s
  deepcredit serve --model artifacts/models/dc-... --recovery-dir state/recovery
                                      the live scoring flow: clicks in, risk scores out
  deepcredit models list              the trained models, their lineage, test AUC, the current one
  deepcredit models promote dc-... --by alice --reason "beats dc-... on test AUC"
                                      make a model current: 'serve --model current' loads it
  deepcredit scores                   what the risk-scores topic holds: decisions, latest scores
  deepcredit thresholds show          the decision thresholds in force
  deepcredit thresholds set --default-decline 0.25 --by alice --note "tighter after Q3"
                                      change one threshold live, without a restart

Environment: DEEPCREDIT_BOOTSTRAP (default 127.0.0.1:9092) and DEEPCREDIT_TOPIC_PREFIX
set the broker and a prefix for every topic name.
"""


class CliError(Exception):
    """A failure the user can act on: printed without a traceback, exit status 1."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv  # for results that record the command that made them
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    from deploy.errors import DeployError

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
    _add_kafka(sub)
    _add_generate(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_ablate(sub)
    _add_roundtrip(sub)
    _add_replay(sub)
    _add_thresholds(sub)
    _add_serve(sub)
    _add_scores(sub)
    _add_bench(sub)
    _add_drift(sub)
    _add_models(sub)
    return parser


Subparsers = argparse._SubParsersAction  # the type argparse gives no public name


def _command(
    sub: Subparsers, name: str, help: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help)
    p.set_defaults(run=run)
    return p


# -- kafka --------------------------------------------------------------------------------------


def _add_kafka(sub: Subparsers) -> None:
    kafka = sub.add_parser(
        "kafka",
        help="run a local single-node Apache Kafka broker (KRaft) for development and demos",
        description=(
            "Run a local single-node Apache Kafka broker on 127.0.0.1. The broker jars are "
            "fetched once from Maven Central with mvn into ~/.cache/deepcredit/kafka; its "
            "data, logs and pid file live in --home (default ~/.local/state/deepcredit/"
            "kafka-PORT)."
        ),
    )
    actions = kafka.add_subparsers(title="actions", metavar="ACTION")
    up = _command(actions, "up", "start the broker (if needed) and create our topics", _kafka_up)
    status = _command(actions, "status", "show whether the broker runs, its version, cluster id",
                      _kafka_status)  # fmt: skip
    down = _command(actions, "down", "stop the broker started by 'up', by its own pid",
                    _kafka_down)  # fmt: skip
    for p in (up, status, down):
        p.add_argument("--port", type=int, default=9092, help="broker port (default: 9092)")
        p.add_argument("--home", type=Path, help="broker data/log folder")
    up.add_argument(
        "--partitions", type=int, default=4,
        help="partitions of the user-keyed topics clicks and risk-scores (default: 4)",
    )  # fmt: skip
    up.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for it")


def _broker(args: argparse.Namespace):  # -> LocalBroker; import kept lazy for a fast --help
    from deploy.broker import BrokerConfig, LocalBroker, default_home

    return LocalBroker(BrokerConfig(home=args.home or default_home(args.port), port=args.port))


def _kafka_up(args: argparse.Namespace) -> int:
    from deploy.topics import ensure_topics, topic_specs

    broker = _broker(args)
    status = broker.start(timeout_s=args.timeout)
    print(status.describe())
    settings = KafkaSettings(status.bootstrap)
    created = ensure_topics(settings, topic_specs(Topics.from_env(), args.partitions))
    for name, outcome in created.items():
        print(f"  topic {name:<22} {outcome}")
    return 0


def _kafka_status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    print(status.describe())
    return 0 if status.answering else 3


def _kafka_down(args: argparse.Namespace) -> int:
    stopped = _broker(args).stop()
    print(f"Kafka broker on port {args.port}: {'stopped' if stopped else 'was not running'}")
    return 0


# -- generate -----------------------------------------------------------------------------------


def _add_generate(sub: Subparsers) -> None:
    p = _command(
        sub, "generate",
        "write a synthetic clickstream calibrated to the DeepCredit paper (10,000 users give "
        "about 4.9M activities, 713K posts, 13.4%% of funded loans delinquent, 4.8%% default)",
        _generate,
    )  # fmt: skip
    p.add_argument("--users", type=int, default=10_000, help="number of users (default 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--horizon-days", type=float, default=3 * 365.0,
                   help="days of history from 2015-01-01 (default 1095)")  # fmt: skip
    p.add_argument(
        "--shift-at", metavar="UNIX_TS", type=float,
        help="inject a regime shift (a platform crisis) from this event time on",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="output file: .jsonl, or .jsonl.gz to compress")
    p.add_argument("--stats", help="also write the realised statistics as JSON to this file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _generate(args: argparse.Namespace) -> int:
    from deepcredit.codec import encode
    from training.generator import GeneratorConfig, write_jsonl

    try:
        config = GeneratorConfig(users=args.users, seed=args.seed,
                                 horizon_days=args.horizon_days, shift_at_ts=args.shift_at)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = write_jsonl(config, out, progress=not args.quiet)
    print(stats.table())
    if args.stats:
        Path(args.stats).write_bytes(encode(stats) + b"\n")
    return 0


# -- train and evaluate -------------------------------------------------------------------------


def _add_train(sub: Subparsers) -> None:
    from training.variants import VARIANTS

    p = _command(
        sub, "train",
        "train the DeepCredit model on an event log (80/20 split by user, early stopping on "
        "validation users carved from the training users) and save a versioned artifact",
        _train,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--out-dir", type=Path, default=Path("artifacts/models"),
                   help="where model folders go (default artifacts/models)")  # fmt: skip
    p.add_argument("--variant", choices=sorted(VARIANTS), default="deepcredit",
                   help="model variant (paper Table 1); default: deepcredit (H-TLSTM + CL)")
    p.add_argument("--hidden", type=int, default=64, help="TLSTM hidden size (paper: 256)")
    p.add_argument("--epochs", type=int, default=20, help="most epochs (default 20)")
    p.add_argument("--patience", type=int, default=3,
                   help="stop after this many epochs without a better validation AUC")
    p.add_argument("--batch-users", type=int, default=32, help="users per batch (default 32)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 0.001)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-minutes", type=float, help="stop after the epoch that crosses this")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _train(args: argparse.Namespace) -> int:
    from training.model import ModelConfig
    from training.pipeline import train_model
    from training.train import TrainConfig
    from training.variants import VARIANTS

    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    model_config = ModelConfig(hidden_size=args.hidden, **VARIANTS[args.variant])
    train_config = TrainConfig(epochs=args.epochs, batch_users=args.batch_users, lr=args.lr,
                               patience=args.patience, seed=args.seed,
                               max_minutes=args.max_minutes, threads=args.threads)  # fmt: skip
    card = train_model(args.events, args.out_dir, model_config, train_config,
                       progress=not args.quiet)  # fmt: skip
    print(card.describe())
    print(f"saved {args.out_dir / card.version}")
    return 0


def _add_evaluate(sub: Subparsers) -> None:
    p = _command(sub, "evaluate",
                 "AUC, KS and Brier of a saved model on the held-out (test) users of an event log",
                 _evaluate)  # fmt: skip
    p.add_argument("--model", required=True, type=Path, help="a model folder made by 'train'")
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")


def _evaluate(args: argparse.Namespace) -> int:
    from training.pipeline import evaluate_model

    for path in (args.model, args.events):
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
    try:
        card, metrics, same_data = evaluate_model(args.model, args.events)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    print(f"model {card.version} on {args.events} (test users)")
    if not same_data:
        print("  note: not the event log this model was trained on")
    for target, m in metrics.items():
        print(f"  {target:<10} AUC {m.auc:.4f}  KS {m.ks:.4f}  Brier {m.brier:.4f}  "
              f"(n={m.n:,}, positives={m.positives:,})")  # fmt: skip
    return 0


# -- ablate -------------------------------------------------------------------------------------


def _add_ablate(sub: Subparsers) -> None:
    from training.variants import BASELINES, VARIANTS

    p = _command(
        sub, "ablate",
        "fit every model of the paper's Table 1 (our streaming variants, the paper-literal "
        "re-encode, gradient-boosted trees, HMM, logistic regression) on the same split, print "
        "the table beside the paper's numbers and write it as JSON",
        _ablate,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--stats", type=Path, help="the generator's --stats JSON, to record with it")
    p.add_argument("--out", type=Path, default=Path("results/ablation.json"),
                   help="JSON result (default results/ablation.json)")  # fmt: skip
    p.add_argument("--rows", nargs="+", choices=[*VARIANTS, *BASELINES], metavar="ROW",
                   help=f"only these rows, of: {', '.join([*VARIANTS, *BASELINES])}")
    p.add_argument("--hidden", type=int, default=32, help="TLSTM hidden size (default 32)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-users", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--max-minutes-per-model", type=float)
    p.add_argument("--seed", type=int, default=0)


def _ablate(args: argparse.Namespace) -> int:
    import json
    import shlex

    from training.ablation import (
        AblationConfig,
        benchmark_summary,
        config_dict,
        machine,
        run_ablation,
        table,
    )
    from training.eventlog import load_sequences

    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    cfg = AblationConfig(hidden_size=args.hidden, epochs=args.epochs,
                         batch_users=args.batch_users, lr=args.lr, seed=args.seed,
                         max_minutes_per_model=args.max_minutes_per_model)  # fmt: skip
    seq, data = load_sequences(args.events)
    benchmark = {"data_sha256": data.sha256, **benchmark_summary(seq)}
    if args.stats:
        benchmark["generator"] = json.loads(args.stats.read_text())
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save(rows: list[dict], complete: bool = False) -> None:
        result = {"benchmark": benchmark, "rows": rows, "complete": complete,
                  "config": config_dict(cfg), "command": "deepcredit " + shlex.join(args.argv),
                  "machine": machine()}  # fmt: skip
        partial = args.out.with_suffix(".partial")
        partial.write_text(json.dumps(result, indent=2) + "\n")
        partial.replace(args.out)

    rows = run_ablation(seq, args.events, cfg, rows=args.rows, on_row=save)
    save(rows, complete=True)
    print(table(rows))
    print(f"written to {args.out}")
    return 0


# -- roundtrip ----------------------------------------------------------------------------------


def _add_roundtrip(sub: Subparsers) -> None:
    p = _command(
        sub, "roundtrip",
        "send a JSON-lines file of click events through the clicks topic, read them back, "
        "decode them with the event contract and report (a broker smoke test)",
        _roundtrip,
    )  # fmt: skip
    p.add_argument("file", help="events, one JSON object per line (.gz allowed)")
    _add_bootstrap(p)
    p.add_argument(
        "--with-bad-messages", action="store_true",
        help="mix in a few malformed messages to show them going to the dead-letter topic",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")


def _add_bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap", default=KafkaSettings.from_env().bootstrap_servers,
        help="Kafka bootstrap servers (default: $DEEPCREDIT_BOOTSTRAP or 127.0.0.1:9092)",
    )  # fmt: skip


def _roundtrip(args: argparse.Namespace) -> int:
    import itertools

    from deepcredit.jsonlines import read_lines
    from deepcredit.roundtrip import SAMPLE_BAD_MESSAGES, round_trip

    if not Path(args.file).is_file():
        raise CliError(f"no such events file: {args.file}")
    lines = read_lines(args.file)
    if args.with_bad_messages:
        lines = itertools.chain(lines, SAMPLE_BAD_MESSAGES)
    report = round_trip(lines, KafkaSettings(args.bootstrap), Topics.from_env(),
                        timeout_s=args.timeout)  # fmt: skip
    print(report.describe())
    if not report.ok:
        raise CliError("the round trip lost or changed events (see the counts above)")
    return 0


# -- replay -------------------------------------------------------------------------------------


def _add_replay(sub: Subparsers) -> None:
    p = _command(
        sub, "replay",
        "send a JSON-lines clickstream to the clicks topic as a platform would, each line as "
        "is (malformed lines too, for the dead-letter path) keyed by its user_id, at a steady "
        "rate or as fast as the broker takes it",
        _replay,
    )  # fmt: skip
    p.add_argument("file", help="events, one JSON object per line (.gz allowed)")
    _add_bootstrap(p)
    p.add_argument("--rate", type=float, metavar="R",
                   help="events per second (default: as fast as possible)")  # fmt: skip
    p.add_argument("--limit", type=int, metavar="N", help="send only the first N lines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _replay(args: argparse.Namespace) -> int:
    from deepcredit.replay import ReplayError, replay

    if not Path(args.file).is_file():
        raise CliError(f"no such events file: {args.file}")
    topic = Topics.from_env().clicks
    try:
        report = replay(args.file, KafkaSettings(args.bootstrap), topic, rate=args.rate,
                        limit=args.limit, progress=not args.quiet)  # fmt: skip
    except (ValueError, ReplayError) as exc:
        raise CliError(str(exc)) from None
    print(f"replayed {args.file} to topic {topic}")
    print(report.describe())
    return 0


# -- thresholds ---------------------------------------------------------------------------------


def _add_thresholds(sub: Subparsers) -> None:
    thresholds = sub.add_parser(
        "thresholds",
        help="show or change the live decision thresholds (approve / review / decline)",
        description=(
            "The scoring flow turns the two probabilities of a loan post into a decision: "
            "decline when either reaches its decline threshold, review when either reaches its "
            "review threshold, approve otherwise. The thresholds live on the compacted "
            "thresholds topic; a running flow applies a change within a second, without a "
            "restart. Until someone sets them, built-in defaults apply."
        ),
    )
    actions = thresholds.add_subparsers(title="actions", metavar="ACTION")
    show = _command(actions, "show", "print the thresholds in force (or say the defaults are)",
                    _thresholds_show)  # fmt: skip
    s = _command(
        actions, "set",
        "publish new thresholds; a threshold not given keeps its value in force, so one "
        "number can change alone. Each change gets the next version number.",
        _thresholds_set,
    )  # fmt: skip
    for name, target in (("delinquent", "p_delinquent, the chance of missing a payment"),
                         ("default", "p_default, the chance of never repaying")):  # fmt: skip
        for level in ("review", "decline"):
            s.add_argument(f"--{name}-{level}", type=float, metavar="P",
                           help=f"{level} when {target}, reaches P (0..1)")  # fmt: skip
    s.add_argument("--by", required=True, metavar="NAME",
                   help="who makes the change (kept with it, shown by 'show')")  # fmt: skip
    s.add_argument("--note", default="", metavar="TEXT", help="why (kept with the change)")
    s.add_argument("--version", type=int, metavar="N",
                   help="version number to publish (default: the one in force plus one; "
                        "must be higher)")  # fmt: skip
    for p in (show, s):
        _add_bootstrap(p)
        p.add_argument("--timeout", type=float, default=10.0,
                       help="seconds to wait for the broker (default 10)")  # fmt: skip


def _thresholds_show(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import (
        DEFAULT_THRESHOLDS,
        ThresholdsUnavailable,
        describe,
        read_latest,
    )

    topic = Topics.from_env().thresholds
    try:
        latest = read_latest(KafkaSettings(args.bootstrap), topic, args.timeout)
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    print(describe(latest or DEFAULT_THRESHOLDS))
    return 0


def _thresholds_set(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import (
        InvalidThresholds,
        ThresholdsUnavailable,
        describe,
        set_thresholds,
    )

    names = ("delinquent_review", "delinquent_decline", "default_review", "default_decline")
    values = {name: getattr(args, name) for name in names}
    if all(v is None for v in values.values()):
        raise CliError("nothing to change: give at least one of --delinquent-review, "
                       "--delinquent-decline, --default-review, --default-decline")  # fmt: skip
    try:
        update = set_thresholds(KafkaSettings(args.bootstrap), Topics.from_env().thresholds,
                                **values, updated_by=args.by, note=args.note,
                                version=args.version, timeout_s=args.timeout)  # fmt: skip
    except InvalidThresholds as exc:
        raise CliError(f"thresholds not changed: {exc}") from None
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    print(describe(update))
    return 0


# -- serve --------------------------------------------------------------------------------------


def _add_serve(sub: Subparsers) -> None:
    p = _command(
        sub, "serve",
        "run the live scoring flow (Bytewax): read the clicks topic, keep each user's model "
        "state, write a score with a decision for every loan post to the risk-scores topic and "
        "malformed messages to the dead-letter topic; Prometheus metrics on /metrics",
        _serve,
    )  # fmt: skip
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", type=Path,
                       help="a model folder made by 'deepcredit train', or the word 'current' "
                            "for the one promoted in --models-dir")  # fmt: skip
    which.add_argument("--pass-through", action="store_true",
                       help="no model: every post scores 0 (benchmarks only)")  # fmt: skip
    _add_models_dir(p)
    _add_bootstrap(p)
    p.add_argument("--recovery-dir", type=Path,
                   help="keep state and offsets here (Bytewax recovery), so a restart after a "
                        "crash loses nothing; without it every start begins with empty states")
    p.add_argument("--snapshot-seconds", type=int, default=5,
                   help="how often state is snapshotted (default 5; a crash replays at most "
                        "this much input)")  # fmt: skip
    p.add_argument("--until-end", action="store_true",
                   help="stop at the end of the clicks topic instead of waiting for more")
    p.add_argument("--workers", type=int, default=1, help="worker threads (default 1)")
    p.add_argument("--process-id", type=int,
                   help="this process's index in a cluster (with --addresses)")  # fmt: skip
    p.add_argument("--addresses",
                   help='host:port of every process of the cluster, ";"-separated, in order')
    p.add_argument("--metrics-port", type=int, default=9464,
                   help="Prometheus endpoint port, plus the process id in a cluster "
                        "(default 9464; 0 = none)")  # fmt: skip


def _serve(args: argparse.Namespace) -> int:
    import logging

    from dataflow.flow import FlowConfig
    from dataflow.serve import ServeOptions, serve
    from deepcredit.thresholds import ThresholdsUnavailable
    from scorer.artifact import ArtifactError
    from scorer.model import StateVersionError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if (args.process_id is None) != (args.addresses is None):
        raise CliError("--process-id and --addresses go together (a cluster needs both)")
    if args.snapshot_seconds < 1:
        raise CliError("--snapshot-seconds must be at least 1")
    flow = FlowConfig(KafkaSettings(args.bootstrap), Topics.from_env(), tail=not args.until_end)
    model = None if args.pass_through else _resolve_model(args.model, args.models_dir)
    opts = ServeOptions(model=model, flow=flow,
                        workers=args.workers, process_id=args.process_id,
                        addresses=tuple(args.addresses.split(";")) if args.addresses else (),
                        recovery_dir=args.recovery_dir, snapshot_s=args.snapshot_seconds,
                        metrics_port=args.metrics_port)  # fmt: skip
    try:
        serve(opts)
    except (ArtifactError, StateVersionError, ThresholdsUnavailable) as exc:
        raise CliError(str(exc)) from None
    return 0


# -- scores -------------------------------------------------------------------------------------


def _add_scores(sub: Subparsers) -> None:
    p = _command(
        sub, "scores",
        "summarise the risk-scores topic: scored posts, decisions, thresholds and model "
        "versions in use, and the latest scores",
        _scores,
    )  # fmt: skip
    _add_bootstrap(p)
    p.add_argument("--latest", type=int, default=5, help="latest scores to show (default 5)")


def _scores(args: argparse.Namespace) -> int:
    from deepcredit.score_log import summarise

    topic = Topics.from_env().risk_scores
    try:
        summary = summarise(KafkaSettings(args.bootstrap), topic, latest=args.latest)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        raise CliError(f"cannot read {topic}: {exc}") from None
    print(f"topic {topic}")
    print(summary.describe())
    return 0


# -- bench --------------------------------------------------------------------------------------


def _add_bench(sub: Subparsers) -> None:
    bench = sub.add_parser("bench", help="measure the live flow (writes results/live.json)",
                           description="Benchmarks that write their results to a file.")
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="BENCH")
    p = _command(
        bench_sub, "live",
        "the live flow Kafka to Kafka on the real broker, with the model and with a "
        "pass-through in its place, in one run: events/s (median of repeats) and post-to-score "
        "latency p50/p99 at a steady replay rate",
        _bench_live,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="a generated clickstream")
    p.add_argument("--model", required=True, type=Path, help="a model folder")
    _add_bootstrap(p)
    p.add_argument("--limit", type=int, default=100_000,
                   help="events used for throughput (default 100000)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=3, help="throughput runs per flow (default 3)")
    p.add_argument("--rate", type=float, default=500.0,
                   help="replay rate of the latency run, events/s (default 500)")  # fmt: skip
    p.add_argument("--latency-events", type=int, default=10_000,
                   help="events replayed for latency (default 10000)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/live.json"))

    p = _command(
        bench_sub, "step",
        "what the hidden size costs the live scorer: microseconds per event of the numpy step "
        "(one event at a time, median of repeats) and bytes per user state, per hidden size",
        _bench_step,
    )  # fmt: skip
    p.add_argument("--hidden", type=int, nargs="+", default=[16, 32, 64, 128, 256],
                   help="hidden sizes (default 16 32 64 128 256)")  # fmt: skip
    p.add_argument("--users", type=int, default=200, help="users in the stream (default 200)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("results/step.json"))


def _bench_live(args: argparse.Namespace) -> int:
    import json
    import shlex

    from dataflow.bench import LiveBenchConfig, run_live_bench
    from training.ablation import machine

    for path in (args.events, args.model):
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
    cfg = LiveBenchConfig(events=args.events, model=args.model,
                          kafka=KafkaSettings(args.bootstrap), limit=args.limit,
                          repeats=args.repeats, latency_rate=args.rate,
                          latency_events=args.latency_events)  # fmt: skip
    log = args.out.with_suffix(".serve.log")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run_live_bench(cfg, log)
    result |= {"command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    t, lat = result["throughput"], result["latency"]
    print(f"events/s (median): model {t['model']['median_events_per_s']:,.0f}, pass-through "
          f"{t['pass_through']['median_events_per_s']:,.0f} "
          f"(ratio {result['model_over_pass_through']:.2f}); without recovery snapshots "
          f"{t['model_no_recovery']['median_events_per_s']:,.0f}")
    for v, x in lat.items():
        print(f"post-to-score latency at {x['rate']:g} events/s, {v}: p50 {x['p50_ms']:.1f} ms, "
              f"p99 {x['p99_ms']:.1f} ms ({x['measured']:,} posts)")
    print(f"written to {args.out}")
    return 0


def _bench_step(args: argparse.Namespace) -> int:
    import json
    import shlex

    from training.ablation import machine
    from training.step_cost import step_cost

    rows = step_cost(args.hidden, users=args.users, repeats=args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "command": "deepcredit " + shlex.join(args.argv),
                                    "machine": machine()}, indent=2) + "\n")  # fmt: skip
    print("| hidden size | µs per post | µs per other event | state bytes (median user) |")
    print("| ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['hidden_size']} | {r['us_per_post']:.1f} | {r['us_per_other_event']:.1f} "
              f"| {r['state_bytes_median']:,} |")
    print(f"written to {args.out}")
    return 0


# -- drift --------------------------------------------------------------------------------------


def _add_drift(sub: Subparsers) -> None:
    drift = sub.add_parser(
        "drift",
        help="measure the drift monitors (writes results/drift.json)",
        description="The River drift monitors of the live flow, measured.",
    )
    drift_sub = drift.add_subparsers(title="actions", metavar="ACTION")
    p = _command(
        drift_sub, "measure",
        "score two generated streams event by event, one with the generator's regime shift "
        "and one without, feed the drift monitors, and report per monitor the detection delay "
        "after the shift (events and days) and the false alarms without it",
        _drift_measure,
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


def _drift_measure(args: argparse.Namespace) -> int:
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


# -- models -------------------------------------------------------------------------------------


def _add_models(sub: Subparsers) -> None:
    models = sub.add_parser(
        "models",
        help="the model registry: list trained models, promote one, roll back, show the log",
        description=(
            "The model folders 'deepcredit train' writes (default artifacts/models) are the "
            "registry. One of them is current: the file CURRENT in that folder names it, and "
            "'deepcredit serve --model current' loads it at start. Every promotion and rollback "
            "is appended to promotions.jsonl there, with who and why."
        ),
    )
    actions = models.add_subparsers(title="actions", metavar="ACTION")
    ls = _command(actions, "list", "every model: created, parent, data, test AUC, current",
                  _models_list)  # fmt: skip
    cur = _command(actions, "current", "the current model and who promoted it, when and why",
                   _models_current)  # fmt: skip
    promote = _command(
        actions, "promote",
        "make VERSION the current model (its scorer weights must load and carry its name)",
        _models_promote,
    )  # fmt: skip
    promote.add_argument("version", metavar="VERSION", help="a model folder name, dc-...")
    rollback = _command(actions, "rollback",
                        "make current again the model that was current before this one",
                        _models_rollback)  # fmt: skip
    hist = _command(actions, "history", "every promotion and rollback, oldest first",
                    _models_history)  # fmt: skip
    for p in (promote, rollback):
        p.add_argument("--by", required=True, metavar="NAME", help="who decides (logged)")
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (logged)")
    for p in (ls, cur, promote, rollback, hist):
        _add_models_dir(p)


def _add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=Path("artifacts/models"),
                   help="the folder 'deepcredit train' writes models into "
                        "(default artifacts/models)")  # fmt: skip


def _resolve_model(model: Path, models_dir: Path) -> Path:
    """``serve --model``: a model folder as given, or for the word ``current`` the folder the
    registry's current pointer names."""
    if str(model) != "current":
        return model
    from scorer.registry import ModelRegistry, RegistryError

    if not models_dir.is_dir():
        raise CliError(f"--model current: no such models folder {models_dir} (--models-dir)")
    try:
        return ModelRegistry(models_dir).current_path()
    except RegistryError as exc:
        raise CliError(str(exc)) from None


def _registry(args: argparse.Namespace):  # -> ModelRegistry; import kept lazy for a fast --help
    from scorer.registry import ModelRegistry

    if not args.models_dir.is_dir():
        raise CliError(f"no such models folder: {args.models_dir}")
    return ModelRegistry(args.models_dir)


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _models_list(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        entries = _registry(args).versions()
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if not entries:
        print(f"no models in {args.models_dir} (train one with 'deepcredit train')")
        return 0
    width = max(len(e.version) for e in entries)
    print(f"  {'version':<{width}}  {'created (UTC)':<16}  {'parent':<{width}}  "
          f"{'data users':>10}  {'test AUC del/def':>16}")  # fmt: skip
    for e in entries:
        auc = f"{_auc(e.test_auc('delinquent'))}/{_auc(e.test_auc('default'))}"
        print(f"{'*' if e.current else ' '} {e.version:<{width}}  {_when(e.created_at):<16}  "
              f"{e.parent_version or '-':<{width}}  {e.data_users:>10,}  {auc:>16}")  # fmt: skip
    if not any(e.current for e in entries):
        print("no model is current: 'deepcredit models promote VERSION' makes one current")
    else:
        print("* current")
    return 0


def _models_current(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    registry = _registry(args)
    try:
        path = registry.current_path()
        entry = registry.entry(path.name)
        promoted = [d for d in registry.history() if d.version == entry.version
                    and d.action in ("promote", "rollback")]  # fmt: skip
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    print(f"current model {entry.version}  ({path})")
    if promoted:
        d = promoted[-1]
        done = "promoted" if d.action == "promote" else "rolled back to"
        print(f"  {done} {_when(d.at)} UTC by {d.by}: {d.reason}")
    print(f"  created {_when(entry.created_at)} UTC, parent {entry.parent_version or '-'}, "
          f"data {entry.data_sha256[:12]} ({entry.data_users:,} users)")  # fmt: skip
    print(f"  test AUC delinquent {_auc(entry.test_auc('delinquent'))}, "
          f"default {_auc(entry.test_auc('default'))}")  # fmt: skip
    return 0


def _models_decided(decision) -> int:  # decision: scorer.registry.Promotion
    was = decision.previous or "none"
    print(f"{decision.action}: {decision.version} is now current (was {was}), by {decision.by}")
    print("a running 'deepcredit serve --model current' keeps its model until restarted")
    return 0


def _models_promote(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decision = _registry(args).promote(args.version, by=args.by, reason=args.reason)
    except RegistryError as exc:
        raise CliError(f"not promoted: {exc}") from None
    return _models_decided(decision)


def _models_rollback(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decision = _registry(args).rollback(by=args.by, reason=args.reason)
    except RegistryError as exc:
        raise CliError(f"not rolled back: {exc}") from None
    return _models_decided(decision)


def _models_history(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decisions = _registry(args).history()
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if not decisions:
        print(f"no promotions in {args.models_dir}")
        return 0
    for d in decisions:
        print(f"{_when(d.at)}  {d.action:<8}  {d.version}  (was {d.previous or 'none'})  "
              f"by {d.by}: {d.reason}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
