"""``deepcredit uci``: real data end to end, judged on the last bill of each held-out user."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import Option, add_options, from_args
from training.core.config import ModelConfig, TrainConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "uci",
        "a monthly statement table (the UCI layout) end to end: its clicks, DeepCredit trained "
        "on them, the Table 1 baselines on the same events, gradient-boosted trees and logistic "
        "regression on the table's raw columns of the same users; AUC, KS and Brier on the "
        "September bill of every held-out user (its delinquency label is the table's Y), and "
        "each difference DeepCredit minus the other with a 95%% user-bootstrap interval",
        _run,
    )  # fmt: skip
    p.add_argument("--table", required=True, type=Path, help="the statement table, CSV")
    p.add_argument("--work", type=Path, default=Path("data/uci"),
                   help="where the clicks and the model go (default %(default)s)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/uci.json"),
                   help="JSON result (default %(default)s)")  # fmt: skip
    p.add_argument("--draws", type=int, default=1000,
                   help="bootstrap draws over users (default %(default)s)")  # fmt: skip
    add_options(p, ModelConfig, Option("hidden_size", "--hidden"))
    add_options(p, TrainConfig, "epochs", "patience", "stop_on", "batch_users", "lr", "seed",
                "max_minutes", "threads")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _run(args: argparse.Namespace) -> int:
    import shlex

    from deepcredit.atomic import write_json
    from training.benchmark.statements import StatementTableError
    from training.core.train import TrainingDataError
    from training.experiments.ablation import machine
    from training.experiments.uci import run_uci

    if not args.table.is_file():
        raise CliError(f"no table at {args.table}")
    try:
        result = run_uci(args.table, args.work, from_args(ModelConfig, args),
                         from_args(TrainConfig, args), draws=args.draws, seed=args.seed,
                         progress=not args.quiet)  # fmt: skip
    except (StatementTableError, TrainingDataError) as exc:
        raise CliError(f"{args.table}: {exc}") from None
    result |= {"command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    write_json(args.out, result)
    print(f"September bill of {result['users']['compared']:,} held-out users "
          f"({result['users']['positives']:,} with Y = 1), head '{result['head']}':")  # fmt: skip
    for name, m in result["metrics"].items():
        line = f"  {name:<18} AUC {m['auc']:.4f}  KS {m['ks']:.4f}  Brier {m['brier']:.4f}"
        d = result["deepcredit_minus"].get(name)
        if d is not None:
            lo, hi = d["auc"]["interval"]
            line += f"   deepcredit - it: AUC {d['auc']['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]"
        print(line)
    print(f"written to {args.out}")
    return 0
