"""``deepcredit models``: the model registry, list, promote, roll back, history."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import (
    CliError,
    Subparsers,
    add_bootstrap,
    add_old_recovery_dir,
    command,
    cutover_files_error,
    old_recovery_dir,
)

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
        "make VERSION the current model (its scorer weights must load and carry its name). "
        "First shows what it does to decisions: both models replayed over the same recent "
        "posts at the live thresholds (decision mix, expected bad rate among approved), and "
        "asks for confirmation when the decline or review rate moves by more than "
        "--max-shift points. A model the retraining gate rejected needs --override. The "
        "promotion goes to the model-events and models-audit topics.",
        _promote,
    )  # fmt: skip
    promote.add_argument("version", metavar="VERSION", help="a model folder name, dc-...")
    promote.add_argument("--override", action="store_true",
                         help="promote a model the retraining gate rejected (the --reason "
                              "must say why; kept in the audit trail)")  # fmt: skip
    rollback = command(
        actions, "rollback",
        "serve again the model that was current before this one: shows the impact as "
        "'promote' does, rebuilds every user's state under that model (a cut-over back, into "
        "--out), then makes it current and records the rollback on the model-events and "
        "models-audit topics. The epilog lists the operator's steps.",
        _rollback,
    )  # fmt: skip
    rollback.epilog = _ROLLBACK_STEPS
    rollback.formatter_class = argparse.RawDescriptionHelpFormatter
    rollback.add_argument("--out", type=Path, required=True, metavar="DIR",
                          help="the cut-over folder: the prepared states (and, with "
                               "--flow-stopped, the seed) of the model rolled back to")  # fmt: skip
    add_old_recovery_dir(rollback)
    rollback.add_argument("--flow-stopped", action="store_true",
                          help="the live flow is already stopped: do the whole cut-over now "
                               "and write the seed (default: prepare it while the flow still "
                               "runs; finish with 'deepcredit cutover --finish')")  # fmt: skip
    hist = command(actions, "history",
                   "every promotion, rollback and gate verdict, oldest first (the registry's "
                   "log; --audit: the models-audit topic, from every machine)",
                   _history)  # fmt: skip
    hist.add_argument("--audit", action="store_true",
                      help="read the models-audit topic instead of this folder's log")  # fmt: skip
    for p in (promote, rollback):
        p.add_argument("--by", metavar="NAME",
                       help="who decides (default: $DEEPCREDIT_USER, else your login "
                            "name)")  # fmt: skip
        p.add_argument("--reason", required=True, metavar="TEXT", help="why (logged)")
        p.add_argument("--yes", action="store_true",
                       help="confirm without asking, whatever the shift (scripts)")  # fmt: skip
        p.add_argument("--max-shift", type=float, default=5.0, metavar="POINTS",
                       help="ask for confirmation when the decline or review rate moves by "
                            "more than this many percentage points (default "
                            "%(default)s)")  # fmt: skip
        p.add_argument("--last", type=int, default=50_000, metavar="N",
                       help="compare the models on the N most recent posts, by event time "
                            "(default %(default)s)")  # fmt: skip
        p.add_argument("--archive", type=Path, metavar="DIR",
                       help="read the clicks from this click archive ('deepcredit archive') "
                            "instead of the clicks topic")  # fmt: skip
    for p in (promote, rollback, hist):
        add_bootstrap(p)
        p.add_argument("--timeout", type=float, default=30,
                       help="seconds to wait for the broker (default %(default)s)")  # fmt: skip
    for p in (ls, cur, promote, rollback, hist):
        add_models_dir(p)


_ROLLBACK_STEPS = """\
the operator's steps (the old model serves again, not only the pointer):
  1. the live flow still running:
       deepcredit models rollback --reason TEXT --out DIR --old-recovery-dir LIVE_RECOVERY
     shows what the rollback does to decisions (asks when it moves a lot), replays every
     click so far through the model rolled back to (DIR/prepared.msgpack), then makes it
     current and records the rollback (model-events, models-audit, promotions.jsonl).
  2. stop the live flow with SIGTERM and wait until it has exited.
  3. deepcredit cutover --finish --model current --out DIR
     replays the clicks that came since step 1, scores what the stopped flow left unscored
     with the old model, writes DIR/seed.msgpack.
  4. deepcredit serve --model current --seed DIR --recovery-dir NEW_EMPTY_DIR
  With the flow already stopped: add --flow-stopped to step 1, which then writes the seed
  too; go on with step 4."""


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


def _by(args: argparse.Namespace) -> str:
    import getpass
    import os

    by = args.by or os.environ.get("DEEPCREDIT_USER") or getpass.getuser()
    if not args.reason.strip():
        raise CliError("say why: --reason TEXT")
    return by


def _impact(args: argparse.Namespace, registry, current: str, candidate: str):
    """Both models replayed over the same recent clicks at the live thresholds
    (``scorer.impact``), printed; None (said) when there are no clicks or posts."""
    from deepcredit.settings import KafkaSettings, Topics
    from deepcredit.thresholds import DEFAULT_THRESHOLDS, ThresholdsUnavailable, read_latest
    from deploy.commands.thresholds import read_clicks
    from scorer.artifact import ArtifactError, load_scorer
    from scorer.impact import replay_impact

    settings, topics = KafkaSettings(args.bootstrap), Topics.from_env()
    try:
        thresholds = read_latest(settings, topics.thresholds, args.timeout) or DEFAULT_THRESHOLDS
    except ThresholdsUnavailable as exc:
        raise CliError(str(exc)) from None
    events, as_of, source = read_clicks(args, settings, topics)
    try:
        weights = [load_scorer(registry.root / v) for v in (current, candidate)]
    except ArtifactError as exc:
        raise CliError(str(exc)) from None
    impact = replay_impact(*weights, events, thresholds, last=args.last, as_of=as_of,
                           source=source)  # fmt: skip
    if impact is None:
        print(f"no posts in {source}: the effect on decisions cannot be shown")
    else:
        print(describe_impact(impact))
    return impact


def describe_impact(impact) -> str:  # impact: deepcredit.whatif.ModelImpact
    """Both models' decision mix and bad rates side by side, per segment too."""
    from datetime import UTC, datetime

    from deepcredit.records import Decision
    from deepcredit.whatif import Target
    from deploy.commands.thresholds import mix_rows

    when = ("never" if impact.as_of is None else
            datetime.fromtimestamp(impact.as_of, UTC).strftime("%Y-%m-%d %H:%M UTC"))  # fmt: skip
    rows = [("", f"now ({impact.current_model})", f"after ({impact.candidate_model})", "change")]
    rows += list(mix_rows(impact))
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [f"both models replayed over the {impact.current.posts:,} most recent posts of "
             f"{impact.source or 'the clicks'}, decided at the live thresholds (v"
             f"{impact.thresholds_version}); outcomes as known at {when}"]  # fmt: skip
    lines += [f"  {r[0]:<{w[0]}}  {r[1]:>{w[1]}}  {r[2]:>{w[2]}}  {r[3]:>{w[3]}}".rstrip()
              for r in rows]  # fmt: skip
    if impact.segments:
        lines.append("  by segment: posts; approve / review / decline, now -> after; expected "
                     "delinquent among approved")  # fmt: skip
        for name, (cur, cand) in impact.segments.items():
            mixes = [" / ".join(_pct(m.rate(d)) for d in Decision) for m in (cur, cand)]
            bad = [_pct(m.expected_bad(Target.DELINQUENT)) for m in (cur, cand)]
            lines.append(f"    {name:<16} {cur.posts:>7,}  {mixes[0]} -> {mixes[1]};  "
                         f"{bad[0]} -> {bad[1]}")  # fmt: skip
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _announce(args: argparse.Namespace, event, refused: str) -> None:
    """``event`` (a ModelEvent) on the model-events and models-audit topics, or CliError."""
    from deepcredit.model_events import ModelEventsUnavailable, publish_model_event
    from deepcredit.settings import KafkaSettings, Topics

    try:
        publish_model_event(KafkaSettings(args.bootstrap), Topics.from_env(), event, args.timeout)
    except (ModelEventsUnavailable, ValueError) as exc:
        raise CliError(f"{refused}: {exc}") from None


def _event(action: str, version: str, previous: str | None, by: str, args, impact, **kw):
    import time

    import msgspec

    from deepcredit.records import ModelEvent

    return ModelEvent(action=action, version=version, previous=previous, by=by,
                      reason=args.reason, at=time.time(),
                      impact=None if impact is None else msgspec.to_builtins(impact),
                      **kw)  # fmt: skip


def _promote(args: argparse.Namespace) -> int:
    from deploy.commands.thresholds import confirm_shift
    from scorer.registry import RegistryError

    by, registry = _by(args), _registry(args)
    try:
        registry.check(args.version, override=args.override)
        rejected = registry.gate_rejection(args.version)
        current = registry.current()
    except RegistryError as exc:
        raise CliError(f"not promoted: {exc}") from None
    override = args.override and rejected is not None
    if args.override and rejected is None:
        print(f"--override: the retraining gate did not reject {args.version}; nothing to "
              "override")  # fmt: skip
    impact = None
    if current is None:
        print("no model is current: nothing to compare with")
    elif current.version == args.version:
        print(f"{args.version} is current already")
    else:
        impact = _impact(args, registry, current.version, args.version)
        if impact is not None:
            confirm_shift(impact, args, "not promoted")
    event = _event("promote", args.version, current and current.version, by, args, impact,
                   override=override)  # fmt: skip
    _announce(args, event, "not promoted")
    try:
        decision = registry.promote(args.version, by=by, reason=args.reason, override=override,
                                    impact=impact)  # fmt: skip
    except RegistryError as exc:
        raise CliError(f"announced on the model-events topic but not promoted: {exc}") from None
    was = decision.previous or "none"
    what = "promote (overriding the gate)" if override else "promote"
    print(f"{what}: {decision.version} is now current (was {was}), by {decision.by}")
    print("a running 'deepcredit serve --model current' keeps its model until cut over: "
          "'deepcredit cutover --help' lists the steps")  # fmt: skip
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from deepcredit.archive import ArchiveError
    from deepcredit.settings import KafkaSettings, Topics
    from deepcredit.thresholds import ThresholdsUnavailable
    from deploy.commands.thresholds import confirm_shift
    from scorer.registry import RegistryError
    from state.cutover import CutoverConfig, CutoverError, cutover, prepare_cutover

    by, registry = _by(args), _registry(args)
    try:
        target = registry.rollback_target()
        current = registry.current()
        registry.check(target, override=True)  # a rollback serves a model that served before
    except RegistryError as exc:
        raise CliError(f"not rolled back: {exc}") from None
    assert current is not None  # rollback_target raised otherwise
    old_recovery = old_recovery_dir(args)  # before the impact, which rebuilds twice
    impact = _impact(args, registry, current.version, target)
    if impact is not None:
        confirm_shift(impact, args, "not rolled back")
    cfg = CutoverConfig(KafkaSettings(args.bootstrap), Topics.from_env(), registry.root / target,
                        args.out, archive=args.archive, progress=False,
                        timeout_s=args.timeout, old_recovery=old_recovery)  # fmt: skip
    try:
        if args.flow_stopped:
            summary = cutover(cfg)
        else:
            prepared = prepare_cutover(cfg)
    except (ArchiveError, CutoverError, ThresholdsUnavailable) as exc:
        raise CliError(f"not rolled back: {exc}") from None
    except (TimeoutError, RuntimeError, ValueError) as exc:
        raise CliError(f"not rolled back: cannot read the topics: {exc}") from None
    except OSError as exc:
        raise CliError(f"not rolled back: {cutover_files_error(exc)}") from None
    _announce(args, _event("rollback", target, current.version, by, args, impact),
              "not rolled back")  # fmt: skip
    try:
        registry.rollback(by=by, reason=args.reason, impact=impact, expect=target)
    except RegistryError as exc:
        raise CliError(f"announced on the model-events topic but not rolled back: {exc}") from None
    print(f"rollback: {target} is now current (was {current.version}), by {by}")
    if args.flow_stopped:
        print(f"cut-over back to {target} done ({summary.filled_in:,} posts scored now); start "
              f"the flow with: deepcredit serve --model current --seed {args.out} "
              "--recovery-dir NEW_EMPTY_DIR")  # fmt: skip
    else:
        print(f"prepared the cut-over back at offsets {prepared.offsets}; now stop the live "
              f"flow (SIGTERM), then run: deepcredit cutover --finish --model current --out "
              f"{args.out}, then: deepcredit serve --model current --seed {args.out} "
              "--recovery-dir NEW_EMPTY_DIR")  # fmt: skip
    return 0


def _history(args: argparse.Namespace) -> int:
    from scorer.registry import RegistryError

    if args.audit:
        return _audit(args)
    try:
        decisions = _registry(args).history()
    except RegistryError as exc:
        raise CliError(str(exc)) from None
    if not decisions:
        print(f"no promotions in {args.models_dir}")
        return 0
    for d in decisions:
        what = f"{d.action} (override)" if d.override else d.action
        print(f"{_when(d.at)}  {what:<8}  {d.version}  (was {d.previous or 'none'})  "
              f"by {d.by}: {d.reason}")  # fmt: skip
    return 0


def _audit(args: argparse.Namespace) -> int:
    from deepcredit.model_events import ModelEventsUnavailable, read_model_audit
    from deepcredit.records import Decision
    from deepcredit.settings import KafkaSettings, Topics

    topic = Topics.from_env().models_audit
    try:
        audit = read_model_audit(KafkaSettings(args.bootstrap), topic, args.timeout)
    except ModelEventsUnavailable as exc:
        raise CliError(str(exc)) from None
    if not audit.events:
        print(f"no model event on {topic}")
    for e in audit.events:
        what = f"{e.action} (override)" if e.override else e.action
        print(f"{_when(e.at)}  {what:<8}  {e.version}  (was {e.previous or 'none'})  "
              f"by {e.by}: {e.reason}")  # fmt: skip
        i = e.impact
        if i:
            moves = ", ".join(f"{d.value} {_share(i['current'], d)} -> "
                              f"{_share(i['candidate'], d)}" for d in Decision)  # fmt: skip
            print(f"    on {i['current']['posts']:,} posts: {moves}")
    if audit.skipped:
        print(f"{audit.skipped} of {audit.records} records on {topic} skipped as unusable "
              "(the warnings say why)")  # fmt: skip
    return 0


def _share(mix: dict, decision) -> str:
    return _pct(mix[decision.value] / mix["posts"] if mix["posts"] else None)
