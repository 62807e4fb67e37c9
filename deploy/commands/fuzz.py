"""``deepcredit fuzz``: coverage-guided fuzzing of every decoder of outside bytes (atheris)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command
from deploy.fuzz.targets import FUZZED, TARGETS

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "fuzz",
        "fuzz the decoders of outside bytes (clicks, control records, state snapshots, seeds, "
        "the click archive) against their contracts, each target in a process of its own: "
        "executions, exec/s, coverage and crashes per target; exit status 1 on a crash",
        _fuzz,
    )  # fmt: skip
    p.add_argument(
        "--target",
        default="all",
        choices=["all", *TARGETS],
        metavar="NAME",
        help=f"one of {', '.join(TARGETS)}, or all (default: every one but the canary, a "
        "check of the harness itself)",
    )
    p.add_argument("--seconds", type=int, default=30, metavar="S",
                   help="fuzzing time per target, seconds (default 30)")  # fmt: skip
    p.add_argument(
        "--runs",
        type=int,
        metavar="N",
        default=None,
        help="stop a target after this many inputs (default: no limit)",
    )
    p.add_argument("--corpus", type=Path, default=None, metavar="DIR",
                   help="keep each target's corpus in DIR/<target> and start from it "
                        "(default: a temporary one, from the built-in seeds)")  # fmt: skip
    p.add_argument("--crashes", type=Path, default=Path("fuzz-crashes"), metavar="DIR",
                   help="where a crashing input and its traceback are saved "
                        "(default fuzz-crashes)")  # fmt: skip
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the figures, the command and the machine as JSON here",
    )
    p.add_argument("--replay", type=Path, default=None, metavar="FILE",
                   help="instead of fuzzing, run --target once on FILE (a saved crash) in this "
                        "process and show what it raises")  # fmt: skip


def _fuzz(args: argparse.Namespace) -> int:
    if args.replay is not None:
        return _replay(args.target, args.replay)
    try:
        import atheris  # noqa: F401 - the fuzzing processes need it
    except ImportError:
        raise CliError("atheris is not installed: pip install -e '.[dev]'") from None
    from deploy.fuzz.runner import machine, run_target

    if args.seconds < 1 or (args.runs is not None and args.runs < 1):
        raise CliError("--seconds and --runs must be at least 1")
    names = FUZZED if args.target == "all" else (args.target,)
    results = []
    for name in names:
        corpus = None if args.corpus is None else args.corpus / name
        result = run_target(name, seconds=args.seconds, runs=args.runs, corpus=corpus,
                            crashes=args.crashes)  # fmt: skip
        print(result.describe(), flush=True)
        results.append(result)
    crashed = [r for r in results if r.crashed]
    total = sum(r.executions for r in results)
    print(f"{len(results)} targets, {total:,} executions, {len(crashed)} crashed"
          + (f": inputs and tracebacks in {args.crashes}/" if crashed else ""))  # fmt: skip
    if args.out is not None:
        from deepcredit.atomic import write_json

        write_json(args.out, {
            "command": "deepcredit " + shlex.join(args.argv),
            "machine": machine(),
            "seconds_per_target": args.seconds,
            "runs_per_target": args.runs,
            "executions": total,
            "crashes": len(crashed),
            "targets": [{**r.as_json(), "decoder": TARGETS[r.target].decoder,
                         "contract": TARGETS[r.target].contract} for r in results],
        })  # fmt: skip
        print(f"written to {args.out}")
    return 1 if crashed else 0


def _replay(name: str, path: Path) -> int:
    import traceback

    from deploy.fuzz.runner import reproduce

    if name == "all":
        raise CliError("--replay needs one --target")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        reproduce(name, data)
    except Exception:
        traceback.print_exc()
        print(f"{name}: {path} ({len(data)} bytes) breaks the contract")
        return 1
    print(f"{name}: {path} ({len(data)} bytes) keeps the contract")
    return 0
