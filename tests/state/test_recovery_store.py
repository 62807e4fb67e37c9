"""Reading a Bytewax recovery folder as a restart would: the resume epoch and the input offsets
as of the snapshots before it (not of an epoch the flow may have died in)."""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

import pytest
from bytewax.recovery import init_db_dir

from state.recovery_store import CLICKS_STEP, read_input_offsets, resume_epoch


def record(db: Path, table: str, *rows: tuple) -> None:
    with sqlite3.connect(db) as con:
        cols = {"exs": "ex_num, worker_count, resume_epoch",
                "fronts": "ex_num, worker_index, worker_frontier",
                "snaps": "step_id, state_key, snap_epoch, ser_change"}[table]  # fmt: skip
        marks = ", ".join("?" * len(rows[0]))
        con.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)


def test_offsets_are_read_as_of_the_epoch_a_restart_resumes_from(tmp_path: Path) -> None:
    init_db_dir(tmp_path, 2)
    first, second = sorted(tmp_path.glob("*.sqlite3"))
    assert resume_epoch(tmp_path) is None
    assert read_input_offsets(tmp_path, "clicks", resumed=True) == {}
    # An earlier execution, then the latest: two workers, one at epoch 7, one never recorded
    # a frontier (it counts from the execution's resume epoch, 5).
    record(first, "exs", (0, 1, 1), (1, 2, 5))
    record(second, "fronts", (0, 0, 40), (1, 0, 7))
    assert resume_epoch(tmp_path) == 5
    record(second, "fronts", (1, 1, 9))
    assert resume_epoch(tmp_path) == 7  # the slower worker
    offsets = {4: 100, 6: 150, 7: 180}  # epoch -> offset of partition 0
    record(first, "snaps", *((CLICKS_STEP, "0-clicks", e, pickle.dumps(o))
                             for e, o in offsets.items()))  # fmt: skip
    record(second, "snaps", (CLICKS_STEP, "1-clicks", 3, pickle.dumps(20)),
           (CLICKS_STEP, "0-other", 6, pickle.dumps(9)))  # fmt: skip
    assert read_input_offsets(tmp_path, "clicks") == {0: 180, 1: 20}  # the latest snapshots
    # Epoch 7 is not finished by every worker: a restart loads epoch 6's, and so does this.
    assert read_input_offsets(tmp_path, "clicks", resumed=True) == {0: 150, 1: 20}


def test_a_folder_without_partitions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no Bytewax recovery partitions"):
        resume_epoch(tmp_path)
