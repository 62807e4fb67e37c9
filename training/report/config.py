"""The report's settings, free of numpy and matplotlib: ``deepcredit report --help`` reads
these defaults without loading them."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["ReportConfig"]


@dataclass(frozen=True)
class ReportConfig:
    level: float = field(default=0.95, metadata={"help": "confidence level of every interval"})
    bands: int = field(default=10, metadata={
        "help": "equal-count score bands (10: deciles) of the band tables, reliability "
                "diagram and PSI bins"
    })  # fmt: skip
    cutoff: float = field(default=0.5, metadata={
        "help": "McNemar's test classifies a row bad at or above this probability (paper "
                "004's 0.5)"
    })  # fmt: skip
    bootstrap_draws: int = field(default=1000, metadata={
        "help": "draws of the bootstrap over users behind each pair's intervals of the AUC, KS "
                "and Brier differences (one user's loans go bad together, which DeLong's "
                "interval, treating rows as independent, does not see); 0: none"
    })  # fmt: skip
    severity_ratio: float | None = field(default=None, metadata={
        "help": "the H-measure's severity ratio, as R's hmeasure (default: the bad rate over "
                "the good rate, hmeasure's default)"
    })  # fmt: skip
