"""``deepcredit cutover``: rebuild every user's state for a new model at a known clicks offset,
score what the old flow left unscored, and write the seed the new flow starts from. In two
phases (``--prepare`` while the old flow runs, ``--finish`` after it is stopped) the old flow is
down only while the finish replays the clicks that came after the prepare."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import (
    CliError,
    Subparsers,
    add_bootstrap,
    add_old_recovery_dir,
    command,
    cutover_files_error,
    old_recovery_dir,
)
from deploy.commands.models import add_models_dir, resolve_model

__all__ = ["add"]

_DESCRIPTION = """\
Switch the live flow to a new model B. Every user's state is rebuilt by replaying their clicks
through B, each post the old flow left unscored is scored by B, and a seed is written that
'deepcredit serve --seed' starts the new flow from, at the clicks topic's end."""

_EPILOG = """\
in two phases (the old flow is down only during step 3):
  1. the old flow still running:
       deepcredit cutover --prepare --model B --out DIR --old-recovery-dir OLD_RECOVERY
     replays every click so far through B (the long part) and writes DIR/prepared.msgpack;
     nothing is written to Kafka, so it is safe while the old flow scores. Meanwhile the
     history is spilled to DIR/history.spill (disk about its size as JSON; removed at the
     end). Wait for it to say 'prepared'.
  2. soon after (the longer you wait, the more clicks step 3 replays; running step 1 again
     refreshes it): stop the old flow with SIGTERM ('kill -TERM PID') and wait until it has
     exited.
  3. deepcredit cutover --finish --model B --out DIR
     replays only the clicks that came since step 1, scores the posts the old flow left
     unscored, writes DIR/seed.msgpack and DIR/summary.json (with how long each phase took).
  4. deepcredit serve --model B --seed DIR --recovery-dir NEW_EMPTY_DIR
     Do not run step 3 into DIR again once this runs.
  If step 3 fails, fix what it says and run it again (safe: nothing is scored twice). If it
  says to prepare again (another model, the topic recreated), run step 1 again (restart the
  old flow first if it should score meanwhile), then steps 2 and 3.

in one go (the old flow is down during the whole replay):
  stop the old flow, then: deepcredit cutover --model B --out DIR, then step 4.

split by clicks partition (a cluster: each process rebuilds its own users, side by side):
  add --partitions to steps 1 and 3, one group of partitions per process, every group into
  the same DIR (each part has its own files there), e.g. on two machines
       deepcredit cutover --prepare --model B --out DIR --partitions 0 2
       deepcredit cutover --prepare --model B --out DIR --partitions 1
  finish the parts one after another (step 3 with each part's --partitions), then step 4 on
  every process of the new flow: its --seed DIR reads all the parts as one seed.

Use the same --model, --out, --archive and DEEPCREDIT_TOPIC_PREFIX in every step."""


def add(sub: Subparsers) -> None:
    p = command(
        sub, "cutover",
        "switch the live flow to a new model: replay every click through it, score what the "
        "old flow left unscored, write the seed 'deepcredit serve --seed' starts from "
        "(--prepare while the old flow runs, --finish after stopping it: short downtime)",
        _run,
    )  # fmt: skip
    p.description, p.epilog = _DESCRIPTION, _EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    phase = p.add_mutually_exclusive_group()
    phase.add_argument("--prepare", action="store_true",
                       help="phase 1, with the old flow still running: replay the clicks so "
                            "far through the new model into DIR/prepared.msgpack; writes "
                            "nothing to Kafka")  # fmt: skip
    phase.add_argument("--finish", action="store_true",
                       help="phase 2, after stopping the old flow: from DIR/prepared.msgpack, "
                            "replay the clicks that came since, score what the old flow left "
                            "unscored, write the seed")  # fmt: skip
    p.add_argument("--model", required=True, type=Path,
                   help="the new model's folder, or the word 'current' for the one promoted "
                        "in --models-dir")  # fmt: skip
    p.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="where the prepared cut-over, the seed and its summary.json go",
    )
    p.add_argument("--partitions", type=int, nargs="+", default=[], metavar="P",
                   help="only these clicks partitions and their users, written as a part of "
                        "the cut-over in --out (default: every partition; see below)")
    p.add_argument("--archive", type=Path, metavar="DIR",
                   help="a click archive ('deepcredit archive') for the offsets the clicks "
                        "topic no longer holds (retention)")  # fmt: skip
    add_old_recovery_dir(p)
    p.add_argument("--bucket-events", type=int, metavar="N",
                   help="clicks per bucket of the history the prepare spills to disk beside "
                        "DIR's files and rebuilds a bucket at a time: its memory is about 1 KB "
                        "a click of one bucket (default 200,000)")  # fmt: skip
    add_models_dir(p)
    add_bootstrap(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run(args: argparse.Namespace) -> int:
    import logging

    from deepcredit.archive import ArchiveError
    from deepcredit.settings import KafkaSettings, Topics
    from deepcredit.thresholds import ThresholdsUnavailable
    from scorer.artifact import ArtifactError
    from state.cutover import (
        CutoverConfig,
        CutoverError,
        cutover,
        finish_cutover,
        prepare_cutover,
    )
    from state.seed import partitions_option

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    model = resolve_model(args.model, args.models_dir)
    if args.archive is not None and not args.archive.is_dir():
        raise CliError(f"no such archive folder: {args.archive}")
    if any(p < 0 for p in args.partitions):
        raise CliError(f"--partitions must be partition numbers >= 0, not {args.partitions}")
    if args.finish and args.old_recovery_dir is not None:
        raise CliError("--old-recovery-dir is the prepare's (it decides which posts the finish "
                       "may score): give it to 'cutover --prepare'")  # fmt: skip
    if args.bucket_events is not None and args.bucket_events < 1:
        raise CliError(f"--bucket-events must be at least 1, not {args.bucket_events}")
    buckets = {} if args.bucket_events is None else {"bucket_events": args.bucket_events}
    cfg = CutoverConfig(KafkaSettings(args.bootstrap), Topics.from_env(), model, args.out,
                        archive=args.archive, progress=not args.quiet,
                        partitions=tuple(args.partitions), old_recovery=old_recovery_dir(args),
                        **buckets)  # fmt: skip
    part = partitions_option(args.partitions)
    try:
        if args.prepare:
            p = prepare_cutover(cfg)
        else:
            s = finish_cutover(cfg) if args.finish else cutover(cfg)
    except (ArchiveError, ArtifactError, CutoverError, ThresholdsUnavailable) as exc:
        raise CliError(str(exc)) from None
    except (TimeoutError, RuntimeError, ValueError) as exc:
        raise CliError(f"cannot read the topics: {exc}") from None
    except OSError as exc:
        raise CliError(cutover_files_error(exc)) from None
    if args.prepare:
        print(
            f"prepared the cut-over to {p.model_version} at offsets {p.offsets} of "
            f"{p.topic} in {p.prepare_s:.2f} s: replayed {p.events:,} clicks of "
            f"{p.users:,} users ({p.from_archive:,} from the archive, "
            f"{p.dead_letters:,} dead letters skipped; rebuild {p.rebuild_s:.2f} s)"
        )
        print(f"now stop the old flow (SIGTERM) and, once it has exited, run: deepcredit "
              f"cutover --finish --model {args.model} --out {args.out}{part}")  # fmt: skip
        return 0
    print(f"cut-over to {s.model_version} at offsets {s.offsets} of {s.topic}")
    print(f"replayed {s.events:,} clicks of {s.users:,} users ({s.from_archive:,} from the "
          f"archive, {s.dead_letters:,} dead letters skipped); rebuild {s.rebuild_s:.2f} s "
          f"({s.events_per_s:,.0f} events/s)")  # fmt: skip
    print(f"prepare {s.prepare_s:.2f} s; finish {s.finish_s:.2f} s (the downtime), with "
          f"{s.tail_events:,} clicks of {s.tail_users:,} users after the prepared offsets "
          f"{s.prepared_offsets}")  # fmt: skip
    print(f"posts before the offsets: {s.posts:,}; already scored {s.already_scored:,}, "
          f"scored now by {s.model_version} {s.filled_in:,} (thresholds v"
          f"{s.thresholds_version})" + (f", left without a score {s.left_unscored:,} "
                                        "(see the log)" if s.left_unscored else ""))  # fmt: skip
    once = " once every part is finished" if part else ""
    print(f"seed written to {args.out}; start the new flow{once} with: deepcredit serve "
          f"--model {model} --seed {args.out} --recovery-dir NEW_EMPTY_DIR")  # fmt: skip
    return 0
