"""The product's processes started as an operator starts them, through the ``deepcredit``
entry point, for the scenarios and benchmarks that drive a live flow (and for the tests)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

from deepcredit.settings import KafkaSettings, Topics

__all__ = ["free_port", "is_ready", "serve_process"]

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (for a process started next)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def is_ready(url: str) -> bool:
    """Whether the process serving ``url`` answers 200 on /readyz now."""
    try:
        return httpx.get(url + "/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def serve_process(
    kafka: KafkaSettings,
    topics: Topics,
    args: Sequence[str],
    log: Path,
    preexec_fn: Callable[[], None] | None = None,
) -> subprocess.Popen:
    """Start ``deepcredit serve ARGS`` as its own process on this broker and these topics, its
    output appended to ``log``: what the benchmark, the tests and the drift loop stop with a
    signal (SIGTERM stops it cleanly)."""
    env = {**os.environ, "DEEPCREDIT_BOOTSTRAP": kafka.bootstrap_servers,
           "DEEPCREDIT_TOPIC_PREFIX": topics.clicks.removesuffix("clicks")}  # fmt: skip
    cmd = [sys.executable, "-m", "deploy.cli", "serve", *args]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=preexec_fn)  # fmt: skip
