"""``deepcredit scores``: what the risk-scores topic holds."""

from __future__ import annotations

import argparse

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "scores",
        "summarise the risk-scores topic: scored posts, decisions, thresholds and model "
        "versions in use, and the latest scores",
        _run,
    )  # fmt: skip
    add_bootstrap(p)
    p.add_argument("--latest", type=int, default=5,
                   help="latest scores to show (default %(default)s)")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from deepcredit.score_log import summarise

    topic = Topics.from_env().risk_scores
    try:
        summary = summarise(KafkaSettings(args.bootstrap), topic, latest=args.latest)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        raise CliError(f"cannot read {topic}: {exc}") from None
    print(f"topic {topic}")
    print(summary.describe())
    return 0
