"""``deepcredit ablate``: the paper's Table 1 on our data, every variant and baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.atomic import write_json
from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import Option, add_options, from_args
from training.experiments.config import AblationConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    from training.core.variants import BASELINES, VARIANTS

    p = command(
        sub, "ablate",
        "fit every model of the paper's Table 1 (our streaming variants, the paper-literal "
        "re-encode, gradient-boosted trees, HMM, logistic regression) on the same split, print "
        "the table beside the paper's numbers and write it as JSON",
        _run,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--stats", type=Path, help="the generator's --stats JSON, to record with it")
    p.add_argument("--oracle", type=Path,
                   help="the generator's --oracle side file: adds the 'oracle' row, the true "
                        "probabilities on the same test posts (the benchmark's ceiling)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/ablation.json"),
                   help="JSON result (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--rows",
        nargs="+",
        choices=[*VARIANTS, *BASELINES],
        metavar="ROW",
        help=f"only these rows, of: {', '.join([*VARIANTS, *BASELINES])}",
    )
    add_options(p, AblationConfig, Option("hidden_size", "--hidden"), "epochs", "batch_users",
                "lr", "max_minutes_per_model", "seed")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import json
    import shlex

    from training.core.eventlog import load_sequences
    from training.experiments.ablation import (
        benchmark_summary,
        config_dict,
        machine,
        run_ablation,
        table,
    )

    for path in (args.events, args.oracle):
        if path is not None and not path.is_file():
            raise CliError(f"no such file: {path}")
    cfg = from_args(AblationConfig, args)
    seq, data = load_sequences(args.events)
    benchmark = {"data_sha256": data.sha256, **benchmark_summary(seq)}
    if args.stats:
        benchmark["generator"] = json.loads(args.stats.read_text())

    def save(rows: list[dict], complete: bool = False) -> None:
        result = {"benchmark": benchmark, "rows": rows, "complete": complete,
                  "config": config_dict(cfg), "command": "deepcredit " + shlex.join(args.argv),
                  "machine": machine()}  # fmt: skip
        write_json(args.out, result)

    rows = run_ablation(seq, args.events, cfg, rows=args.rows, oracle=args.oracle, on_row=save)
    save(rows, complete=True)
    print(table(rows))
    print(f"written to {args.out}")
    return 0
