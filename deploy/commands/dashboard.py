"""``deepcredit dashboard``: the risk-operations page, served on its own port."""

from __future__ import annotations

import argparse

from deepcredit.settings import KafkaSettings, Topics
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.options import Option, add_options, from_args
from gateway.config import DashboardConfig

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    p = command(
        sub, "dashboard",
        "serve the risk-operations page (http://HOST:PORT/dashboard, reloading itself): "
        "decision mix and approval rate over time, the score distribution against its "
        "reference, realised delinquency and default among approved posts by week of posting, "
        "drift alerts, thresholds and their changes, the models and their events; the same "
        "figures as JSON at /dashboard.json. Reads the topics; writes nothing.",
        _run,
    )  # fmt: skip
    add_bootstrap(p)
    add_options(p, DashboardConfig, "host", "port", Option("refresh_s", "--refresh-seconds"),
                "keep_posts", "reference_days", "window_days",
                Option("registry", metavar="DIR"))  # fmt: skip


def _run(args: argparse.Namespace) -> int:
    import logging

    from gateway.dashboard import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = from_args(DashboardConfig, args, kafka=KafkaSettings(args.bootstrap),
                    topics=Topics.from_env())  # fmt: skip
    if cfg.refresh_s <= 0 or cfg.keep_posts < 1 or cfg.reference_days <= 0 or cfg.window_days <= 0:
        raise CliError("--refresh-seconds, --reference-days and --window-days must be above 0, "
                       "--keep-posts at least 1")  # fmt: skip
    print(f"dashboard: http://{cfg.host}:{cfg.port}/dashboard", flush=True)
    serve(cfg)
    return 0
