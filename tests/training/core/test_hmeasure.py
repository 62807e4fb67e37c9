"""The H-measure against values computed by the R package ``hmeasure`` (``HMeasure``).

The reference: LDA fitted on MASS's Pima.tr and scored on Pima.te (223 negatives, 109
positives), whose ROC convex hull passes through the (false, true) positive counts below;
``HMeasure`` gave H = 0.42144692438763 at severity ratio 1 and 0.472887366171331 at 0.1
(the test cases generated with R in the ``pypkg_hmeasure`` project, each checked there
against ``hmeasure::HMeasure``). The H-measure depends on the scores only through that hull
and the class counts, so scores with exactly this hull as their ROC curve must give the same
values.
"""

from __future__ import annotations

import numpy as np
import pytest

from training.core.hmeasure import h_measure, roc_hull

FALSE_POSITIVES = [0, 0, 3, 7, 15, 16, 17, 33, 68, 77, 119, 137, 196, 223]
TRUE_POSITIVES = [0, 1, 18, 40, 59, 61, 62, 75, 98, 100, 107, 108, 109, 109]


def _hull_scores() -> tuple[np.ndarray, np.ndarray]:
    """Labels and scores whose ROC curve is the hull: one score level per hull segment."""
    y, p = [], []
    for k in range(1, len(FALSE_POSITIVES)):
        neg = FALSE_POSITIVES[k] - FALSE_POSITIVES[k - 1]
        pos = TRUE_POSITIVES[k] - TRUE_POSITIVES[k - 1]
        y += [0] * neg + [1] * pos
        p += [1.0 - k / 100] * (neg + pos)
    return np.array(y), np.array(p)


def test_the_r_package_values() -> None:
    y, p = _hull_scores()
    assert (len(y), int(y.sum())) == (332, 109)
    fpr, tpr = roc_hull(y, p)
    assert np.allclose(fpr * 223, FALSE_POSITIVES) and np.allclose(tpr * 109, TRUE_POSITIVES)
    assert h_measure(y, p, severity_ratio=1.0) == pytest.approx(0.42144692438763, abs=1e-12)
    assert h_measure(y, p, severity_ratio=0.1) == pytest.approx(0.472887366171331, abs=1e-12)


def test_points_inside_the_hull_change_nothing() -> None:
    y, p = _hull_scores()
    # Split one level's rows into finer levels ordered worst first: the curve sags below the
    # chord, the hull stays, and so does H.
    level = p == p[y == 1][5]
    q = p.copy()
    q[level & (y == 0)] += 0.001
    assert h_measure(y, q, 1.0) == pytest.approx(h_measure(y, p, 1.0), abs=1e-12)


def test_perfect_random_and_monotone_invariance() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.2).astype(int)
    assert h_measure(y, y + rng.random(4000) * 0.5) == pytest.approx(1.0)
    assert h_measure(y, rng.random(4000)) < 0.02
    p = rng.normal(size=4000) + y
    assert h_measure(y, p) == pytest.approx(h_measure(y, 1 / (1 + np.exp(-3 * p))), abs=1e-12)
    with pytest.raises(ValueError, match="both classes"):
        h_measure(np.ones(3), np.arange(3.0))
