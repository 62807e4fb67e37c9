"""``deepcredit generate``: a synthetic clickstream calibrated to the DeepCredit paper."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import Option, add_options, from_args
from training.benchmark.config import GeneratorConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "generate",
        "write a synthetic clickstream calibrated to the DeepCredit paper (10,000 users give "
        "about 4.9M activities, 713K posts, 13.4%% of funded loans delinquent, 4.8%% default)",
        _run,
    )  # fmt: skip
    add_options(p, GeneratorConfig,
                Option("users", default=10_000),  # the paper's sample; the config has none
                "seed", "horizon_days",
                Option("shift_at_ts", "--shift-at", metavar="UNIX_TS"))  # fmt: skip
    p.add_argument("--out", required=True, help="output file: .jsonl, or .jsonl.gz to compress")
    p.add_argument("--stats", help="also write the realised statistics as JSON to this file")
    p.add_argument("--oracle",
                   help="also write each funded loan's true probability of delinquency and "
                        "default under the hidden process to this JSON-lines file (.gz to "
                        "compress): the benchmark's ceiling for 'deepcredit ablate --oracle', "
                        "never a model input; the events are the same with or without it",
    )  # fmt: skip
    p.add_argument("--oracle-paths", type=int, default=0, metavar="K",
                   help="with --oracle, also each funded loan's probabilities as of its post "
                        "(what the best scorer at post time could know), averaged over K "
                        "simulated futures of the user, for the held-out test users of the "
                        "usual split (the posts 'deepcredit ablate' measures); costly: 10,000 "
                        "users with K = 16 took 78 minutes against 3 without (README) "
                        "(default 0: none)")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace) -> int:
    from deepcredit.codec import encode
    from training.benchmark.generator import AtPost, write_jsonl

    try:
        config = from_args(GeneratorConfig, args)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.oracle_paths < 0:
        raise CliError("--oracle-paths must be 0 or more")
    if args.oracle_paths and not args.oracle:
        raise CliError("--oracle-paths needs --oracle, the file its probabilities go to")
    at_post = AtPost(args.oracle_paths, _test_users(config.users)) if args.oracle_paths else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    stats = write_jsonl(config, out, progress=not args.quiet, oracle_path=args.oracle,
                        at_post=at_post)  # fmt: skip
    print(stats.table())
    if args.stats:
        Path(args.stats).write_bytes(encode(stats) + b"\n")
    return 0


def _test_users(users: int) -> frozenset[str]:
    """The ids of the held-out test users among ``users`` (``training.core.train.split``)."""
    import numpy as np

    from training.benchmark.user import user_id
    from training.core.config import TrainConfig
    from training.core.dataset import split_masks

    ids = np.array([user_id(i) for i in range(users)])
    test, _ = split_masks(ids, TrainConfig.test_fraction, TrainConfig.validation_fraction)
    return frozenset(ids[test].tolist())
