"""How a gateway runs (``GatewayConfig``) and the dashboard (``DashboardConfig``):
``deepcredit gateway --help`` and ``deepcredit dashboard --help`` read their defaults without
loading the web stack."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from deepcredit.settings import KafkaSettings, Topics

__all__ = ["DashboardConfig", "GatewayConfig"]


@dataclass(frozen=True)
class GatewayConfig:
    """Where the gateway listens, which flow it talks to, and how long it waits."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8080, metadata={"help": "HTTP port"})
    processes: int = field(default=1, metadata={
        "help": "gateway processes on the port (each reads the whole risk topic)"
    })  # fmt: skip
    flow_urls: tuple[str, ...] = field(default=("http://127.0.0.1:9464",), metadata={
        "help": "the flow's endpoint (its --metrics-port), one per flow process; the gateway "
                "answers 503 while any of them is not ready"
    })  # fmt: skip
    timeout_s: float = field(default=5.0, metadata={
        "help": "how long a request waits for its score before 504 (seconds)"
    })  # fmt: skip
    remember: int = field(default=50_000, metadata={
        "help": "recent answers kept per process to answer resends (and warmed from the tail of "
                "the risk topic at start-up)"
    })  # fmt: skip
    health_poll_s: float = field(default=0.2, metadata={
        "help": "seconds between two polls of the flow's /readyz"
    })  # fmt: skip


@dataclass(frozen=True)
class DashboardConfig:
    """Where the dashboard listens, how often the page refreshes, and what it keeps."""

    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on"})
    port: int = field(default=8090, metadata={"help": "HTTP port"})
    refresh_s: float = field(default=5.0, metadata={
        "help": "seconds between two reloads of the page in the browser"
    })  # fmt: skip
    keep_posts: int = field(default=200_000, metadata={
        "help": "scored posts kept in memory (the latest; older ones leave the page), and as "
                "many settled loans"
    })  # fmt: skip
    reference_days: float = field(default=30.0, metadata={
        "help": "the score distribution's reference: the current model's posts in its first "
                "this many days of event time (serve's --drift-warmup-days, the drift "
                "monitors' reference period)"
    })  # fmt: skip
    window_days: float = field(default=7.0, metadata={
        "help": "the score distribution's current window: the current model's posts in the "
                "last this many days of event time"
    })  # fmt: skip
    registry: Path | None = field(default=None, metadata={
        "help": "a model registry folder (deepcredit models): also show its promotions and "
                "the current model"
    })  # fmt: skip
