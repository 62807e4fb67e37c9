"""``deepcredit drift measure`` end to end on a tiny stream, and the measurement's invariants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deploy.cli import main
from scorer.artifact import SCORER_FILE, load_scorer
from scorer.card import CARD_FILE, DataInfo, ModelCard, encode_card
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig
from training.experiments.drift_measure import DriftMeasureConfig, measure_drift

MONITOR_FIELDS = {
    "detector", "signals", "detection_delay_events", "detection_delay_days", "detected_by",
    "false_alarms_no_shift", "false_alarms_no_shift_after_shift_time",
    "first_false_alarm_after_shift_days", "alarms_before_shift",
    "alarms_after_shift", "observations", "alerts_shifted", "alerts_no_shift",
}  # fmt: skip


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained (seeded) model, saved as the scorer loads it: enough to exercise the run."""
    torch.manual_seed(0)
    model = DeepCredit(ModelConfig(hidden_size=8))
    weights = export_scorer(model, "dc-test")
    path = tmp_path_factory.mktemp("model")
    (path / SCORER_FILE).write_bytes(weights.to_bytes())
    card = ModelCard(version="dc-test", created_at=0.0, model_config=model.config.to_dict(),
                     train_config={}, data=DataInfo("-", "-", 0, 0, 0), split={}, metrics={},
                     training={})  # fmt: skip
    (path / CARD_FILE).write_bytes(encode_card(card))
    return path


def test_cli_writes_a_well_formed_result(model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "drift.json"
    out.parent.mkdir()
    out.write_text(json.dumps({"end_to_end": {"by": "deepcredit drift loop"}}))
    args = ["drift", "measure", "--model", str(model_dir), "--users", "6", "--seed", "1",
            "--shift-at-day", "600", "--warmup-days", "200", "--cooldown-days", "10",
            "--delta", "0.01", "--out", str(out), "--quiet"]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["end_to_end"] == {"by": "deepcredit drift loop"}  # the loop's part is kept
    assert {"monitors", "streams", "rolling_auc", "config", "command", "machine"} <= set(result)
    assert result["command"] == "deepcredit " + " ".join(args)
    assert result["machine"]["cpus"] >= 1
    assert result["config"]["users"] == 6 and result["config"]["shift_at_day"] == 600
    assert result["model_version"] == "dc-test"
    assert set(result["monitors"]) == {"scores", "inputs", "performance"}
    for m in result["monitors"].values():
        assert set(m) == MONITOR_FIELDS
        assert m["detector"] == "ADWIN"
        assert (m["detection_delay_events"] is None) == (m["detection_delay_days"] is None)
    shifted, calm = result["streams"]["shifted"], result["streams"]["no_shift"]
    assert shifted["events_before_shift"] == calm["events_before_shift"] > 0
    assert shifted["events_after_shift"] > 0 and calm["events_after_shift"] > 0
    assert shifted["posts"] > 0 and shifted["labels"] > 0


def test_the_measurement_is_consistent(model_dir: Path) -> None:
    config = DriftMeasureConfig(users=6, seed=2, shift_at_day=500, warmup_days=100,
                                cooldown_days=5, delta=0.05)  # fmt: skip
    result = measure_drift(load_scorer(model_dir), config, progress=False)
    assert result == measure_drift(load_scorer(model_dir), config, progress=False) | {
        "seconds": result["seconds"]
    }
    shift_day = config.shift_at_day
    for m in result["monitors"].values():
        calm_before = [a for a in m["alerts_no_shift"] if a["day"] < shift_day]
        shifted_before = [a for a in m["alerts_shifted"] if a["day"] < shift_day]
        assert calm_before == shifted_before  # the same world until the shift
        assert m["alarms_before_shift"] == len(shifted_before)
        assert m["false_alarms_no_shift"] == len(m["alerts_no_shift"])
        assert all(a["day"] >= config.warmup_days for a in m["alerts_shifted"])
        if m["detection_delay_days"] is not None:
            assert m["detection_delay_events"] >= 0 and m["detection_delay_days"] >= 0
            first_after = next(a for a in m["alerts_shifted"] if a["day"] >= shift_day)
            assert first_after["signal"] == m["detected_by"]
    # chatty settings on purpose: something must have fired, or the checks above are vacuous
    assert any(m["alerts_shifted"] for m in result["monitors"].values())


def test_a_sample_of_every_user_reports_what_the_monitors_of_every_user_do(
    model_dir: Path,
) -> None:
    config = DriftMeasureConfig(users=8, seed=2, shift_at_day=500, warmup_days=100,
                                cooldown_days=5, delta=0.05, samples=(1.0, 0.5))  # fmt: skip
    result = measure_drift(load_scorer(model_dir), config, progress=False)
    everyone, half = result["samples"]["1"], result["samples"]["0.5"]
    assert everyone["monitors"] == result["monitors"]
    assert 0 < half["users_watched"] < everyone["users_watched"] == 8
    inputs = half["monitors"]["inputs"]["observations"]["shifted"]
    assert 0 < inputs < result["monitors"]["inputs"]["observations"]["shifted"]
    with pytest.raises(ValueError, match="fraction"):
        DriftMeasureConfig(samples=(0.0,))


def test_cli_refuses_bad_input(model_dir: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture) -> None:  # fmt: skip
    out = str(tmp_path / "x.json")
    assert main(["drift", "measure", "--model", str(tmp_path), "--out", out]) == 1
    assert "not a model artifact" in capsys.readouterr().err
    assert main(["drift", "measure", "--model", str(model_dir), "--shift-at-day", "2000",
                 "--out", out]) == 1  # fmt: skip
    assert "shift_at_day" in capsys.readouterr().err
    assert not Path(out).exists()
