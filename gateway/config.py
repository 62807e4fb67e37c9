"""How a gateway runs (``GatewayConfig``): ``deepcredit gateway --help`` reads its defaults
without loading the web stack."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepcredit.settings import KafkaSettings, Topics

__all__ = ["GatewayConfig"]


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
