"""``deepcredit statements``: a monthly credit-card statement table (the UCI layout) as events."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "statements",
        "turn a monthly credit-card statement table (the UCI 'default of credit card clients' "
        "layout: ID, X6..X23, Y) into clicks in the event contract: each month's bill a "
        "posted, funded 30-day loan, repaid with the delay the next month's status gives; the "
        "September bill's delinquency label is the table's Y (see training/benchmark/"
        "statements.py for every choice)",
        _run,
    )  # fmt: skip
    p.add_argument("--table", required=True, help="the statement table, CSV with a header")
    p.add_argument("--out", required=True, help="output file: .jsonl, or .jsonl.gz to compress")


def _run(args: argparse.Namespace) -> int:
    from training.benchmark.statements import StatementTableError, read_table, write_events

    table, out = Path(args.table), Path(args.out)
    if not table.is_file():
        raise CliError(f"no table at {table}")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        clients, events = write_events(read_table(table), out)
    except (StatementTableError, UnicodeDecodeError) as exc:
        raise CliError(f"{table}: {exc}") from None
    print(f"{clients:,} clients, {events:,} events -> {out}")
    return 0
