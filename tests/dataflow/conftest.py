"""Fixtures for the flow's tests: a small generated clickstream and a model trained on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepcredit.cli import main
from deepcredit.codec import decode_click
from deepcredit.events import ClickEvent
from deepcredit.jsonlines import read_lines


@pytest.fixture(scope="session")
def clicks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3,400 events of 40 users over 200 days, in global time order."""
    path = tmp_path_factory.mktemp("clicks") / "clicks.jsonl"
    args = ["generate", "--users", "40", "--seed", "11", "--horizon-days", "200", "--quiet"]
    assert main([*args, "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def clicks(clicks_file: Path) -> list[ClickEvent]:
    events = [decode_click(line) for line in read_lines(str(clicks_file))]
    assert all(isinstance(e, ClickEvent) for e in events)
    return events  # type: ignore[return-value]


@pytest.fixture(scope="session")
def model_dir(clicks_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small model (D = 8, one epoch) trained on the clicks: real weights, made in seconds."""
    out = tmp_path_factory.mktemp("models")
    args = ["train", "--events", str(clicks_file), "--out-dir", str(out), "--hidden", "8",
            "--epochs", "1", "--quiet"]  # fmt: skip
    assert main(args) == 0
    [folder] = out.iterdir()
    return folder
