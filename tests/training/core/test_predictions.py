"""The predictions file format: round trip (plain and gzip) and what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.core.predictions import (
    ModelManifest,
    Prediction,
    PredictionsError,
    read_predictions,
    write_predictions,
)


def _rows(model: str) -> list[Prediction]:
    return [
        Prediction(model, "u1", "e1", "default", 1, 0.8, "test"),
        Prediction(model, "u1", "e1", "delinquent", 0, 0.3, "test"),
        Prediction(model, "u2", "e5", "default", 0, 0.0, "train"),
    ]


def test_round_trip(tmp_path: Path) -> None:
    a = ModelManifest(name="a", family="deepcredit", streaming=True, source="dc-1")
    b = ModelManifest(name="b", family="gbdt", streaming=False)
    assert write_predictions(tmp_path / "a.jsonl", a, _rows("a")) == 3
    assert write_predictions(tmp_path / "b.jsonl.gz", b, _rows("b")) == 3
    manifests, rows = read_predictions([tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz"])
    assert manifests == {"a": a, "b": b}
    assert rows == _rows("a") + _rows("b")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"kind": "prediction", "model": "a", "user_id": "u", "event_id": "e", "target": '
         b'"default", "label": 1, "probability": 1.5, "split": "test"}', "probability"),
        (b'{"kind": "prediction", "model": "a", "user_id": "u", "event_id": "e", "target": '
         b'"risk", "label": 1, "probability": 0.5, "split": "test"}', "target"),
        (b'{"kind": "prediction", "model": "a", "user_id": "u", "event_id": "e", "target": '
         b'"y", "label": 2, "probability": 0.5, "split": "test"}', "label"),
        (b'{"kind": "model", "name": "a", "family": "x", "streaming": true}', "second manifest"),
        (b'{"kind": "prediction", "model": "zz", "user_id": "u", "event_id": "e", "target": '
         b'"y", "label": 1, "probability": 0.5, "split": "test"}', "no file's"),
        (b'{"kind": "prediction", "model": "a", "user_id": "u1", "event_id": "e1", "target": '
         b'"default", "label": 1, "probability": 0.5, "split": "test"}', "twice"),
        (b"not json", "not JSON"),
    ],
)  # fmt: skip
def test_refused(tmp_path: Path, line: bytes, message: str) -> None:
    path = tmp_path / "a.jsonl"
    write_predictions(path, ModelManifest(name="a", family="x", streaming=False), _rows("a"))
    with path.open("ab") as f:
        f.write(line + b"\n")
    with pytest.raises(PredictionsError, match=message):
        read_predictions([path])


def test_a_row_of_another_model_is_not_written(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="'b'"):
        write_predictions(tmp_path / "a.jsonl", ModelManifest(name="a", family="x",
                          streaming=False), _rows("b"))  # fmt: skip
    assert not (tmp_path / "a.jsonl").exists()
