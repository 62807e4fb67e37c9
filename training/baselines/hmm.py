"""Class-conditional hidden Markov models over the two sequences: the paper's HMM baseline.

The paper's HMM "takes both the activity and repayment sequences as observed data", labels
each post delinquent or not (default or not) by its loan's outcome and trains with Baum–Welch.
Our reading, per target:

1. the observations before a post are its last ``length`` activity rows and its last
   ``length`` loan-level rows (the post itself included), each row coded as one discrete
   symbol (below): the same rows the other models see, nothing after the post;
2. the training users are halved at random; for each class (positive, negative) and each
   stream, a categorical HMM is fitted with Baum–Welch (``baseline_hmm_em``) on at most
   ``fit_sequences`` random sequences of that class from the first half, which bounds
   training time whatever the data size. Both classes' HMMs start from one HMM fitted to both
   samples, so their hidden states line up and the ratio below compares like with like;
3. a post's score per stream is the log-likelihood ratio log p(x | positive) − log p(x |
   negative), computed by a forward pass vectorised over all posts;
4. a two-input logistic regression turns the two ratios into a probability, fitted on the
   second half's posts (users the HMMs never saw): with unit weights it would be Bayes' rule
   with the class prior; the fitted weights correct for the dependence between the two streams
   and the overconfidence of short-memory HMMs.

The number of hidden states is the one small choice made on the validation users (mean AUC).

Symbols. Activity row: type (9) × gap within the hour or longer (2) = 18; money is left out
because, with it, Baum–Welch spends the hidden states on each user's amount scale (sticky
"rich"/"poor" states), which lowered validation AUC. Loan-level row: a post × (overdue debt or
not) × (amount above the training users' median post or not) = 4, a repayment by delay (on
time, ≤ 30 days, ≤ 120 days, later) = 4, a miss = 1.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
from sklearn.linear_model import LogisticRegression

from scorer.features import LOAN_FEATURES, STEP_ACTIVITIES, LoanStep
from scorer.timegap import normalise_gap
from training.baselines.base import Baseline, validation_auc
from training.baselines.hmm_em import CategoricalHMM
from training.core.dataset import Sequences
from training.core.model import TARGETS
from training.core.postfeatures import post_index, window_rows

__all__ = ["HMMBaseline"]

log = logging.getLogger(__name__)

_TYPES = len(STEP_ACTIVITIES)
_SESSION_GAP = float(normalise_gap(3600.0))  # within the hour: the same visit
#: loan_x columns (``scorer.features.loan_features``): kind one-hot, amount, rate, term, unpaid,
#: overdue, ..., delay last.
_AMOUNT, _OVERDUE, _DELAY = len(LoanStep), len(LoanStep) + 4, LOAN_FEATURES - 1
#: Repayment delay cut points on the loan input's scale (days / 120): 0, 30 and 120 days.
_DELAY_CUTS = np.array([0.0, 30.0 / 120.0, 1.0])
_SYMBOLS = {"act": _TYPES * 2, "loan": 4 + 4 + 1}


class _Windows(NamedTuple):
    """Symbol windows (P, length) of both streams, -1 padded on the left, and labels (P, 2)."""

    act: np.ndarray
    loan: np.ndarray
    y: np.ndarray

    def rows(self, index: np.ndarray) -> _Windows:
        return _Windows(self.act[index], self.loan[index], self.y[index])


class HMMBaseline(Baseline):
    """Per target and class, categorical HMMs on the activity and the loan-level stream."""

    name = "hmm"

    def __init__(
        self,
        length: int = 32,
        states: tuple[int, ...] = (2, 4, 8),
        fit_sequences: int = 5000,
        n_iter: int = 50,
        seed: int = 0,
        threads: int | None = None,
    ) -> None:
        self.length = length  # rows of each stream before a post
        self.states = states  # hidden-state counts tried; validation picks one
        self.fit_sequences = fit_sequences  # per class and stream, for Baum–Welch
        self.n_iter = n_iter
        self.seed = seed
        self.threads = threads
        self._amount_cut = 0.0
        self._models: list[_TargetModel] = []
        self._chosen_states = 0

    @property
    def chosen(self) -> dict[str, Any]:
        """The hidden-state count picked on the validation users."""
        return {"states": self._chosen_states}

    def _fit(self, seq: Sequences, train_users: np.ndarray, validation_users: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        shuffled = rng.permutation(train_users)
        half = len(shuffled) // 2
        self._fit_amount_cut(seq.subset(train_users))
        fitting = self._windows(seq.subset(shuffled[:half]))
        combining = self._windows(seq.subset(shuffled[half:]))
        validation = self._windows(seq.subset(validation_users))
        best_auc, self._models = -np.inf, []
        for states in self.states:
            models = [_TargetModel.fit(fitting, combining, k, states, self)
                      for k in range(len(TARGETS))]  # fmt: skip
            aucs = [validation_auc(validation.y[:, k], m.predict(validation))
                    for k, m in enumerate(models)]  # fmt: skip
            log.info("hmm with %d states: validation AUC %s", states, np.round(aucs, 4))
            mean_auc = -np.inf if np.isnan(aucs).all() else float(np.nanmean(aucs))
            if not self._models or mean_auc > best_auc:
                best_auc, self._models, self._chosen_states = mean_auc, models, states

    def _predict(self, seq: Sequences, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        windows = self._windows(seq.subset(users))
        p = np.column_stack([m.predict(windows) for m in self._models])
        return windows.y, p.astype(np.float32)

    def _fit_amount_cut(self, train: Sequences) -> None:
        posts = train.loan_x[train.loan_kind == LoanStep.POST, _AMOUNT]
        self._amount_cut = float(np.median(posts)) if len(posts) else 0.0

    def _windows(self, seq: Sequences) -> _Windows:
        """Both streams' symbol windows at the labelled posts of ``seq``."""
        at = post_index(seq)
        known = np.isfinite(seq.labels[at.rows]).any(axis=1)
        act_rows = window_rows(at.last_act[known], at.first_act[known], self.length)
        loan_rows = window_rows(at.rows[known], at.first_loan[known], self.length)
        act = np.where(act_rows >= 0, self._activity_symbols(seq)[np.maximum(act_rows, 0)], -1)
        loan = np.where(loan_rows >= 0, self._loan_symbols(seq)[np.maximum(loan_rows, 0)], -1)
        return _Windows(act, loan, seq.labels[at.rows[known]])

    @staticmethod
    def _activity_symbols(seq: Sequences) -> np.ndarray:
        kind = np.argmax(seq.act_x[:, :_TYPES], axis=1)
        return kind * 2 + (seq.act_gap > _SESSION_GAP)

    def _loan_symbols(self, seq: Sequences) -> np.ndarray:
        x, kind = seq.loan_x, seq.loan_kind
        post = 2 * (x[:, _OVERDUE] > 0) + (x[:, _AMOUNT] > self._amount_cut)
        repay = 4 + np.searchsorted(_DELAY_CUTS, x[:, _DELAY], side="left")
        return np.select([kind == LoanStep.POST, kind == LoanStep.REPAY], [post, repay], 8)


class _TargetModel:
    """One target's four HMMs (class × stream) and the combiner of their likelihood ratios."""

    def __init__(self, hmms: dict[tuple[int, str], CategoricalHMM], combiner: LogisticRegression):
        self.hmms = hmms
        self.combiner = combiner

    @classmethod
    def fit(
        cls, fitting: _Windows, combining: _Windows, target: int, states: int, cfg: HMMBaseline
    ) -> _TargetModel:
        rng = np.random.default_rng(cfg.seed)
        samples = {}
        for label in (0, 1):
            rows = np.flatnonzero(fitting.y[:, target] == label)
            if len(rows) == 0:
                raise ValueError(f"no {TARGETS[target]}={label} post among the HMM fitting users")
            samples[label] = fitting.rows(rng.choice(rows, min(cfg.fit_sequences, len(rows)),
                                                     replace=False))  # fmt: skip
        hmms = {}
        for stream in ("act", "loan"):
            both = np.concatenate([getattr(samples[c], stream) for c in (0, 1)])
            pooled = CategoricalHMM(states, _SYMBOLS[stream], seed=cfg.seed)
            pooled.fit(both, n_iter=cfg.n_iter)
            for label in (0, 1):
                hmm = CategoricalHMM(states, _SYMBOLS[stream], seed=cfg.seed)
                hmms[label, stream] = hmm.fit(getattr(samples[label], stream), n_iter=cfg.n_iter,
                                              start_from=pooled)  # fmt: skip
        model = cls(hmms, LogisticRegression())
        known = combining.rows(np.isfinite(combining.y[:, target]))
        model.combiner.fit(model._ratios(known), known.y[:, target])
        return model

    def predict(self, windows: _Windows) -> np.ndarray:
        return self.combiner.predict_proba(self._ratios(windows))[:, 1]

    def _ratios(self, windows: _Windows) -> np.ndarray:
        """(N, 2) log-likelihood ratios, positive over negative, of both streams."""

        def ratio(stream: str) -> np.ndarray:
            obs = getattr(windows, stream)
            return self.hmms[1, stream].loglik(obs) - self.hmms[0, stream].loglik(obs)

        return np.column_stack([ratio("act"), ratio("loan")])
