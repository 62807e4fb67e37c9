"""Model changes risk operations can see, on the real broker: a promotion shows both models'
decisions on the same recent posts at the live thresholds (checked against each model's
event-by-event scorer), a model the gate rejected needs an override with a reason, a large
shift is confirmed or refused, every promotion, override and rollback lands on the
model-events and models-audit topics, and a rollback cuts the flow back over to the old
model: a seed that serve accepts."""

from __future__ import annotations

import itertools
from collections import defaultdict
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from deepcredit.codec import decode_click
from deepcredit.events import Activity, ClickEvent
from deepcredit.jsonlines import read_lines
from deepcredit.kafka_io import read_to_end
from deepcredit.loans import loan_outcomes
from deepcredit.model_events import read_model_audit
from deepcredit.records import Decision, ModelEvent
from deepcredit.settings import KafkaSettings, Topics
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from deepcredit.whatif import ModelImpact, ScoredPost, decision_mix
from deploy.cli import main
from scorer.artifact import load_scorer
from scorer.model import ModelWeights, advance
from scorer.registry import ModelRegistry
from scorer.user_state import UserState
from state.seed import SeedError

pytestmark = pytest.mark.kafka

LINES = 800  # the first clicks of the session's stream
LAST = 40  # posts compared


def synthetic_model(root: Path, bias: float, parent: str | None = None) -> str:
    """A small model with random weights and its heads' biases moved by ``bias``: below zero
    it approves most posts at the default thresholds, above zero it declines most."""
    torch = pytest.importorskip("torch")
    from scorer.card import DataInfo
    from training.core.artifact import save_model
    from training.core.model import DeepCredit, ModelConfig

    torch.manual_seed(3)
    model = DeepCredit(ModelConfig(hidden_size=4, head_sizes=(4,)))
    with torch.no_grad():
        model.head.net[-1].bias += bias
    card = save_model(root, model, None, 0, {
        "model_config": model.config.to_dict(), "train_config": {},
        "data": DataInfo(path="e.jsonl", sha256="0" * 64, users=1, loan_steps=1,
                         activity_steps=1),
        "split": {}, "metrics": {}, "training": {}, "parent_version": parent})  # fmt: skip
    return card.version


def scored_by_hand(w: ModelWeights, clicks: list[ClickEvent], as_of: float) -> list[ScoredPost]:
    """The ``LAST`` most recent posts with ``w``'s probabilities, event by event per user (the
    live scorer's path, not the lockstep rebuild the command uses)."""
    states: dict[str, UserState] = defaultdict(lambda: UserState.new(w.version, w.hidden_size))
    p: dict[str, tuple[float, float]] = {}
    for e in clicks:
        got = advance(w, states[e.user_id], e)
        if got is not None:
            p[e.event_id] = got
    outcomes = loan_outcomes(clicks, as_of=as_of)
    posts = sorted((e for e in clicks if e.activity is Activity.POST), key=lambda e: e.ts)
    return [ScoredPost(*p[e.event_id], outcomes.get(e.loan_id or "")) for e in posts[-LAST:]]


def events_on(kafka: KafkaSettings, topic: str) -> list[ModelEvent]:
    return [msgspec.json.decode(m.value(), type=ModelEvent) for m in read_to_end(kafka, topic)]


@pytest.mark.kafka
def test_promote_shows_the_impact_needs_an_override_and_rollback_cuts_back_over(
    kafka: KafkaSettings,
    topics: Topics,
    clicks_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.thresholds.removesuffix("thresholds"))
    monkeypatch.setenv("DEEPCREDIT_USER", "risk-ops")
    producer = Producer(kafka.client_config())
    clicks = []
    for line in itertools.islice(read_lines(str(clicks_file)), LINES):
        event = decode_click(line)
        assert isinstance(event, ClickEvent)
        clicks.append(event)
        producer.produce(topics.clicks, key=event.user_id.encode(), value=line)
    assert producer.flush(30) == 0

    root = tmp_path / "models"
    registry = ModelRegistry(root)
    a = synthetic_model(root, -3.0)
    b = synthetic_model(root, 1.5, a)
    d = ["--models-dir", str(root), "--bootstrap", kafka.bootstrap_servers, "--last", str(LAST)]
    assert main(["models", "promote", a, "--reason", "the first champion", *d]) == 0
    assert "nothing to compare with" in capsys.readouterr().out
    registry.record("reject", b, by="retrain-controller", reason="retrained: AUC gain below 0.005")

    # The gate rejected B: refused without --override, whatever else is given.
    assert main(["models", "promote", b, "--reason", "looks fine", "--yes", *d]) == 1
    err = capsys.readouterr().err
    assert "not promoted" in err and "the retraining gate rejected" in err and "--override" in err
    # With --override, the large shift must still be confirmed (no terminal here: refused).
    assert main(["models", "promote", b, "--override", "--reason", "ops call", *d]) == 1
    out, err = capsys.readouterr()
    assert "both models replayed over the 40 most recent posts" in out
    assert "moves the decline rate by +" in err and "confirm with --yes" in err
    assert registry.current().version == a
    assert [e.action for e in events_on(kafka, topics.model_events)] == ["promote"]

    assert main(["models", "promote", b, "--override", "--reason", "ops call", "--yes", *d]) == 0
    assert "promote (overriding the gate)" in capsys.readouterr().out
    assert registry.current().version == b
    last = registry.history()[-1]
    assert last.override and last.impact is not None

    # The same record on model-events and on the audit trail, with who, when, why, A -> B.
    [_, event] = events_on(kafka, topics.model_events)
    assert read_model_audit(kafka, topics.models_audit).events[-1] == event
    assert (event.action, event.version, event.previous) == ("promote", b, a)
    assert (event.by, event.reason, event.override) == ("risk-ops", "ops call", True)
    impact = msgspec.convert(event.impact, ModelImpact)
    assert impact == last.impact
    assert (impact.current_model, impact.candidate_model, impact.thresholds_version) == (a, b, 0)
    # Each model's own event-by-event scores of the same posts, decided here.
    assert impact.as_of is not None
    for mine, model in ((impact.current, a), (impact.candidate, b)):
        want = decision_mix(scored_by_hand(load_scorer(root / model), clicks, impact.as_of),
                            DEFAULT_THRESHOLDS)  # fmt: skip
        assert msgspec.to_builtins(mine) == pytest.approx(msgspec.to_builtins(want), abs=1e-4)
    assert impact.shift_points(Decision.DECLINE) > 5

    # Rollback: the old model served again, through a cut-over back (prepared while the flow
    # would still run, finished after it stops).
    out_dir = tmp_path / "back"
    back = ["models", "rollback", "--reason", "too strict", "--out", str(out_dir), "--yes", *d]
    assert main(back) == 0
    out = capsys.readouterr().out
    assert f"rollback: {a} is now current (was {b})" in out and "cutover --finish" in out
    assert registry.current().version == a
    rolled = events_on(kafka, topics.model_events)[-1]
    assert (rolled.action, rolled.version, rolled.previous) == ("rollback", a, b)
    assert rolled.reason == "too strict" and rolled.by == "risk-ops"
    audit = read_model_audit(kafka, topics.models_audit).events
    assert audit == events_on(kafka, topics.model_events)
    assert rolled.impact is not None and rolled.impact["candidate_model"] == a
    finish = ["cutover", "--finish", "--model", "current", "--out", str(out_dir), "--quiet",
              "--models-dir", str(root), "--bootstrap", kafka.bootstrap_servers]  # fmt: skip
    assert main(finish) == 0
    assert f"cut-over to {a}" in capsys.readouterr().out
    from dataflow.flow import load_seed

    seed = load_seed(out_dir, load_scorer(root / a), topics.clicks)  # as serve loads it
    assert seed.model_version == a and len(seed.states) == len({e.user_id for e in clicks})
    with pytest.raises(SeedError, match="made for model"):
        load_seed(out_dir, load_scorer(root / b), topics.clicks)

    assert main(["models", "history", "--audit", *d[:4]]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith(" ")]
    assert [line.split()[2] for line in lines] == ["promote", "promote", "rollback"]
    assert "(override)" in lines[1] and "by risk-ops: ops call" in lines[1]
