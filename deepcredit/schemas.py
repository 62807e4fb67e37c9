"""JSON Schema files of the records we write, generated from their msgspec Structs.

``schemas/`` at the repository root holds one file per record kind (``score.json``,
``not_scored.json``, ...) and ``index.json`` (the contract's version, the Kafka headers, and
for each record its file, topic and key), plus ``click.json``, the event contract we read.
They are generated, never edited: ``deepcredit schemas --write`` writes them from the code,
``deepcredit schemas`` (and a test in CI) fails when the committed files differ from what the
code generates, so a change of a record is a visible diff of ``schemas/`` in review, where
the bump rules of ``records.SCHEMA_VERSION`` apply.

Each file is a JSON Schema (draft 2020-12) as ``msgspec.json.schema`` writes it (the Struct's
docstring as its description; enums and bounds included), with ``$schema``, ``$id`` and the
contract's version (``x-schema-version``) added.

>>> files = generate()
>>> sorted(files)[:3], files["index.json"]["schema_version"] == SCHEMA_VERSION
(['click.json', 'dead_letter.json', 'drift_alert.json'], True)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from deepcredit.atomic import write_atomic
from deepcredit.audit import ThresholdsChange
from deepcredit.events import ClickEvent
from deepcredit.records import (
    RECORD_HEADER,
    SCHEMA_VERSION,
    SCHEMA_VERSION_HEADER,
    DeadLetter,
    DriftAlert,
    ModelEvent,
    NotScored,
    Record,
    Score,
    ThresholdUpdate,
)

__all__ = ["INDEX", "RECORDS", "SCHEMAS_DIR", "RecordSpec", "check", "generate", "write"]

#: The committed schema files: ``schemas/`` at the repository root.
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"
INDEX = "index.json"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class RecordSpec:
    """Where a record kind goes: its Struct, topic (default name) and Kafka key."""

    record: type[Record]
    topic: str
    key: str

    @property
    def kind(self) -> str:
        return str(self.record.__struct_config__.tag)

    @property
    def file(self) -> str:
        return f"{self.kind}.json"


#: Every record kind we write, with where it goes.
RECORDS: tuple[RecordSpec, ...] = (
    RecordSpec(Score, "risk-scores", "user_id"),
    RecordSpec(NotScored, "risk-scores",
               "user_id; the clicks message's key when the user id could not be read"),
    RecordSpec(DeadLetter, "dead-letter", "the rejected message's key"),
    RecordSpec(ThresholdUpdate, "thresholds", "\"thresholds\" (compacted: the latest wins)"),
    RecordSpec(ThresholdsChange, "thresholds-audit",
               "\"thresholds\" (never compacted: the audit trail)"),
    RecordSpec(DriftAlert, "drift-alerts", "the monitor (scores, inputs or performance)"),
    RecordSpec(ModelEvent, "model-events",
               "the model version decided about (the same record on models-audit, never "
               "compacted, in one transaction)"),
)  # fmt: skip


def _schema(struct: type, identifier: str) -> dict[str, Any]:
    body = msgspec.json.schema(struct)
    return {"$schema": _DRAFT, "$id": identifier, "x-schema-version": SCHEMA_VERSION, **body}


def generate() -> dict[str, dict[str, Any]]:
    """Every file of ``schemas/`` by name, as JSON-ready dicts."""
    files = {spec.file: _schema(spec.record, spec.file) for spec in RECORDS}
    files["click.json"] = _schema(ClickEvent, "click.json")
    files[INDEX] = {
        "schema_version": SCHEMA_VERSION,
        "headers": {
            RECORD_HEADER: "the record kind: the value of the record's `type` field",
            SCHEMA_VERSION_HEADER: "the contract's version (ASCII digits), as in the record's "
                                   "`schema_version` field",
        },
        "records": [{"type": s.kind, "file": s.file, "topic": s.topic, "key": s.key}
                    for s in RECORDS],
        "input": {"file": "click.json", "topic": "clicks", "key": "user_id"},
        "generated_by": "deepcredit schemas --write",
    }  # fmt: skip
    return files


def _text(content: dict[str, Any]) -> str:
    return json.dumps(content, indent=2, ensure_ascii=False) + "\n"


def write(folder: Path = SCHEMAS_DIR) -> list[Path]:
    """Write every schema file into ``folder`` (atomically each) and remove any other ``.json``
    there, so the folder is what the code generates. Returns the files written."""
    files = generate()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.json"):
        if stale.name not in files:
            stale.unlink()
    return [write_atomic(folder / name, _text(content).encode())
            for name, content in sorted(files.items())]  # fmt: skip


def check(folder: Path = SCHEMAS_DIR) -> list[str]:
    """What differs between ``folder`` and the generated files: one line per missing,
    different or extra file; empty when they agree."""
    files = generate()
    problems = []
    for name, content in sorted(files.items()):
        path = folder / name
        if not path.exists():
            problems.append(f"{name}: missing")
        elif path.read_text(encoding="utf-8") != _text(content):
            problems.append(f"{name}: differs from what the code generates")
    present = {p.name for p in folder.glob("*.json")} if folder.is_dir() else set()
    problems += [f"{name}: not generated by the code" for name in sorted(present - set(files))]
    return problems
