"""The oracle side file: the events stay byte for byte what the generator wrote before it
existed, its probabilities are the expectations they claim, and every labelled post has one."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pytest

from deepcredit.events import DAY_S, Activity
from training.benchmark.config import DEFAULT_START_TS, GeneratorConfig
from training.benchmark.generator import write_jsonl
from training.benchmark.oracle import outcome_probabilities, read_oracle
from training.benchmark.user import (
    DEFAULT_BIAS,
    DEFAULT_SLOPE,
    DELINQUENT_BIAS,
    LOAN_NOISE_SD,
)
from training.core.dataset import build_sequences
from training.core.eventlog import read_events
from training.experiments.ablation import oracle_predictions

#: SHA-256 of the events file these configs gave at commit ac23ed3, before the oracle existed.
BEFORE = {
    "plain": "005e28c5f787e544a3c0c5e1411211be1e10d601c7c565f31e91e199c0660a5b",
    "shifted": "8c79c184c89289b9fc3d027bb652d8082a3e82e8b1451434f08d9d3736a991d7",
}
CONFIGS = {
    "plain": GeneratorConfig(users=12, seed=5, horizon_days=400),
    "shifted": GeneratorConfig(users=12, seed=5, horizon_days=400,
                               shift_at_ts=DEFAULT_START_TS + 200 * DAY_S, shift_term_risk=2.0),
}  # fmt: skip


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_events_unchanged_with_and_without_oracle(tmp_path: Path, name: str) -> None:
    config = CONFIGS[name]
    write_jsonl(config, tmp_path / "plain.jsonl", progress=False)
    write_jsonl(config, tmp_path / "with.jsonl", progress=False,
                oracle_path=tmp_path / "oracle.jsonl")  # fmt: skip
    assert sha256(tmp_path / "plain.jsonl") == BEFORE[name]
    assert sha256(tmp_path / "with.jsonl") == BEFORE[name]
    records = list(read_oracle(tmp_path / "oracle.jsonl"))
    events = list(read_events(tmp_path / "with.jsonl"))
    posts = {e.event_id: e.loan_id for e in events if e.activity is Activity.POST}
    borrowed = {e.loan_id for e in events if e.activity is Activity.BORROW}
    assert records, "a 400-day stream of 12 users settles some loans"
    for r in records:
        assert posts[r.post_event_id] == r.loan_id and r.loan_id in borrowed
        assert 0.0 < r.p_default < r.p_delinquent < 1.0
        assert config.start_ts <= r.settle_ts < config.end_ts


def test_every_labelled_post_has_its_probabilities(tmp_path: Path) -> None:
    config = CONFIGS["plain"]
    write_jsonl(config, tmp_path / "e.jsonl", progress=False,
                oracle_path=tmp_path / "o.jsonl.gz")  # fmt: skip
    seq = build_sequences(read_events(tmp_path / "e.jsonl"))
    y, p = oracle_predictions(seq, np.arange(seq.users), tmp_path / "o.jsonl.gz")
    assert len(y) == int(np.isfinite(seq.labels).any(axis=-1).sum()) > 0
    assert p.shape == y.shape and np.all((p > 0) & (p < 1))
    (tmp_path / "other.jsonl").write_text("")
    with pytest.raises(ValueError, match="no oracle record"):
        oracle_predictions(seq, np.arange(seq.users), tmp_path / "other.jsonl")


@pytest.mark.parametrize("risk", [-4.0, -1.0, 0.0, 1.5, 4.0])
def test_quadrature_matches_monte_carlo(risk: float) -> None:
    """The settle draw, repeated: late with σ(bias + z), then default with σ(...) given late."""
    rng = np.random.default_rng(0)
    n = 400_000
    z = risk + LOAN_NOISE_SD * rng.standard_normal(n)
    late = rng.random(n) < 1 / (1 + np.exp(-(DELINQUENT_BIAS + z)))
    default = late & (rng.random(n) < 1 / (1 + np.exp(-(DEFAULT_BIAS + DEFAULT_SLOPE * z))))
    p_late, p_default = outcome_probabilities(risk, LOAN_NOISE_SD, DELINQUENT_BIAS,
                                              DEFAULT_BIAS, DEFAULT_SLOPE)  # fmt: skip
    for p, draws in ((p_late, late), (p_default, default)):
        se = math.sqrt(max(p * (1 - p), 1e-12) / n)
        assert abs(p - draws.mean()) < 5 * se + 1e-6


def test_quadrature_without_noise_is_the_logistic() -> None:
    p_late, p_default = outcome_probabilities(0.3, 0.0, -1.0, -2.0, 1.0)
    assert p_late == pytest.approx(1 / (1 + math.exp(0.7)), abs=1e-12)
    assert p_default == pytest.approx(p_late / (1 + math.exp(1.7)), abs=1e-12)
