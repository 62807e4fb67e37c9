"""The thresholds audit trail: one ``ThresholdsChange`` record per change, on the
thresholds-audit topic (one partition, never compacted, no time limit: ``deepcredit.topics``).

Why a topic and not a file: the thresholds topic is compacted on one key, so it keeps only
the latest version; the audit topic keeps every change, in order, on the broker every
process already reads, whichever machine the analyst ran ``deepcredit thresholds set`` on
(a local JSON-lines file would hold one machine's changes only). ``thresholds.publish``
writes a change's thresholds and its audit record in one Kafka transaction, so the trail
holds exactly the changes that were made: both records or neither.

>>> import msgspec
>>> old = ThresholdUpdate(version=1, delinquent_review=0.3, delinquent_decline=0.6,
...                       default_review=0.1, default_decline=0.3, updated_by="ops",
...                       updated_at=1.7e9)
>>> new = msgspec.structs.replace(old, version=2, default_decline=0.25, updated_at=1.7e9 + 60)
>>> change = ThresholdsChange(action="set", by="ops", at=1.7e9 + 60, reason="q3", old=old,
...                           new=new)
>>> change.problem() is None, change.changed()
(True, {'default_decline': (0.3, 0.25)})
>>> msgspec.structs.replace(change, reason="").problem()
'reason must say why the thresholds changed'
"""

from __future__ import annotations

import math
from typing import Any

from deepcredit.events import TS_MAX, TS_MIN
from deepcredit.records import Record, ThresholdUpdate
from deepcredit.whatif import WhatIf

__all__ = ["ACTIONS", "THRESHOLD_FIELDS", "ThresholdsChange"]

#: What of a ThresholdUpdate decides: the four cut-offs, the segments and what makes a user
#: thin-file.
THRESHOLD_FIELDS = ("delinquent_review", "delinquent_decline", "default_review", "default_decline",
                    "thin_file_events", "segments")  # fmt: skip

#: "set": new values given by hand; "rollback": the values of an earlier version again.
ACTIONS = ("set", "rollback")


class ThresholdsChange(Record, kw_only=True, tag="thresholds_change"):
    """One change of the live thresholds: who (``by``), when (``at``, Unix s), why
    (``reason``), from ``old`` (version 0: the built-in defaults) to ``new``, and the
    simulated effect shown before it was made (None: no scored posts to replay).
    ``rollback_to``: for a rollback, the version whose values ``new`` carries again."""

    action: str
    by: str
    at: float
    reason: str
    old: ThresholdUpdate
    new: ThresholdUpdate
    effect: WhatIf | None = None
    rollback_to: int | None = None

    def changed(self) -> dict[str, tuple[Any, Any]]:
        """The thresholds that differ: name -> (old, new)."""
        return {name: (getattr(self.old, name), getattr(self.new, name))
                for name in THRESHOLD_FIELDS
                if getattr(self.old, name) != getattr(self.new, name)}  # fmt: skip

    def problem(self) -> str | None:
        """Why this record cannot be used, or None when it can."""
        if self.action not in ACTIONS:
            return f"action must be one of {', '.join(ACTIONS)}, got {self.action!r}"
        if not self.by:
            return "by must name who changed the thresholds"
        if not self.reason.strip():
            return "reason must say why the thresholds changed"
        problem = self.new.problem()
        if problem is not None:
            return f"new thresholds: {problem}"
        if self.old.version != 0 and (problem := self.old.problem()) is not None:
            return f"old thresholds: {problem}"
        if self.new.version <= self.old.version:
            return f"new version {self.new.version} is not above old version {self.old.version}"
        if not self.changed():
            return "old and new thresholds are the same"
        if (self.action == "rollback") != (self.rollback_to is not None):
            return "rollback_to is set exactly on a rollback"
        if not (math.isfinite(self.at) and TS_MIN <= self.at <= TS_MAX):
            return f"at must be Unix seconds in [{TS_MIN:.0f}, {TS_MAX:.0f}], got {self.at}"
        return None
