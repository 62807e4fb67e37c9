"""``deepcredit bench scaling``: every arm trains and is timed side by side, the projection
reads the committed-style results files, and bad options or missing files are refused before
any training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploy.cli import main


def results_folder(folder: Path) -> Path:
    """A results folder with the two files the projection reads, in their layout."""
    folder.mkdir()
    live = {"throughput": {"model": {"median_events_per_s": 5000.0}},
            "state_bytes_per_user": {"median": 1500}, "command": "deepcredit bench live ..."}
    rebuild = {"events_per_s": {"compiled": 100_000}, "command": "deepcredit bench rebuild ..."}
    (folder / "live.json").write_text(json.dumps(live))
    (folder / "rebuild.json").write_text(json.dumps(rebuild))
    return folder


def test_bench_scaling_times_every_arm_and_projects_the_costs(
    clicks_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    out = tmp_path / "scaling.json"
    args = ["bench", "scaling", "--events", str(clicks_file), "--users", "0", "--epochs", "1",
            "--repeats", "1", "--hidden", "8", "--batch-users", "8", "--results",
            str(results_folder(tmp_path / "results")), "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert set(result["arms"]) == {"p1", "p2", "p2_scaled_lr", "p2_apart"}
    for name, arm in result["arms"].items():
        assert len(arm["epoch_seconds"]) == 1 and arm["epoch_seconds"][0][0] > 0
        assert len(arm["val_auc"]) == (0 if name == "p2_apart" else 1)
    assert set(result["speedup_over_p1"]) == {"p2", "p2_scaled_lr"}  # apart: no validation
    assert set(result["training_speedup_over_p1"]) == {"p2", "p2_scaled_lr", "p2_apart"}
    projection = result["projection"]
    assert projection["live"]["processes_at_peak"] == 7  # ceil(3 x 1e9 / 86,400 / 5,000)
    assert projection["measured"]["state_bytes_per_user"] == 1500
    per_user = result["arms"]["p1"]["median_epoch_seconds"] / result["data"]["train_users"]
    assert projection["measured"]["train_seconds_per_user_epoch"] == pytest.approx(per_user)


def test_bench_scaling_refuses_bad_options_and_missing_results_before_training(
    clicks_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["bench", "scaling", "--events", str(clicks_file), "--out", str(tmp_path / "s.json")]
    assert main([*base, "--processes", "0"]) == 1
    assert "must be at least 1" in capsys.readouterr().err
    assert main([*base, "--results", str(tmp_path)]) == 1
    assert "the projection reads live.json and rebuild.json" in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()


def test_bench_project_remakes_the_projection_from_newer_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``bench project``: the arms and the training's command stay; the projection's live and
    rebuild figures are the results' now, and so is what follows from them."""
    results = results_folder(tmp_path / "results")
    scaling = tmp_path / "scaling.json"
    arms = {"p1": {"median_epoch_seconds": 30.0}, "p2": {"median_epoch_seconds": 20.0}}
    old = {"arms": arms, "data": {"train_users": 3000}, "projection": {"stale": True},
           "command": "deepcredit bench scaling --events E"}  # fmt: skip
    scaling.write_text(json.dumps(old))
    assert main(["bench", "project", "--results", str(results), "--scaling", str(scaling)]) == 0
    new = json.loads(scaling.read_text())
    assert new["arms"] == arms and new["command"] == old["command"]
    p = new["projection"]
    assert p["measured"]["flow_events_per_s_per_process"] == 5000.0
    assert p["measured"]["train_seconds_per_user_epoch"] == pytest.approx(0.01)
    # 1e9 events a day at three times the mean: 34,722 events/s at the peak, 5,000 per process.
    assert p["live"]["processes_at_peak"] == 7
    assert p["remade_by"].startswith("deepcredit bench project")
    assert "7 flow processes" in capsys.readouterr().out
    (results / "rebuild.json").unlink()
    assert main(["bench", "project", "--results", str(results), "--scaling", str(scaling)]) == 1
    assert "rebuild.json: no such file" in capsys.readouterr().err
    assert json.loads(scaling.read_text()) == new  # a failed remake leaves it as it was
