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


def read_input_offsets(db_dir: Path, topic: str, step_id: str = CLICKS_STEP) -> dict[int, int]:
    """Where the Kafka input ``step_id`` resumes each partition of ``topic``: partition -> the
    next offset it reads, as of its latest snapshot (negative: a logical offset, nothing read
    yet). Bytewax keys an input partition "<partition>-<topic>"; offsets only grow, so the
    latest snapshot is the furthest a restart can resume from.

    Raises FileNotFoundError when ``db_dir`` holds no recovery partitions."""
    suffix = f"-{topic}"
    return {int(key.removesuffix(suffix)): offset
            for key, offset in _latest(db_dir, step_id).items()
            if key.endswith(suffix) and offset is not None}  # fmt: skip


def _latest(db_dir: Path, step_id: str) -> dict[str, Any]:
    """Each key's latest snapshot of ``step_id`` (unpickled), keys whose state was discarded
    left out."""
    latest: dict[str, tuple[int, bytes | None]] = {}
    files = sorted(Path(db_dir).glob("*.sqlite3"))
    if not files:
        raise FileNotFoundError(f"no Bytewax recovery partitions (*.sqlite3) in {db_dir}")
    for path in files:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            rows = con.execute(
                "SELECT state_key, snap_epoch, ser_change FROM snaps WHERE step_id = ?",
                (step_id,),
            )
            for key, epoch, blob in rows:
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
