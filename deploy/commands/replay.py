"""``deepcredit replay``: feed a clickstream to the clicks topic as a platform would."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "replay",
        "send a JSON-lines clickstream to the clicks topic as a platform would, each line as "
        "is (malformed lines too, for the dead-letter path) keyed by its user_id, at a steady "
        "rate or as fast as the broker takes it",
        _run,
    )  # fmt: skip
    p.add_argument("file", help="events, one JSON object per line (.gz allowed)")
    add_bootstrap(p)
    p.add_argument("--rate", type=float, metavar="R",
                   help="events per second (default: as fast as possible)")  # fmt: skip
    p.add_argument("--skip", type=int, default=0, metavar="N",
                   help="leave out the first N lines (blank lines not counted): go on where a "
                        "stopped replay says its lines are on the topic")  # fmt: skip
    p.add_argument("--limit", type=int, metavar="N", help="send at most N lines")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    """Exit status 0 when every line is on the topic; 1 when the broker refused or did not
    acknowledge some; 128 + the signal's number (143, 130) when a signal stopped it."""
    from deepcredit.replay import ReplayError, ReplayStopped, replay

    if not Path(args.file).is_file():
        raise CliError(f"no such events file: {args.file}")
    topic = Topics.from_env().clicks
    try:
        report = replay(args.file, KafkaSettings(args.bootstrap), topic, rate=args.rate,
                        limit=args.limit, skip=args.skip, progress=not args.quiet)  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except ReplayStopped as exc:
        print(f"deepcredit: replay of {args.file} to topic {topic} {exc}", file=sys.stderr)
        print(exc.report.describe())
        return 128 + exc.signum
    except ReplayError as exc:
        print(exc.report.describe())
        raise CliError(f"replay of {args.file} to topic {topic}: {exc}") from None
    print(f"replayed {args.file} to topic {topic}")
    print(report.describe())
    return 0
