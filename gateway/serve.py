"""Run the gateway: uvicorn serving ``gateway.app`` in one or more processes on one port
(uvicorn's own supervisor; each process reads the whole risk topic, so any of them can answer
any request or resend)."""

from __future__ import annotations

import dataclasses
import json
import os

import uvicorn

from gateway.app import CONFIG_ENV
from gateway.config import GatewayConfig

__all__ = ["serve"]


def serve(cfg: GatewayConfig) -> None:
    """Serve until SIGTERM or SIGINT. The configuration reaches the worker processes through
    the environment (``gateway.app.from_env``); the broker and topics through
    ``DEEPCREDIT_BOOTSTRAP`` and ``DEEPCREDIT_TOPIC_PREFIX``."""
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg)
               if f.name not in ("kafka", "topics")}  # fmt: skip
    os.environ[CONFIG_ENV] = json.dumps(options)
    os.environ["DEEPCREDIT_BOOTSTRAP"] = cfg.kafka.bootstrap_servers
    os.environ["DEEPCREDIT_TOPIC_PREFIX"] = cfg.topics.clicks.removesuffix("clicks")
    uvicorn.run("gateway.app:from_env", factory=True, host=cfg.host, port=cfg.port,
                workers=cfg.processes, access_log=False, log_level="info")  # fmt: skip
