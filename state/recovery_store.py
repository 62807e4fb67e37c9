"""Read the per-user scoring states out of a Bytewax recovery directory (for operators and tests).

Bytewax keeps each stateful step's snapshots in SQLite partitions (table ``snaps``: step_id,
state_key, snap_epoch, ser_change = the pickled snapshot, NULL once a key is discarded). The
score step's snapshot is ``scorer.user_state.encode_state`` bytes, so the latest row per user is
that user's state as of the last completed epoch. Read-only; safe while the flow runs.
"""

from __future__ import annotations

import pickle
import sqlite3
from pathlib import Path

from scorer.user_state import UserState, decode_state

__all__ = ["FLOW_ID", "SCORE_STEP", "SCORE_STEP_ID", "read_states", "state_model_version"]

#: The live flow's Bytewax name and its score step's id: together, the step_id its snapshots
#: are stored under.
FLOW_ID = "deepcredit"
SCORE_STEP_ID = "score"
SCORE_STEP = f"{FLOW_ID}.{SCORE_STEP_ID}"


def read_states(db_dir: Path, step_id: str = SCORE_STEP) -> dict[str, UserState]:
    """The latest snapshotted state of every user in ``db_dir``'s partitions."""
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
    # The blobs are Bytewax's own pickles of our bytes, written by our flow into our folder.
    return {key: decode_state(pickle.loads(blob))
            for key, (_, blob) in latest.items() if blob is not None}  # fmt: skip


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
