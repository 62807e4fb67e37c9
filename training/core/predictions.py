"""Prediction files: what any model predicted at which rows, the one input of ``deepcredit
report``. Every model family (DeepCredit, the baselines, the papers' systems, a model trained
elsewhere) is reported by writing one.

Format: JSON lines, plain or gzip (``.gz``), each line one tagged record:

    {"kind": "model", "name": "dc-...", "family": "deepcredit", "streaming": true, ...}
    {"kind": "prediction", "model": "dc-...", "user_id": "u1", "event_id": "e9",
     "target": "default", "label": 0, "probability": 0.031, "split": "test"}

- ``model`` (``ModelManifest``): one per model, before or after its rows, in any of the files
  given; ``streaming`` says whether the model has an incremental form that can serve live
  (advance a per-user state one event at a time) or must re-encode a history per score.
- ``prediction`` (``Prediction``): one per (row, target): ``user_id`` and ``event_id`` name
  the row (for the benchmark, the loan post), so two models' predictions pair up on the same
  rows; ``label`` is the observed outcome, 0/1; ``probability`` the model's P(label = 1);
  ``split`` the row's side of the model's split (``test``: held out; ``train`` and
  ``validation`` rows are used for the population stability index only).

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "m.jsonl"
>>> m = ModelManifest(name="m", family="lr", streaming=False)
>>> rows = [Prediction("m", "u1", "e1", "default", 1, 0.8, "test")]
>>> _ = write_predictions(path, m, rows)
>>> read_predictions([path])[1][0].probability
0.8
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from deepcredit.atomic import atomic_writer
from deepcredit.jsonlines import read_lines

__all__ = [
    "SPLITS",
    "TARGET_NAMES",
    "ModelManifest",
    "Prediction",
    "PredictionsError",
    "read_predictions",
    "write_predictions",
]

#: The targets a prediction can be of: the benchmark's two, and ``y`` for a data set with one
#: (UCI's default next month).
TARGET_NAMES = ("delinquent", "default", "y")
SPLITS = ("train", "validation", "test")

Target = Literal["delinquent", "default", "y"]
Split = Literal["train", "validation", "test"]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class ModelManifest(msgspec.Struct, frozen=True, tag="model", tag_field="kind"):
    """A model in a predictions file: ``name`` (unique across the files of one report),
    ``family`` (deepcredit, gbdt, lr, hmm, a paper's system...), whether it has a
    ``streaming`` form, and free text on where it came from."""

    name: Name
    family: Name
    streaming: bool
    description: str = ""
    source: str = ""  # the artifact version or the command that made the predictions
    data: str = ""  # the data the rows come from (an events file and its SHA-256)


class Prediction(msgspec.Struct, frozen=True, tag="prediction", tag_field="kind"):
    """One model's probability for one row and target, with the row's observed label."""

    model: Name
    user_id: Name
    event_id: Name
    target: Target
    label: Literal[0, 1]
    probability: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    split: Split


class PredictionsError(ValueError):
    """A predictions file that breaks the format; the message names the file and line."""


_decoder = msgspec.json.Decoder(ModelManifest | Prediction)
_encoder = msgspec.json.Encoder()


def write_predictions(path: Path, manifest: ModelManifest, rows: Iterable[Prediction]) -> int:
    """The manifest and the rows into ``path`` (gzip when it ends in ``.gz``), written aside
    and renamed. Returns the number of rows. Raises PredictionsError on a row of another
    model."""
    count = 0
    with atomic_writer(path, gzip=str(path).endswith(".gz"), compresslevel=6) as f:
        f.write(_encoder.encode(manifest) + b"\n")
        for row in rows:
            if row.model != manifest.name:
                raise PredictionsError(f"a row of model {row.model!r} in {manifest.name!r}'s file")
            f.write(_encoder.encode(row) + b"\n")
            count += 1
    return count


def read_predictions(paths: Iterable[Path]) -> tuple[dict[str, ModelManifest], list[Prediction]]:
    """Manifests by model name and every prediction of the files. Raises PredictionsError on
    a line that is no valid record, two manifests of one name, a row whose model has no
    manifest, or a (model, target, user, event) given twice."""
    manifests: dict[str, ModelManifest] = {}
    rows: list[Prediction] = []
    for path in paths:
        for number, line in enumerate(read_lines(str(path)), start=1):
            try:
                record = _decoder.decode(line)
            except msgspec.ValidationError as exc:
                raise PredictionsError(f"{path}:{number}: {exc}") from None
            except msgspec.DecodeError as exc:
                raise PredictionsError(f"{path}:{number}: not JSON ({exc})") from None
            if isinstance(record, ModelManifest):
                if record.name in manifests:
                    raise PredictionsError(f"{path}:{number}: a second manifest of model "
                                           f"{record.name!r}")  # fmt: skip
                manifests[record.name] = record
            else:
                rows.append(record)
    seen: set[tuple[str, str, str, str]] = set()
    for row in rows:
        if row.model not in manifests:
            raise PredictionsError(f"predictions of model {row.model!r}, which no file's "
                                   "'model' record describes")  # fmt: skip
        key = (row.model, row.target, row.user_id, row.event_id)
        if key in seen:
            raise PredictionsError(f"model {row.model!r} predicts {row.target} twice for user "
                                   f"{row.user_id!r}, event {row.event_id!r}")  # fmt: skip
        seen.add(key)
    return manifests, rows
