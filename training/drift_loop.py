"""The drift loop end to end, unattended: a regime shift in a replayed clickstream, the live
flow's drift alerts, the controller's retraining and promotion, the cut-over to the promoted
model, and the AUC before and after (``deepcredit drift loop``; the CI test runs it small).

The timeline is in event days of the generated stream (``DriftLoopConfig``): the shift at S,
the controller's run at R, the cut-over at C, the end at E.

1. The world: a stream from the generator with its regime shift at S (fixed seeds), cut at R
   and C; a champion trained on the ``window_days`` before S (pre-shift data only), promoted in
   a fresh registry.
2. The live flow, ``deepcredit serve --model current``, drift monitors on (their warm-up ends
   before S), recovery on; the stream before R is replayed into the clicks topic and every
   post waits for its score.
3. The click archiver catches up with the topic (a periodic run: it resumes where its manifest
   ends).
4. The controller consumes the drift-alerts topic to its end (``run_controller``): K alerts
   trigger a retraining on the archive's last ``window_days`` (ending at R), challenger and
   champion are judged on the latest labelled posts of the test-split users, the challenger is
   promoted or rejected. Meanwhile [R, C) is replayed and scored by the champion's flow:
   serving does not wait for training.
5. Cut-over, if the challenger was promoted: SIGTERM the flow, ``dataflow.cutover`` to the
   current model at the clicks topic's end, ``deepcredit serve --model current --seed``. The
   rest of the stream is replayed and scored.
6. The record: every post's scores (one model version per post), the alerts against S, the
   decision, and both models' AUC on the same posts: the labelled posts (labels as of E) of the
   test-split users posted at or after R, which neither model trained on (test users never
   train; the challenger's data ends at R) and the gate never saw (it judges posts before R);
   for reference, the same users' posts before S.

Why the controller runs at R and not at the first alert: at the alert the archive holds days of
the new regime and no outcome of it (the first loans come due a month later), so a challenger
trained then learns the old world and its gate judges old-world posts. R = S + 180 days lets
half a year of post-shift outcomes in; the alerts it acts on were raised within weeks of S
(``MonitorFigures``). The archiver runs at phase ends, not continuously, so the training window
is the same on every run: with one clicks partition the whole run is deterministic but for
wall-clock times and the flow's batching.

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
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from dataflow.cutover import CutoverConfig, CutoverSummary, cutover
from dataflow.serve import serve_process
from deepcredit.codec import encode
from deepcredit.events import Activity
from deepcredit.kafka_io import read_to_end, watermarks
from deepcredit.records import DriftAlert, Monitor, Score
from deepcredit.replay import replay
from deepcredit.settings import KafkaSettings, Topics
from deploy.topics import ensure_topics, topic_specs
from scorer.registry import PROMOTE, ModelRegistry
from training.archive import archive_clicks
from training.controller import ControllerConfig, RetrainController, labels_within, run_controller
from training.evaluation import TargetMetrics
from training.generator import generate
from training.generator_config import DEFAULT_START_TS, GeneratorConfig
from training.outcomes import DAY_S

__all__ = [
    "DriftLoopConfig",
    "DriftLoopError",
    "DriftLoopResult",
    "MonitorFigures",
    "run_drift_loop",
]

#: Who the registry logs as promoting the champion.
BY = "drift-loop"

_R = TypeVar("_R", DriftAlert, Score)


class DriftLoopError(RuntimeError):
    """A stage of the scenario did not complete; the message says which and where to look."""


@dataclass(frozen=True)
class DriftLoopConfig:
    """The scenario. Defaults: the CI size, about 160,000 events of 300 users over three years
    (the drift measurement's timeline: shift at day 730)."""

    # the stream (training.generator)
    users: int = 300
    seed: int = 0
    horizon_days: float = 1095.0
    shift_at_day: float = 730.0  # S
    retrain_at_day: float = 910.0  # R: the controller runs; its window ends here
    cutover_at_day: float = 940.0  # C: the part [R, C) is scored while the controller runs
    shift_term_risk: float = 2.0  # GeneratorConfig's: in the crisis, longer loans go bad
    # Partitions of the clicks topic. The stream is replayed as fast as the broker takes it, a
    # backlog the flow reads partition by partition, each at its own pace: with several, the
    # monitors see the partitions' clicks days apart in event time, a drift of its own (with
    # three, the first alert came 81 days after the shift instead of 12). One keeps event order.
    partitions: int = 1
    # The flow's drift monitors: the population matures until about day 540 and keeps drifting
    # slowly (README, "Drift monitors"), which ADWIN flags at this size too (day 684 with this
    # stream), so the warm-up ends 30 days before S.
    warmup_days: float = 700.0
    # the controller (training.controller.ControllerConfig)
    alerts_needed: int = 3
    window_days: float = 365.0  # champion and challenger each train on this much event time
    eval_days: float = 90.0
    min_auc_gain: float = 0.005
    # both models (training.model.ModelConfig, training.train.TrainConfig)
    hidden_size: int = 8
    epochs: int = 5
    batch_users: int = 16
    lr: float = 3e-3
    train_seed: int = 0
    timeout_s: float = 300.0  # most seconds the flow may take to score one part

    def __post_init__(self) -> None:
        days = (self.shift_at_day, self.retrain_at_day, self.cutover_at_day, self.horizon_days)
        if not 0.0 < days[0] < days[1] <= days[2] < days[3]:
            raise ValueError("the timeline needs 0 < shift_at_day < retrain_at_day <= "
                             f"cutover_at_day < horizon_days, got {days}")  # fmt: skip
        if self.partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {self.partitions}")
        if not 0.0 <= self.warmup_days < self.shift_at_day:
            raise ValueError("warmup_days must end before the shift (a warm-up past it hides "
                             "the shift)")  # fmt: skip
        self.generator()  # validates users and seed

    def ts(self, day: float) -> float:
        """Event time of a day of the stream."""
        return DEFAULT_START_TS + day * DAY_S

    def generator(self) -> GeneratorConfig:
        return GeneratorConfig(users=self.users, seed=self.seed, horizon_days=self.horizon_days,
                               shift_at_ts=self.ts(self.shift_at_day),
                               shift_term_risk=self.shift_term_risk)  # fmt: skip

    def controller(self) -> ControllerConfig:
        return ControllerConfig(alerts_needed=self.alerts_needed, window_days=self.window_days,
                                eval_days=self.eval_days, min_auc_gain=self.min_auc_gain,
                                hidden_size=self.hidden_size, epochs=self.epochs,
                                batch_users=self.batch_users, lr=self.lr,
                                seed=self.train_seed)  # fmt: skip


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
    challenger: str
    champion: str | None
    reason: str
    gate: dict[str, Any]
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
    topic_prefix: str
    stream: dict[str, int]  # events and posts, in all and per part
    champion: str
    alerts: list[AlertSeen]
    monitors: dict[str, MonitorFigures]  # of the champion's flow
    retraining: Retraining | None  # None: the alerts did not trigger one
    cutover: CutoverSummary | None  # None: nothing promoted, the champion served throughout
    scores: ScoreCount
    # period ("post_shift", "pre_shift") -> model ("champion", "challenger") -> target -> metrics
    auc: dict[str, dict[str, dict[str, TargetMetrics]]]
    eval_posts: dict[str, str]  # period -> which posts, in words
    seconds: dict[str, float]  # per stage

    def describe(self) -> str:
        """The summary a person reads after the run."""
        c = self.config
        lines = [f"{self.stream['events']:,} events, {self.stream['posts']:,} posts of "
                 f"{c['users']:,} users; shift at day {c['shift_at_day']:g}, controller at day "
                 f"{c['retrain_at_day']:g}, cut-over at day {c['cutover_at_day']:g}"]  # fmt: skip
        for name, m in self.monitors.items():
            found = ("no alert after the shift" if m.detection_delay_days is None else
                     f"first alert {m.detection_delay_days:.1f} days "
                     f"({m.detection_delay_events:,} events) after the shift, on "
                     f"{m.detected_by}")  # fmt: skip
            lines.append(f"  {name:<12} {found}; {m.alerts_after_shift} after the shift, "
                         f"{m.false_alarms} false alarms before it")  # fmt: skip
        r = self.retraining
        lines.append("no retraining" if r is None else
                     f"{r.action} {r.challenger} (champion {r.champion}) after {r.seconds:.1f} s: "
                     f"{r.reason}")  # fmt: skip
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
    progress: bool = False,
) -> DriftLoopResult:
    """Run the scenario (the module's steps) on new topics named ``prefix`` + our names, its
    files under ``folder``."""
    from training.model import ModelConfig
    from training.pipeline import train_model

    topics = Topics.from_prefix(prefix)
    ensure_topics(kafka, topic_specs(topics, partitions=config.partitions))
    if any(high for _, high in watermarks(kafka, topics.clicks).values()):
        raise DriftLoopError(f"{topics.clicks} is not empty: give the scenario a new prefix")
    folder.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    stage = _Stages(seconds, progress)
    with stage("generate"):  # 1.
        stream = _write_stream(config, folder)
    registry = ModelRegistry(folder / "models")
    registry.root.mkdir(exist_ok=True)
    with stage("train-champion"):
        model_config = ModelConfig(hidden_size=config.hidden_size)
        card = train_model(stream.champion, registry.root, model_config,
                           config.controller().train_config(), progress=progress)  # fmt: skip
        registry.promote(card.version, by=BY, reason="the champion: trained on the "
                         f"{config.window_days:g} days before the shift")  # fmt: skip
    archive = folder / "archive"
    flows = _Flows(kafka, topics, folder, registry.root, config)
    with flows:
        with stage("score-to-controller"):  # 2.
            flows.start("recovery-champion")
            _send(stream.parts[0], kafka, topics)
            flows.wait_for_scores(stream.posts_through(1))
        with stage("archive"):  # 3.
            archive_clicks(kafka, topics.clicks, archive, until_end=True)
        with stage("controller"), ThreadPoolExecutor(1) as pool:  # 4.
            started = time.time()
            feeding = pool.submit(_send, stream.parts[1], kafka, topics)
            results = run_controller(RetrainController(config.controller()), archive, registry,
                                     kafka, topics, until_end=True,
                                     group_id=f"{topics.clicks}-controller",
                                     progress=progress)  # fmt: skip
            ended = time.time()
            feeding.result()
            flows.wait_for_scores(stream.posts_through(2))
        promoted = bool(results) and results[-1].action == PROMOTE
        summary = None
        if promoted:
            with stage("cutover"):  # 5.
                flows.stop()
                summary = cutover(CutoverConfig(kafka, topics, registry.current_path(),
                                                folder / "seed", archive=archive,
                                                progress=progress))  # fmt: skip
                flows.start("recovery-challenger", "--seed", str(folder / "seed"))
        with stage("score-rest"):
            _send(stream.parts[2], kafka, topics)
            flows.wait_for_scores(stream.posts_through(3))
            flows.stop()
    with stage("record"):  # 6.
        retraining = None
        if results:
            r = results[-1]
            retraining = Retraining(action=r.action, challenger=r.challenger,
                                    champion=r.champion, reason=r.reason, gate=r.metrics,
                                    seconds=round(ended - started, 1),
                                    promoted_at=r.decision.at if promoted else None)  # fmt: skip
        alerts = [_place(a, stream, config) for a in _read(kafka, topics.drift_alerts, DriftAlert)]
        scores = _count(_read(kafka, topics.risk_scores, Score), stream, started, ended)
        models = {"champion": card.version}
        if retraining is not None:
            models["challenger"] = retraining.challenger
        auc, eval_posts = _aucs(stream.full, registry, models, config)
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
        scores=scores,
        auc=auc,
        eval_posts=eval_posts,
        seconds=seconds,
    )


class _Stages:
    """Times each stage into ``seconds``; with ``progress``, says when each one ends."""

    def __init__(self, seconds: dict[str, float], progress: bool) -> None:
        self.seconds, self.progress = seconds, progress

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)
        if self.progress:
            print(f"{name}: {self.seconds[name]:.1f} s", flush=True)


# -- 1. the stream ----------------------------------------------------------------------------


@dataclass
class _Stream:
    """The generated stream on disk, whole and in parts, with what the record needs of it."""

    full: Path
    champion: Path  # the champion's training data: the window before S
    parts: tuple[Path, Path, Path]  # before R, [R, C), from C on
    ts: list[float]  # every event's time, in stream order (non-decreasing)
    post_ts: dict[str, float]  # post event id -> event time
    cuts: tuple[float, float, float]  # S, R, C as event times

    def posts_through(self, part: int) -> int:
        """Posts in the first ``part`` parts (3: all)."""
        bound = (*self.cuts[1:], math.inf)[part - 1]
        return sum(t < bound for t in self.post_ts.values())

    def events_between(self, start: float, end: float) -> int:
        return bisect_left(self.ts, end) - bisect_left(self.ts, start)

    def sizes(self) -> dict[str, int]:
        s, r, c = self.cuts
        return {"events": len(self.ts), "posts": len(self.post_ts),
                "events_before_shift": self.events_between(-math.inf, s),
                "events_after_shift": self.events_between(s, math.inf),
                "events_before_controller": self.events_between(-math.inf, r),
                "events_while_controller": self.events_between(r, c),
                "events_after_cutover": self.events_between(c, math.inf),
                "posts_before_controller": self.posts_through(1),
                "posts_while_controller": self.posts_through(2) - self.posts_through(1),
                "posts_after_cutover": self.posts_through(3) - self.posts_through(2)}  # fmt: skip


def _write_stream(config: DriftLoopConfig, folder: Path) -> _Stream:
    s, r, c = (config.ts(d) for d in (config.shift_at_day, config.retrain_at_day,
                                      config.cutover_at_day))  # fmt: skip
    champion_from = s - config.window_days * DAY_S
    names = ("stream", "champion", "part-1", "part-2", "part-3")
    paths = [folder / f"{name}.jsonl" for name in names]
    ts: list[float] = []
    post_ts: dict[str, float] = {}
    with ExitStack() as stack:
        full, champion, *parts = (stack.enter_context(open(p, "wb")) for p in paths)
        for event in generate(config.generator()):
            line = encode(event) + b"\n"
            full.write(line)
            if champion_from <= event.ts < s:
                champion.write(line)
            parts[(event.ts >= r) + (event.ts >= c)].write(line)
            ts.append(event.ts)
            if event.activity is Activity.POST:
                post_ts[event.event_id] = event.ts
    return _Stream(paths[0], paths[1], (paths[2], paths[3], paths[4]), ts, post_ts, (s, r, c))


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

    def start(self, recovery: str, *more: str) -> None:
        args = ["--model", "current", "--models-dir", str(self.models), "--recovery-dir",
                str(self.folder / recovery), "--metrics-port", "0", "--drift-warmup-days",
                f"{self.config.warmup_days:g}", *more]  # fmt: skip
        self._proc = serve_process(self.kafka, self.topics, args, self.log)

    def wait_for_scores(self, count: int) -> None:
        """Until the risk-scores topic holds ``count`` messages (one per post so far)."""
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            n = sum(high for _, high in watermarks(self.kafka, self.topics.risk_scores).values())
            if n >= count:
                return
            if self._proc is None or self._proc.poll() is not None:
                raise DriftLoopError(f"the flow stopped after {n:,} of {count:,} scores: see "
                                     f"{self.log}")  # fmt: skip
            if time.monotonic() > deadline:
                raise DriftLoopError(f"{n:,} of {count:,} scores after "
                                     f"{self.config.timeout_s:g} s: see {self.log}")  # fmt: skip
            time.sleep(0.25)

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


def _read(kafka: KafkaSettings, topic: str, kind: type[_R]) -> list[_R]:
    decoder = msgspec.json.Decoder(kind)
    return [decoder.decode(m.value()) for m in read_to_end(kafka, topic)]


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
    events: Path, registry: ModelRegistry, models: dict[str, str], config: DriftLoopConfig
) -> tuple[dict[str, dict[str, dict[str, TargetMetrics]]], dict[str, str]]:
    """Each model's metrics on the test-split users' labelled posts of each period, every user's
    whole history as the live flow has it, labels as known at the stream's end."""
    from training.artifact import load_model
    from training.eventlog import load_sequences
    from training.train import evaluate, split

    seq, _ = load_sequences(events, progress=False)
    users = split(seq, config.controller().train_config()).test
    periods = {
        "post_shift": (config.ts(config.retrain_at_day), math.inf,
                       f"posts at or after day {config.retrain_at_day:g} (the controller's day, "
                       "after the shift) of the test-split users"),
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
