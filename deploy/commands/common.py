"""What every command module shares: the user-facing error, the parser helpers."""

from __future__ import annotations

import argparse
import errno
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepcredit.atomic import write_json
from deepcredit.settings import DEFAULT_BOOTSTRAP, KafkaSettings

__all__ = ["CliError", "Subparsers", "add_bootstrap", "command", "merge_json"]


class CliError(Exception):
    """A failure the user can act on: printed without a traceback, exit status 1."""


Subparsers = argparse._SubParsersAction  # the type argparse gives no public name


def command(
    sub: Subparsers, name: str, help: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    # argparse %-formats a help, not a description
    p = sub.add_parser(name, help=help, description=help.replace("%%", "%"))
    p.set_defaults(run=run)
    return p


def add_bootstrap(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap", default=KafkaSettings.from_env().bootstrap_servers,
        help=f"Kafka bootstrap servers (default: $DEEPCREDIT_BOOTSTRAP or {DEFAULT_BOOTSTRAP})",
    )  # fmt: skip


def add_old_recovery_dir(p: argparse.ArgumentParser) -> None:
    """``--old-recovery-dir`` of the commands that cut the flow over (``state.cutover``)."""
    p.add_argument("--old-recovery-dir", type=Path, metavar="DIR",
                   help="the old flow's --recovery-dir: every click it had read, as of the "
                        "snapshots a restart would load, counts as answered, even where the "
                        "risk-scores topic's retention dropped the answer (without it such "
                        "posts are scored again by the new model; the prepare warns when the "
                        "topic has dropped answers)")  # fmt: skip


def old_recovery_dir(args: argparse.Namespace) -> Path | None:
    """``--old-recovery-dir`` checked: CliError for a folder that is not there."""
    folder = args.old_recovery_dir
    if folder is not None and not folder.is_dir():
        raise CliError(f"no such recovery folder: {folder}")
    return folder


def cutover_files_error(exc: OSError) -> str:
    """What a cut-over's OSError means to the operator (its spill, prepared file, seed, the
    old flow's recovery folder), with what to do when too many files are open."""
    hint = (" (more clicks a bucket, --bucket-events, opens fewer files; or raise 'ulimit -n')"
            if exc.errno == errno.EMFILE else "")  # fmt: skip
    return f"cannot read or write the cut-over's files: {exc}{hint}"


def merge_json(path: Path, updates: dict[str, Any]) -> None:
    """Set these top-level keys of the JSON object in ``path``, keeping the others: several
    commands write parts of one results file. Written aside and renamed."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, current | updates)
