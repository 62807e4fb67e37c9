"""How a drift monitor alerts, apart from the River detectors: the command line reads these
defaults (``deepcredit serve --help``) without loading River."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from river.base import DriftDetector

__all__ = ["MonitorConfig"]


@dataclass(frozen=True)
class MonitorConfig:
    """How one monitor alerts (``scorer.monitors``). ``detector`` builds one River detector per
    signal; None means ``ADWIN(delta=delta)``.

    ``delta`` is far below River's 0.002 because our observations are not independent: one
    user's posts, amounts and loan outcomes are correlated, so ADWIN's bound, which assumes
    independence, overstates the evidence. Smaller is not quieter either: a very small delta
    makes ADWIN too slow to cut the warm-up's own drift out of its window, and it fires on it
    just after the warm-up. The false alarms measured at each delta on the benchmark without a
    shift (``deepcredit drift measure``) are in the README, "Drift monitors".

    Raises ValueError for a negative warm-up or cool-down, or a delta outside (0, 1).
    """

    warmup_days: float = field(default=30.0, metadata={
        "help": "event-time days after a monitor's first observation during which it learns its "
                "reference and raises no alert"
    })  # fmt: skip
    cooldown_days: float = field(default=7.0, metadata={
        "help": "no alert from a monitor for this many event-time days after its last"
    })  # fmt: skip
    delta: float = field(default=1e-5, metadata={
        "help": "ADWIN's delta: the false-alarm bound of each test (smaller alerts later)"
    })  # fmt: skip
    detector: Callable[[], DriftDetector] | None = None

    def __post_init__(self) -> None:
        if self.warmup_days < 0 or self.cooldown_days < 0:
            raise ValueError("warmup_days and cooldown_days must be >= 0")
        if not 0.0 < self.delta < 1.0:
            raise ValueError(f"delta must lie in (0, 1), got {self.delta}")
