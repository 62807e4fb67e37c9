"""Paper 004's experiment on the UCI table: its five-fold protocol, its benchmark classifiers,
its measures per customer group, and the pairwise McNemar tests (its Tables 2-5).

The protocol ("Experimental design"): clients split at random into five folds; each fold is
the test set once, so every client gets one out-of-fold prediction from a model that never saw
it; the measures are computed on those predictions (pooled) and their spread across the folds
(its Table 5). The benchmark classifiers ("Benchmark models development") see the same
clients with the temporal data flattened (``uci.flat_features``): gradient boosting (GB), a
bagged neural network of 10 multi-layer perceptrons (BNN), random forest (RF), support vector
machine (SVM), logistic regression (LOGR). What the text leaves open, chosen here:

- the folds are not stratified (the text: "randomly split into five groups");
- inputs scaled the same way for every model (``uci.scaled``, fitted on the training folds);
- GB: scikit-learn's histogram gradient boosting, early-stopped on 10% of the training folds;
  BNN: 10 MLPs of one hidden layer of 32 units, each on a bootstrap sample, early-stopped
  (at most 40 epochs); RF: 100 trees grown fully; SVM: RBF kernel (C = 1) fitted on
  ``SVM_TRAIN_CLIENTS`` clients of the training folds (not all of them: its cost on a shared
  two-core machine), its margins turned into probabilities by Platt's sigmoid fitted on 10% of
  the training folds held out from the SVM; LOGR: L2, C = 1;
- the cut-off of accuracy, sensitivity, specificity and balanced accuracy is 0.5 (the paper's
  "default score threshold"); ``best_accuracy`` is the accuracy at the best cut-off on the
  same predictions (the paper's "optimal threshold", chosen on the test rows: optimistic).

Customer groups (its "Results and discussion", Table 2), from the repayment status of the last
months (a missed payment is a status of 1 or more: a payment delayed that many months):
the paper's, which nest, ``missed_last_2_months`` (September or August), ``missed_last_month``
(September), ``two_consecutive`` (September's status 2 or more: two bills in a row unpaid),
``three_or_more_consecutive`` (3 or more); and the partition by September's status the issue
names, ``no_missed_payment`` (≤ 0), ``one_missed`` (1), ``two_missed`` (2),
``three_or_more_missed`` (≥ 3).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from sklearn.ensemble import (
    BaggingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC
from threadpoolctl import threadpool_limits

from deepcredit.atomic import write_json
from training.challengers.bilstm import fit_bilstm, predict_bilstm
from training.challengers.config import MODELS, Paper004Config
from training.challengers.results import Figure, Row
from training.challengers.uci import UciTable, flat_features, scaled
from training.core.delong import delong_difference
from training.core.evaluation import binary_metrics
from training.core.hmeasure import h_measure
from training.core.mcnemar import mcnemar

__all__ = [
    "MODELS",
    "CrossValidated",
    "Paper004Config",
    "Resampling",
    "benchmark",
    "cache_key",
    "classification_figures",
    "cross_validate",
    "customer_groups",
    "paper004_rows",
]

#: Clients the SVM is fitted on, drawn from the training folds: a kernel SVM's fit grows with
#: the square of its rows or faster, and the machine is shared (module docstring).
SVM_TRAIN_CLIENTS = 6000


def _platt_svm(seed: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    def fit_predict(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        order = np.random.default_rng(seed).permutation(len(y))
        held = order[: max(2, len(y) // 10)]
        fit = order[len(held) :][:SVM_TRAIN_CLIENTS]
        svm = SVC(kernel="rbf", C=1.0, gamma="scale", cache_size=1000, random_state=seed).fit(
            x[fit], y[fit]
        )
        platt = LogisticRegression().fit(svm.decision_function(x[held])[:, None], y[held])
        return platt.predict_proba(svm.decision_function(x_test)[:, None])[:, 1]

    return fit_predict


def _sklearn(make: Callable[[], object]) -> Callable[[np.ndarray, np.ndarray, np.ndarray],
                                                       np.ndarray]:  # fmt: skip
    def fit_predict(x: np.ndarray, y: np.ndarray, x_test: np.ndarray) -> np.ndarray:
        return make().fit(x, y).predict_proba(x_test)[:, 1]  # type: ignore[attr-defined]

    return fit_predict


def _benchmarks(seed: int) -> dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray],
                                                  np.ndarray]]:  # fmt: skip
    return {
        "gb": _sklearn(lambda: HistGradientBoostingClassifier(
            max_iter=500, early_stopping=True, validation_fraction=0.1, n_iter_no_change=20,
            random_state=seed)),
        "bnn": _sklearn(lambda: BaggingClassifier(
            MLPClassifier(hidden_layer_sizes=(32,), early_stopping=True, n_iter_no_change=5,
                          max_iter=40, random_state=seed),
            n_estimators=10, random_state=seed)),
        "rf": _sklearn(lambda: RandomForestClassifier(n_estimators=100, random_state=seed)),
        "svm": _platt_svm(seed),
        "logr": _sklearn(lambda: LogisticRegression(C=1.0, max_iter=2000)),
    }  # fmt: skip


def benchmark(name: str, seed: int) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """Paper 004's benchmark classifier ``name`` (a key of ``MODELS`` but ``bilstm``) as
    ``fit_predict(x_train (N, D), y_train (N,), x_test (M, D)) -> P(default) (M,)``, seeded.
    Raises KeyError for another name."""
    return _benchmarks(seed)[name]


@dataclass(frozen=True)
class CrossValidated:
    """Out-of-fold predictions: ``fold`` (N,) the fold each client was tested in, 0-based;
    ``p`` model → (N,) P(default next month) from the model trained without that fold;
    ``fit`` model → per fold what fitting did (seconds; the BiLSTM's epochs)."""

    fold: np.ndarray
    p: dict[str, np.ndarray]
    fit: dict[str, list[dict]]


def _fit_predict(
    m: str, table: UciTable, train: np.ndarray, test: np.ndarray, cfg: Paper004Config
) -> tuple[np.ndarray, dict]:
    temporal, static = scaled(table, train)
    y = table.y
    with threadpool_limits(1):
        if m == "bilstm":
            model, info = fit_bilstm(temporal[train], static[train], y[train], cfg.bilstm)
            return predict_bilstm(model, temporal[test], static[test]), info
        x = flat_features(temporal, static)
        return _benchmarks(cfg.seed)[m](x[train], y[train], x[test]), {}


def cache_key(table: UciTable, cfg: Paper004Config, model: str) -> str:
    """What a model's out-of-fold predictions depend on, hashed: the clients and labels, the
    folds, the seed and, for the BiLSTM, its settings (16 hex digits)."""
    h = hashlib.sha256()
    for a in (table.ids.astype(str), table.temporal, table.static, table.y):
        h.update(np.ascontiguousarray(a).tobytes())
    settings = dataclasses.asdict(cfg.bilstm) if model == "bilstm" else {}
    h.update(json.dumps([model, cfg.folds, cfg.seed, settings], sort_keys=True).encode())
    return h.hexdigest()[:16]


def cross_validate(
    table: UciTable,
    cfg: Paper004Config,
    models: list[str] | None = None,
    progress: Callable[[str], None] = lambda _: None,
    cache: Path | None = None,
    only_folds: set[int] | None = None,
) -> CrossValidated:
    """Every model of ``models`` (default all of ``MODELS``) through the folds of ``table``,
    one native thread each (the machine is shared). With a ``cache`` folder, a model's fold
    whose out-of-fold predictions are there for the same ``cache_key`` is read, not trained,
    and one trained is written there, so models and folds can be fitted in separate processes
    (``only_folds``: these folds, 0-based, the others' predictions left NaN), then tabled
    together. Raises ValueError for an unknown model."""
    names = list(MODELS) if models is None else models
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model {', '.join(unknown)}; known: {', '.join(MODELS)}")
    n = len(table)
    fold = np.empty(n, dtype=np.int64)
    splits = list(KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(np.zeros(n)))
    for k, (_, test) in enumerate(splits):
        fold[test] = k
    p: dict[str, np.ndarray] = {}
    fits: dict[str, list[dict]] = {}
    for m in names:
        p[m], fits[m] = np.full(n, np.nan), []
        for k, (train, test) in enumerate(splits):
            if only_folds is not None and k not in only_folds:
                continue
            path = None if cache is None else cache / f"004-{m}-{cache_key(table, cfg, m)}-{k}.json"
            if path is not None and path.is_file():
                saved = json.loads(path.read_text())
                p[m][test] = saved["p"]
                fits[m].append(saved["fit"])
                progress(f"fold {k + 1}/{cfg.folds} {m}: read from {path}")
                continue
            started = time.perf_counter()
            p[m][test], info = _fit_predict(m, table, train, test, cfg)
            fits[m].append({"seconds": round(time.perf_counter() - started, 2), **info})
            progress(f"fold {k + 1}/{cfg.folds} {m}: {fits[m][-1]['seconds']:.0f} s")
            if path is not None:
                write_json(path, {"model": m, "fold": k, "p": p[m][test].tolist(),
                                  "fit": fits[m][-1]})  # fmt: skip
    return CrossValidated(fold, p, fits)


def classification_figures(y: np.ndarray, p: np.ndarray, cutoff: float = 0.5) -> dict[str, float]:
    """Paper 004's measures of probabilities ``p`` (N,) against labels ``y`` (N,) 0/1: at
    ``cutoff``, accuracy, sensitivity (share of defaults flagged), specificity (share of
    non-defaults passed) and balanced accuracy; the accuracy at the best cut-off; AUC, KS and
    Brier (``training.core.evaluation``) and the H-measure (``training.core.hmeasure``).
    Raises ValueError when ``y`` holds one class only.

    >>> f = classification_figures(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> f["accuracy"], f["sensitivity"], f["balanced_accuracy"], f["best_accuracy"]
    (0.5, 0.5, 0.5, 0.75)
    """
    y = np.asarray(y).astype(np.int64)
    p = np.asarray(p, dtype=np.float64)
    base = binary_metrics(y.astype(np.float64), p)
    flagged = p >= cutoff
    sensitivity = float(flagged[y == 1].mean())
    specificity = float((~flagged[y == 0]).mean())
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y[order]
    last_of_run = np.r_[ps[1:] != ps[:-1], True]
    # Flagging the top k rows (k at the end of each run of equal scores, or none).
    right = np.r_[(ys == 0).sum(), (np.cumsum(2 * ys - 1) + (ys == 0).sum())[last_of_run]]
    return {
        "accuracy": float((flagged == (y == 1)).mean()),
        "sensitivity": sensitivity,
        "specificity": specificity,
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "best_accuracy": float(right.max() / len(y)),
        "auc": base.auc,
        "ks": base.ks,
        "brier": base.brier,
        "h_measure": h_measure(y, p),
    }


def customer_groups(table: UciTable) -> dict[str, np.ndarray]:
    """Boolean masks (N,) of the customer groups (module docstring), ``all`` first."""
    status = table.status
    september, august = status[:, -1], status[:, -2]
    return {
        "all": np.ones(len(table), dtype=bool),
        "missed_last_2_months": (september >= 1) | (august >= 1),
        "missed_last_month": september >= 1,
        "two_consecutive": september >= 2,
        "three_or_more_consecutive": september >= 3,
        "no_missed_payment": september <= 0,
        "one_missed": september == 1,
        "two_missed": september == 2,
        "three_or_more_missed": september >= 3,
    }


def bootstrap_intervals(
    y: np.ndarray,
    p: np.ndarray,
    resamples: int,
    level: float,
    seed: int,
    measures: Callable[[np.ndarray, np.ndarray], dict[str, float]] = classification_figures,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals at ``level`` of every measure of ``measures`` (default
    ``classification_figures``) over ``resamples`` resamples of the rows (clients, independent
    here: one row each) with replacement; a resample that holds one class only is drawn
    again."""
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {}
    n, done = len(y), 0
    while done < resamples:
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue
        for k, v in measures(y[idx], p[idx]).items():
            draws.setdefault(k, []).append(v)
        done += 1
    tail = (1 - level) / 2 * 100
    return {k: (float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail)))
            for k, v in draws.items()}  # fmt: skip


class Resampling(Protocol):
    """What ``model_figures`` reads of a paper's configuration."""

    bootstrap: int
    level: float
    seed: int


def model_figures(
    y: np.ndarray,
    p: np.ndarray,
    fold: np.ndarray,
    cfg: Resampling,
    measures: Callable[[np.ndarray, np.ndarray], dict[str, float]] = classification_figures,
) -> dict[str, dict[str, float]]:
    """Each measure of ``measures`` (default ``classification_figures``) of out-of-fold
    probabilities ``p`` (N,) against ``y`` (N,): ``value`` on all rows pooled, the bootstrap
    interval (``low``, ``high``), and ``fold_mean``/``fold_sd`` (sample standard deviation) over
    the folds that hold both classes (one fold: NaN)."""
    pooled = measures(y, p)
    intervals = bootstrap_intervals(y, p, cfg.bootstrap, cfg.level, cfg.seed, measures)
    per_fold = [measures(y[fold == k], p[fold == k])
                for k in np.unique(fold) if 0 < y[fold == k].sum() < (fold == k).sum()]  # fmt: skip
    out = {}
    for k, v in pooled.items():
        values = [f[k] for f in per_fold]
        out[k] = {
            "value": v,
            "low": intervals[k][0],
            "high": intervals[k][1],
            "fold_mean": float(np.mean(values)) if values else float("nan"),
            "fold_sd": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
        }
    return out


#: What the paper's text says of each row of its Table 3 (the table itself, an image, is not in
#: the text we hold; only these figures and orderings are).
_TABLE3_TEXT = {
    "bilstm": "the highest accuracy (at 0.5 and at the optimal cut-off), sensitivity and "
              "balanced accuracy of the six and the lowest Brier score; KS and H-measure similar "
              "to GB's and slightly above the others'; specificity 95%",
    "gb": "the closest to the BiLSTM; KS and H-measure similar to the BiLSTM's",
    "bnn": "calibrated as well as the BiLSTM",
    "rf": "higher specificity than the BiLSTM but much lower sensitivity; among the worst "
          "calibrated",
    "svm": "higher specificity than the BiLSTM but much lower sensitivity; the worst AUC",
    "logr": "higher specificity than the BiLSTM but much lower sensitivity; among the worst "
            "calibrated",
}  # fmt: skip
_TABLE3_PAPER = {"bilstm": {"specificity": 0.95}}
#: What its text says of the groups of its Table 2 ("first two groups": taken as groups (1)
#: and (2) of its list).
_TABLE2_TEXT = {
    "all": "the best calibrated group",
    "missed_last_2_months": "sensitivity around 40%, specificity above 90%, AUC above 0.77",
    "missed_last_month": "sensitivity around 40%, specificity above 90%, AUC above 0.77",
    "two_consecutive": "specificity above 90%; the highest AUC of the groups",
    "three_or_more_consecutive": "sensitivity around 90%; accuracy, specificity, AUC and KS "
                                 "much lower than the other groups', Brier higher",
}  # fmt: skip
_TABLE2_PAPER = {"missed_last_2_months": {"sensitivity": 0.40},
                 "missed_last_month": {"sensitivity": 0.40},
                 "three_or_more_consecutive": {"sensitivity": 0.90}}  # fmt: skip


def _figures(figs: dict[str, dict[str, float]], level: float,
             paper: dict[str, float] | None = None) -> dict[str, Figure]:  # fmt: skip
    paper = paper or {}
    return {k: Figure(round(v["value"], 5), low=round(v["low"], 5), high=round(v["high"], 5),
                      interval=f"bootstrap {level:.0%} over clients",
                      fold_mean=round(v["fold_mean"], 5), fold_sd=round(v["fold_sd"], 5),
                      paper=paper.get(k))
            for k, v in figs.items()}  # fmt: skip


def paper004_rows(
    table: UciTable,
    cv: CrossValidated,
    cfg: Paper004Config,
    command: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """The rows of paper 004's tables from the out-of-fold predictions ``cv``: ``table3``
    (every model, all clients), ``table2`` (the BiLSTM per customer group) and ``table4``
    (McNemar's test at 0.5 of the BiLSTM against each model, with DeLong's test of the AUC
    difference beside it). Fold spread and fit times (its Table 5) are in ``table3``'s rows."""
    y, protocol = table.y, f"{cfg.folds}-fold cross-validation, out-of-fold predictions"
    common = {"paper": "004", "data": "uci", "command": command}
    rows = []
    for m, p in cv.p.items():
        progress(f"table 3: {m}")
        rows.append(Row(**common, table="table3", model=m, n=len(y), positives=int(y.sum()),
                        figures=_figures(model_figures(y, p, cv.fold, cfg), cfg.level,
                                         _TABLE3_PAPER.get(m)),
                        paper_text=_TABLE3_TEXT.get(m, ""),
                        detail={"label": MODELS[m], "protocol": protocol,
                                "fit": cv.fit[m]}))  # fmt: skip
    if "bilstm" in cv.p:
        p = cv.p["bilstm"]
        for g, mask in customer_groups(table).items():
            yg = y[mask]
            if not 0 < yg.sum() < len(yg):
                continue
            progress(f"table 2: {g}")
            figs = model_figures(yg, p[mask], cv.fold[mask], cfg)
            rows.append(Row(**common, table="table2", model="bilstm", group=g, n=len(yg),
                            positives=int(yg.sum()),
                            figures=_figures(figs, cfg.level, _TABLE2_PAPER.get(g)),
                            paper_text=_TABLE2_TEXT.get(g, "not a group of the paper's: the "
                                                           "issue's partition by September's "
                                                           "status"),
                            detail={"protocol": protocol}))  # fmt: skip
        for m, q in cv.p.items():
            if m == "bilstm":
                continue
            test = mcnemar(y, p, q)
            auc = delong_difference(y, q, p, cfg.level)  # AUC(BiLSTM) - AUC(m)
            paper = 3.62e-5 if m == "gb" else None
            rows.append(Row(**common, table="table4", model=m, n=len(y), positives=int(y.sum()),
                figures={
                    "mcnemar_p": Figure(test.p_value, paper=paper),
                    "mcnemar_statistic": Figure(round(test.statistic, 3)),
                    "auc_difference": Figure(round(auc.difference, 5), low=round(auc.low, 5),
                                             high=round(auc.high, 5),
                                             interval=f"DeLong {cfg.level:.0%}"),
                    "delong_p": Figure(auc.p_value),
                },
                paper_text="every pair differs at 0.05; GB the closest, p = 3.62e-5",
                detail={"against": "bilstm", "cutoff": test.cutoff,
                        "only_bilstm_right": test.only_a_right,
                        "only_model_right": test.only_b_right}))  # fmt: skip
    return rows
