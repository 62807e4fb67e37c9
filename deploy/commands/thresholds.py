"""``deepcredit thresholds show|simulate|set|history|rollback``: the live decision thresholds,
what a change would do before it is made, and every change kept."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command

if TYPE_CHECKING:
    from deepcredit.records import ThresholdUpdate
    from deepcredit.thresholds import History, Segments, ThresholdsRead
    from deepcredit.whatif import ModelImpact, ScoredPost, WhatIf

__all__ = ["add", "confirm_shift", "mix_rows", "read_clicks"]

NAMES = ("delinquent_review", "delinquent_decline", "default_review", "default_decline")


def add(sub: Subparsers) -> None:
    thresholds = sub.add_parser(
        "thresholds",
        help="show, simulate, change or roll back the live decision thresholds",
        description=(
            "The scoring flow turns the two probabilities of a loan post into a decision: "
            "decline when either reaches its decline threshold, review when either reaches its "
            "review threshold, approve otherwise. The thresholds live on the compacted "
            "thresholds topic; a running flow applies a change within a second, without a "
            "restart. Until someone sets them, built-in defaults apply. Every change is kept "
            "on the thresholds-audit topic (who, when, why, old -> new, simulated effect)."
        ),
    )
    actions = thresholds.add_subparsers(title="actions", metavar="ACTION")
    show = command(actions, "show", "print the thresholds in force (or say the defaults are)",
                   _show)  # fmt: skip
    sim = command(
        actions, "simulate",
        "replay candidate thresholds over the recent scored posts and their outcomes as known "
        "now: approval / review / decline rates, expected and realised bad rates among "
        "approved, beside the thresholds in force; optionally the operating curve as a plot. "
        "Writes nothing to Kafka.",
        _simulate,
    )  # fmt: skip
    s = command(
        actions, "set",
        "publish new thresholds; a threshold not given keeps its value in force, so one "
        "number can change alone. Each change gets the next version number. Shows the "
        "simulated effect first and asks for confirmation when the decline or review rate "
        "moves by more than --max-shift points.",
        _set,
    )  # fmt: skip
    history = command(actions, "history",
                      "every thresholds change, oldest first: version, when, who, why, "
                      "old -> new and the effect simulated then", _history)  # fmt: skip
    rollback = command(
        actions, "rollback",
        "put the values of an earlier version back in force, as a new version (the trail "
        "keeps both); simulated and confirmed as 'set'",
        _rollback,
    )  # fmt: skip
    for p in (sim, s):
        for name, target in (("delinquent", "p_delinquent, the chance of missing a payment"),
                             ("default", "p_default, the chance of never repaying")):  # fmt: skip
            for level in ("review", "decline"):
                p.add_argument(f"--{name}-{level}", type=float, metavar="P",
                               help=f"{level} when {target}, reaches P (0..1)")  # fmt: skip
        p.add_argument("--segments", type=Path, metavar="FILE",
                       help="put these segments in force: a JSON file {\"thin_file_events\": N, "
                            "\"segments\": [{\"name\", \"file\" (thin|established|any), "
                            "\"amount_min\", \"amount_max\", \"term_min_days\", "
                            "\"term_max_days\", and the four thresholds}, ...]}; every post "
                            "must fall in exactly one (default: keep those in force)")  # fmt: skip
        p.add_argument(
            "--no-segments",
            action="store_true",
            help="remove the segments: the four thresholds for every post",
        )
    rollback.add_argument("--to", type=int, required=True, metavar="VERSION",
                          help="the version whose values to restore (0: the built-in "
                               "defaults); 'history' lists them")  # fmt: skip
    for p in (s, rollback):
        p.add_argument("--by", metavar="NAME",
                       help="who makes the change (default: $DEEPCREDIT_USER, else your login "
                            "name)")  # fmt: skip
        p.add_argument(
            "--reason",
            "--note",
            dest="reason",
            required=True,
            metavar="TEXT",
            help="why (required; kept in the audit trail and shown by 'show')",
        )
        p.add_argument(
            "--yes",
            action="store_true",
            help="confirm without asking, whatever the simulated shift (scripts)",
        )
        p.add_argument(
            "--max-shift",
            type=float,
            default=5.0,
            metavar="POINTS",
            help="ask for confirmation when the decline or review rate moves by "
            "more than this many percentage points (default %(default)s)",
        )
    s.add_argument("--version", type=int, metavar="N",
                   help="version number to publish (default: the one in force plus one; "
                        "must be higher)")  # fmt: skip
    for p in (sim, s, rollback):
        p.add_argument("--last", type=int, default=50_000, metavar="N",
                       help="replay the N most recent scored posts, by event time (default "
                            "%(default)s)")  # fmt: skip
        p.add_argument(
            "--model",
            metavar="VERSION",
            help="replay the scores of this model version (default: the model of "
            "the most recent score; probabilities of two models do not mix)",
        )
        p.add_argument("--archive", type=Path, metavar="DIR",
                       help="read the outcomes from this click archive ('deepcredit archive') "
                            "instead of the clicks topic")  # fmt: skip
    sim.add_argument(
        "--plot",
        type=Path,
        metavar="FILE",
        help="write the operating curve (approval rate against bad rate among "
        "approved, current and candidate marked) to FILE (.png or .svg)",
    )
    sim.add_argument(
        "--target",
        choices=("delinquent", "default"),
        default="delinquent",
        help="the bad outcome the plot counts (default %(default)s)",
    )
    sim.add_argument(
        "--out", type=Path, metavar="FILE", help="also write the simulation as JSON to FILE"
    )
    for p in (show, sim, s, history, rollback):
        add_bootstrap(p)
        p.add_argument("--timeout", type=float, default=10,
                       help="seconds to wait for the broker (default %(default)s)")  # fmt: skip


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The thresholds and segments given on the command line (None: keep those in force)."""
    values: dict[str, Any] = {name: getattr(args, name) for name in NAMES}
    values["segments"] = None
    if args.no_segments and args.segments is not None:
        raise CliError("give --segments or --no-segments, not both")
    if args.no_segments or args.segments is not None:
        from deepcredit.thresholds import Segments

        values["segments"] = Segments() if args.no_segments else _read_segments(args.segments)
    return values


def _read_segments(path: Path) -> Segments:
    from deepcredit.thresholds import InvalidThresholds, decode_segments

    try:
        return decode_segments(path.read_bytes())
    except (OSError, InvalidThresholds) as exc:
        raise CliError(f"cannot read the segments in {path}: {exc}") from None


# -- show -----------------------------------------------------------------------------------------


def _show(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import DEFAULT_THRESHOLDS, describe

    topic = Topics.from_env().thresholds
    read = _read(args)
    print(describe(read.latest or DEFAULT_THRESHOLDS))
    if read.skipped:
        print(f"{read.skipped} of {read.records} records on {topic} skipped as invalid or "
              "not newer than the version before (the warnings say why)")  # fmt: skip
    return 0


# -- simulate -------------------------------------------------------------------------------------


def _simulate(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import (
        DEFAULT_THRESHOLDS,
        InvalidThresholds,
        NoChange,
        plan_thresholds,
    )

    current = _read(args).latest or DEFAULT_THRESHOLDS
    values = _given(args)
    if all(v is None for v in values.values()):
        candidate = current
    else:
        try:
            candidate = plan_thresholds(current, **values, updated_by="simulate")
        except NoChange:
            candidate = current  # the thresholds in force, beside themselves
        except InvalidThresholds as exc:
            raise CliError(f"cannot simulate: {exc}") from None
    sample = _sample(args)
    if sample is None:
        raise CliError(f"no scored posts on {Topics.from_env().risk_scores}: nothing to "
                       "simulate on (the flow writes scores as posts arrive)")  # fmt: skip
    effect = _what_if(sample, current, candidate)
    print(_describe_sample(sample))
    print(_describe_effect(effect, current, candidate))
    if args.out is not None:
        import msgspec

        from deepcredit.atomic import write_json

        write_json(args.out, msgspec.to_builtins(effect))
        print(f"written: {args.out}")
    if args.plot is not None:
        _plot(sample.posts, current, candidate, args.target, args.plot)
        print(f"operating curve: {args.plot}")
    return 0


# -- set and rollback -----------------------------------------------------------------------------


def _set(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import DEFAULT_THRESHOLDS

    values = _given(args)
    if all(v is None for v in values.values()):
        raise CliError("nothing to change: give at least one of --delinquent-review, "
                       "--delinquent-decline, --default-review, --default-decline, "
                       "--segments, --no-segments")  # fmt: skip
    current = _read(args).latest or DEFAULT_THRESHOLDS
    return _change(args, current, values, action="set", version=args.version)


def _rollback(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import DEFAULT_THRESHOLDS

    current = _read(args).latest or DEFAULT_THRESHOLDS
    target = _read_history(args).values_of(args.to)
    if target is None and current.version == args.to:
        target = current  # set before the audit trail existed
    if target is None:
        raise CliError(f"version {args.to} is not in the audit trail: 'deepcredit thresholds "
                       "history' lists the versions that can be restored")  # fmt: skip
    from deepcredit.thresholds import Segments

    values = {name: getattr(target, name) for name in NAMES}
    values["segments"] = Segments(target.segments, target.thin_file_events)
    return _change(args, current, values, action="rollback", rollback_to=args.to)


def _change(
    args: argparse.Namespace,
    current: ThresholdUpdate,
    values: dict[str, Any],
    *,
    action: str,
    version: int | None = None,
    rollback_to: int | None = None,
) -> int:
    from deepcredit.audit import ThresholdsChange
    from deepcredit.thresholds import (
        InvalidThresholds,
        ThresholdsUnavailable,
        describe,
        plan_thresholds,
        publish,
    )

    by = args.by or os.environ.get("DEEPCREDIT_USER") or getpass.getuser()
    if not args.reason.strip():
        raise CliError("thresholds not changed: --reason must say why")
    note = args.reason if rollback_to is None else f"rollback to v{rollback_to}: {args.reason}"
    try:
        candidate = plan_thresholds(current, **values, updated_by=by, note=note, version=version)
    except InvalidThresholds as exc:
        raise CliError(f"thresholds not changed: {exc}") from None
    sample = _sample(args)
    effect = None if sample is None else _what_if(sample, current, candidate)
    if effect is None:
        print(f"no scored posts on {Topics.from_env().risk_scores}: the effect cannot be "
              "simulated")  # fmt: skip
    else:
        print(_describe_sample(sample))
        print(_describe_effect(effect, current, candidate))
        confirm_shift(effect, args, "thresholds not changed")
    change = ThresholdsChange(action=action, by=by, at=candidate.updated_at, reason=args.reason,
                              old=current, new=candidate, effect=effect,
                              rollback_to=rollback_to)  # fmt: skip
    topics = Topics.from_env()
    try:
        publish(KafkaSettings(args.bootstrap), topics.thresholds, topics.thresholds_audit,
                change, args.timeout)  # fmt: skip
    except InvalidThresholds as exc:
        raise CliError(f"thresholds not changed: {exc}") from None
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    print(describe(candidate))
    return 0


def confirm_shift(effect: WhatIf | ModelImpact, args: argparse.Namespace, refused: str) -> None:
    """Return when the change may go ahead: the decline and review rates of ``effect`` move
    by at most ``args.max_shift`` points, or ``args.yes``, or a person at the terminal types
    yes. CliError (``refused``: what was not done) when it may not."""
    from deepcredit.records import Decision

    moves = {d: effect.shift_points(d) for d in (Decision.DECLINE, Decision.REVIEW)}
    big = {d: m for d, m in moves.items() if abs(m) > args.max_shift}
    if not big or args.yes:
        return
    what = " and ".join(f"the {d.value} rate by {m:+.1f} points" for d, m in big.items())
    question = f"this change moves {what} (more than --max-shift {args.max_shift:g})"
    if not sys.stdin.isatty():
        raise CliError(f"{refused}: {question}; confirm with --yes (stdin is not a terminal, "
                       "so there is no one to ask)")  # fmt: skip
    print(f"{question}. Type 'yes' to make it: ", end="", flush=True)
    if sys.stdin.readline().strip().lower() != "yes":
        raise CliError(f"{refused}: not confirmed")


# -- history --------------------------------------------------------------------------------------


def _read_history(args: argparse.Namespace) -> History:
    from deepcredit.thresholds import ThresholdsUnavailable, read_history

    try:
        return read_history(KafkaSettings(args.bootstrap), Topics.from_env().thresholds_audit,
                            args.timeout)  # fmt: skip
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None


def _history(args: argparse.Namespace) -> int:
    from deepcredit.thresholds import describe_change

    topics = Topics.from_env()
    history = _read_history(args)
    if not history.changes:
        print(f"no thresholds change on {topics.thresholds_audit}: the built-in defaults "
              "(version 0) are in force unless set before the audit trail existed")  # fmt: skip
    for change in history.changes:
        print(describe_change(change))
    if history.skipped:
        print(f"{history.skipped} of {history.records} records on {topics.thresholds_audit} "
              "skipped as unusable (the warnings say why)")  # fmt: skip
    latest = _read(args).latest
    if latest is not None and latest.version not in {c.new.version for c in history.changes}:
        print(f"version {latest.version} in force was set by {latest.updated_by} without an "
              "audit record (before the trail existed)")  # fmt: skip
    return 0


# -- reading --------------------------------------------------------------------------------------


def _read(args: argparse.Namespace) -> ThresholdsRead:
    from deepcredit.thresholds import ThresholdsUnavailable, read_thresholds

    try:
        return read_thresholds(KafkaSettings(args.bootstrap), Topics.from_env().thresholds,
                               args.timeout)  # fmt: skip
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None


@dataclass(frozen=True)
class Sample:
    """The posts a what-if replays and where they came from."""

    posts: list[ScoredPost]
    model_version: str
    other_models: int  # posts of other models left out
    as_of: float | None  # the outcomes' clock (event time, Unix s)
    source: str  # where the outcomes came from


def _sample(args: argparse.Namespace) -> Sample | None:
    """The ``--last`` most recent scored posts of one model with their loans' outcomes as
    known now; None when the risk-scores topic holds no score."""
    import msgspec

    from deepcredit.kafka_io import read_to_end
    from deepcredit.loans import loan_outcomes
    from deepcredit.records import Score
    from deepcredit.whatif import ScoredPost, post_facts

    topics, settings = Topics.from_env(), KafkaSettings(args.bootstrap)
    decoder = msgspec.json.Decoder(Score)
    scores: dict[str, Score] = {}
    try:
        for m in read_to_end(settings, topics.risk_scores, args.timeout):
            try:
                s = decoder.decode(m.value())
            except (msgspec.DecodeError, TypeError):
                continue  # our own output; anything else there is not a score
            scores.setdefault(s.event_id, s)  # at-least-once: one post, one score
    except (TimeoutError, ValueError, RuntimeError) as exc:
        raise CliError(f"cannot read {topics.risk_scores}: {exc}") from None
    if not scores:
        return None
    model = args.model or max(scores.values(), key=lambda s: s.scored_at).model_version
    mine = sorted((s for s in scores.values() if s.model_version == model),
                  key=lambda s: s.event_ts)[-args.last:] if args.last > 0 else []  # fmt: skip
    if not mine:
        raise CliError(f"no scores of model {model!r} on {topics.risk_scores}")
    events, as_of, source = read_clicks(args, settings, topics)
    outcomes = loan_outcomes(events, as_of=as_of) if as_of is not None else {}
    facts = post_facts(events)
    posts = []
    for s in mine:
        f = facts.get(s.event_id)
        posts.append(ScoredPost(s.p_delinquent, s.p_default, outcomes.get(s.loan_id),
                                *(() if f is None else f)))  # fmt: skip
    other = sum(1 for s in scores.values() if s.model_version != model)
    return Sample(posts, model, other, as_of, source)


def read_clicks(args: argparse.Namespace, settings: KafkaSettings, topics: Topics):
    """(valid click events in each partition's order, the clock they are complete up to (the
    oldest of each partition's newest event time; None: no clicks), where they came from)."""
    from deepcredit.codec import decode_click
    from deepcredit.events import ClickEvent

    if args.archive is not None:
        from deepcredit.archive import ArchiveError, archived_through, read_window

        try:
            lines = list(read_window(args.archive))
            as_of = archived_through(args.archive)
        except (ArchiveError, OSError) as exc:
            raise CliError(f"cannot read the click archive {args.archive}: {exc}") from None
        events = [e for e in map(decode_click, lines) if isinstance(e, ClickEvent)]
        return events, as_of, f"the click archive {args.archive}"

    from deepcredit.kafka_io import read_to_end

    try:
        messages = read_to_end(settings, topics.clicks, args.timeout)
    except (TimeoutError, ValueError, RuntimeError) as exc:
        raise CliError(f"cannot read {topics.clicks}: {exc}") from None
    events, newest = [], {}
    for m in messages:
        e = decode_click(m.value())
        if isinstance(e, ClickEvent):
            events.append(e)
            newest[m.partition()] = max(newest.get(m.partition(), e.ts), e.ts)
    return events, (min(newest.values()) if newest else None), f"the {topics.clicks} topic"


def _what_if(sample: Sample, current: ThresholdUpdate, candidate: ThresholdUpdate) -> WhatIf:
    from deepcredit.whatif import what_if

    return what_if(sample.posts, current, candidate, as_of=sample.as_of,
                   model_version=sample.model_version)  # fmt: skip


# -- printing -------------------------------------------------------------------------------------


def _when(ts: float | None) -> str:
    if ts is None:
        return "never (no clicks)"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _describe_sample(sample: Sample) -> str:
    posts = sample.posts
    funded = [p.outcome for p in posts if p.outcome is not None and p.outcome.funded]
    open_ = sum(o.censored for o in funded)
    unfunded = sum(1 for p in posts if p.outcome is not None and not p.outcome.funded)
    unknown = sum(1 for p in posts if p.outcome is None)
    lines = [f"replayed on the {len(posts):,} most recent posts scored by model "
             f"{sample.model_version}" + (f" ({sample.other_models:,} posts of other models "
                                          "left out)" if sample.other_models else ""),
             f"outcomes from {sample.source}, as known at {_when(sample.as_of)}: "
             f"{len(funded) - open_:,} funded loans labelled, {open_:,} still open, "
             f"{unfunded:,} never funded, {unknown:,} not in the clicks"]  # fmt: skip
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _pts(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else f"{100 * (b - a):+.1f} pts"


def mix_rows(effect: WhatIf | ModelImpact) -> Iterator[tuple[str, str, str, str]]:
    from deepcredit.records import Decision
    from deepcredit.whatif import Target

    cur, cand = effect.current, effect.candidate
    for d in Decision:
        a, b = cur.rate(d), cand.rate(d)
        yield f"{d.value} rate", _pct(a), _pct(b), _pts(a, b)
    yield ("approved posts", f"{cur.approve:,}", f"{cand.approve:,}",
           f"{cand.approve - cur.approve:+,}")  # fmt: skip
    for t in Target:
        a, b = cur.expected_bad(t), cand.expected_bad(t)
        yield f"expected {t.value} among approved", _pct(a), _pct(b), _pts(a, b)
        a, b = cur.realised_bad(t), cand.realised_bad(t)
        yield (f"realised {t.value} among approved", f"{_pct(a)} of {cur.labelled(t)[0]:,}",
               f"{_pct(b)} of {cand.labelled(t)[0]:,}", _pts(a, b))  # fmt: skip
    yield ("approved loans still open", f"{cur.approved_open:,}", f"{cand.approved_open:,}",
           f"{cand.approved_open - cur.approved_open:+,}")  # fmt: skip


def _describe_effect(effect: WhatIf, current: ThresholdUpdate, candidate: ThresholdUpdate) -> str:
    from deepcredit.records import Decision
    from deepcredit.whatif import Target

    head = (
        f"in force (v{current.version})",
        "candidate" if candidate is current else f"candidate (v{candidate.version})",
        "change",
    )
    rows = [("", *head)]
    rows += [(name, f"{getattr(current, name):.3f}", f"{getattr(candidate, name):.3f}",
              "" if getattr(current, name) == getattr(candidate, name) else "changed")
             for name in NAMES]  # fmt: skip
    if current.segments or candidate.segments:
        names = [", ".join(s.name for s in t.segments) or "none" for t in (current, candidate)]
        rows.append(("segments", *names, "" if current.segments == candidate.segments
                     else "changed"))  # fmt: skip
    rows += list(mix_rows(effect))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    table = [f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}".rstrip()
             for r in rows]  # fmt: skip
    if effect.segments:
        table.append("  by segment: posts; approve / review / decline, in force -> candidate; "
                     "expected delinquent among approved")  # fmt: skip
        for name, (cur, cand) in effect.segments.items():
            mixes = [" / ".join(_pct(m.rate(d)) for d in Decision) for m in (cur, cand)]
            bad = [_pct(m.expected_bad(Target.DELINQUENT)) for m in (cur, cand)]
            table.append(f"    {name:<16} {cur.posts:>7,}  {mixes[0]} -> {mixes[1]};  "
                         f"{bad[0]} -> {bad[1]}")  # fmt: skip
    return "\n".join(table)


def _plot(
    posts: list[ScoredPost],
    current: ThresholdUpdate,
    candidate: ThresholdUpdate,
    target: str,
    path: Path,
) -> None:
    """The operating curves through the thresholds in force and the candidate, their points
    marked, to ``path`` (format from its suffix)."""
    import matplotlib

    matplotlib.use("Agg")  # no display: write files only
    import matplotlib.pyplot as plt

    from deepcredit.records import Decision
    from deepcredit.whatif import Target, decision_mix, operating_curve

    t = Target(target)
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, thresholds, colour, offset in (("in force", current, "tab:blue", (6, -12)),
                                              ("candidate", candidate, "tab:orange",
                                               (-10, 10))):  # fmt: skip
        curve = operating_curve(posts, thresholds, t)
        name = f"{label} (v{thresholds.version})"
        ax.plot(100 * curve.approval, 100 * curve.expected, color=colour,
                label=f"{name}: expected")  # fmt: skip
        ax.plot(100 * curve.approval, 100 * curve.realised, color=colour, linestyle="--",
                alpha=0.6, label=f"{name}: realised")  # fmt: skip
        mix = decision_mix(posts, thresholds)
        rate, bad = mix.rate(Decision.APPROVE), mix.expected_bad(t)
        if rate is not None and bad is not None:
            ax.plot([100 * rate], [100 * bad], "o", color=colour, markersize=9,
                    markeredgecolor="black")  # fmt: skip
            ax.annotate(f"{label}: {100 * rate:.1f}% approved", (100 * rate, 100 * bad),
                        textcoords="offset points", xytext=offset, fontsize=8)  # fmt: skip
    ax.set_xlabel("approval rate, %")
    ax.set_ylabel(f"{t.value} rate among approved, %")
    ax.set_title(f"Operating curve over {len(posts):,} scored posts (review thresholds scaled)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
