"""Non-neural baselines: post features without look-ahead, the three models, and the HMM's EM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from deepcredit.events import Activity, ClickEvent
from scorer.features import LoanStep
from training.baselines.base import Baseline
from training.baselines.gbdt import GradientBoostingBaseline
from training.baselines.hmm import HMMBaseline
from training.baselines.hmm_em import CategoricalHMM
from training.baselines.logistic import LogisticBaseline
from training.benchmark.generator import GeneratorConfig, generate
from training.core.dataset import Sequences, build_sequences
from training.core.evaluation import binary_metrics
from training.core.postfeatures import (
    feature_names,
    labelled_post_features,
    post_features,
)

TRAIN, VALIDATION, TEST = np.arange(50), np.arange(50, 70), np.arange(70, 90)


@pytest.fixture(scope="module")
def events() -> list[ClickEvent]:
    return list(generate(GeneratorConfig(users=90, seed=11)))


@pytest.fixture(scope="module")
def seq(events: list[ClickEvent]) -> Sequences:
    return build_sequences(events)


def small_baselines() -> list[Baseline]:
    """Settings small enough for a unit test; the algorithms are the full ones."""
    return [
        GradientBoostingBaseline(max_iter=60, patience=10, seed=1, threads=1),
        LogisticBaseline(strengths=(0.1, 1.0), threads=1),
        HMMBaseline(length=16, states=(2, 3), fit_sequences=300, n_iter=15, seed=1, threads=1),
    ]


@pytest.fixture(scope="module")
def fitted(seq: Sequences) -> list[Baseline]:
    return [b.fit(seq, TRAIN, VALIDATION) for b in small_baselines()]


def test_one_row_per_post_with_its_label_and_user(events: list[ClickEvent], seq: Sequences):
    x, y, user = post_features(seq, window=4)
    posts = seq.loan_kind == LoanStep.POST
    assert x.shape == (sum(e.activity is Activity.POST for e in events), len(feature_names(4)))
    assert x.dtype == np.float32 and np.isfinite(x).all()
    np.testing.assert_array_equal(y, seq.labels[posts])
    owner = {e.event_id: e.user_id for e in events}
    assert [owner[str(e)] for e in seq.event_ids[posts]] == list(seq.user_ids[user])
    wider, _, _ = post_features(seq, window=6)
    assert wider.shape[1] - x.shape[1] == len(feature_names(6)) - len(feature_names(4))


def test_activity_counts_since_the_previous_post_match_the_event_log(
    events: list[ClickEvent], seq: Sequences
):
    """Recount from raw events, independently of the Sequences layout."""
    x, _, user = post_features(seq)
    names = feature_names()
    u = 3
    mine = [e for e in events if e.user_id == seq.user_ids[u]]
    kinds = [a.value for a in Activity if a is not Activity.POST]
    expected, counts = [], dict.fromkeys(kinds, 0)
    for e in mine:
        if e.activity is Activity.POST:
            expected.append(dict(counts))
            counts = dict.fromkeys(counts, 0)
        else:
            counts[e.activity.value] += 1
    rows = x[user == u]
    for name in counts:
        got = rows[:, names.index(f"sub.n_{name}")]
        np.testing.assert_array_equal(got, [c[name] for c in expected])


def test_features_of_a_post_ignore_everything_after_it(events: list[ClickEvent], seq: Sequences):
    cut_ts = sorted(e.ts for e in events)[len(events) // 2]
    early = build_sequences([e for e in events if e.ts <= cut_ts])
    x_full, _, _ = post_features(seq)
    x_early, _, _ = post_features(early)
    row = {str(e): i for i, e in enumerate(seq.event_ids[seq.loan_kind == LoanStep.POST])}
    early_ids = early.event_ids[early.loan_kind == LoanStep.POST]
    assert len(early_ids) > 1000
    same = np.array([row[str(e)] for e in early_ids])
    np.testing.assert_array_equal(x_early, x_full[same])


def test_each_baseline_scores_the_same_labelled_posts_with_probabilities(
    seq: Sequences, fitted: list[Baseline]
):
    _, y_expected = labelled_post_features(seq, TRAIN)
    for baseline in fitted:
        y, p = baseline.predict(seq, TRAIN)
        np.testing.assert_array_equal(y, y_expected)
        assert p.shape == y.shape and p.dtype == np.float32
        assert ((p >= 0) & (p <= 1)).all(), baseline.name
        for k in range(2):
            auc = binary_metrics(y[:, k], p[:, k]).auc
            assert np.isfinite(auc) and auc > 0.5, (baseline.name, k, auc)
        assert baseline.chosen and all(baseline.chosen.values()), baseline.name


def test_gradient_boosting_learns_on_its_training_users(seq: Sequences, fitted: list[Baseline]):
    y, p = fitted[0].predict(seq, TRAIN)
    assert all(binary_metrics(y[:, k], p[:, k]).auc > 0.6 for k in range(2))


def test_same_seed_same_predictions(seq: Sequences, fitted: list[Baseline]):
    for first, again in zip(fitted, small_baselines(), strict=True):
        again.fit(seq, TRAIN, VALIDATION)
        np.testing.assert_array_equal(first.predict(seq, TEST)[1], again.predict(seq, TEST)[1])


def test_hmm_likelihood_is_the_sum_over_all_state_paths():
    hmm = CategoricalHMM(states=2, symbols=3, seed=0)
    obs = np.array([[-1, -1, 0, 2], [1, 0, 0, 2], [-1, -1, -1, -1]])
    hmm.fit(obs, n_iter=3)
    start, trans, emit = hmm.start, hmm.trans, hmm.emit
    expected = []
    for row in obs:
        real = row[row >= 0]
        total = 0.0
        for path in itertools.product(range(2), repeat=len(real)):
            if not path:
                total = 1.0
                continue
            prob = start[path[0]] * emit[path[0], real[0]]
            for a, b, o in zip(path, path[1:], real[1:], strict=False):
                prob *= trans[a, b] * emit[b, o]
            total += prob
        expected.append(np.log(total))
    np.testing.assert_allclose(hmm.loglik(obs), expected, rtol=1e-10)


def test_baum_welch_never_lowers_the_likelihood():
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 5, size=(200, 12))
    obs[:50, :4] = -1
    totals = [CategoricalHMM(3, 5, seed=2).fit(obs, n_iter=n, tol=-np.inf).loglik(obs).sum()
              for n in range(6)]  # fmt: skip
    assert all(b >= a - 1e-6 for a, b in itertools.pairwise(totals))
