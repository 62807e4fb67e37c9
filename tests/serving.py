"""Run ``deepcredit serve`` as its own process, as operators do (so a test can SIGKILL it)."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics
from training.experiments.processes import serve_process as start


def serve_process(
    kafka: KafkaSettings, topics: Topics, model: Path, *args: str, log: Path,
    like_background_job: bool = False,
) -> subprocess.Popen:
    """Start ``deepcredit serve --model MODEL ARGS`` against these topics; output to ``log``.

    ``like_background_job``: start it with SIGINT ignored, as ``cmd &`` in a script does."""
    return start(kafka, topics, ["--model", str(model), *args], log,
                 preexec_fn=_ignore_sigint if like_background_job else None)  # fmt: skip


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
