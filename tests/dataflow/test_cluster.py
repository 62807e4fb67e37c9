"""The flow as a Bytewax cluster of two processes over a three-partition clicks topic gives the
same scores as one process (the step-by-step scorer's)."""

from __future__ import annotations

from pathlib import Path

from deepcredit.events import ClickEvent
from deepcredit.settings import KafkaSettings, Topics
from scorer.artifact import load_scorer
from tests.ports import free_port
from tests.serving import serve_process
from tests.streams import clicks_lines, expected_scores, read_scores, send


def test_two_processes_score_like_one(
    kafka: KafkaSettings, topics: Topics, clicks_file: Path, clicks: list[ClickEvent],
    model_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    send(kafka, topics.clicks, clicks_lines(clicks_file))
    addresses = f"127.0.0.1:{free_port()};127.0.0.1:{free_port()}"
    procs = [
        serve_process(
            kafka,
            topics,
            model_dir,
            "--until-end",
            "--metrics-port",
            "0",
            "--process-id",
            str(i),
            "--addresses",
            addresses,
            log=tmp_path / f"p{i}.log",
        )
        for i in range(2)
    ]
    for i, p in enumerate(procs):
        assert p.wait(120) == 0, (tmp_path / f"p{i}.log").read_text()[-3000:]
    scores = read_scores(kafka, topics.risk_scores)
    expected, _ = expected_scores(load_scorer(model_dir), clicks)
    assert len(scores) == len(expected)
    assert {s.event_id: (s.p_delinquent, s.p_default) for s in scores} == expected
