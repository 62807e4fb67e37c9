"""``deepcredit ablate``: the paper's Table 1 on our data, every variant and baseline."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.atomic import write_json
from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import Option, add_options, from_args
from training.core.config import layer_sizes
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
    p.add_argument("--predictions", type=Path,
                   help="folder for each row's test predictions (ROW.jsonl.gz, the format of "
                        "'deepcredit report'); every row's differences to the deepcredit row "
                        "found there, with 95%% user-bootstrap intervals, go into the result")
    p.add_argument("--merge", type=Path, nargs="+", metavar="RESULT",
                   help="fit nothing: join the rows of these results of the same events, split "
                        "and settings (runs of row groups side by side) into --out, with the "
                        "differences from --predictions")  # fmt: skip
    add_options(p, AblationConfig, Option("hidden_size", "--hidden"),
                Option("head_sizes", "--heads", type=layer_sizes, metavar="W-W-..."), "epochs",
                "batch_users", "lr", "max_minutes_per_model", "seed")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import json
    import shlex

    from training.core.eventlog import load_sequences
    from training.experiments.ablation import (
        benchmark_summary,
        config_dict,
        differences,
        machine,
        run_ablation,
        table,
    )

    for path in (args.events, args.oracle, *(args.merge or ())):
        if path is not None and not path.is_file():
            raise CliError(f"no such file: {path}")
    cfg = from_args(AblationConfig, args)
    seq, data = load_sequences(args.events)
    benchmark = {"data_sha256": data.sha256, **benchmark_summary(seq)}
    if args.stats:
        benchmark["generator"] = json.loads(args.stats.read_text())

    merged_from: list[dict] = []

    def save(rows: list[dict], complete: bool = False, minus: dict | None = None) -> None:
        result = {"benchmark": benchmark, "rows": rows, "complete": complete,
                  "config": config_dict(cfg), "command": "deepcredit " + shlex.join(args.argv),
                  "machine": machine()}  # fmt: skip
        if merged_from:
            result["merged_from"] = merged_from
        if minus is not None:
            result["deepcredit_minus"] = minus
        write_json(args.out, result)

    if args.merge:
        rows = _merged(args.merge, benchmark["data_sha256"], config_dict(cfg), merged_from)
    else:
        # What the prediction files are of: ``differences`` pairs only files of the same.
        data_id = json.dumps({"events_sha256": data.sha256, "config": config_dict(cfg)},
                             sort_keys=True)  # fmt: skip
        rows = run_ablation(seq, args.events, cfg, rows=args.rows, oracle=args.oracle,
                            predictions=args.predictions, data=data_id,
                            on_row=save)  # fmt: skip
    minus = (None if args.predictions is None
             else differences(args.predictions, models=[r["model"] for r in rows]))  # fmt: skip
    save(rows, complete=True, minus=minus)
    print(table(rows))
    print(f"written to {args.out}")
    return 0


def _merged(paths: list[Path], sha256: str, config: dict, sources: list[dict]) -> list[dict]:
    """The rows of the results ``paths``, in order, refusing a result of other events or
    settings (the rows' own row lists aside) or a row given twice; each result's command,
    machine and rows are appended to ``sources``."""
    import json

    rows: list[dict] = []
    for path in paths:
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read the result {path}: {exc}") from None
        if result.get("benchmark", {}).get("data_sha256") != sha256:
            raise CliError(f"{path} is a result of other events than --events")
        if result.get("complete") is not True:
            raise CliError(f"{path} is an unfinished run (its 'complete' is not true)")
        if result.get("config") != config:
            raise CliError(f"{path} was fitted with other settings: {result.get('config')} "
                           f"(this command's: {config})")  # fmt: skip
        sources.append({"command": result.get("command"), "machine": result.get("machine"),
                        "rows": [r["model"] for r in result.get("rows", [])]})  # fmt: skip
        for row in result.get("rows", []):
            if any(r["model"] == row["model"] for r in rows):
                raise CliError(f"row {row['model']} is in more than one result")
            rows.append(row)
    return rows
