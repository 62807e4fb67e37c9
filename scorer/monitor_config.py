"""How a drift monitor alerts, apart from the River detectors, and which users the monitors
watch: the command line reads these defaults (``deepcredit serve --help``) without loading
River."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from river.base import DriftDetector

__all__ = ["MonitorConfig", "UserSample", "user_point"]


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


def user_point(user_id: str) -> float:
    """A user's place in [0, 1): the first 8 bytes of BLAKE2b of the id's UTF-8, read as an
    unsigned big-endian integer, over 2**64. Stable across runs, machines and processes (unlike
    ``hash``), so every worker and every restart agrees on which users a sample holds; uniform
    for any ids, sequential ones included.

    >>> user_point("user-1") == user_point("user-1"), 0.0 <= user_point("") < 1.0
    (True, True)
    """
    digest = hashlib.blake2b(user_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True)
class UserSample:
    """Which users the drift monitors watch: those whose ``user_point`` lies below a share.

    The monitors are statistics of the platform, and a uniform sample of its users estimates
    them without bias: the activity mix, amounts and gaps, the score distribution and the
    realised performance of the sampled users are those of all users, on fewer observations
    (so a drift is seen later; the README, "Drift monitors", measures how much). A user is in
    or out whole, so a sampled user's gaps and loan outcomes are all there.

    ``fraction``: the share watched; below 1 the score step passes on only the sampled users'
    events, so the rest never cross to the drift worker. ``max_users``: the most users the
    monitors keep state for (a last event time each, and their open scored loans); past it
    they forget the users silent for a year, and if that is not enough they halve the share
    they watch and forget the users that drops (``DriftMonitors``), so their memory and their
    snapshot stay bounded whatever the platform's size. A share so halved stays halved across
    restarts unless ``max_users`` grows.

    Raises ValueError for a fraction outside (0, 1] or a max_users below 1.
    """

    fraction: float = field(default=1.0, metadata={
        "help": "share of users the drift monitors watch, chosen by a hash of the user id (all "
                "of a user's events or none); below 1 the others' events never reach the drift "
                "step"
    })  # fmt: skip
    max_users: int = field(default=20_000, metadata={
        "help": "most users the drift monitors keep state for (a last event time, open scored "
                "loans); past it they forget users silent for a year of event time, then halve "
                "the share they watch, so their memory and snapshot stay bounded; the reduced "
                "share persists across restarts: restart with a larger value to return to the "
                "full --drift-sample"
    })  # fmt: skip

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ValueError(f"the sample's fraction must lie in (0, 1], got {self.fraction}")
        if self.max_users < 1:
            raise ValueError(f"max_users must be at least 1, got {self.max_users}")

    def watches(self, user_id: str) -> bool:
        """Whether the sample holds this user (always, at fraction 1)."""
        return self.fraction >= 1.0 or user_point(user_id) < self.fraction
