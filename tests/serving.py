"""Run ``deepcredit serve`` as its own process, as operators do (so a test can SIGKILL it), and
our ASGI apps (gateway, dashboard) on a real uvicorn in a thread."""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from tests.ports import free_port
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


@contextmanager
def asgi_server(app: Any, what: str) -> Iterator[str]:
    """``app`` on a real uvicorn on a free loopback port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning", lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started or not thread.is_alive(), 30, 0.02)
        assert server.started, f"the {what} did not start"
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


def http_status(url: str) -> int | None:
    """The status of a GET of ``url``, None when nothing answers within half a second."""
    try:
        return httpx.get(url, timeout=0.5).status_code
    except httpx.HTTPError:
        return None
