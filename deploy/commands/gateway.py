"""``deepcredit gateway``: request/reply scoring over HTTP, through the live flow."""

from __future__ import annotations

import argparse

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.options import Option, add_options, from_args
from gateway.config import GatewayConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "gateway",
        "score one loan post on request: an HTTP service (POST /v1/score, OpenAPI at "
        "/openapi.json) that sends the post through the live flow (the clicks topic) and "
        "answers with the score the flow writes to the risk-scores topic; 503 while the flow "
        "is down, 504 when the score does not come in time, the same answer for a resend",
        _run,
    )  # fmt: skip
    add_bootstrap(p)
    add_options(p, GatewayConfig, "host", "port", "processes",
                Option("flow_urls", "--flow-url", metavar="URL"),
                Option("timeout_s", "--timeout-seconds"), "remember",
                Option("health_poll_s", "--health-poll-seconds"))  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import logging

    from gateway.serve import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per readiness poll else
    cfg = from_args(GatewayConfig, args, kafka=KafkaSettings(args.bootstrap),
                    topics=Topics.from_env())  # fmt: skip
    if cfg.processes < 1 or cfg.remember < 1 or cfg.timeout_s <= 0 or cfg.health_poll_s <= 0:
        raise CliError("--processes and --remember must be at least 1, --timeout-seconds and "
                       "--health-poll-seconds above 0")  # fmt: skip
    serve(cfg)
    return 0
