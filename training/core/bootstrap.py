"""Intervals of the difference between two models' AUC, KS and Brier on the same rows, from a
bootstrap over users: one user's loans go bad together, so rows are not independent and an
interval over rows would be too narrow. Each draw takes users with replacement and weighs each
row by how many times its user was drawn.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 400).astype(float)
>>> good, poor = 0.7 * y + 0.3 * rng.random(400), rng.random(400)
>>> d = paired_differences(y, good, poor, users=np.arange(400), draws=200)
>>> d["auc"]["difference"] > 0.4 and d["auc"]["interval"][0] > 0.3
True
>>> d["brier"]["difference"] < 0 and d["brier"]["interval"][1] < 0
True
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "paired_differences", "weighted_metrics"]

#: The figures compared: AUC and KS (higher is better), Brier (lower is better).
METRICS = ("auc", "ks", "brier")


class _Ranked:
    """Rows sorted once by score, descending, with the ends of each run of equal scores: every
    draw's weighted AUC and KS are then cumulative sums, O(N) per draw and vectorised over
    draws."""

    def __init__(self, y: np.ndarray, p: np.ndarray) -> None:
        self.order = np.argsort(-p, kind="mergesort")
        ps = p[self.order]
        self.y = y[self.order]
        self.p = ps
        self.ends = np.flatnonzero(np.r_[ps[1:] != ps[:-1], True])

    def metrics(self, w: np.ndarray) -> dict[str, np.ndarray]:
        """AUC, KS and Brier per row of weights ``w`` (D, N) in the original row order."""
        ws = w[:, self.order]
        pos, neg = ws * self.y, ws * (1.0 - self.y)
        cp, cn = np.cumsum(pos, axis=1)[:, self.ends], np.cumsum(neg, axis=1)[:, self.ends]
        wp, wn = cp[:, -1:], cn[:, -1:]
        gp = np.diff(cp, axis=1, prepend=0.0)
        gn = np.diff(cn, axis=1, prepend=0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A group's positives outrank the negatives of every lower score; ties count half.
            auc = np.sum(gp * (wn - cn) + 0.5 * gp * gn, axis=1) / (wp[:, 0] * wn[:, 0])
            ks = np.max(cp / wp - cn / wn, axis=1)
            brier = np.sum(ws * (self.p - self.y) ** 2, axis=1) / np.sum(ws, axis=1)
        return {"auc": auc, "ks": np.maximum(ks, 0.0), "brier": brier}


def weighted_metrics(y: np.ndarray, p: np.ndarray, w: np.ndarray | None = None) -> dict[str, float]:
    """AUC, KS and Brier of probabilities ``p`` (N,) against 0/1 labels ``y`` (N,), rows
    weighted by ``w`` (N,) (None: all 1); equal to scikit-learn's ``roc_auc_score``,
    ``max(tpr - fpr)`` of ``roc_curve`` and the weighted mean squared error. Raises ValueError
    when the weighted rows hold one class only."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    w = np.ones_like(y) if w is None else np.asarray(w, dtype=np.float64)
    positives = float(np.sum(w * y))
    if not 0 < positives < float(np.sum(w)):
        raise ValueError("AUC and KS need both classes among the weighted rows")
    return {k: float(v[0]) for k, v in _Ranked(y, p).metrics(w[None, :]).items()}


def paired_differences(
    y: np.ndarray,
    p_a: np.ndarray,
    p_b: np.ndarray,
    users: np.ndarray,
    *,
    draws: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, float | list[float]]]:
    """For each of ``METRICS``: model A's figure minus model B's on the same rows (labels ``y``
    (N,) 0/1, probabilities ``p_a``, ``p_b`` (N,), ``users`` (N,) any ids), and its ``level``
    interval from ``draws`` bootstrap draws over users (percentile method; draws whose rows hold
    one class only are skipped and counted). A positive AUC or KS difference, or a negative
    Brier difference, says A is better. Raises ValueError when the rows hold one class only."""
    y = np.asarray(y, dtype=np.float64)
    point_a, point_b = weighted_metrics(y, p_a), weighted_metrics(y, p_b)
    ids, row_user = np.unique(np.asarray(users), return_inverse=True)
    rng = np.random.default_rng(seed)
    ranked_a = _Ranked(y, np.asarray(p_a, dtype=np.float64))
    ranked_b = _Ranked(y, np.asarray(p_b, dtype=np.float64))
    samples: dict[str, list[np.ndarray]] = {m: [] for m in METRICS}
    skipped = 0
    chunk = max(1, min(draws, 2_000_000 // max(len(y), 1)))  # bounds the (draws, N) arrays
    for start in range(0, draws, chunk):
        n = min(chunk, draws - start)
        counts = np.stack([np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))
                           for _ in range(n)])  # fmt: skip
        w = counts[:, row_user].astype(np.float64)
        positives = w @ y
        both = (positives > 0) & (positives < w.sum(axis=1))
        skipped += int((~both).sum())
        a, b = ranked_a.metrics(w[both]), ranked_b.metrics(w[both])
        for m in METRICS:
            samples[m].append(a[m] - b[m])
    tail = (1.0 - level) / 2.0
    out: dict[str, dict[str, float | list[float]]] = {}
    for m in METRICS:
        values = np.concatenate(samples[m])
        lo, hi = (np.quantile(values, [tail, 1.0 - tail]) if values.size
                  else (np.nan, np.nan))  # fmt: skip
        out[m] = {"a": point_a[m], "b": point_b[m], "difference": point_a[m] - point_b[m],
                  "interval": [float(lo), float(hi)]}  # fmt: skip
    out["bootstrap"] = {"draws": draws - skipped, "skipped": skipped, "level": level,
                        "users": len(ids), "seed": seed}  # fmt: skip
    return out
