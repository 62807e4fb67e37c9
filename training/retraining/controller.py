"""The retraining controller: drift alerts in, a challenger trained once the labels allow,
promoted only if it wins.

Everything runs on event time (the alerts' ``event_ts``, the click archive's clock), never on
wall clock: a replay, a backlog or a catch-up after an outage decides as the live stream did.

The decision core is pure (``RetrainController.on_alert``, ``due``, ``postpone``, ``done``):

- Debounce. A retraining is decided when ``alerts_needed`` distinct alerts (by ``alert_id``:
  the topic is at-least-once) fall within ``within_days`` of event time, or at once when its
  monitor is one of ``immediate_monitors``, since one detector firing once is weak evidence
  (README, "Drift monitors": the performance monitor alone is indistinguishable from noise).
  An alert more than ``within_days`` older than the newest one seen counts for nothing.
- Wait for labels. A decision taken at event time T is due at T + ``label_wait_days``. At T
  the archive holds days of the new regime and no outcome of it (a loan's outcome is known
  weeks to months after its post), so a challenger trained then learns the old world and its
  gate judges old-world posts. When due (the archive's clock has reached it), the gate's posts
  — those since the decision's first alert, of the held-out users, labels as known then — must
  hold ``min_eval_labels`` positives and as many negatives of each target; if not, the
  decision waits ``recheck_days`` more, ``max_wait_days`` at most, and is then judged on what
  is measurable.
- One at a time. Alerts while a decision is pending count for nothing (the retraining will see
  their data); after one, ``cooldown_days`` from its due time pass before the next decision.
- The current model only. An alert counts toward a decision about the model it was raised
  against (``DriftAlert.model_version``), so only the champion's alerts count: once another
  model is current (promoted by this controller or by hand), the alerts counted so far are
  dropped, late alerts of the replaced model count for nothing, and a pending decision about
  it is withdrawn (``serving``). Without a champion (an empty registry) every alert counts.

>>> from deepcredit.records import DriftAlert, Monitor
>>> def alert(i, day):
...     return DriftAlert(alert_id=f"a{i}", monitor=Monitor.INPUTS, detector="ADWIN",
...                       signal="share_post", model_version="m", event_ts=day * DAY_S,
...                       events_seen=i, detected_at=0.0)
>>> c = RetrainController(ControllerConfig(alerts_needed=2, within_days=10, label_wait_days=100))
>>> c.on_alert(alert(1, 0)) is None
True
>>> c.on_alert(alert(1, 0)) is None  # the same alert again: counts once
True
>>> d = c.on_alert(alert(2, 5))
>>> d.alert_ids, d.since_ts / DAY_S, d.due_ts / DAY_S
(('a1', 'a2'), 0.0, 105.0)
>>> c.on_alert(alert(3, 6)), c.due(clock_ts=50 * DAY_S)  # pending, not yet due
(None, None)
>>> c.due(clock_ts=105 * DAY_S) == d
True

``RetrainController.retrain`` then runs one decision:

1. assemble the training set: an event-time window (``window_days``) ending at the decision's
   due time (without a decision: at the newest archived event), from the click archive
   (``deepcredit.archive``), or an event file as given;
2. the gate's posts: the labelled posts since the decision's first alert (without one: of the
   last ``eval_days``) of the test-split users; too few labels and the decision waits (above);
3. train a challenger with ``training.core.pipeline.train_model`` into the registry's folder, its
   parent the champion (the current model);
4. judge both on those posts, each target measurable for both. Promote when the challenger
   ranks better: AUC higher by ``min_auc_gain`` on every target; or when it is better
   calibrated at no cost elsewhere: Brier score lower by ``min_brier_gain`` (relative) on at
   least one target, no target's Brier score higher by more than ``max_brier_loss``, no
   target's AUC lower by more than ``min_auc_gain``. Otherwise reject, and (``recalibrate``)
   4b. judge the champion recalibrated (``training.retraining.recalibrate``: the same weights, each
   target's probabilities refitted to the outcomes of the same period's *training-split*
   users) by the same rule: it ranks exactly as the champion, so only calibration can win;
5. log each verdict with its numbers, and 90% intervals of each gain from a bootstrap over
   the gate's users (reported, not used by the rule): the registry's promotions.jsonl, and a
   ``ModelEvent`` on the model-events topic when Kafka settings are given.

Why calibration counts: decisions are thresholds on probabilities. A shift that raises the
level of risk can leave a model's ranking intact while its probabilities, and every approve or
decline made with them, go wrong (the 1,000-user drift loop: delinquency Brier 0.28 for the
champion on post-shift posts, AUC unchanged). Why not the mean over targets: a gain on
delinquency must not buy a loss on default, the costlier error; so a retrained challenger
that is better on one target and worse on the other is rejected, and the recalibrated
champion, which cannot rank worse, repairs the levels instead.

No leakage in 2.: test users are chosen by a salted hash of the user id (``training.core.train.
split``), the same for any log, so the challenger never fit them nor early-stopped on them, and
neither did the champion if it was trained with the same ``test_fraction`` (checked and recorded
as ``champion_split_matches``). Labels are those known at the window's end; inputs only see the
past. A target with one class only among those posts cannot be judged and is left out; when
none can be judged the challenger is rejected.

``run_controller`` keeps the core's state (the counted alerts, the pending decision, the
cool-down) in a JSON file written aside and renamed before it commits an alert's offset, so a
restart neither forgets an alert nor counts one twice; a retraining that was logged but whose
state was not saved is recognised by its alerts in the registry's log and not run again.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from deepcredit.atomic import write_atomic
from deepcredit.events import DAY_S
from deepcredit.records import Decision, DriftAlert, ModelEvent
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from scorer.registry import PROMOTE, ModelRegistry, Promotion
from training.retraining.config import ControllerConfig

if TYPE_CHECKING:
    from deepcredit.whatif import ModelImpact
    from scorer.card import TargetMetrics
    from training.core.dataset import Sequences

__all__ = [
    "REJECT",
    "STATE_FILE",
    "WAIT",
    "ControllerConfig",
    "ControllerState",
    "RetrainController",
    "RetrainDecision",
    "RetrainResult",
    "run_controller",
]

log = logging.getLogger(__name__)

REJECT = "reject"
WAIT = "wait"  # a due decision whose gate lacks labels: it waits recheck_days more
STATE_FILE = "controller-state.json"  # in the registry's folder, by default


class RetrainDecision(msgspec.Struct, frozen=True, kw_only=True):
    """A retraining decided: why, on which alerts, and from when (event time, Unix seconds)."""

    since_ts: float  # the earliest of its alerts: the gate judges the posts from here on
    decided_ts: float  # the alert that decided it
    due_ts: float  # when it runs: decided_ts + label_wait_days, and + recheck_days per wait
    reason: str
    alert_ids: tuple[str, ...]
    waited_days: float = 0.0  # beyond label_wait_days, for want of labels
    model_version: str | None = None  # the champion its alerts were raised against, if known


class ControllerState(msgspec.Struct, kw_only=True):
    """What the core remembers between alerts (saved by ``run_controller``)."""

    clock_ts: float | None = None  # the newest alert's event time
    counted: list[tuple[float, str]] = msgspec.field(default_factory=list)  # (event_ts, id)
    seen: dict[str, float] = msgspec.field(default_factory=dict)  # id -> event_ts, in window
    cooldown_until: float | None = None
    pending: RetrainDecision | None = None
    # The champion the counted alerts were raised against (None: not known, a state file of
    # an earlier version or an empty registry).
    model_version: str | None = None


@dataclass
class RetrainResult:
    action: str  # PROMOTE, REJECT, or WAIT (nothing trained, nothing logged in the registry)
    challenger: str | None
    champion: str | None
    reason: str
    metrics: dict[str, Any]
    decision: Promotion | None  # the registry's record; None for WAIT
    events: Path
    # every candidate of the decision, in order (kind, version, action, reason); this one is
    # the promoted one, or else the retrained challenger
    tried: list[dict[str, Any]] = dataclasses.field(default_factory=list)


class RetrainController:
    """Debounces drift alerts into retraining decisions, and runs one (``retrain``)."""

    def __init__(self, config: ControllerConfig | None = None,
                 state: ControllerState | None = None) -> None:  # fmt: skip
        self.config = config or ControllerConfig()
        self.state = state or ControllerState()

    # -- the pure core ---------------------------------------------------------------------------

    def on_alert(self, alert: DriftAlert, champion: str | None = None) -> RetrainDecision | None:
        """Count one alert; the decision it completes, if any (it is then pending).
        ``champion``: the version current now (None: unknown, every alert counts)."""
        c, s = self.config, self.state
        t = alert.event_ts
        s.clock_ts = t if s.clock_ts is None else max(s.clock_ts, t)
        self.serving(champion)
        if champion is not None and alert.model_version != champion:
            log.info("alert %s of model %s ignored: %s is the current model", alert.alert_id,
                     alert.model_version, champion)  # fmt: skip
            return None
        horizon = s.clock_ts - c.within_days * DAY_S
        s.counted = [(ts, a) for ts, a in s.counted if ts >= horizon]
        s.seen = {a: ts for a, ts in s.seen.items() if ts >= horizon}
        if t < horizon or alert.alert_id in s.seen:
            return None  # stale, or redelivered (it counted, or was dropped, once already)
        s.seen[alert.alert_id] = t
        if s.pending is not None or (s.cooldown_until is not None and t < s.cooldown_until):
            return None
        s.counted.append((t, alert.alert_id))
        if alert.monitor in c.immediate_monitors:
            reason = f"{alert.monitor.value} alert on {alert.signal}"
        elif len(s.counted) >= c.alerts_needed:
            reason = f"{len(s.counted)} drift alerts within {c.within_days:g} days"
        else:
            return None
        s.pending = RetrainDecision(since_ts=min(ts for ts, _ in s.counted), decided_ts=t,
                             due_ts=t + c.label_wait_days * DAY_S, reason=reason,
                             alert_ids=tuple(a for _, a in s.counted),
                             model_version=champion)  # fmt: skip
        s.counted = []
        return s.pending

    def serving(self, champion: str | None) -> RetrainDecision | None:
        """``champion`` is the current model now (None: unknown, nothing changes). When it is
        not the model the counted alerts were raised against, they are dropped, and a pending
        decision about another model is withdrawn: returned, with no cool-down after it."""
        s = self.state
        if champion is None or champion == s.model_version:
            return None
        if s.model_version is not None:  # else they predate versions here: keep them
            s.counted = []
        s.model_version = champion
        p = s.pending
        if p is None or p.model_version in (None, champion):
            return None
        s.pending = None
        log.warning("the pending retraining decision on alerts %s of model %s is withdrawn: %s "
                    "is the current model now", ", ".join(p.alert_ids), p.model_version,
                    champion)  # fmt: skip
        return p

    def due(self, clock_ts: float) -> RetrainDecision | None:
        """The pending decision, when the data has reached its due time ``clock_ts``."""
        p = self.state.pending
        return p if p is not None and clock_ts >= p.due_ts else None

    def postpone(self) -> RetrainDecision:
        """Too few labels at the due time: wait ``recheck_days`` more."""
        p = self.state.pending
        if p is None:
            raise ValueError("no pending decision to postpone")
        more = self.config.recheck_days
        self.state.pending = msgspec.structs.replace(p, due_ts=p.due_ts + more * DAY_S,
                                                 waited_days=p.waited_days + more)  # fmt: skip
        return self.state.pending

    def may_wait(self, decision: RetrainDecision) -> bool:
        """Whether a decision short of labels may wait longer."""
        return decision.waited_days + self.config.recheck_days <= self.config.max_wait_days

    def done(self, decision: RetrainDecision) -> None:
        """The decision was judged (promoted or rejected): the cool-down runs from its due time."""
        self.state.pending = None
        until = decision.due_ts + self.config.cooldown_days * DAY_S
        self.state.cooldown_until = max(self.state.cooldown_until or until, until)

    def resume(self, history: Iterable[Promotion]) -> None:
        """After a restart: a pending decision the registry's log shows judged is done."""
        p = self.state.pending
        if p is None:
            return
        for d in history:
            if d.by == self.config.by and list(p.alert_ids) == (d.metrics or {}).get("alerts"):
                log.info("the pending decision on %s was judged before the restart: %s",
                         ", ".join(p.alert_ids), d.action)  # fmt: skip
                self.done(p)
                return

    # -- its state on disk -----------------------------------------------------------------------

    @classmethod
    def from_file(cls, config: ControllerConfig, path: Path) -> RetrainController:
        """The controller as saved at ``path`` (a fresh one when there is no such file)."""
        path = Path(path)
        if not path.is_file():
            return cls(config)
        try:
            state = msgspec.json.decode(path.read_bytes(), type=ControllerState)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{path} is not a controller state ({exc}): move it away to start "
                             "afresh") from None  # fmt: skip
        return cls(config, state)

    def save(self, path: Path) -> None:
        write_atomic(
            Path(path), msgspec.json.format(msgspec.json.encode(self.state)) + b"\n", durable=True
        )

    # -- one retraining --------------------------------------------------------------------------

    def retrain(
        self,
        source: Path,
        registry: ModelRegistry,
        *,
        decision: RetrainDecision | None = None,
        kafka: KafkaSettings | None = None,
        topics: Topics | None = None,
        progress: bool = False,
    ) -> RetrainResult:
        """Run one decision (the module's steps 1-5); a WAIT result when its gate lacks labels
        and it may still wait (nothing trained, nothing logged: ``postpone`` it)."""
        from training.core.artifact import load_model
        from training.core.dataset import labels_within
        from training.core.eventlog import load_sequences
        from training.core.model import ModelConfig
        from training.core.pipeline import train_model
        from training.core.train import split

        c = self.config
        end = None if decision is None else decision.due_ts
        events, data_window = self._assemble(Path(source), end)  # 1.
        seq, _ = load_sequences(events, progress=progress)  # 2.
        train_config = c.train_config()
        test_users = split(seq, train_config).test
        eval_end = float(seq.event_ts.max()) + 1.0 if len(seq.event_ts) else 0.0
        if decision is not None:
            eval_end = min(eval_end, decision.due_ts)
            eval_start = decision.since_ts
        else:
            eval_start = eval_end - c.eval_days * DAY_S
        recent = dataclasses.replace(seq, labels=labels_within(seq, eval_start, eval_end))
        counts = _label_counts(recent, test_users)
        evaluation = {"from_ts": eval_start, "to_ts": eval_end, "users": len(test_users),
                      "posts": _labelled(recent, test_users), "labels": counts}  # fmt: skip
        short = [t for t, n in counts.items() if min(n.values()) < c.min_eval_labels]
        if decision is not None and short and self.may_wait(decision):
            reason = (f"too few labels to judge {', '.join(short)} on the posts since the first "
                      f"alert ({counts}): waiting {c.recheck_days:g} more days")  # fmt: skip
            log.info("%s", reason)
            return RetrainResult(WAIT, None, None, reason, {"eval": evaluation}, None, events)

        champion = registry.current()
        card = train_model(
            events,
            registry.root,
            ModelConfig(hidden_size=c.hidden_size, use_aggregates=c.use_aggregates),
            train_config,
            parent_version=champion and champion.version,
            progress=progress,
        )  # 3. fmt: skip
        challenger_m, challenger_rows = _metrics(load_model(registry.root / card.version)[0],
                                                 recent, test_users)  # fmt: skip
        champion_m: dict[str, TargetMetrics] = {}
        champion_rows = None
        split_matches = None
        if champion is not None:
            model, champion_card = load_model(registry.root / champion.version)
            champion_m, champion_rows = _metrics(model, recent, test_users)
            fraction = champion_card.train_config.get("test_fraction")
            split_matches = fraction == train_config.test_fraction

        common = {
            "min_auc_gain": c.min_auc_gain,
            "min_brier_gain": c.min_brier_gain,
            "max_brier_loss": c.max_brier_loss,
            "eval": evaluation,
            "champion_split_matches": split_matches,
            "data": {"path": str(events), "sha256": card.data.sha256, "users": card.data.users,
                     **data_window},
            "alerts": list(decision.alert_ids) if decision else [],
            "decision": msgspec.to_builtins(decision) if decision else None,
        }  # fmt: skip
        champion_or_none = champion_m if champion else None
        verdict = _gate(champion_or_none, challenger_m, c.min_auc_gain, c.min_brier_gain,
                        c.max_brier_loss)  # 4. fmt: skip
        noise = {"intervals": _intervals(champion_rows, challenger_rows)} if champion else {}
        tried = [self._judged(registry, "retrained", card.version, challenger_m, champion_m,
                              champion is not None, verdict, decision, {**common, **noise},
                              kafka, topics)]  # fmt: skip
        if verdict.action == REJECT and champion is not None and c.recalibrate:  # 4b.
            from training.retraining.recalibrate import recalibrate

            fitted = recalibrate(registry.root / champion.version, events, registry.root,
                                 start_ts=eval_start, end_ts=eval_end,
                                 test_fraction=train_config.test_fraction,
                                 min_labels=c.min_eval_labels, progress=progress)  # fmt: skip
            recal_m, recal_rows = _metrics(load_model(registry.root / fitted.version)[0], recent,
                                           test_users)  # fmt: skip
            recal_verdict = _gate(champion_m, recal_m, c.min_auc_gain, c.min_brier_gain,
                                  c.max_brier_loss)  # fmt: skip
            more = {**common, "intervals": _intervals(champion_rows, recal_rows),
                    "calibration": fitted.calibration, "fitted_on": fitted.fitted_on}  # fmt: skip
            tried.append(self._judged(registry, "recalibrated", fitted.version, recal_m,
                                      champion_m, True, recal_verdict, decision, more, kafka,
                                      topics))  # fmt: skip
        final = next((t for t in tried if t.action == PROMOTE), tried[0])
        final.tried = [{"kind": t.metrics["kind"], "version": t.challenger, "action": t.action,
                        "reason": t.reason} for t in tried]  # fmt: skip
        return final

    def _judged(self, registry: ModelRegistry, kind: str, version: str,
                challenger_m: dict[str, TargetMetrics], champion_m: dict[str, TargetMetrics],
                has_champion: bool, verdict: _Verdict, decision: RetrainDecision | None,
                common: dict[str, Any], kafka: KafkaSettings | None,
                topics: Topics | None) -> RetrainResult:  # fmt: skip
        """Log one candidate's verdict (5.): the registry, and the model-events topic."""
        c = self.config
        reason = f"{kind}: {verdict.reason}"
        if decision is not None:
            reason = f"{reason} (after {decision.reason})"
        metrics = {
            "kind": kind,
            "auc": {"challenger": _field(challenger_m, "auc"),
                    "champion": _field(champion_m, "auc") if has_champion else None},
            "brier": {"challenger": _field(challenger_m, "brier"),
                      "champion": _field(champion_m, "brier") if has_champion else None},
            "gain": verdict.auc_gain,
            "brier_gain": verdict.brier_gain,
            **common,
        }  # fmt: skip
        champion = registry.current()
        if verdict.action == PROMOTE:
            impact = None
            if champion is not None and c.impact_posts > 0:
                impact = _impact(registry, champion.version, version,
                                 Path(common["data"]["path"]), c.impact_posts, kafka,
                                 topics)  # fmt: skip
            logged = registry.promote(version, by=c.by, reason=reason, metrics=metrics,
                                      impact=impact)  # fmt: skip
        else:
            logged = registry.record(REJECT, version, by=c.by, reason=reason, metrics=metrics)
        if kafka is not None:
            _publish(kafka, topics or Topics.from_env(), logged)
        log.info("%s %s: %s", verdict.action, version, reason)
        return RetrainResult(verdict.action, version, champion and champion.version, reason,
                             metrics, logged, Path(common["data"]["path"]))  # fmt: skip

    def _assemble(self, source: Path, end_ts: float | None) -> tuple[Path, dict[str, Any]]:
        from deepcredit.archive import MANIFEST_FILE, event_time_range, write_window

        if source.is_file():
            return source, {}
        if not (source / MANIFEST_FILE).is_file():
            raise FileNotFoundError(f"{source} is neither an events file nor a click archive")
        span = event_time_range(source)
        if span is None:
            raise ValueError(f"the click archive {source} holds no events yet")
        end = span[1] + 1.0 if end_ts is None else end_ts  # half-open: keep the newest event
        start = max(span[0], end - self.config.window_days * DAY_S)
        info = write_window(source, start_ts=start, end_ts=end)
        return info.path, {"from_ts": start, "to_ts": end, "lines": info.lines}


def _labelled(seq: Sequences, users) -> int:
    import numpy as np

    from training.core.dataset import user_rows

    return int(np.isfinite(seq.labels[user_rows(seq.loan_offsets, users)]).any(axis=1).sum())


def _label_counts(seq: Sequences, users) -> dict[str, dict[str, int]]:
    """Positives and negatives of each target among the labelled posts of ``users``."""
    import numpy as np

    from training.core.dataset import user_rows
    from training.core.evaluation import TARGETS

    labels = seq.labels[user_rows(seq.loan_offsets, users)]
    out = {}
    for k, t in enumerate(TARGETS):
        y = labels[:, k][np.isfinite(labels[:, k])]
        out[t] = {"positives": int(y.sum()), "negatives": int(len(y) - y.sum())}
    return out


def _metrics(model, seq: Sequences, users) -> tuple[dict[str, TargetMetrics], tuple]:
    """Per-target metrics at the labelled posts of ``users``, and the rows (labels,
    probabilities, user of each row) for ``_intervals``."""
    from training.core.evaluation import per_target
    from training.core.train import predict_rows

    y, p, row_users = predict_rows(model, seq, users)
    return per_target(y, p), (y, p, row_users)


def _intervals(champion: tuple, challenger: tuple, draws: int = 300,
               seed: int = 0) -> dict[str, dict[str, list[float]]]:  # fmt: skip
    """90% intervals of each target's AUC gain and Brier gain (challenger against champion)
    from a bootstrap over users: the gate judges a few hundred users whose loans go bad
    together, so its numbers are noisier than the count of posts suggests. Reported with the
    verdict, not used by it.

    Both row sets come from ``predict_rows`` over the same posts, in the same order."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from training.core.evaluation import TARGETS

    y, p0, users = champion
    _, p1, _ = challenger
    if len(y) == 0:
        return {}
    ids, row_user = np.unique(users, return_inverse=True)
    rng = np.random.default_rng(seed)
    out = {}
    for k, target in enumerate(TARGETS):
        known = np.isfinite(y[:, k])
        yk, a, b, u = y[known, k], p0[known, k], p1[known, k], row_user[known]
        if not 0 < yk.sum() < len(yk):
            continue
        auc_gain, brier_gain = [], []
        for _ in range(draws):
            w = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))[u]
            if w.sum() == 0 or not 0 < (w * yk).sum() < w.sum():
                continue
            b0 = np.sum(w * (a - yk) ** 2)
            auc_gain.append(roc_auc_score(yk, b, sample_weight=w)
                            - roc_auc_score(yk, a, sample_weight=w))  # fmt: skip
            brier_gain.append(1.0 - np.sum(w * (b - yk) ** 2) / b0 if b0 > 0 else 0.0)
        if auc_gain:
            out[target] = {"auc_gain": _span(auc_gain), "brier_gain": _span(brier_gain)}
    return out


def _span(draws: list[float]) -> list[float]:
    import numpy as np

    return [round(float(q), 4) for q in np.quantile(draws, [0.05, 0.95])]


def _field(metrics: dict[str, TargetMetrics], name: str) -> dict[str, float]:
    return {t: round(getattr(m, name), 6) for t, m in metrics.items()}


@dataclass(frozen=True)
class _Verdict:
    action: str
    reason: str
    auc_gain: dict[str, float]  # challenger - champion, per target judged
    brier_gain: dict[str, float]  # 1 - challenger / champion: the share of Brier score removed


def _gate(
    champion: dict[str, TargetMetrics] | None,
    challenger: dict[str, TargetMetrics],
    min_auc_gain: float,
    min_brier_gain: float,
    max_brier_loss: float,
) -> _Verdict:
    """Promote on better ranking, or on better calibration at no cost elsewhere (step 4.).

    >>> from scorer.card import TargetMetrics
    >>> def m(auc, brier):
    ...     return TargetMetrics(auc=auc, ks=0.0, brier=brier, n=100, positives=20)
    >>> champion = {"delinquent": m(0.70, 0.20), "default": m(0.80, 0.10)}
    >>> def gate(challenger):
    ...     return _gate(champion, challenger, 0.005, 0.1, 0.02)
    >>> gate({"delinquent": m(0.72, 0.20), "default": m(0.81, 0.10)}).reason
    'ranks better: AUC higher by >= 0.005 on delinquent, default'
    >>> gate({"delinquent": m(0.698, 0.15), "default": m(0.80, 0.101)}).reason
    'better calibrated: Brier score lower by >= 10% on delinquent, no target worse by more than \
2%, AUC within 0.005'
    >>> v = gate({"delinquent": m(0.75, 0.15), "default": m(0.79, 0.11)})
    >>> v.action, v.reason
    ('reject', 'AUC gain below 0.005 on default; calibration: Brier score 10% higher on default, \
AUC 0.01 lower on default')
    """
    if champion is None:
        if not challenger:
            return _Verdict(REJECT, "no target measurable in the evaluation window", {}, {})
        return _Verdict(PROMOTE, "no champion: the first model", {}, {})
    targets = [t for t in challenger if t in champion]
    auc = {t: round(challenger[t].auc - champion[t].auc, 6) for t in targets}
    brier = {t: round(1.0 - challenger[t].brier / champion[t].brier, 6) if champion[t].brier > 0
             else 0.0 for t in targets}  # fmt: skip
    if not targets:
        return _Verdict(REJECT, "no target measurable for both models in the evaluation window",
                        auc, brier)  # fmt: skip
    names = ", ".join(targets)
    if all(auc[t] >= min_auc_gain for t in targets):
        return _Verdict(PROMOTE, f"ranks better: AUC higher by >= {min_auc_gain:g} on {names}",
                        auc, brier)  # fmt: skip
    better = [t for t in targets if brier[t] >= min_brier_gain]
    worse = [t for t in targets if brier[t] < -max_brier_loss]
    ranks_worse = [t for t in targets if auc[t] < -min_auc_gain]
    if better and not worse and not ranks_worse:
        return _Verdict(PROMOTE, f"better calibrated: Brier score lower by >= "
                        f"{min_brier_gain:.0%} on {', '.join(better)}, no target worse by more "
                        f"than {max_brier_loss:.0%}, AUC within {min_auc_gain:g}", auc,
                        brier)  # fmt: skip
    short_auc = ", ".join(t for t in targets if auc[t] < min_auc_gain)
    why = [f"Brier score {-brier[t]:.0%} higher on {t}" for t in worse]
    why += [f"AUC {-auc[t]:.2g} lower on {t}" for t in ranks_worse]
    if not better:
        why.insert(0, f"no target's Brier score {min_brier_gain:.0%} lower")
    return _Verdict(REJECT, f"AUC gain below {min_auc_gain:g} on {short_auc}; calibration: "
                    f"{', '.join(why)}", auc, brier)  # fmt: skip


def _impact(registry: ModelRegistry, champion: str, challenger: str, events: Path,
            last: int, kafka: KafkaSettings | None,
            topics: Topics | None) -> ModelImpact | None:  # fmt: skip
    """Both models replayed over the training window's clicks (``scorer.impact``), their
    decisions compared on its ``last`` most recent posts at the live thresholds (the built-in
    defaults without Kafka), outcomes as known at the window's newest click."""
    from deepcredit.codec import decode_click
    from deepcredit.events import ClickEvent
    from deepcredit.jsonlines import read_lines
    from deepcredit.thresholds import DEFAULT_THRESHOLDS, ThresholdsUnavailable, read_latest
    from scorer.artifact import load_scorer
    from scorer.impact import replay_impact

    thresholds = DEFAULT_THRESHOLDS
    if kafka is not None:
        try:
            topic = (topics or Topics.from_env()).thresholds
            thresholds = read_latest(kafka, topic) or DEFAULT_THRESHOLDS
        except ThresholdsUnavailable as exc:
            log.warning("the impact of %s uses the built-in thresholds: %s", challenger, exc)
    clicks = [e for e in map(decode_click, read_lines(str(events))) if isinstance(e, ClickEvent)]
    if not clicks:
        return None
    impact = replay_impact(load_scorer(registry.root / champion),
                           load_scorer(registry.root / challenger), clicks, thresholds,
                           last=last, as_of=max(e.ts for e in clicks),
                           source=f"the training window {events.name}")  # fmt: skip
    if impact is not None:
        moves = ", ".join(f"{d.value} {impact.shift_points(d):+.1f} points" for d in Decision)
        log.info("promoting %s over %s moves on %d posts: %s", challenger, champion,
                 impact.current.posts, moves)  # fmt: skip
    return impact


def _publish(kafka: KafkaSettings, topics: Topics, decision: Promotion) -> None:
    from deepcredit.model_events import ModelEventsUnavailable, publish_model_event

    event = ModelEvent(action=decision.action, version=decision.version,
                       previous=decision.previous, by=decision.by, reason=decision.reason,
                       at=decision.at, metrics=decision.metrics or {},
                       impact=None if decision.impact is None
                       else msgspec.to_builtins(decision.impact))  # fmt: skip
    try:
        publish_model_event(kafka, topics, event)
    except ModelEventsUnavailable as exc:
        # The registry already holds the decision; the topics only announce it.
        log.warning("%s", exc)


# -- the loop ---------------------------------------------------------------------------------


def run_controller(
    controller: RetrainController,
    source: Path,
    registry: ModelRegistry,
    kafka: KafkaSettings,
    topics: Topics,
    *,
    until_end: bool,
    group_id: str,
    state_path: Path | None = None,
    check_seconds: float = 5.0,
    progress: bool = False,
) -> list[RetrainResult]:
    """Consume the drift-alerts topic, and run each decision when the archive's event-time
    clock (``deepcredit.archive.archived_through``; an events file: at once) reaches its due
    time. Returns the decisions judged (promote or reject), in order.

    The consumer group's committed offset is where it resumes; an alert's offset is committed
    once the core's state is saved to ``state_path`` (None: not saved). The clock is read every
    ``check_seconds`` and at the end. With ``until_end``, stop at the topic's end as of the start
    (for tests and replays), after running what is due by then. Raises OffsetsOutOfRange when
    the topic does not hold the committed offsets (recreated, or retention). Each alert read
    gets its drift report in the registry's ``drift-reports/`` (``drift_report.report_alert``).
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    from deepcredit.control import decode_control
    from deepcredit.kafka_io import (
        PartitionReader,
        assigned_consumer,
        check_resume,
        consumer_watermarks,
    )
    from training.retraining.drift_report import REPORTS_DIR, report_alert

    controller.resume(registry.history())
    results: list[RetrainResult] = []

    def save() -> None:
        if state_path is not None:
            controller.save(state_path)

    def champion() -> str | None:
        current = registry.current()
        return current.version if current is not None else None

    def run_due() -> None:
        if controller.serving(champion()) is not None:
            save()
        clock_ts = _clock(Path(source))
        while clock_ts is not None and (decision := controller.due(clock_ts)) is not None:
            result = controller.retrain(source, registry, decision=decision, kafka=kafka,
                                        topics=topics, progress=progress)  # fmt: skip
            if result.action == WAIT:
                controller.postpone()
            else:
                controller.done(decision)
                results.append(result)
            save()

    topic = topics.drift_alerts
    # A committed offset the topic stops holding is an error, never a silent jump to its end.
    consumer = assigned_consumer(kafka, group_id, **{"auto.offset.reset": "error"})
    try:
        marks = consumer_watermarks(consumer, topic, 30)
        committed = {tp.partition: tp.offset
                     for tp in _committed(consumer, [TopicPartition(topic, p) for p in marks])}
        check_resume(kafka, topic, committed, whose=f"the consumer group {group_id!r}",
                     remedy="Start the controller with a new --group (its state file keeps "
                            "what it decided), or point --bootstrap and "
                            "DEEPCREDIT_TOPIC_PREFIX at the topic it came from.")  # fmt: skip
        starts = {p: (o if o >= 0 else OFFSET_BEGINNING) for p, o in committed.items()}
        ends = {p: high for p, (_, high) in marks.items()} if until_end else None
        checked = time.monotonic()

        def check_clock() -> None:
            nonlocal checked
            if time.monotonic() - checked >= check_seconds:
                run_due()
                checked = time.monotonic()

        reader = PartitionReader(consumer, topic, starts, ends, follow=not until_end,
                                 on_poll=check_clock)  # fmt: skip
        for m in reader:
            alert = decode_control(m, DriftAlert)
            if alert is not None:  # its drift report, for people (never raises)
                report_alert(alert, Path(source), registry.root / REPORTS_DIR)
            decision = None if alert is None else controller.on_alert(alert, champion())
            if decision is not None:
                log.info("retraining decided: %s; due at event time %.0f", decision.reason,
                         decision.due_ts)  # fmt: skip
            save()
            consumer.commit(offsets=[TopicPartition(topic, m.partition(), m.offset() + 1)],
                            asynchronous=False)  # fmt: skip
        run_due()
    except KeyboardInterrupt:
        log.info("interrupted")
    finally:
        consumer.close()
    return results


def _clock(source: Path) -> float | None:
    """Event time the data has reached: the archive's (``archived_through``); an events file
    is complete (infinity)."""
    from deepcredit.archive import archived_through

    return math.inf if source.is_file() else archived_through(source)


def _committed(consumer, tps, timeout_s: float = 30.0):  # -> list[TopicPartition]
    """The group's committed offsets, retried while the group coordinator is not yet ready (a
    fresh broker creates its offsets topic on the first group's request)."""
    from confluent_kafka import KafkaError, KafkaException

    not_ready = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS}  # fmt: skip
    errors: list[KafkaException] = []

    def attempt():  # -> list[TopicPartition] | None
        try:
            return consumer.committed(tps, timeout=timeout_s)
        except KafkaException as exc:
            error = exc.args[0]
            if not (error.retriable() or error.code() in not_ready):
                raise
            log.info("committed offsets not ready (%s): retrying", error.str())
            errors.append(exc)
            return None

    try:
        return wait_until(attempt, timeout_s, 0.5, what="the committed offsets")
    except TimeoutError:
        raise errors[-1] from None
