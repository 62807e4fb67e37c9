"""The oracle: each funded loan's true probability of delinquency and default under the
generator's hidden process, written to a side file next to the events.

**Never an input to any model.** The side file exists only to measure the ceiling of the
benchmark (the "oracle" row of ``deepcredit ablate``): it holds what no scorer can observe.

What "true" means here. A loan's outcome is drawn once, at settlement (``REPAY_LEAD_DAYS``
before its due date, ``training.benchmark.user``), from the risk z = m + ε with m the hidden
risk then (distress, scars, debt, overdue debt, the shift's term risk) and ε ~ N(0,
``LOAN_NOISE_SD``²) the loan's own noise::

    P(delinquent | m) = E_ε[σ(DELINQUENT_BIAS + m + ε)]
    P(default | m)    = E_ε[σ(DELINQUENT_BIAS + m + ε) · σ(DEFAULT_BIAS + DEFAULT_SLOPE (m + ε))]

(default = late, then the default draw). Both expectations over ε are computed by Gauss–Hermite
quadrature with ``QUADRATURE_NODES`` nodes, exact to ~1e-12 for these smooth integrands (the
tests check them against Monte Carlo); no random draw is taken, so writing the side file never
changes the events. The probability is conditional on the hidden state *at settlement*, which
has moved since the post (more shocks, other loans' outcomes): the oracle knows more than any
model could at post time, so its AUC is an upper bound, not a target a model can reach exactly.
A post that was never funded, or whose loan settles after the end of the log, has no record.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgspec
import numpy as np

from deepcredit.atomic import atomic_writer
from deepcredit.jsonlines import read_lines

__all__ = [
    "QUADRATURE_NODES",
    "LoanOracle",
    "outcome_probabilities",
    "read_oracle",
    "write_oracle",
]

#: Gauss–Hermite nodes for the expectation over the loan noise.
QUADRATURE_NODES = 40

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # probabilists' Hermite: weights sum to sqrt(2π)
_NODE_LIST, _WEIGHT_LIST = _NODES.tolist(), _WEIGHTS.tolist()


class LoanOracle(msgspec.Struct, frozen=True):
    """One funded loan's true outcome probabilities (module docstring), keyed by the event id
    of its post (what ``training.core.dataset.Sequences.event_ids`` holds at posts)."""

    post_event_id: str
    loan_id: str
    user_id: str
    settle_ts: float  # Unix seconds: when the outcome was drawn
    p_delinquent: float
    p_default: float
    #: The same probabilities as of the post (module docstring), None where not computed.
    p_delinquent_at_post: float | None = None
    p_default_at_post: float | None = None
    paths_at_post: int = 0  # the simulated futures they average


def outcome_probabilities(
    risk: float,
    noise_sd: float,
    delinquent_bias: float,
    default_bias: float,
    default_slope: float,
) -> tuple[float, float]:
    """(P(delinquent), P(default)) of a loan with hidden risk ``risk`` (m in the module
    docstring) and loan noise N(0, noise_sd²), by Gauss–Hermite quadrature."""
    p_late = p_default = 0.0
    for node, weight in zip(_NODE_LIST, _WEIGHT_LIST, strict=True):
        z = risk + noise_sd * node
        late = _logistic(delinquent_bias + z)
        p_late += weight * late
        p_default += weight * late * _logistic(default_bias + default_slope * z)
    return p_late, p_default


def write_oracle(path: str | Path, records: Iterable[LoanOracle]) -> int:
    """Write ``records`` as JSON lines (gzip when ``path`` ends in .gz), atomically; how many."""
    path = Path(path)
    encoder = msgspec.json.Encoder()
    n = 0
    with atomic_writer(path, gzip=path.name.endswith(".gz")) as out:
        for record in records:
            out.write(encoder.encode(record) + b"\n")
            n += 1
    return n


def read_oracle(path: str | Path) -> Iterator[LoanOracle]:
    """The records of an oracle side file. Raises msgspec.ValidationError on a bad line."""
    decoder = msgspec.json.Decoder(LoanOracle)
    for line in read_lines(str(path)):
        yield decoder.decode(line)


def _logistic(x: float) -> float:
    if x < -700.0:  # math.exp overflows beyond ~709
        return 0.0
    return 1.0 / (1.0 + math.exp(-x))
