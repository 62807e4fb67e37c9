"""Run ``deepcredit serve`` as its own process, as operators do (so a test can SIGKILL it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics


def serve_process(
    kafka: KafkaSettings, topics: Topics, model: Path, *args: str, log: Path
) -> subprocess.Popen:
    """Start ``deepcredit serve --model MODEL ARGS`` against these topics; output to ``log``."""
    env = {**os.environ, "DEEPCREDIT_BOOTSTRAP": kafka.bootstrap_servers,
           "DEEPCREDIT_TOPIC_PREFIX": topics.clicks.removesuffix("clicks")}  # fmt: skip
    cmd = [sys.executable, "-m", "deepcredit.cli", "serve", "--model", str(model), *args]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
