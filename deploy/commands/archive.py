"""``deepcredit archive``: keep every raw click on disk, in segments that training reads."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.archive import ArchiveConfig
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.options import Option, add_options, from_args

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "archive",
        "archive the clicks topic into gzip JSON-lines segments with a manifest of Kafka "
        "offsets, resuming where the manifest ends (nothing lost or repeated after a crash)",
        _archive,
    )  # fmt: skip
    p.add_argument("--folder", required=True, type=Path, help="the archive folder")
    p.add_argument(
        "--until-end",
        action="store_true",
        help="stop at the topic's end as of the start (default: run until Ctrl-C)",
    )
    add_options(p, ArchiveConfig, "segment_events",
                Option("segment_seconds", "--segment-minutes", scale=60))  # fmt: skip
    add_bootstrap(p)


def _archive(args: argparse.Namespace) -> int:
    from deepcredit.archive import ArchiveError, archive_clicks
    from deepcredit.settings import KafkaSettings, Topics

    config = from_args(ArchiveConfig, args)
    topic = Topics.from_env().clicks
    try:
        segments = archive_clicks(KafkaSettings(args.bootstrap), topic, args.folder,
                                  until_end=args.until_end, config=config)  # fmt: skip
    except ArchiveError as exc:
        raise CliError(str(exc)) from None
    lines = sum(s.lines for s in segments)
    print(f"archived {lines:,} messages of {topic} in {len(segments)} segments to {args.folder}")
    return 0
