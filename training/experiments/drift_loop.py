"""The drift loop end to end, unattended: a regime shift in a replayed clickstream, the live
flow's drift alerts, the controller deciding, waiting for labels, retraining and promoting, the
cut-over to the promoted model, and the AUC before and after (``deepcredit drift loop``; the CI
test runs it small).

The world runs on the generated stream's event time: the shift at day S; the flow's monitors
warm up until ``warmup_days``; the stream arrives in parts of ``step_days``, as a live stream
would, and everything else reacts to it, nothing is scheduled by hand:

1. The stream, from the generator with its regime shift at S (fixed seeds), written whole and
   in parts: the first up to ``warmup_days``, then one every ``step_days``. A champion trained on
   the ``window_days`` before S (pre-shift data only), promoted in a fresh registry.
2. The live flow, ``deepcredit serve --model current``, drift monitors and recovery on.
3. For each part, in order: the controller (``run_controller``, state kept in a file) reads the
   drift alerts so far and runs any decision whose due time the click archive has reached,
   while the part is replayed into the clicks topic and scored (serving never waits for
   training); then the click archiver catches up with the topic (a periodic run: it resumes
   where its manifest ends).
4. When the controller promotes: the cut-over before the next part (``state.cutover``):
   prepare the new model's states while the champion's flow still serves, SIGTERM the flow,
   finish at the clicks topic's end, ``deepcredit serve --model current --seed``; the time
   from the SIGTERM to the new flow's start is recorded as ``cutover_downtime_seconds``.
5. The record: every post's scores (one model version per post), the alerts against S, the
   decision, and both models' metrics on the same posts: the labelled posts (labels as of the
   stream's end) of the test-split users posted at or after the challenger's data ended (its
   due time), which neither model trained on (test users never train) and the gate never saw
   (it judges posts before that); for reference, the same users' posts before S.

Why waiting: at the first alerts the archive holds days of the new regime and no outcome of it (the
first loans come due a month later), so a challenger trained then learns the old world and its gate
judges old-world posts. The controller waits ``label_wait_days`` of event time, longer if its gate
has too few labels (``training.retraining.controller``). Its decisions depend on event time only, so
a run decides the same whatever the machine's speed; the parts bound how far ahead of the flow the
replay runs.

The shift: the generator's calibrated crisis plus ``GeneratorConfig.shift_term_risk``. The
calibrated crisis mostly raises the level of risk (delinquency of post-shift loans about 13% ->
40%), which a pre-shift model still ranks about as well, and what it does to a user soon shows
in their repayment record, which that model reads; a risk carried by the loan itself (longer
terms go bad) is what only a model trained after the shift can rank. Even so, at the CI size
the challenger's gain is not the new regime alone: trained on a riskier year with more
positives, it also ranks the pre-shift posts better, which is why those are reported too.
"""

from __future__ import annotations

import dataclasses
import math
import signal
import subprocess
import time
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from deepcredit.archive import archive_clicks
from deepcredit.codec import encode
from deepcredit.control import decode_control
from deepcredit.events import DAY_S, Activity
from deepcredit.kafka_io import read_to_end, watermarks
from deepcredit.records import DriftAlert, Monitor, RiskRecord, Score
from deepcredit.replay import replay
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.topics import delete_topics, ensure_topics, topic_specs
from deepcredit.waiting import wait_until
from scorer.card import TargetMetrics
from scorer.registry import PROMOTE, ModelRegistry
from state.cutover import CutoverConfig, CutoverSummary, finish_cutover, prepare_cutover
from training.benchmark.generator import generate
from training.core.dataset import labels_within
from training.experiments.config import DriftLoopConfig
from training.experiments.processes import serve_process
from training.retraining.controller import (
    STATE_FILE,
    RetrainController,
    RetrainResult,
    run_controller,
)

__all__ = [
    "DriftLoopConfig",
    "DriftLoopError",
    "DriftLoopResult",
    "MonitorFigures",
    "run_drift_loop",
]

#: Who the registry logs as promoting the champion.
BY = "drift-loop"

class DriftLoopError(RuntimeError):
    """A stage of the scenario did not complete; the message says which and where to look."""


# -- the record -------------------------------------------------------------------------------


class AlertSeen(msgspec.Struct, frozen=True, kw_only=True):
    """One drift alert of the run, placed on the stream's timeline."""

    alert_id: str
    monitor: str
    signal: str
    model_version: str
    day: float  # event day of the stream at detection
    events_after_shift: int  # stream events from S to the detection (negative: before S)
    detected_at: float  # wall clock


class MonitorFigures(msgspec.Struct, frozen=True, kw_only=True):
    """What one monitor of the champion's flow did about the shift."""

    detection_delay_days: float | None  # first alert at or after S; None: none
    detection_delay_events: int | None
    detected_by: str | None
    false_alarms: int  # alerts before S (after the warm-up)
    alerts_after_shift: int


class Retraining(msgspec.Struct, frozen=True, kw_only=True):
    """The controller's decision, with the gate's numbers (``RetrainResult.metrics``)."""

    action: str  # "promote" or "reject"
    kind: str  # of the challenger: "retrained", or "recalibrated" (the champion refitted)
    challenger: str
    champion: str | None
    reason: str
    gate: dict[str, Any]
    tried: list[dict[str, Any]]  # every candidate of the decision: kind, version, verdict
    first_alert_day: float  # event days of the stream: the decision's alerts, first and last
    decided_day: float
    due_day: float  # when it ran: the challenger's data ends here
    waited_days: float  # beyond label_wait_days, for want of labels
    seconds: float  # the controller's run, retraining included
    promoted_at: float | None  # wall clock of the promotion


class ScoreCount(msgspec.Struct, frozen=True, kw_only=True):
    """The risk-scores topic against the stream's posts."""

    posts: int
    scored: int  # posts with at least one score
    unscored: int
    mixed: int  # posts scored by more than one model version
    repeats: int  # scores beyond the first of a post (at-least-once delivery)
    by_version: dict[str, int]  # posts per model version
    during_retraining: int  # scores written while the controller ran


class DriftLoopResult(msgspec.Struct, kw_only=True):
    """Everything the scenario measured (``results/drift.json`` under "end_to_end")."""

    config: dict[str, Any]
    topic_prefix: str  # the scenario's topics (deleted at the end unless kept)
    stream: dict[str, int]  # events and posts, in all and per part
    champion: str
    alerts: list[AlertSeen]
    monitors: dict[str, MonitorFigures]  # of the champion's flow
    retraining: Retraining | None  # None: the alerts did not trigger one
    cutover: CutoverSummary | None  # None: nothing promoted, the champion served throughout
    cutover_day: float | None  # the event day of the part the cut-over followed
    scores: ScoreCount
    # period ("post_shift", "pre_shift") -> model ("champion", "challenger") -> target -> metrics
    auc: dict[str, dict[str, dict[str, TargetMetrics]]]
    eval_posts: dict[str, str]  # period -> which posts, in words
    # per stage, one after another: they add up to the run's time. "score": replay a part and
    # wait for its scores (the controller runs meanwhile); "controller": the rest of the
    # controller's run after that.
    seconds: dict[str, float]
    cutover_downtime_seconds: float  # SIGTERM to the new flow's start, a part of "cutover"

    def describe(self) -> str:
        """The summary a person reads after the run."""
        c = self.config
        lines = [f"{self.stream['events']:,} events, {self.stream['posts']:,} posts of "
                 f"{c['users']:,} users in {self.stream['parts']} parts; shift at day "
                 f"{c['shift_at_day']:g}"]  # fmt: skip
        for name, m in self.monitors.items():
            found = ("no alert after the shift" if m.detection_delay_days is None else
                     f"first alert {m.detection_delay_days:.1f} days "
                     f"({m.detection_delay_events:,} events) after the shift, on "
                     f"{m.detected_by}")  # fmt: skip
            lines.append(f"  {name:<12} {found}; {m.alerts_after_shift} after the shift, "
                         f"{m.false_alarms} false alarms before it")  # fmt: skip
        r = self.retraining
        lines.append("no retraining" if r is None else
                     f"decided at day {r.decided_day:g} (alerts from day {r.first_alert_day:g}), "
                     f"run at day {r.due_day:g} (waited {r.waited_days:g} days for labels): "
                     f"{r.action} {r.challenger} (champion {r.champion}) after {r.seconds:.1f} s: "
                     f"{r.reason}")  # fmt: skip
        if r is not None:
            lines += [f"  also {t['action']} {t['version']}: {t['reason']}" for t in r.tried
                      if t["version"] != r.challenger]  # fmt: skip
        if self.cutover is not None:
            lines.append(f"cut-over at the clicks topic's end after day {self.cutover_day:g}")
        s = self.scores
        versions = ", ".join(f"{v} {n:,}" for v, n in s.by_version.items())
        lines.append(f"scores: {s.scored:,} of {s.posts:,} posts ({versions}); {s.unscored} "
                     f"unscored, {s.mixed} with two versions, {s.during_retraining:,} written "
                     "while the controller ran")  # fmt: skip
        for period, models in self.auc.items():
            lines.append(f"AUC, {self.eval_posts[period]}:")
            for who, targets in models.items():
                row = "  ".join(f"{t} {m.auc:.4f} (n={m.n:,}, positives={m.positives:,})"
                                for t, m in targets.items())  # fmt: skip
                lines.append(f"  {who:<10} {row or '-'}")
        return "\n".join(lines)


# -- the scenario -----------------------------------------------------------------------------


def run_drift_loop(
    config: DriftLoopConfig,
    kafka: KafkaSettings,
    prefix: str,
    folder: Path,
    *,
    keep_topics: bool = False,
    progress: bool = False,
) -> DriftLoopResult:
    """Run the scenario (the module's steps) on new topics named ``prefix`` + our names, its
    files under ``folder``. The topics are deleted once the record is read (everything they
    held that the record needs is in it), unless ``keep_topics``, or the run failed (then they
    stay for a look)."""
    from training.core.model import ModelConfig
    from training.core.pipeline import train_model

    topics = Topics.from_prefix(prefix)
    ensure_topics(kafka, topic_specs(topics, partitions=config.partitions))
    if any(high for _, high in watermarks(kafka, topics.clicks).values()):
        raise DriftLoopError(f"{topics.clicks} is not empty: give the scenario a new prefix")
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = defaultdict(float)
    downtime = 0.0
    stage = _Stages(seconds, progress)
    with stage("generate"):  # 1.
        stream = _write_stream(config, folder)
    registry = ModelRegistry(folder / "models")
    registry.root.mkdir(exist_ok=True)
    with stage("train-champion"):
        model_config = ModelConfig(hidden_size=config.hidden_size,
                                   use_aggregates=config.use_aggregates)
        card = train_model(stream.champion, registry.root, model_config,
                           config.controller().train_config(), progress=progress)  # fmt: skip
        registry.promote(card.version, by=BY, reason="the champion: trained on the "
                         f"{config.window_days:g} days before the shift")  # fmt: skip
    archive = folder / "archive"
    controller = RetrainController(config.controller())
    judged: list[tuple[RetrainResult, float, float]] = []  # with the controller's wall clock
    summary, cutover_day, flows = None, None, _Flows(kafka, topics, folder, registry.root, config)
    with flows, ThreadPoolExecutor(1) as pool:
        flows.start("recovery-0")  # 2.
        for k, part in enumerate(stream.parts):  # 3.
            started = time.time()
            deciding = pool.submit(run_controller, controller, archive, registry, kafka,
                                   topics, until_end=True, group_id=f"{topics.clicks}-controller",
                                   state_path=folder / STATE_FILE,
                                   progress=progress)  # fmt: skip
            with stage("score"):  # the controller runs meanwhile, in its thread
                _send(part, kafka, topics)
                flows.wait_for_scores(stream.posts_through(k + 1))
            with stage("controller"):  # what is left of its run once the part is scored
                results = deciding.result()
            judged.extend((r, started, time.time()) for r in results)
            if any(r.action == PROMOTE for r in results):  # 4.
                with stage("cutover"):
                    seed = folder / f"seed-{len(judged)}"
                    plan = CutoverConfig(kafka, topics, registry.current_path(), seed,
                                         archive=archive, progress=progress,
                                         old_recovery=flows.recovery)  # fmt: skip
                    prepare_cutover(plan)  # the champion's flow still serves
                    down = time.perf_counter()
                    flows.stop()
                    summary = finish_cutover(plan)
                    flows.start(f"recovery-{len(judged)}", "--seed", str(seed))
                    downtime += time.perf_counter() - down
                    cutover_day = stream.cut_days[k]
            with stage("archive"):
                archive_clicks(kafka, topics.clicks, archive, until_end=True)
        flows.stop()
    with stage("record"):  # 5.
        retraining = _retraining(judged, registry, config) if judged else None
        alerts = [_place(a, stream, config) for a in _alerts(kafka, topics.drift_alerts)]
        window = (judged[0][1], judged[0][2]) if judged else (math.inf, -math.inf)
        scores = _count(_scores(kafka, topics.risk_scores), stream, *window)
        models = {"champion": card.version}
        if retraining is not None:
            models["challenger"] = retraining.challenger
            models |= {t["kind"]: t["version"] for t in retraining.tried
                       if t["version"] != retraining.challenger}  # the other candidate
        after_day = retraining.due_day if retraining is not None else config.shift_at_day
        auc, eval_posts = _aucs(stream.full, registry, models, config, after_day)
    if not keep_topics:
        delete_topics(kafka, topics.names())
    champion_alerts = [a for a in alerts if a.model_version == card.version]
    return DriftLoopResult(
        config=dataclasses.asdict(config),
        topic_prefix=prefix,
        stream=stream.sizes(),
        champion=card.version,
        alerts=alerts,
        monitors={m.value: _figures(m, champion_alerts, config) for m in Monitor},
        retraining=retraining,
        cutover=summary,
        cutover_day=cutover_day,
        scores=scores,
        auc=auc,
        eval_posts=eval_posts,
        seconds={k: round(v, 1) for k, v in seconds.items()},
        cutover_downtime_seconds=round(downtime, 2),
    )


def _retraining(judged: list[tuple[RetrainResult, float, float]], registry: ModelRegistry,
                config: DriftLoopConfig) -> Retraining:  # fmt: skip
    """The first decision the controller judged (the scenario's cool-down allows one)."""
    r, started, ended = judged[0]
    d = r.metrics["decision"]

    def day(ts: float) -> float:
        return round((ts - config.ts(0.0)) / DAY_S, 2)

    return Retraining(action=r.action, kind=r.metrics.get("kind", "retrained"),
                      challenger=r.challenger or "", champion=r.champion, reason=r.reason,
                      gate=r.metrics, tried=r.tried,
                      first_alert_day=day(d["since_ts"]), decided_day=day(d["decided_ts"]),
                      due_day=day(d["due_ts"]),
                      waited_days=d["waited_days"], seconds=round(ended - started, 1),
                      promoted_at=r.decision.at if r.action == PROMOTE and r.decision
                      else None)  # fmt: skip


class _Stages:
    """Adds each stage's time to ``seconds`` (a stage may run many times); with ``progress``,
    says when each one ends."""

    def __init__(self, seconds: dict[str, float], progress: bool) -> None:
        self.seconds, self.progress = seconds, progress

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        took = time.perf_counter() - started
        self.seconds[name] += took
        if self.progress:
            print(f"{name}: {took:.1f} s", flush=True)


# -- 1. the stream ----------------------------------------------------------------------------


@dataclass
class _Stream:
    """The generated stream on disk, whole and in parts, with what the record needs of it."""

    full: Path
    champion: Path  # the champion's training data: the window before S
    parts: list[Path]  # in order, each ending at the event time of the same index in cuts
    cut_days: list[float]
    cuts: list[float]  # event times
    shift: float  # event time
    ts: list[float]  # every event's time, in stream order (non-decreasing)
    post_ts: dict[str, float]  # post event id -> event time

    def posts_through(self, parts: int) -> int:
        """Posts in the first ``parts`` parts."""
        bound = self.cuts[parts - 1] if parts < len(self.cuts) else math.inf
        return sum(t < bound for t in self.post_ts.values())

    def events_between(self, start: float, end: float) -> int:
        return bisect_left(self.ts, end) - bisect_left(self.ts, start)

    def sizes(self) -> dict[str, int]:
        return {"events": len(self.ts), "posts": len(self.post_ts), "parts": len(self.parts),
                "events_before_shift": self.events_between(-math.inf, self.shift),
                "events_after_shift": self.events_between(self.shift, math.inf)}  # fmt: skip


def _write_stream(config: DriftLoopConfig, folder: Path) -> _Stream:
    shift = config.ts(config.shift_at_day)
    champion_from = shift - config.window_days * DAY_S
    cut_days = config.cuts()
    cuts = [config.ts(d) for d in cut_days]
    paths = [folder / "stream.jsonl", folder / "champion.jsonl"]
    parts = [folder / "parts" / f"part-{k:03d}.jsonl" for k in range(len(cuts))]
    parts[0].parent.mkdir(exist_ok=True)
    ts: list[float] = []
    post_ts: dict[str, float] = {}
    with ExitStack() as stack:
        full, champion = (stack.enter_context(open(p, "wb")) for p in paths)
        out = [stack.enter_context(open(p, "wb")) for p in parts]
        for event in generate(config.generator()):
            line = encode(event) + b"\n"
            full.write(line)
            if champion_from <= event.ts < shift:
                champion.write(line)
            out[min(bisect_right(cuts, event.ts), len(out) - 1)].write(line)
            ts.append(event.ts)
            if event.activity is Activity.POST:
                post_ts[event.event_id] = event.ts
    return _Stream(paths[0], paths[1], parts, cut_days, cuts, shift, ts, post_ts)


def _send(path: Path, kafka: KafkaSettings, topics: Topics) -> None:
    replay(path, kafka, topics.clicks, progress=False)


# -- 2., 5. the live flow ---------------------------------------------------------------------


class _Flows:
    """The one ``deepcredit serve`` process of the moment: started, waited on, stopped; killed
    on the way out if a stage failed."""

    def __init__(self, kafka: KafkaSettings, topics: Topics, folder: Path, models: Path,
                 config: DriftLoopConfig) -> None:  # fmt: skip
        self.kafka, self.topics, self.folder, self.config = kafka, topics, folder, config
        self.models = models
        self.log = folder / "serve.log"
        self._proc: subprocess.Popen | None = None
        self.recovery: Path | None = None  # the recovery folder of the flow started last

    def start(self, recovery: str, *more: str) -> None:
        self.recovery = self.folder / recovery
        args = ["--model", "current", "--models-dir", str(self.models), "--recovery-dir",
                str(self.recovery), "--metrics-port", "0", "--drift-warmup-days",
                f"{self.config.warmup_days:g}", *more]  # fmt: skip
        self._proc = serve_process(self.kafka, self.topics, args, self.log)

    def wait_for_scores(self, count: int) -> None:
        """Until the risk-scores topic holds ``count`` messages (one per post so far: a score or
        a not_scored record)."""
        n = 0

        def enough() -> bool:
            nonlocal n
            n = sum(high for _, high in watermarks(self.kafka, self.topics.risk_scores).values())
            if n < count and (self._proc is None or self._proc.poll() is not None):
                raise DriftLoopError(f"the flow stopped after {n:,} of {count:,} scores: see "
                                     f"{self.log}")  # fmt: skip
            return n >= count

        try:
            wait_until(enough, self.config.timeout_s, 0.25)
        except TimeoutError:
            raise DriftLoopError(f"{n:,} of {count:,} scores after {self.config.timeout_s:g} s: "
                                 f"see {self.log}") from None  # fmt: skip

    def stop(self) -> None:
        """SIGTERM, the clean stop: the flow finishes its epoch and exits 0."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        if proc.wait(60) != 0:
            raise DriftLoopError(f"the flow exited with {proc.returncode} on SIGTERM: see "
                                 f"{self.log}")  # fmt: skip

    def __enter__(self) -> _Flows:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(30)


# -- 6. the record ----------------------------------------------------------------------------


def _alerts(kafka: KafkaSettings, topic: str) -> list[DriftAlert]:
    """The usable alerts on ``topic``; any other record is skipped (``deepcredit.control``)."""
    return [alert for m in read_to_end(kafka, topic)
            if (alert := decode_control(m, DriftAlert)) is not None]  # fmt: skip


def _scores(kafka: KafkaSettings, topic: str) -> list[Score]:
    """The scores on the risk-scores topic (its not_scored records left out)."""
    decoder = msgspec.json.Decoder(RiskRecord)
    return [r for m in read_to_end(kafka, topic)
            if isinstance(r := decoder.decode(m.value()), Score)]  # fmt: skip


def _place(alert: DriftAlert, stream: _Stream, config: DriftLoopConfig) -> AlertSeen:
    shift = stream.cuts[0]
    after = (stream.events_between(shift, alert.event_ts) if alert.event_ts >= shift
             else -stream.events_between(alert.event_ts, shift))  # fmt: skip
    return AlertSeen(alert_id=alert.alert_id, monitor=alert.monitor.value, signal=alert.signal,
                     model_version=alert.model_version,
                     day=round((alert.event_ts - config.ts(0.0)) / DAY_S, 2),
                     events_after_shift=after, detected_at=alert.detected_at)  # fmt: skip


def _figures(monitor: Monitor, alerts: list[AlertSeen], config: DriftLoopConfig) -> MonitorFigures:
    mine = [a for a in alerts if a.monitor == monitor.value]
    after = [a for a in mine if a.day >= config.shift_at_day]
    first = min(after, key=lambda a: a.day, default=None)
    return MonitorFigures(
        detection_delay_days=None if first is None else round(first.day - config.shift_at_day, 2),
        detection_delay_events=None if first is None else first.events_after_shift,
        detected_by=None if first is None else first.signal,
        false_alarms=len(mine) - len(after),
        alerts_after_shift=len(after),
    )


def _count(scores: list[Score], stream: _Stream, started: float, ended: float) -> ScoreCount:
    versions: dict[str, list[str]] = defaultdict(list)
    for s in scores:
        versions[s.event_id].append(s.model_version)
    posts = set(stream.post_ts)
    scored = posts & set(versions)
    return ScoreCount(
        posts=len(posts),
        scored=len(scored),
        unscored=len(posts - scored),
        mixed=sum(len(set(v)) > 1 for v in versions.values()),
        repeats=len(scores) - len(versions),
        by_version=dict(Counter(v[0] for v in versions.values())),
        during_retraining=sum(started <= s.scored_at <= ended for s in scores),
    )


def _aucs(
    events: Path, registry: ModelRegistry, models: dict[str, str], config: DriftLoopConfig,
    after_day: float,
) -> tuple[dict[str, dict[str, dict[str, TargetMetrics]]], dict[str, str]]:
    """Each model's metrics on the test-split users' labelled posts of each period (after
    ``after_day``: the challenger's data end; before the shift), every user's whole history as
    the live flow has it, labels as known at the stream's end."""
    from training.core.artifact import load_model
    from training.core.eventlog import load_sequences
    from training.core.train import evaluate, split

    seq, _ = load_sequences(events, progress=False)
    users = split(seq, config.controller().train_config()).test
    periods = {
        "post_shift": (config.ts(after_day), math.inf,
                       f"posts at or after day {after_day:g} (the retraining's due day: the "
                       "challenger's data ends there) of the test-split users"),
        "pre_shift": (-math.inf, config.ts(config.shift_at_day),
                      f"posts before day {config.shift_at_day:g} (the shift) of the test-split "
                      "users"),
    }  # fmt: skip
    loaded = {who: load_model(registry.root / version)[0] for who, version in models.items()}
    auc = {}
    for period, (start, end, _) in periods.items():
        within = dataclasses.replace(seq, labels=labels_within(seq, start, end))
        auc[period] = {who: evaluate(model, within, users) for who, model in loaded.items()}
    words = {p: f"{w} ({len(users)} users, labels as of day {config.horizon_days:g})"
             for p, (_, _, w) in periods.items()}  # fmt: skip
    return auc, words
