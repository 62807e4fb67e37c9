"""A categorical hidden Markov model fitted by Baum–Welch, vectorised over many short sequences.

The HMM baseline fits and scores tens of thousands of sequences of a few dozen symbols each.
Libraries that loop over sequences in Python (hmmlearn) spend milliseconds per sequence and
iteration; here every forward and backward step runs on all sequences at once, so an EM
iteration over 10,000 sequences of 32 steps takes tens of milliseconds.

Sequences come as one (N, T) int array, right-aligned: -1 marks absent steps, which may only
precede the real ones (a history shorter than T). Probabilities are scaled per step (Rabiner's
scaling), so long sequences do not underflow.

>>> hmm = CategoricalHMM(states=2, symbols=3, seed=0)
>>> obs = np.array([[-1, 0, 0, 1], [2, 2, 2, 1]])
>>> gain = hmm.fit(obs, n_iter=1).loglik(obs).sum() - hmm.fit(obs, n_iter=0).loglik(obs).sum()
>>> bool(gain > 0)
True
"""

from __future__ import annotations

from typing import Self

import numpy as np

__all__ = ["CategoricalHMM"]

#: Added to every expected count in the M-step, so a symbol or transition never seen in the
#: fitting sample stays unlikely rather than impossible when scoring other sequences.
_PSEUDOCOUNT = 1e-3
#: Rows per forward pass when scoring.
_CHUNK = 65_536


class CategoricalHMM:
    """Hidden states emit one of ``symbols`` discrete symbols; parameters are learned by EM."""

    def __init__(self, states: int, symbols: int, seed: int = 0) -> None:
        self.states = states
        self.symbols = symbols
        self.seed = seed
        self._start = np.full(states, 1.0 / states)
        self._trans = np.full((states, states), 1.0 / states)
        self._emit = np.full((states, symbols), 1.0 / symbols)

    @property
    def start(self) -> np.ndarray:
        return self._start.copy()

    @property
    def trans(self) -> np.ndarray:
        return self._trans.copy()

    @property
    def emit(self) -> np.ndarray:
        return self._emit.copy()

    def fit(
        self,
        obs: np.ndarray,
        n_iter: int = 50,
        tol: float = 1e-4,
        start_from: CategoricalHMM | None = None,
    ) -> Self:
        """Baum–Welch from ``start_from``'s parameters, or else from a seeded random start;
        stops when the mean log-likelihood per sequence improves by less than ``tol``. Empty
        rows are ignored."""
        obs = obs[(obs >= 0).any(axis=1)]
        if start_from is None:
            self._initialise(obs)
        else:
            self._start, self._trans = start_from.start, start_from.trans
            self._emit = start_from.emit
        previous = -np.inf
        for _ in range(n_iter):
            alpha, scale = self._forward(obs)
            current = float(np.log(scale).sum() / len(obs))
            if current - previous < tol:
                break
            previous = current
            self._maximise(obs, alpha, scale)
        return self

    def loglik(self, obs: np.ndarray) -> np.ndarray:
        """log p(row) for each row of ``obs`` (N, T); 0 for an empty row. Chunked, so memory
        stays bounded however many rows."""
        parts = [np.log(self._forward(obs[i : i + _CHUNK])[1]).sum(axis=0)
                 for i in range(0, len(obs), _CHUNK)]  # fmt: skip
        return np.concatenate(parts) if parts else np.zeros(0)

    def _initialise(self, obs: np.ndarray) -> None:
        """Random start, transitions and emissions (Dirichlet and uniform draws, as hmmlearn
        does): EM then breaks the symmetry between states from there."""
        rng = np.random.default_rng(self.seed)
        s = self.states
        self._start = rng.dirichlet(np.full(s, 1.0 / s))
        self._trans = rng.dirichlet(np.full(s, 1.0 / s), size=s)
        self._emit = _normalised(rng.uniform(size=(s, self.symbols)))

    def _forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scaled forward pass: alpha (T, N, S), normalised per step, and the scales (T, N)
        (1 at absent steps), whose logs sum to each row's log-likelihood."""
        n, steps = obs.shape
        alpha = np.zeros((steps, n, self.states))
        scale = np.ones((steps, n))
        started = np.zeros(n, dtype=bool)
        for t in range(steps):
            real = obs[:, t] >= 0
            prev = alpha[t - 1] if t else alpha[0]
            prior = np.where(started[:, None], prev @ self._trans, self._start[None, :])
            joint = prior * self._emit[:, np.maximum(obs[:, t], 0)].T  # (N, S)
            total = joint.sum(axis=1)
            scale[t] = np.where(real, total, 1.0)
            alpha[t] = np.where(real[:, None], joint / scale[t][:, None], 0.0)
            started |= real
        return alpha, scale

    def _maximise(self, obs: np.ndarray, alpha: np.ndarray, scale: np.ndarray) -> None:
        """One M-step from the scaled backward pass and the expected counts."""
        n, steps = obs.shape
        real = obs >= 0  # (N, T)
        beta = np.ones((n, self.states))
        trans = np.zeros((self.states, self.states))
        emit = np.zeros((self.states, self.symbols))
        start = np.zeros(self.states)
        for t in range(steps - 1, -1, -1):
            gamma = alpha[t] * beta  # (N, S), sums to 1 on real steps
            rows = real[:, t]
            for s in range(self.states):
                emit[s] += np.bincount(obs[rows, t], weights=gamma[rows, s],
                                       minlength=self.symbols)  # fmt: skip
            first = rows & ~real[:, t - 1] if t else rows
            start += gamma[first].sum(axis=0)
            if t == 0:
                break
            # Transitions t-1 -> t where both steps are real (absent steps only lead).
            both = rows & real[:, t - 1]
            weighted = self._emit[:, np.maximum(obs[:, t], 0)].T * beta / scale[t][:, None]
            trans += alpha[t - 1][both].T @ weighted[both] * self._trans
            beta = np.where(rows[:, None], weighted @ self._trans.T, 1.0)
        self._start = _normalised(start + _PSEUDOCOUNT)
        self._trans = _normalised(trans + _PSEUDOCOUNT)
        self._emit = _normalised(emit + _PSEUDOCOUNT)


def _normalised(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum(axis=-1, keepdims=True)
