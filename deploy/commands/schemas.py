"""``deepcredit schemas``: the JSON Schema files of our records (``schemas/``), checked or
written from the code."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "schemas",
        "check that the JSON Schema files of the records we write (schemas/) are what the code "
        "generates (exit 1 naming each file that differs), or write them with --write",
        _run,
    )  # fmt: skip
    p.add_argument("--write", action="store_true",
                   help="write the files from the code instead of checking them")  # fmt: skip
    p.add_argument("--dir", type=Path, default=None,
                   help="the schemas folder (default: schemas/ of this checkout)")  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    from deepcredit.records import SCHEMA_VERSION
    from deepcredit.schemas import SCHEMAS_DIR, check, write

    folder = args.dir or SCHEMAS_DIR
    if args.write:
        written = write(folder)
        print(f"wrote {len(written)} files to {folder}")
        return 0
    problems = check(folder)
    if problems:
        raise CliError(f"{folder} is not what the code generates: " + "; ".join(problems)
                       + ". Run 'deepcredit schemas --write' and commit the diff (a change "
                       "that can break a reader raises records.SCHEMA_VERSION)")  # fmt: skip
    print(f"{folder}: up to date, schema version {SCHEMA_VERSION}")
    return 0
