"""``deepcredit serve`` as operators run it: it stops cleanly on SIGTERM or SIGINT even when
started in the background by a script (which makes it ignore SIGINT), and a second flow on a
metrics port that is already taken fails at once with a message that says why."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

import pytest

from deepcredit.settings import KafkaSettings, Topics
from deepcredit.waiting import wait_until
from tests.dataflow.test_flow import scrape
from tests.ports import free_port
from tests.serving import serve_process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_background_flow_stops_cleanly_on_a_signal(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path, signum: int
) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    args = ("--metrics-port", str(port), "--recovery-dir", str(tmp_path / "recovery"))
    flow = serve_process(kafka, topics, model_dir, *args, log=log, like_background_job=True)
    try:
        wait_until(lambda: _answers(port), 60, what="the metrics endpoint")
        flow.send_signal(signum)
        assert flow.wait(30) == 0, log.read_text()[-3000:]
    finally:
        flow.kill()
    assert not _answers(port)  # the port is free for the next flow


def test_a_second_flow_on_a_taken_metrics_port_fails_with_a_clear_error(
    kafka: KafkaSettings, topics: Topics, model_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        flow = serve_process(kafka, topics, model_dir, "--metrics-port", str(port), log=log)
        try:
            assert flow.wait(60) == 1
        finally:
            flow.kill()
    text = log.read_text()
    assert f"cannot serve metrics on 127.0.0.1:{port}" in text
    assert "is another 'deepcredit serve' still running?" in text
    assert "Traceback" not in text


def _answers(port: int) -> bool:
    try:
        return bool(scrape(port))
    except OSError:
        return False


def test_an_interrupt_is_found_however_deep_bytewax_wrapped_it() -> None:
    from bytewax.errors import BytewaxRuntimeError

    from dataflow.serve import _interrupt_in

    def wrapped(depth: int) -> BaseException:
        try:
            try:
                raise KeyboardInterrupt("SIGTERM")
            except KeyboardInterrupt as cause:
                raise BytewaxRuntimeError("list_parts") from cause
        except BytewaxRuntimeError as inner:
            if depth == 1:
                return inner
            try:
                raise BytewaxRuntimeError("run") from inner
            except BytewaxRuntimeError as outer:
                return outer

    assert str(_interrupt_in(wrapped(1))) == "SIGTERM"
    assert str(_interrupt_in(wrapped(2))) == "SIGTERM"
    assert _interrupt_in(BytewaxRuntimeError("a real failure")) is None
