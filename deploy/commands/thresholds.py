"""``deepcredit thresholds show|set``: the live decision thresholds."""

from __future__ import annotations

import argparse

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    thresholds = sub.add_parser(
        "thresholds",
        help="show or change the live decision thresholds (approve / review / decline)",
        description=(
            "The scoring flow turns the two probabilities of a loan post into a decision: "
            "decline when either reaches its decline threshold, review when either reaches its "
            "review threshold, approve otherwise. The thresholds live on the compacted "
            "thresholds topic; a running flow applies a change within a second, without a "
            "restart. Until someone sets them, built-in defaults apply."
        ),
    )
    actions = thresholds.add_subparsers(title="actions", metavar="ACTION")
    show = command(actions, "show", "print the thresholds in force (or say the defaults are)",
                   _show)  # fmt: skip
    s = command(
        actions, "set",
        "publish new thresholds; a threshold not given keeps its value in force, so one "
        "number can change alone. Each change gets the next version number.",
        _set,
    )  # fmt: skip
    for name, target in (("delinquent", "p_delinquent, the chance of missing a payment"),
                         ("default", "p_default, the chance of never repaying")):  # fmt: skip
        for level in ("review", "decline"):
            s.add_argument(f"--{name}-{level}", type=float, metavar="P",
                           help=f"{level} when {target}, reaches P (0..1)")  # fmt: skip
    s.add_argument("--by", required=True, metavar="NAME",
                   help="who makes the change (kept with it, shown by 'show')")  # fmt: skip
    s.add_argument("--note", default="", metavar="TEXT", help="why (kept with the change)")
    s.add_argument("--version", type=int, metavar="N",
                   help="version number to publish (default: the one in force plus one; "
                        "must be higher)")  # fmt: skip
    for p in (show, s):
        add_bootstrap(p)
        p.add_argument("--timeout", type=float, default=10,
                       help="seconds to wait for the broker (default %(default)s)")  # fmt: skip


def _show(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import (
        DEFAULT_THRESHOLDS,
        ThresholdsUnavailable,
        describe,
        read_thresholds,
    )

    topic = Topics.from_env().thresholds
    try:
        read = read_thresholds(KafkaSettings(args.bootstrap), topic, args.timeout)
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    print(describe(read.latest or DEFAULT_THRESHOLDS))
    if read.skipped:
        print(f"{read.skipped} of {read.records} records on {topic} skipped as invalid or "
              "not newer than the version before (the warnings say why)")  # fmt: skip
    return 0


def _set(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import (
        InvalidThresholds,
        ThresholdsUnavailable,
        describe,
        set_thresholds,
    )

    names = ("delinquent_review", "delinquent_decline", "default_review", "default_decline")
    values = {name: getattr(args, name) for name in names}
    if all(v is None for v in values.values()):
        raise CliError("nothing to change: give at least one of --delinquent-review, "
                       "--delinquent-decline, --default-review, --default-decline")  # fmt: skip
    try:
        update = set_thresholds(KafkaSettings(args.bootstrap), Topics.from_env().thresholds,
                                **values, updated_by=args.by, note=args.note,
                                version=args.version, timeout_s=args.timeout)  # fmt: skip
    except InvalidThresholds as exc:
        raise CliError(f"thresholds not changed: {exc}") from None
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    print(describe(update))
    return 0
