"""Hand's H-measure: the expected minimum loss of a classifier when the cost ratio is drawn from
a Beta(2, b) distribution, as a share of a random classifier's loss (1 is perfect, 0 random).

Hand (2009), "Measuring classifier performance: a coherent alternative to the area under the
ROC curve", Machine Learning 77; Hand & Anagnostopoulos (2014), "A better Beta for the H
measure of classification performance", Pattern Recognition Letters 40. Computed as the R
package ``hmeasure`` (``HMeasure``) computes it: over the ROC curve's convex hull (the
diagonal included), with the severity ratio (how much worse misclassifying a class-0 row is
than a class-1 row) setting b = 1 + 1 / severity; its default, pi1 / pi0, is the package's.
Checked against values the R package computed (``tests/training/core/test_hmeasure.py``).

>>> import numpy as np
>>> round(h_measure(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])), 6)
1.0
"""

from __future__ import annotations

import numpy as np
from scipy.special import beta as beta_fn
from scipy.special import betainc

__all__ = ["h_measure", "roc_hull"]


def roc_hull(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the upper convex hull of the ROC curve of scores ``p`` (N,) against labels
    ``y`` (N,) 0/1, with the diagonal: false- and true-positive rates (H,) from (0, 0) to
    (1, 1), higher scores meaning class 1. Raises ValueError on one class only."""
    y = np.asarray(y).astype(bool)
    p = np.asarray(p, dtype=np.float64)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError(f"the H-measure needs both classes; got {n1} of class 1, {n0} of 0")
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last_of_run = np.r_[ps[1:] != ps[:-1], True]  # one ROC point per distinct score
    tpr = np.r_[0.0, np.cumsum(ys)[last_of_run] / n1]
    fpr = np.r_[0.0, np.cumsum(~ys)[last_of_run] / n0]
    tpr = np.maximum(tpr, fpr)  # a worse-than-random stretch is replaced by the diagonal
    hull: list[tuple[float, float]] = []
    for point in zip(fpr.tolist(), tpr.tolist(), strict=True):  # fpr ascending: upper chain
        while len(hull) >= 2:
            (x0, y0), (x1, y1) = hull[-2], hull[-1]
            if (x1 - x0) * (point[1] - y0) - (y1 - y0) * (point[0] - x0) >= 0:
                hull.pop()  # hull[-1] lies on or under the chord: not a vertex
            else:
                break
        hull.append(point)
    g0, g1 = np.array(hull).T
    return g0, g1


def h_measure(y: np.ndarray, p: np.ndarray, severity_ratio: float | None = None) -> float:
    """The H-measure of scores ``p`` (N,) against labels ``y`` (N,) 0/1, class 1 scoring
    higher; ``severity_ratio`` > 0 as in R's ``HMeasure`` (None: pi1 / pi0). Raises
    ValueError on one class only or a severity ratio that is not positive."""
    y = np.asarray(y).astype(bool)
    g0, g1 = roc_hull(y, p)
    pi1 = float(y.mean())
    pi0 = 1.0 - pi1
    severity = pi1 / pi0 if severity_ratio is None else severity_ratio
    if not severity > 0:
        raise ValueError(f"severity_ratio must be positive, got {severity_ratio}")
    a, b = 2.0, 1.0 + 1.0 / severity
    # Cost at which the classifier moves from one hull vertex to the next, bracketed by 0, 1.
    d0, d1 = np.diff(g0), np.diff(g1)
    cost = np.r_[0.0, pi1 * d1 / (pi0 * d0 + pi1 * d1), 1.0]

    def partial(c: np.ndarray, s1: float, s2: float) -> np.ndarray:
        # Integral of c^(s1-1) (1-c)^(s2-1) from 0 to c, over B(a, b).
        return betainc(s1, s2, c) * beta_fn(s1, s2) / beta_fn(a, b)

    b0, b1 = partial(cost, a + 1, b), partial(cost, a, b + 1)
    loss = np.sum(pi0 * (1 - g0) * np.diff(b0) + pi1 * g1 * np.diff(b1))
    scale = pi0 * partial(np.array(pi1), a + 1, b) + pi1 * (
        partial(np.array(1.0), a, b + 1) - partial(np.array(pi1), a, b + 1)
    )
    return float(1.0 - loss / scale)
