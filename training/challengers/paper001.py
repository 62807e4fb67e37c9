"""Paper 001's system on the UCI table: its CNN-LSTM (``training.challengers.cnnlstm``) in a
weighted ensemble with LightGBM, XGBoost and a random forest, the weights chosen by Bayesian
optimisation (Optuna's TPE) to maximise the AUC on the validation clients, judged on clients no
model or weight saw.

Xia et al. (2024), ``../shared/papers/001``, III.D "Ensemble Learning Strategy": "The
predictions from individual models are combined using a weighted average approach. The optimal
weights for each model are determined through Bayesian optimization, maximizing the AUC-ROC on
the validation set"; IV.A "a time-based split [...]: 70% for training, 15% for validation, and
15% for testing".

Two protocols (``PROTOCOLS_001``):

- ``holdout``, the paper's own: 70% of the clients to train, 15% to validate (early stopping,
  the learning-rate schedule, the ensemble's weights), 15% to test. The paper's split is by
  time; UCI's clients all cover April-September 2005 and carry no date of their own, so the
  split is at random (seeded). One test set of 4,500 clients: wider intervals.
- ``folds``, paper 004's (the split the other UCI rows use, so the rows compare): the same five
  folds as ``paper004.cross_validate`` (same seed); in each, the training folds split 70:15
  into training and validation clients as above; every client scored once, out of fold.

Beside the ensemble and its four members, paper 004's gradient boosting (``gb004``) is refitted
on the same clients (in ``folds`` exactly as in 004's run: same folds, seed and inputs, so the
same predictions), so that DeLong's paired test can set 001's ensemble against 004's rows.

What the text leaves open, chosen here:

- inputs: the same as paper 004's (``uci.scaled``: amounts on a signed log scale, standardised
  on the training clients); the trees see the months flattened (``uci.flat_features``, 26
  columns), the CNN-LSTM the (6, 3) months and the eight static features;
- the paper's hybrid feature selection (VIF > 10, mutual information, RFECV with a random
  forest) is not run: UCI has 23 columns, not 78, and the selection's thresholds are not given;
- the paper tunes every model by TPE; here the CNN-LSTM takes the paper's optimal values (its
  Table 3) and the members fixed settings (below), not searched: LightGBM and XGBoost at
  learning rate 0.02, up to 2,000 rounds stopped after 100 without a better validation AUC
  (LightGBM 31 leaves, XGBoost depth 5; both 80% row and column subsampling); the random
  forest ``trees`` trees with at least five clients a leaf;
- the weights: one per member in [0, 1], normalised to sum to 1, ``trials`` TPE trials,
  equal weights the first; each split's weights chosen on its own validation clients;
- precision, recall and F1 at a cut-off of 0.5 (the paper gives none).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from deepcredit.atomic import write_json
from training.challengers.cnnlstm import fit_cnnlstm, predict_cnnlstm
from training.challengers.config import MEMBERS_001, MODELS_001, PROTOCOLS_001, Paper001Config
from training.challengers.paper004 import benchmark, classification_figures, model_figures
from training.challengers.results import Figure, Row
from training.challengers.uci import UciTable, flat_features, scaled
from training.core.delong import delong_difference
from training.core.evaluation import binary_metrics

__all__ = [
    "Paper001Config",
    "Split",
    "SplitPredictions",
    "blend",
    "ensemble_weights",
    "fit_split",
    "paper001_rows",
    "precision_recall_f1",
    "predict_all",
    "splits",
    "xgboost_member",
]

#: Paper 001's figures on its own data (a P2P platform's 150,000 loans, 78 features, 18.7%
#: default, not public): Tables 5 and 6 and the AUC of IV.B.iii. It reports nothing on UCI.
PAPER_OWN_DATA = {
    "ensemble": {
        "accuracy": 0.9234,
        "precision": 0.8912,
        "recall": 0.8735,
        "f1": 0.8822,
        "auc": 0.9687,
    },
    "lightgbm": {"accuracy": 0.9018, "precision": 0.8645, "recall": 0.8398, "f1": 0.8519},
    "xgboost": {"accuracy": 0.9045, "precision": 0.8701, "recall": 0.8456, "f1": 0.8577},
    "rf": {"accuracy": 0.8872, "precision": 0.8356, "recall": 0.8102, "f1": 0.8227},
}
_PAPER_TEXT = (
    "the paper reports no figures on UCI; detail.paper_own_data holds its figures on "
    "its own P2P data (150,000 loans, 18.7% default, time-based 70/15/15 split), not "
    "comparable"
)


@dataclass(frozen=True)
class Split:
    """One train / validation / test split of the clients (index arrays into the table):
    ``name`` ``holdout`` or ``fold1``..``foldK``."""

    name: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    #: The whole non-test part (train and val): what paper 004's GB is fitted on.
    fit: np.ndarray


def splits(n: int, protocol: str, cfg: Paper001Config) -> list[Split]:
    """The splits of ``n`` clients under ``protocol`` (module docstring). Raises ValueError for
    an unknown protocol or too few clients for a split."""
    val_share = 0.15 / 0.85  # of the non-test clients: 70 : 15 of the whole
    if protocol == "holdout":
        order = np.random.default_rng(cfg.seed).permutation(n)
        n_test = n_val = round(0.15 * n)
        test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
        out = [
            Split(
                "holdout", np.sort(train), np.sort(val), np.sort(test), np.sort(np.r_[train, val])
            )
        ]
    elif protocol == "folds":
        out = []
        folds = KFold(cfg.folds, shuffle=True, random_state=cfg.seed).split(np.zeros(n))
        for k, (fit, test) in enumerate(folds):
            order = np.random.default_rng([cfg.seed, k]).permutation(fit)
            n_val = round(val_share * len(fit))
            out.append(
                Split(f"fold{k + 1}", np.sort(order[n_val:]), np.sort(order[:n_val]), test, fit)
            )
    else:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS_001)}")
    for s in out:
        if min(len(s.train), len(s.val), len(s.test)) < 2:
            raise ValueError(f"{n} clients are too few for the {protocol} split")
    return out


def lightgbm_member(seed: int) -> Callable[..., tuple[np.ndarray, np.ndarray, dict]]:
    """The ensemble's LightGBM (settings in the module docstring), ``xgboost_member``'s form."""

    def fit_predict(x, y, xv, yv, xt):
        import lightgbm

        m = lightgbm.LGBMClassifier(
            n_estimators=2000,
            learning_rate=0.02,
            num_leaves=31,
            subsample=0.8,
            subsample_freq=1,
            colsample_bytree=0.8,
            n_jobs=1,
            random_state=seed,
            metric="auc",
            verbose=-1,
        )
        m.fit(
            x,
            y,
            eval_X=(xv,),
            eval_y=(yv,),
            callbacks=[lightgbm.early_stopping(100, verbose=False)],
        )
        return (
            m.predict_proba(xv)[:, 1],
            m.predict_proba(xt)[:, 1],
            {"rounds": int(m.best_iteration_ or m.n_estimators)},
        )

    return fit_predict


def forest_member(cfg: Paper001Config) -> Callable[..., tuple[np.ndarray, np.ndarray, dict]]:
    """The ensemble's random forest (``cfg.trees`` trees, at least five rows a leaf, each tree
    on a bootstrap of ``cfg.forest_rows`` rows when set), ``xgboost_member``'s form; the
    validation rows are only predicted."""

    def fit_predict(x, y, xv, yv, xt):
        rows = None if cfg.forest_rows is None else min(1.0, cfg.forest_rows / max(1, len(y)))
        rf = RandomForestClassifier(n_estimators=cfg.trees, min_samples_leaf=5, n_jobs=1,
                                    max_samples=rows, random_state=cfg.seed).fit(x, y)  # fmt: skip
        return rf.predict_proba(xv)[:, 1], rf.predict_proba(xt)[:, 1], {}

    return fit_predict


def xgboost_member(seed: int) -> Callable[..., tuple[np.ndarray, np.ndarray, dict]]:
    """The ensemble's XGBoost (settings in the module docstring): ``fit_predict(x, y, xv, yv,
    xt)`` fits on (x, y), stops early on (xv, yv), returns (P(default) on xv, on xt, {rounds}).
    """

    def fit_predict(x, y, xv, yv, xt):
        import xgboost

        m = xgboost.XGBClassifier(
            n_estimators=2000,
            learning_rate=0.02,
            max_depth=5,
            subsample=0.8,
            colsample_bytree=0.8,
            tree_method="hist",
            n_jobs=1,
            random_state=seed,
            eval_metric="auc",
            early_stopping_rounds=100,
        )
        m.fit(x, y, eval_set=[(xv, yv)], verbose=False)
        return (
            m.predict_proba(xv)[:, 1],
            m.predict_proba(xt)[:, 1],
            {"rounds": int(m.best_iteration) + 1},
        )

    return fit_predict


@dataclass(frozen=True)
class SplitPredictions:
    """Every model's P(default) on one split's validation clients (``val``: model → (V,)) and
    test clients (``test``: model → (M,)); ``fit``: model → what fitting did (seconds, epochs,
    rounds). ``gb004`` has no validation predictions (it is no member)."""

    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    fit: dict[str, dict]


def fit_split(
    table: UciTable,
    split: Split,
    cfg: Paper001Config,
    progress: Callable[[str], None] = lambda _: None,
) -> SplitPredictions:
    """Fit the four members on ``split.train`` (early stopping on ``split.val``) and paper
    004's GB on ``split.fit``; predict the validation and test clients. One native thread."""
    temporal, static = scaled(table, split.train)
    x = flat_features(temporal, static)
    y = table.y
    tr, va, te = split.train, split.val, split.test
    val, test, fits = {}, {}, {}
    with threadpool_limits(1):
        for m in MEMBERS_001:
            started = time.perf_counter()
            if m == "cnnlstm":
                model, info = fit_cnnlstm(
                    (temporal[tr], static[tr], y[tr]),
                    (temporal[va], static[va], y[va]),
                    cfg.cnnlstm,
                )
                val[m] = predict_cnnlstm(model, temporal[va], static[va])
                test[m] = predict_cnnlstm(model, temporal[te], static[te])
            else:
                make = {"rf": forest_member(cfg), "lightgbm": lightgbm_member(cfg.seed),
                        "xgboost": xgboost_member(cfg.seed)}[m]  # fmt: skip
                val[m], test[m], info = make(x[tr], y[tr], x[va], y[va], x[te])
            fits[m] = {"seconds": round(time.perf_counter() - started, 2), **info}
            progress(f"{split.name} {m}: {fits[m]['seconds']:.0f} s")
        # Paper 004's GB sees what it saw in 004's run: all non-test clients, scaled on them.
        started = time.perf_counter()
        t4, s4 = scaled(table, split.fit)
        x4 = flat_features(t4, s4)
        test["gb004"] = benchmark("gb", cfg.seed)(x4[split.fit], y[split.fit], x4[te])
        fits["gb004"] = {"seconds": round(time.perf_counter() - started, 2)}
    return SplitPredictions(val, test, fits)


def blend(p: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The weighted average of the members' probabilities ``p`` (model → (N,)) with
    ``weights`` (model → weight ≥ 0, normalised here; all zero: equal weights).

    >>> blend({"a": np.array([0.2, 0.4]), "b": np.array([0.6, 0.8])}, {"a": 3, "b": 1})
    array([0.3, 0.5])
    """
    names = list(weights)
    w = np.array([weights[m] for m in names], dtype=np.float64)
    w = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
    return np.sum(
        [wk * np.asarray(p[m], np.float64) for wk, m in zip(w, names, strict=True)], axis=0
    )


def ensemble_weights(
    p_val: dict[str, np.ndarray], y_val: np.ndarray, trials: int, seed: int
) -> tuple[dict[str, float], float]:
    """The members' weights (model → weight, summing to 1) that maximise the AUC of ``blend``
    on the validation clients (``p_val``: model → (V,); ``y_val`` (V,) 0/1), by ``trials``
    trials of Optuna's seeded TPE sampler, equal weights the first; and that AUC. Raises
    ValueError when ``y_val`` holds one class only."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    names = list(p_val)

    def objective(trial: optuna.Trial) -> float:
        w = {m: trial.suggest_float(m, 0.0, 1.0) for m in names}
        return binary_metrics(y_val, blend(p_val, w)).auc

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({m: 1.0 for m in names})
    study.optimize(objective, n_trials=max(1, trials))
    raw = np.array([study.best_params[m] for m in names])
    w = raw / raw.sum() if raw.sum() > 0 else np.full(len(names), 1 / len(names))
    return {m: round(float(v), 6) for m, v in zip(names, w, strict=True)}, float(study.best_value)


def cache_key(table: UciTable, cfg: Paper001Config, protocol: str) -> str:
    """What a split's fits depend on, hashed: the clients and labels, the protocol, folds and
    seed, the forest's size and the CNN-LSTM's settings (16 hex digits)."""
    h = hashlib.sha256()
    for a in (table.ids.astype(str), table.temporal, table.static, table.y):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(
        json.dumps(
            [protocol, cfg.folds, cfg.seed, cfg.trees, dataclasses.asdict(cfg.cnnlstm)],
            sort_keys=True,
        ).encode()
    )
    return h.hexdigest()[:16]


def predict_all(
    table: UciTable,
    protocol: str,
    cfg: Paper001Config,
    progress: Callable[[str], None] = lambda _: None,
    cache: Path | None = None,
    only: set[int] | None = None,
) -> dict[str, SplitPredictions]:
    """Each split of ``protocol`` fitted (``fit_split``), or read from ``cache`` where a split
    with the same ``cache_key`` was fitted before (one fitted is written there); ``only``:
    these splits (0-based), the others left out. Split name → its predictions."""
    out = {}
    for k, split in enumerate(splits(len(table), protocol, cfg)):
        if only is not None and k not in only:
            continue
        path = (
            None
            if cache is None
            else cache / f"001-{cache_key(table, cfg, protocol)}-{split.name}.json"
        )
        if path is not None and path.is_file():
            saved = json.loads(path.read_text())
            out[split.name] = SplitPredictions(
                {m: np.array(v) for m, v in saved["val"].items()},
                {m: np.array(v) for m, v in saved["test"].items()},
                saved["fit"],
            )
            progress(f"{split.name}: read from {path}")
            continue
        out[split.name] = fit_split(table, split, cfg, progress)
        if path is not None:
            sp = out[split.name]
            write_json(
                path,
                {
                    "protocol": protocol,
                    "split": split.name,
                    "val": {m: v.tolist() for m, v in sp.val.items()},
                    "test": {m: v.tolist() for m, v in sp.test.items()},
                    "fit": sp.fit,
                },
            )
    return out


def precision_recall_f1(y: np.ndarray, p: np.ndarray, cutoff: float = 0.5) -> dict[str, float]:
    """Paper 004's measures (``classification_figures``) with paper 001's precision, recall
    (= sensitivity) and F1 at ``cutoff``; precision and F1 are 0 when nothing is flagged.

    >>> f = precision_recall_f1(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))
    >>> f["precision"], f["recall"], f["f1"]
    (0.5, 0.5, 0.5)
    """
    out = classification_figures(y, p, cutoff)
    flagged = np.asarray(p) >= cutoff
    hits = int((flagged & (np.asarray(y) == 1)).sum())
    precision = hits / int(flagged.sum()) if flagged.any() else 0.0
    recall = out["sensitivity"]
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {**out, "precision": precision, "recall": recall, "f1": f1}


def paper001_rows(
    table: UciTable,
    protocol: str,
    predictions: dict[str, SplitPredictions],
    cfg: Paper001Config,
    command: str,
    progress: Callable[[str], None] = lambda _: None,
) -> list[Row]:
    """Rows of table ``<protocol>`` (the ensemble, its members and 004's GB on the test
    clients; in ``folds`` every client out of fold) and ``<protocol>-delong`` (DeLong's test of
    the ensemble's AUC against each other model on the same clients). Each split's weights are
    chosen here from its validation predictions. Raises ValueError when a split is missing."""
    split_of = {s.name: s for s in splits(len(table), protocol, cfg)}
    names = list(split_of)
    missing = [s for s in names if s not in predictions]
    if missing:
        raise ValueError(f"no predictions for {', '.join(missing)} (fit them first)")
    rows_at = np.concatenate([split_of[s].test for s in names])
    fold = np.concatenate([np.full(len(split_of[s].test), k) for k, s in enumerate(names)])
    y = table.y[rows_at]
    p: dict[str, list[np.ndarray]] = {m: [] for m in MODELS_001}
    weights, val_auc = {}, {}
    for s in names:
        sp = predictions[s]
        yv = table.y[split_of[s].val]
        weights[s], val_auc[s] = ensemble_weights(
            {m: sp.val[m] for m in MEMBERS_001}, yv, cfg.trials, cfg.seed
        )
        progress(f"{s}: weights {weights[s]} (validation AUC {val_auc[s]:.4f})")
        p["ensemble"].append(blend(sp.test, weights[s]))
        for m in MODELS_001:
            if m != "ensemble":
                p[m].append(sp.test[m])
    pooled = {m: np.concatenate(v) for m, v in p.items()}
    common = {
        "paper": "001",
        "data": "uci",
        "command": command,
        "n": len(y),
        "positives": int(y.sum()),
    }
    protocol_text = (
        "paper 001's 70/15/15 split of the clients at random (test: 15%)"
        if protocol == "holdout"
        else f"paper 004's {cfg.folds} folds, out-of-fold predictions; each training "
        "fold split 70:15 into training and validation clients"
    )
    rows = []
    for m, pm in pooled.items():
        progress(f"{protocol}: {m}")
        figs = model_figures(y, pm, fold, cfg, precision_recall_f1)
        detail: dict = {
            "label": MODELS_001[m],
            "protocol": protocol_text,
            "paper_own_data": PAPER_OWN_DATA.get(m, {}),
        }
        if m == "ensemble":
            detail |= {
                "weights": weights,
                "validation_auc": {k: round(v, 5) for k, v in val_auc.items()},
            }
        else:
            detail["fit"] = {s: predictions[s].fit[m] for s in names}
        rows.append(
            Row(
                **common,
                table=protocol,
                model=m,
                figures=_figures(figs, cfg.level, len(names) > 1),
                paper_text=_PAPER_TEXT,
                detail=detail,
            )
        )
    for m, pm in pooled.items():
        if m == "ensemble":
            continue
        d = delong_difference(y, pm, pooled["ensemble"], cfg.level)  # AUC(ensemble) - AUC(m)
        rows.append(
            Row(
                **common,
                table=f"{protocol}-delong",
                model=m,
                figures={
                    "auc_difference": Figure(
                        round(d.difference, 5),
                        low=round(d.low, 5),
                        high=round(d.high, 5),
                        interval=f"DeLong {cfg.level:.0%}",
                    ),
                    "delong_p": Figure(d.p_value),
                },
                detail={
                    "against": "ensemble",
                    "auc_ensemble": round(d.auc_b, 5),
                    "auc_model": round(d.auc_a, 5),
                    "protocol": protocol_text,
                },
            )
        )
    return rows


def _figures(figs: dict[str, dict[str, float]], level: float, folded: bool) -> dict[str, Figure]:
    return {
        k: Figure(
            round(v["value"], 5),
            low=round(v["low"], 5),
            high=round(v["high"], 5),
            interval=f"bootstrap {level:.0%} over clients",
            fold_mean=round(v["fold_mean"], 5) if folded else None,
            fold_sd=round(v["fold_sd"], 5) if folded else None,
        )
        for k, v in figs.items()
    }
