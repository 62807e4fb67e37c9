"""The report's figures from prediction files, as one JSON-ready dict (pure: no files, no plots).

Per target and model, on the model's test rows (all its rows when it has no test rows):
AUC with DeLong's interval, Gini, KS, Brier, H-measure, calibration in the large, the score
bands (deciles: bad rate by band and the reliability table), the ROC and KS curves, and the
population stability index of the scores between its training/validation rows and its test
rows when the file has both. Per target and pair of models, on the test rows both predict:
DeLong's test of the AUC difference and McNemar's test at a cut-off (paper 004's).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import msgspec
import numpy as np
from sklearn.metrics import roc_curve

from training.core.bands import calibration_in_the_large, score_bands
from training.core.bootstrap import paired_differences
from training.core.delong import delong_auc, delong_difference
from training.core.evaluation import binary_metrics
from training.core.hmeasure import h_measure
from training.core.mcnemar import mcnemar
from training.core.predictions import TARGET_NAMES, ModelManifest, Prediction
from training.core.stability import psi, psi_reading
from training.report.config import ReportConfig

__all__ = ["ReportConfig", "Rows", "build_report", "group_rows", "model_figures"]

#: Points kept of each ROC and KS curve in the JSON (the plots draw the same points).
CURVE_POINTS = 201


@dataclass(frozen=True)
class Rows:
    """One model's rows of one target and split: keys (user_id, event_id), labels, scores."""

    keys: list[tuple[str, str]]
    y: np.ndarray  # (N,) int
    p: np.ndarray  # (N,) float


def group_rows(rows: list[Prediction]) -> dict[tuple[str, str, str], Rows]:
    """Predictions grouped by (model, target, split)."""
    acc: dict[tuple[str, str, str], list[Prediction]] = defaultdict(list)
    for r in rows:
        acc[(r.model, r.target, r.split)].append(r)
    return {k: Rows([(r.user_id, r.event_id) for r in v], np.array([r.label for r in v]),
                    np.array([r.probability for r in v], dtype=np.float64))
            for k, v in acc.items()}  # fmt: skip


def _evaluated(groups: dict, model: str, target: str) -> tuple[str, Rows] | None:
    """The rows a model is judged on: its test rows, or all its rows when it has none."""
    if (model, target, "test") in groups:
        return "test", groups[(model, target, "test")]
    parts = [groups[k] for k in groups if k[0] == model and k[1] == target]
    if not parts:
        return None
    return "all", Rows([k for r in parts for k in r.keys], np.concatenate([r.y for r in parts]),
                       np.concatenate([r.p for r in parts]))  # fmt: skip


def _curve(x: np.ndarray, y: np.ndarray) -> list[list[float]]:
    """At most CURVE_POINTS points of a curve, evenly spaced along it, ends kept."""
    keep = np.unique(np.linspace(0, len(x) - 1, min(len(x), CURVE_POINTS)).round().astype(int))
    return [[round(float(x[i]), 6), round(float(y[i]), 6)] for i in keep]


def model_figures(y: np.ndarray, p: np.ndarray, cfg: ReportConfig) -> dict:
    """Every single-model figure of labels ``y`` (N,) and probabilities ``p`` (N,). Raises
    ValueError when ``y`` holds one class only."""
    base = binary_metrics(y.astype(np.float64), p)
    auc = delong_auc(y, p, cfg.level)
    fpr, tpr, thresholds = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return {
        "n": base.n,
        "bads": base.positives,
        "bad_rate": base.positives / base.n,
        "auc": base.auc,
        "auc_interval": [auc.low, auc.high],
        "auc_se": auc.se,
        "gini": 2 * base.auc - 1,
        "gini_interval": [2 * auc.low - 1, 2 * auc.high - 1],
        "ks": base.ks,
        "ks_cutoff": float(min(thresholds[best], 1.0)),
        "brier": base.brier,
        "h_measure": h_measure(y, p, cfg.severity_ratio),
        "calibration_in_the_large": msgspec.to_builtins(calibration_in_the_large(y, p)),
        "bands": msgspec.to_builtins(score_bands(y, p, cfg.bands)),
        "roc": _curve(fpr, tpr),
        "ks_curve": _ks_curve(y, p),
    }


def _ks_curve(y: np.ndarray, p: np.ndarray) -> list[list[float]]:
    """[score, share of bads at or above it, share of goods at or above it], scores
    descending: the two cumulative distributions whose largest gap is KS."""
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order].astype(bool)
    last = np.r_[ps[1:] != ps[:-1], True]
    bads = np.cumsum(ys)[last] / max(ys.sum(), 1)
    goods = np.cumsum(~ys)[last] / max((~ys).sum(), 1)
    s = ps[last]
    even = np.linspace(0, len(s) - 1, min(len(s), CURVE_POINTS)).round().astype(int)
    keep = np.unique(np.r_[even, np.argmax(bads - goods)])  # the KS point itself kept
    return [[round(float(s[i]), 6), round(float(bads[i]), 6), round(float(goods[i]), 6)]
            for i in keep]  # fmt: skip


def _stability(groups: dict, model: str, target: str, cfg: ReportConfig) -> dict | None:
    """PSI of the model's scores, training and validation rows against test rows."""
    reference = [groups[(model, target, s)].p for s in ("train", "validation")
                 if (model, target, s) in groups]  # fmt: skip
    test = groups.get((model, target, "test"))
    if not reference or test is None:
        return None
    ref = np.concatenate(reference)
    value = psi(ref, test.p, cfg.bands)
    return {"psi": value, "reading": psi_reading(value), "reference_rows": len(ref),
            "test_rows": len(test.p)}  # fmt: skip


def _pair(a: Rows, b: Rows, cfg: ReportConfig) -> dict | None:
    """DeLong, the user bootstrap and McNemar on the rows both models predict (joined on user
    and event); every difference is b minus a."""
    index_b = {k: i for i, k in enumerate(b.keys)}
    ia = [i for i, k in enumerate(a.keys) if k in index_b]
    ib = [index_b[a.keys[i]] for i in ia]
    if not ia:
        return None
    y, ya = a.y[ia], b.y[ib]
    if not np.array_equal(y, ya):
        raise ValueError("the two models' files disagree on the labels of the same rows")
    if not 0 < y.sum() < len(y):
        return None
    d = delong_difference(y, a.p[ia], b.p[ib], cfg.level)
    m = mcnemar(y, a.p[ia], b.p[ib], cfg.cutoff)
    out = {"rows": len(ia), "delong": msgspec.to_builtins(d), "mcnemar": msgspec.to_builtins(m)}
    if cfg.bootstrap_draws > 0:
        users = np.array([a.keys[i][0] for i in ia])
        out["user_bootstrap"] = paired_differences(y, b.p[ib], a.p[ia], users,
                                                   draws=cfg.bootstrap_draws, level=cfg.level)
    return out


def build_report(
    manifests: dict[str, ModelManifest], rows: list[Prediction], cfg: ReportConfig
) -> dict:
    """The whole report as builtins: settings, the models (with whether each can serve
    live), and per target each model's figures, stability and every pair's tests. A model
    whose rows of a target hold one class only is listed with ``error``."""
    groups = group_rows(rows)
    models = sorted(manifests)
    targets = [t for t in TARGET_NAMES if any(k[1] == t for k in groups)]
    out: dict = {
        "settings": {
            "level": cfg.level,
            "bands": cfg.bands,
            "mcnemar_cutoff": cfg.cutoff,
            "h_severity_ratio": cfg.severity_ratio or "pi1/pi0",
        },
        "models": [
            {**msgspec.to_builtins(manifests[m]), "can_serve_live": manifests[m].streaming}
            for m in models
        ],
        "targets": {},
    }
    for target in targets:
        per_model: dict[str, dict] = {}
        judged: dict[str, Rows] = {}
        for m in models:
            found = _evaluated(groups, m, target)
            if found is None:
                continue
            rows_on, r = found
            entry: dict = {"rows": rows_on}
            try:
                entry |= model_figures(r.y, r.p, cfg)
                judged[m] = r
            except ValueError as exc:
                entry["error"] = str(exc)
            entry["stability"] = _stability(groups, m, target, cfg)
            per_model[m] = entry
        pairs = []
        for a, b in combinations(sorted(judged), 2):
            tests = _pair(judged[a], judged[b], cfg)
            if tests is not None:
                pairs.append({"a": a, "b": b, **tests})
        out["targets"][target] = {"models": per_model, "pairs": pairs}
    return out
