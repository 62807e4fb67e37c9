"""``deepcredit roundtrip``: send events through the clicks topic and check them (a smoke test)."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "roundtrip",
        "send a JSON-lines file of click events through the clicks topic, read them back, "
        "decode them with the event contract and report (a broker smoke test)",
        _run,
    )  # fmt: skip
    p.add_argument("file", help="events, one JSON object per line (.gz allowed)")
    add_bootstrap(p)
    p.add_argument(
        "--with-bad-messages", action="store_true",
        help="mix in a few malformed messages to show them going to the dead-letter topic",
    )  # fmt: skip
    p.add_argument("--timeout", type=float, default=120,
                   help="seconds to wait (default %(default)s)")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import itertools

    from deepcredit.jsonlines import read_lines
    from deepcredit.kafka_io import UndeliveredError
    from deploy.roundtrip import SAMPLE_BAD_MESSAGES, round_trip

    if not Path(args.file).is_file():
        raise CliError(f"no such events file: {args.file}")
    lines = read_lines(args.file)
    if args.with_bad_messages:
        lines = itertools.chain(lines, SAMPLE_BAD_MESSAGES)
    try:
        report = round_trip(lines, KafkaSettings(args.bootstrap), Topics.from_env(),
                            timeout_s=args.timeout)  # fmt: skip
    except UndeliveredError as exc:
        raise CliError(f"the round trip's messages did not all arrive: {exc}") from None
    print(report.describe())
    if not report.ok:
        raise CliError("the round trip lost or changed events (see the counts above)")
    return 0
