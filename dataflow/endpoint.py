"""The flow's HTTP endpoint: metrics, liveness and readiness on one port.

    /metrics   200, Prometheus text (prometheus-client's exposition: ours and Bytewax's metrics)
    /healthz   200 "ok" while the process serves (the endpoint stops with the flow)
    /readyz    200 {"ready": true} once nothing is missing; else 503 {"ready": false,
               "missing": [...]}, e.g. ["model", "kafka_partitions", "thresholds"]
    other      404

Liveness is for a supervisor that restarts a hung process; readiness for one that routes or
waits (a rolling cut-over) until the flow scores.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

__all__ = ["Endpoint"]

StartResponse = Callable[..., Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: a scraper polls every few seconds."""


class Endpoint:
    """Serve the paths above on ``addr:port`` from daemon threads until ``close()``.

    ``missing()``: the names of the readiness conditions that do not hold now (called on each
    /readyz request, from the server's thread). Raises OSError when the port is taken.
    """

    def __init__(
        self, port: int, missing: Callable[[], list[str]], addr: str = "127.0.0.1"
    ) -> None:
        self.port = port
        self.missing = missing
        self._metrics = make_wsgi_app(REGISTRY)
        self._server = make_server(addr, port, self._app, ThreadingWSGIServer,
                                   handler_class=_Quiet)  # fmt: skip
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"endpoint-{port}")  # fmt: skip
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            return _reply(start_response, "200 OK", "text/plain", b"ok\n")
        if path == "/readyz":
            missing = self.missing()
            body = json.dumps({"ready": not missing, "missing": missing}).encode() + b"\n"
            status = "503 Service Unavailable" if missing else "200 OK"
            return _reply(start_response, status, "application/json", body)
        return _reply(start_response, "404 Not Found", "text/plain",
                      b"not found: try /metrics, /healthz or /readyz\n")  # fmt: skip


def _reply(start_response: StartResponse, status: str, kind: str, body: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
