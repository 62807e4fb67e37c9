"""Read the per-user scoring states and the clicks offsets out of a Bytewax recovery directory
(for operators, the start-up check of ``deepcredit serve`` and tests).

Bytewax keeps each stateful step's snapshots in SQLite partitions (table ``snaps``: step_id,
state_key, snap_epoch, ser_change = the pickled snapshot, NULL once a key is discarded). The
score step's snapshot is ``scorer.user_state.encode_state`` bytes, so the latest row per user is
that user's state as of the last completed epoch; the Kafka input's snapshot of a partition is
the next offset it reads there. Read-only; safe while the flow runs.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path
from typing import Any

from scorer.user_state import UserState, decode_state

__all__ = [
    "CLICKS_STEP",
    "CLICKS_STEP_ID",
    "FLOW_ID",
    "SCORE_STEP",
    "SCORE_STEP_ID",
    "read_input_offsets",
    "read_states",
    "resume_epoch",
    "state_model_version",
]

#: The live flow's Bytewax name, its score step's and its clicks input's ids: a flow name and
#: a step id make the step_id that step's snapshots are stored under.
FLOW_ID = "deepcredit"
SCORE_STEP_ID = "score"
SCORE_STEP = f"{FLOW_ID}.{SCORE_STEP_ID}"
CLICKS_STEP_ID = "clicks"
CLICKS_STEP = f"{FLOW_ID}.{CLICKS_STEP_ID}"


def read_states(db_dir: Path, step_id: str = SCORE_STEP) -> dict[str, UserState]:
    """The latest snapshotted state of every user in ``db_dir``'s partitions.

    Raises FileNotFoundError when ``db_dir`` holds no recovery partitions."""
    return {key: decode_state(state) for key, state in _latest(db_dir, step_id).items()}


def read_input_offsets(
    db_dir: Path, topic: str, step_id: str = CLICKS_STEP, *, resumed: bool = False
) -> dict[int, int]:
    """Where the Kafka input ``step_id`` resumes each partition of ``topic``: partition -> the
    next offset it reads, as of its latest snapshot (negative: a logical offset, nothing read
    yet). Bytewax keys an input partition "<partition>-<topic>"; offsets only grow, so the
    latest snapshot is the furthest a restart can resume from.

    ``resumed``: as of the latest snapshot a restart resumes from (``resume_epoch``): the
    epochs before it were finished by every step, so every output of a message before these
    offsets was written. A later snapshot may be of an epoch the flow died in.

    Raises FileNotFoundError when ``db_dir`` holds no recovery partitions."""
    suffix = f"-{topic}"
    below = resume_epoch(db_dir) if resumed else None
    if resumed and below is None:
        return {}
    return {int(key.removesuffix(suffix)): offset
            for key, offset in _latest(db_dir, step_id, below).items()
            if key.endswith(suffix) and offset is not None}  # fmt: skip


def resume_epoch(db_dir: Path) -> int | None:
    """The epoch a restart of the flow recorded in ``db_dir`` resumes from, as Bytewax reckons
    it: the lowest frontier among the workers of its latest execution (a worker that recorded
    none: the execution's own resume epoch); it loads the snapshots of the epochs before it.
    None when no execution is recorded. Raises FileNotFoundError when ``db_dir`` holds no
    recovery partitions."""
    executions: list[tuple[int, int, int]] = []
    fronts: list[tuple[int, int, int]] = []
    for path in _partitions(db_dir):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            executions += con.execute("SELECT ex_num, worker_count, resume_epoch FROM exs")
            fronts += con.execute("SELECT ex_num, worker_index, worker_frontier FROM fronts")
    if not executions:
        return None
    ex_num, workers, start = max(executions)
    frontier = dict.fromkeys(range(workers), start)
    for ex, worker, front in fronts:
        if ex == ex_num and worker in frontier:
            frontier[worker] = max(frontier[worker], front)
    return min(frontier.values())


def _partitions(db_dir: Path) -> list[Path]:
    files = sorted(Path(db_dir).glob("*.sqlite3"))
    if not files:
        raise FileNotFoundError(f"no Bytewax recovery partitions (*.sqlite3) in {db_dir}")
    return files


def _latest(db_dir: Path, step_id: str, below: int | None = None) -> dict[str, Any]:
    """Each key's latest snapshot of ``step_id`` (unpickled; of an epoch before ``below``
    when given), keys whose state was discarded left out."""
    latest: dict[str, tuple[int, bytes | None]] = {}
    for path in _partitions(db_dir):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ?",
                (step_id,),
            )
            for key, epoch, blob in rows:
                if below is not None and epoch >= below:
                    continue
                if key not in latest or epoch > latest[key][0]:
                    latest[key] = (epoch, blob)
    # The blobs are Bytewax's own pickles, written by our flow into our folder.
    return {key: pickle.loads(blob) for key, (_, blob) in latest.items() if blob is not None}


def state_model_version(db_dir: Path, step_id: str = SCORE_STEP) -> str | None:
    """The model version of one snapshotted state (the flow keeps states of one model only), or
    None when there is none yet: enough to tell whose recovery folder this is."""
    for path in sorted(Path(db_dir).glob("*.sqlite3")):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            row = con.execute("SELECT ser_change FROM snaps WHERE step_id = ? AND ser_change "
                              "IS NOT NULL LIMIT 1", (step_id,)).fetchone()  # fmt: skip
        if row is not None:
            return decode_state(pickle.loads(row[0])).model_version
    return None
