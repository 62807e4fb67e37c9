"""The retraining controller: the debounce core (pure), one decision end to end, the loop."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcredit.cli import main
from deepcredit.kafka_io import read_to_end
from deepcredit.records import DriftAlert, ModelEvent, Monitor
from deepcredit.settings import KafkaSettings, Topics
from scorer.registry import ModelRegistry
from training.artifact import DataInfo, save_model
from training.controller import ControllerConfig, RetrainController
from training.model import DeepCredit, ModelConfig

HOUR = 3600.0


def alert(i: int, t: float, monitor: Monitor = Monitor.SCORES) -> DriftAlert:
    return DriftAlert(alert_id=f"a{i}", monitor=monitor, detector="ADWIN", signal="p_default",
                      model_version="m", event_ts=1.6e9, events_seen=i, detected_at=t)  # fmt: skip


# -- the pure core ------------------------------------------------------------------------------

# Each step: a new alert after a gap, or (an index) a redelivery of an earlier one, unchanged.
arrivals = st.lists(
    st.tuples(
        st.floats(0, 10 * HOUR), st.none() | st.integers(0, 60), st.sampled_from(list(Monitor))
    ),
    max_size=60,
)


@given(arrivals, st.integers(1, 4), st.floats(0.5, 5), st.floats(0.01, 8))
@settings(max_examples=200, deadline=None)
def test_triggers_need_k_fresh_distinct_alerts_and_respect_the_cool_down(
    steps: list[tuple[float, int | None, Monitor]], k: int, within: float, cooldown: float
) -> None:
    config = ControllerConfig(alerts_needed=k, within_hours=within, cooldown_hours=cooldown,
                              immediate_monitors=frozenset({Monitor.PERFORMANCE}))  # fmt: skip
    c = RetrainController(config)
    now, last, counted, sent = 0.0, None, set(), []
    for gap, again, monitor in steps:
        now += gap
        a = (
            sent[again % len(sent)]
            if again is not None and sent
            else alert(len(sent), now, monitor)
        )
        if a not in sent:
            sent.append(a)
        d = c.on_alert(a, now)
        if d is None:
            continue
        assert a.alert_id in d.alert_ids
        assert last is None or d.at - last >= cooldown * HOUR - 1e-6  # never within the cool-down
        assert len(set(d.alert_ids)) == len(d.alert_ids)  # a redelivered alert counts once
        assert not counted & set(d.alert_ids)  # ... and never again after a trigger
        counted |= set(d.alert_ids)
        assert len(d.alert_ids) >= k or a.monitor is Monitor.PERFORMANCE
        assert all(now - t.detected_at <= within * HOUR for t in sent if t.alert_id in d.alert_ids)
        last = d.at


def test_debounce_cool_down_and_restart() -> None:
    c = RetrainController(ControllerConfig(alerts_needed=3, within_hours=1, cooldown_hours=2))
    assert c.on_alert(alert(1, 0), 0) is None
    assert c.on_alert(alert(2, 10), 2 * HOUR) is None  # a1 has left the window, a2 is stale
    assert c.on_alert(alert(3, 2 * HOUR - 60), 2 * HOUR) is None  # fresh: counts
    assert c.on_alert(alert(4, 2 * HOUR), 2 * HOUR) is None
    d = c.on_alert(alert(5, 2 * HOUR + 1), 2 * HOUR + 1)
    assert d is not None and d.alert_ids == ("a3", "a4", "a5")
    for i in range(6, 9):  # cool-down: dropped, not saved up for later
        assert c.on_alert(alert(i, 3 * HOUR + i), 3 * HOUR + i) is None
    c.retrained(4 * HOUR)  # the retraining ended: the cool-down runs from its end
    assert c.on_alert(alert(9, 5 * HOUR), 5 * HOUR) is None
    assert c.on_alert(alert(10, 6.5 * HOUR), 6.5 * HOUR) is None
    assert c.on_alert(alert(11, 6.5 * HOUR), 6.5 * HOUR) is None
    assert c.on_alert(alert(12, 6.5 * HOUR), 6.5 * HOUR) is not None
    immediate = ControllerConfig(immediate_monitors=frozenset({Monitor.INPUTS}))
    assert RetrainController(immediate).on_alert(alert(1, 0, Monitor.INPUTS), 0) is not None


# -- one retraining decision end to end --------------------------------------------------------

# Trains deterministically (seeded, one thread) to AUC 0.77 / 0.83 on the test users.
TINY = {"hidden_size": 4, "epochs": 2, "batch_users": 4, "lr": 0.01, "seed": 0, "eval_days": 300.0}


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Seed 4: its 5 test-split users hold both classes of both targets (31 and 20 positives).
    path = tmp_path_factory.mktemp("data") / "events.jsonl.gz"
    args = ["generate", "--users", "40", "--seed", "4", "--horizon-days", "300", "--quiet"]
    assert main([*args, "--out", str(path)]) == 0
    return path


def blind_champion(registry: ModelRegistry, events: Path) -> str:
    """A model that scores everyone alike (all weights zero): AUC 0.5 on every target."""
    model = DeepCredit(ModelConfig(hidden_size=4))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    card = save_model(registry.root, model, None, 0, {
        "model_config": model.config.to_dict(), "train_config": {"test_fraction": 0.2},
        "data": DataInfo(str(events), "0" * 64, 0, 0, 0), "split": {}, "metrics": {},
        "training": {}})  # fmt: skip
    registry.promote(card.version, by="test", reason="a blind champion")
    return card.version


def test_a_better_challenger_is_promoted_and_a_short_margin_rejected(
    events: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    registry = ModelRegistry(tmp_path / "models")
    registry.root.mkdir()
    blind = blind_champion(registry, events)

    first = RetrainController(ControllerConfig(min_auc_gain=0.01, **TINY))
    won = first.retrain(events, registry)
    assert won.action == "promote", won.reason
    assert won.champion == blind and registry.current().version == won.challenger
    assert registry.entry(won.challenger).parent_version == blind
    aucs = won.metrics["auc"]
    assert set(aucs["champion"]) == {"delinquent", "default"}
    assert all(v == 0.5 for v in aucs["champion"].values())
    assert all(won.metrics["gain"][t] >= 0.01 for t in aucs["champion"])
    assert won.metrics["champion_split_matches"] is True
    assert won.metrics["eval"]["posts"] > 0

    # The same data again, but a margin no model could clear over a trained champion.
    second = RetrainController(ControllerConfig(min_auc_gain=0.5, **TINY)).retrain(events, registry)
    assert second.action == "reject" and "AUC gain below 0.5" in second.reason
    assert registry.current().version == won.challenger  # the champion still serves
    last = registry.history()[-1]
    assert (last.action, last.version, last.previous) == ("reject", second.challenger,
                                                          won.challenger)  # fmt: skip
    assert last.metrics == second.metrics and last.by == "retrain-controller"


def test_retrain_command_reads_an_archive_folder_and_refuses_nonsense(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = ["retrain", "--events", str(tmp_path / "none"), "--models-dir", str(tmp_path / "m")]
    assert main(args) == 1
    assert "no such events file or archive" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main([*args[:2], str(tmp_path / "empty"), *args[3:]]) == 1
    assert "neither an events file nor a click archive" in capsys.readouterr().err


# -- the loop against the real broker -----------------------------------------------------------


@pytest.mark.kafka
def test_controller_retrains_once_on_persistent_alerts_and_publishes_the_decision(
    events: Path, kafka: KafkaSettings, topics: Topics, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture,
) -> None:  # fmt: skip
    from confluent_kafka import Producer

    from deepcredit.codec import encode
    from deepcredit.jsonlines import read_lines
    from deepcredit.kafka_io import produce

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DEEPCREDIT_TOPIC_PREFIX", topics.clicks.removesuffix("clicks"))
    producer = Producer(kafka.client_config())
    for line in read_lines(str(events)):
        produce(producer, topics.clicks, line, msgspec.json.decode(line)["user_id"].encode())
    now = time.time()
    for i in range(3):  # the second triggers; the third falls in the cool-down
        produce(producer, topics.drift_alerts, encode(alert(i, now)), b"scores")
    assert producer.flush(30) == 0
    broker = ["--bootstrap", kafka.bootstrap_servers]
    folder = tmp_path / "archive"
    assert main(["archive", "--folder", str(folder), "--until-end", *broker]) == 0

    models = tmp_path / "models"
    args = ["controller", "--archive", str(folder), "--until-end", "--alerts-needed", "2",
            "--models-dir", str(models), "--hidden", "4", "--epochs", "1", "--batch-users", "8",
            "--eval-days", "300", "--group", f"g-{topics.clicks}", "--quiet", *broker]  # fmt: skip
    assert main(args) == 0
    assert "1 retraining decisions" in capsys.readouterr().out
    [decision] = ModelRegistry(models).history()
    assert decision.action == "promote" and decision.metrics["alerts"] == ["a0", "a1"]
    [message] = read_to_end(kafka, topics.model_events)
    event = msgspec.json.decode(message.value(), type=ModelEvent)
    assert (event.action, event.version) == ("promote", decision.version)

    # A restart resumes after the handled alerts: nothing more to decide.
    assert main(args) == 0
    assert "0 retraining decisions" in capsys.readouterr().out
    assert len(ModelRegistry(models).history()) == 1
