"""What every command module shares: the user-facing error, the parser helpers."""

from __future__ import annotations

import argparse
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


def merge_json(path: Path, updates: dict[str, Any]) -> None:
    """Set these top-level keys of the JSON object in ``path``, keeping the others: several
    commands write parts of one results file. Written aside and renamed."""
    current = json.loads(path.read_text()) if path.is_file() else {}
    write_json(path, current | updates)
