"""Run ``deepcredit serve`` as its own process, as operators do (so a test can SIGKILL it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics


def serve_process(
    kafka: KafkaSettings, topics: Topics, model: Path, *args: str, log: Path,
    like_background_job: bool = False,
) -> subprocess.Popen:
    """Start ``deepcredit serve --model MODEL ARGS`` against these topics; output to ``log``.

    ``like_background_job``: start it with SIGINT ignored, as ``cmd &`` in a script does."""
    env = {**os.environ, "DEEPCREDIT_BOOTSTRAP": kafka.bootstrap_servers,
           "DEEPCREDIT_TOPIC_PREFIX": topics.clicks.removesuffix("clicks")}  # fmt: skip
    cmd = [sys.executable, "-m", "deepcredit.cli", "serve", "--model", str(model), *args]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=_ignore_sigint if like_background_job else None)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
