"""``deepcredit cutover``: rebuild every user's state for a new model at a known clicks offset,
score what the old flow left unscored, and write the seed the new flow starts from."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.commands.common import CliError, Subparsers, add_bootstrap, command
from deepcredit.commands.models import add_models_dir, resolve_model

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "cutover",
        "switch the live flow to a new model: with the old flow stopped, replay every click up "
        "to the clicks topic's end through the new model (all users in lockstep), score the "
        "posts the old flow left unscored, and write the seed 'deepcredit serve --seed' "
        "starts the new flow from, at that end",
        _run,
    )  # fmt: skip
    p.add_argument("--model", required=True, type=Path,
                   help="the new model's folder, or the word 'current' for the one promoted "
                        "in --models-dir")  # fmt: skip
    p.add_argument("--out", required=True, type=Path, metavar="DIR",
                   help="where the seed and its summary.json go")  # fmt: skip
    p.add_argument("--archive", type=Path, metavar="DIR",
                   help="a click archive ('deepcredit archive') for the offsets the clicks "
                        "topic no longer holds (retention)")  # fmt: skip
    add_models_dir(p)
    add_bootstrap(p)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run(args: argparse.Namespace) -> int:
    import logging

    from dataflow.cutover import CutoverConfig, CutoverError, cutover
    from deepcredit.settings import KafkaSettings, Topics
    from deepcredit.thresholds import ThresholdsUnavailable
    from scorer.artifact import ArtifactError
    from training.archive import ArchiveError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    model = resolve_model(args.model, args.models_dir)
    if args.archive is not None and not args.archive.is_dir():
        raise CliError(f"no such archive folder: {args.archive}")
    cfg = CutoverConfig(KafkaSettings(args.bootstrap), Topics.from_env(), model, args.out,
                        archive=args.archive, progress=not args.quiet)  # fmt: skip
    try:
        s = cutover(cfg)
    except (ArchiveError, ArtifactError, CutoverError, ThresholdsUnavailable) as exc:
        raise CliError(str(exc)) from None
    except (TimeoutError, RuntimeError, ValueError) as exc:
        raise CliError(f"cannot read the topics: {exc}") from None
    print(f"cut-over to {s.model_version} at offsets {s.offsets} of {s.topic}")
    print(f"replayed {s.events:,} clicks of {s.users:,} users ({s.from_archive:,} from the "
          f"archive, {s.dead_letters:,} dead letters skipped) in {s.rebuild_s:.2f} s "
          f"({s.events_per_s:,.0f} events/s)")  # fmt: skip
    print(f"posts before the offsets: {s.posts:,}; already scored {s.already_scored:,}, "
          f"scored now by {s.model_version} {s.filled_in:,} (thresholds v"
          f"{s.thresholds_version})" + (f", left without a score {s.left_unscored:,} "
                                        "(see the log)" if s.left_unscored else ""))  # fmt: skip
    print(f"seed written to {args.out}; start the new flow with: deepcredit serve --model "
          f"{model} --seed {args.out} --recovery-dir NEW_EMPTY_DIR")  # fmt: skip
    return 0
