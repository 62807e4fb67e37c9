"""``deepcredit bench memory``'s rebuild stage measures the cut-over's rebuild on a real log,
and the bench refuses a stage it does not have before running any."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepcredit.events import Activity
from training.core.eventlog import read_events
from training.experiments.memory_bench import run_memory_bench, run_stage


@pytest.mark.parametrize("stage", ["rebuild_in_memory", "rebuild_bucketed"])
def test_the_rebuild_stages_rebuild_every_user_of_the_log(
    stage: str, clicks_file: Path, tmp_path: Path
) -> None:
    figures = run_stage(stage, clicks_file, tmp_path, 1.0)
    events = list(read_events(clicks_file))
    assert figures["events"] == len(events)
    assert figures["users_rebuilt"] == len({e.user_id for e in events})
    assert figures["posts"] == sum(e.activity is Activity.POST for e in events) > 0
    assert figures["peak_anon_mib"] > 0 and figures["peak_rss_mib"] >= figures["baseline_mib"]
    if stage == "rebuild_bucketed":
        assert figures["buckets"] == 1 and figures["prepared_mib"] > 0
        assert not (tmp_path / "spill").exists()


@pytest.mark.parametrize("stage", ["drift_every_user", "drift_sampled"])
def test_the_drift_stages_feed_every_event_and_measure_the_snapshot(
    stage: str, clicks_file: Path, tmp_path: Path
) -> None:
    figures = run_stage(stage, clicks_file, tmp_path, 1.0)
    events = list(read_events(clicks_file))
    assert figures["events"] == len(events)
    # The default sample's max_users is far above the 40 users of the log: both watch all.
    assert figures["users_watched"] == len({e.user_id for e in events})
    assert figures["share"] == 1.0 and figures["open_loans"] > 0
    assert figures["snapshot_mib"] > 0 and figures["snapshot_ms"] > 0


def test_an_unknown_stage_is_refused_before_any_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such stages"):
        run_memory_bench([10], tmp_path, stages=("rebuild", "epoch_mapped"), progress=False)
    assert not list(tmp_path.iterdir())  # no log generated
