"""``deepcredit kafka up|status|down``: a local single-node Apache Kafka broker."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics
from deploy.broker import BrokerConfig
from deploy.commands.common import Subparsers, command
from deploy.commands.options import add_options

__all__ = ["add"]


def add(sub: Subparsers) -> None:
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
    up = command(actions, "up", "start the broker (if needed) and create our topics", _up)
    status = command(actions, "status", "show whether the broker runs, its version, cluster id",
                     _status)  # fmt: skip
    down = command(actions, "down", "stop the broker started by 'up', by its own pid",
                   _down)  # fmt: skip
    for p in (up, status, down):
        add_options(p, BrokerConfig, "port")
        p.add_argument("--home", type=Path, help="broker data/log folder")
    up.add_argument(
        "--partitions", type=int, default=4,
        help="partitions of the user-keyed topics clicks and risk-scores (default %(default)s)",
    )  # fmt: skip
    up.add_argument("--timeout", type=float, default=90,
                    help="seconds to wait for it to answer (default %(default)s)")  # fmt: skip


def _broker(args: argparse.Namespace):  # -> LocalBroker; import kept lazy for a fast --help
    from deploy.broker import LocalBroker, default_home

    return LocalBroker(BrokerConfig(home=args.home or default_home(args.port), port=args.port))


def _up(args: argparse.Namespace) -> int:
    from deepcredit.topics import ensure_topics, topic_specs

    broker = _broker(args)
    status = broker.start(timeout_s=args.timeout)
    print(status.describe())
    settings = KafkaSettings(status.bootstrap)
    created = ensure_topics(settings, topic_specs(Topics.from_env(), args.partitions))
    for name, outcome in created.items():
        print(f"  topic {name:<22} {outcome}")
    return 0


def _status(args: argparse.Namespace) -> int:
    status = _broker(args).status()
    print(status.describe())
    return 0 if status.answering else 3


def _down(args: argparse.Namespace) -> int:
    stopped = _broker(args).stop()
    print(f"Kafka broker on port {args.port}: {'stopped' if stopped else 'was not running'}")
    return 0
