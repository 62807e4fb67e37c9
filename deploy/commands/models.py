"""``deepcredit models``: the model registry, list, promote, roll back, history."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command

__all__ = ["MODELS_DIR", "add", "add_models_dir", "resolve_model"]

MODELS_DIR = Path("artifacts/models")  # where 'train' writes, and every command looks


def add(sub: Subparsers) -> None:
    models = sub.add_parser(
        "models",
        help="the model registry: list trained models, promote one, roll back, show the log",
        description=(
            f"The model folders 'deepcredit train' writes (default {MODELS_DIR}) are the "
            "registry. One of them is current: the file CURRENT in that folder names it, and "
            "'deepcredit serve --model current' loads it at start. Every promotion and rollback "
            "is appended to promotions.jsonl there, with who and why."
        ),
    )
    actions = models.add_subparsers(title="actions", metavar="ACTION")
    ls = command(actions, "list", "every model: created, parent, data, test AUC, current",
                 _list)  # fmt: skip
    cur = command(actions, "current", "the current model and who promoted it, when and why",
                  _current)  # fmt: skip
    promote = command(
        actions, "promote",
        "make VERSION the current model (its scorer weights must load and carry its name)",
        _promote,
    )  # fmt: skip
    promote.add_argument("version", metavar="VERSION", help="a model folder name, dc-...")
    rollback = command(actions, "rollback",
                       "make current again the model that was current before this one",
                       _rollback)  # fmt: skip
    hist = command(actions, "history", "every promotion and rollback, oldest first",
                   _history)  # fmt: skip
    for p in (promote, rollback):
        p.add_argument("--by", required=True, metavar="NAME", help="who decides (logged)")
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (logged)")
    for p in (ls, cur, promote, rollback, hist):
        add_models_dir(p)


def add_models_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--models-dir", type=Path, default=MODELS_DIR,
                   help="the folder 'deepcredit train' writes models into "
                        "(default %(default)s)")  # fmt: skip


def resolve_model(model: Path, models_dir: Path) -> Path:
    """``serve --model``: a model folder as given, or for the word ``current`` the folder the
    registry's current pointer names."""
    if str(model) != "current":
        return model
    from scorer.registry import ModelRegistry, RegistryError

    if not models_dir.is_dir():
        raise CliError(f"--model current: no such models folder {models_dir} (--models-dir)")
    try:
        return ModelRegistry(models_dir).current_path()
    except RegistryError as exc:
        raise CliError(str(exc)) from None


def _registry(args: argparse.Namespace):  # -> ModelRegistry; import kept lazy for a fast --help
    from scorer.registry import ModelRegistry

    if not args.models_dir.is_dir():
        raise CliError(f"no such models folder: {args.models_dir}")
    return ModelRegistry(args.models_dir)


def _when(ts: float) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _auc(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _list(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        entries = _registry(args).versions()
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if not entries:
        print(f"no models in {args.models_dir} (train one with 'deepcredit train')")
        return 0
    width = max(len(e.version) for e in entries)
    print(f"  {'version':<{width}}  {'created (UTC)':<16}  {'parent':<{width}}  "
          f"{'data users':>10}  {'test AUC del/def':>16}")  # fmt: skip
    for e in entries:
        auc = f"{_auc(e.test_auc('delinquent'))}/{_auc(e.test_auc('default'))}"
        print(f"{'*' if e.current else ' '} {e.version:<{width}}  {_when(e.created_at):<16}  "
              f"{e.parent_version or '-':<{width}}  {e.data_users:>10,}  {auc:>16}")  # fmt: skip
    if not any(e.current for e in entries):
        print("no model is current: 'deepcredit models promote VERSION' makes one current")
    else:
        print("* current")
    return 0


def _current(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    registry = _registry(args)
    try:
        path = registry.current_path()
        entry = registry.entry(path.name)
        lineage = registry.lineage(entry.version)
        promoted = [d for d in registry.history() if d.version == entry.version
                    and d.action in ("promote", "rollback")]  # fmt: skip
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    print(f"current model {entry.version}  ({path})")
    if promoted:
        d = promoted[-1]
        done = "promoted" if d.action == "promote" else "rolled back to"
        print(f"  {done} {_when(d.at)} UTC by {d.by}: {d.reason}")
    print(f"  created {_when(entry.created_at)} UTC, parent {entry.parent_version or '-'}, "
          f"data {entry.data_sha256[:12]} ({entry.data_users:,} users)")  # fmt: skip
    print(f"  test AUC delinquent {_auc(entry.test_auc('delinquent'))}, "
          f"default {_auc(entry.test_auc('default'))}")  # fmt: skip
    if len(lineage) > 1:
        print("  lineage " + " <- ".join(e.version for e in lineage))
    return 0


def _decided(decision) -> int:  # decision: scorer.registry.Promotion
    was = decision.previous or "none"
    print(f"{decision.action}: {decision.version} is now current (was {was}), by {decision.by}")
    print("a running 'deepcredit serve --model current' keeps its model until restarted")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decision = _registry(args).promote(args.version, by=args.by, reason=args.reason)
    except RegistryError as exc:
        raise CliError(f"not promoted: {exc}") from None
    return _decided(decision)


def _rollback(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decision = _registry(args).rollback(by=args.by, reason=args.reason)
    except RegistryError as exc:
        raise CliError(f"not rolled back: {exc}") from None
    return _decided(decision)


def _history(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    try:
        decisions = _registry(args).history()
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if not decisions:
        print(f"no promotions in {args.models_dir}")
        return 0
    for d in decisions:
        print(f"{_when(d.at)}  {d.action:<8}  {d.version}  (was {d.previous or 'none'})  "
              f"by {d.by}: {d.reason}")  # fmt: skip
    return 0
