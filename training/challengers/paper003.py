"""Paper 003's system on the UCI table: ACTGAN oversampling of the training defaults
(``training.challengers.actgan``), the ResNet-LSTM feature extractor and focal-loss XGBoost
(``training.challengers.resnetlstm``), on the paper's split, beside the same system without
ACTGAN (the ablation: does the oversampling help?), the network's own output, and plain XGBoost
on the raw columns with and without ACTGAN's rows.

Liu et al., ``../shared/papers/003``, 4.2: "We randomly split 70% of the data for training and
30% for testing. When training data, 20% of the data was randomly selected as the validation
set"; measures AUC, recall, F1 and KS; "All hyperparameters are tuned on validation set with
grid search" (4.3.3). The text we hold has none of its tables' numbers (Tables 3-6 are images):
only what its prose says of them, kept in each row's ``paper_text``.

Chosen here where the text is open: the split is by client at random (seeded), not
stratified; the GAN and both networks see only the training clients (the validation clients
stay real and unoversampled: early stopping, the focal loss's α and γ searched on their AUC);
inputs as the other UCI challengers' (``uci.scaled``: amounts on a signed log scale,
standardised on the real training clients); the plain XGBoost sees the 26 columns flattened
(``uci.flat_features``) with paper 001's settings (``paper001.xgboost_member``); recall and F1
at a cut-off of 0.5 (the paper gives none).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from training.challengers.actgan import concat, oversample
from training.challengers.config import MODELS_003, Paper003Config
from training.challengers.paper001 import precision_recall_f1, xgboost_member
from training.challengers.paper004 import model_figures
from training.challengers.resnetlstm import (
    features,
    fit_focal_xgboost,
    fit_resnetlstm,
    predict_focal_xgboost,
    predict_resnetlstm,
)
from training.challengers.results import Figure, Row
from training.challengers.uci import UciTable, flat_features, scaled
from training.core.bootstrap import paired_differences
from training.core.evaluation import binary_metrics

__all__ = ["COMPARED", "Predictions", "Split", "fit_predict", "paper003_rows", "split"]

#: The differences reported, (A, B): A's figure minus B's on the same test clients.
COMPARED = (("system", "no_actgan"), ("system", "resnetlstm"), ("system", "xgboost"),
            ("system", "xgboost_actgan"), ("xgboost_actgan", "xgboost"),
            ("no_actgan", "xgboost"))  # fmt: skip

#: What the paper's prose says of each row (its tables' numbers are not in the text).
_PAPER_TEXT = {
    "system": "Table 6: 'obvious advantages over other algorithms in terms of F1, AUC value, "
              "and KS value' on both data sets; on UCI RUSBoost's recall is higher, ours 'not "
              "far from the highest one' (no number in the text)",
    "no_actgan": "Tables 3-4: ACTGAN 'significantly outperforms' ADASYN, SMOTE, "
                 "BorderlineSMOTE and CGAN as oversampling for SVM, LR, DT and KNN; the text "
                 "reports no run of the full system without it",
    "resnetlstm": "not reported (the paper always classifies the fused features with XGBoost)",
    "xgboost": "not among the paper's baselines (RNN-RF, AdaBoost, SMOTEBoost, RUSBoost, "
               "CUSBoost, CNN, LSTM)",
    "xgboost_actgan": "not among the paper's baselines",
}  # fmt: skip


@dataclass(frozen=True)
class Split:
    """The paper's split of the clients (index arrays into the table)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split(n: int, cfg: Paper003Config) -> Split:
    """``cfg.test_share`` of ``n`` clients at random to test, ``cfg.validation_share`` of the
    rest to validate, the others to train (seeded by ``cfg.seed``). Raises ValueError when a
    part would hold fewer than two clients.

    >>> s = split(100, Paper003Config())
    >>> len(s.train), len(s.val), len(s.test)
    (56, 14, 30)
    """
    order = np.random.default_rng(cfg.seed).permutation(n)
    n_test = round(cfg.test_share * n)
    n_val = round(cfg.validation_share * (n - n_test))
    test, val, train = order[:n_test], order[n_test : n_test + n_val], order[n_test + n_val :]
    if min(len(train), len(val), len(test)) < 2:
        raise ValueError(f"{n} clients are too few for the 70/30 split")
    return Split(np.sort(train), np.sort(val), np.sort(test))


@dataclass(frozen=True)
class Predictions:
    """Each model's P(default) on the test clients (model → (M,)), and what fitting did
    (model → seconds, epochs, the focal loss's chosen α and γ, the GAN's history)."""

    test: dict[str, np.ndarray]
    fit: dict[str, dict]
    synthetic: int


def focal_on_features(f: np.ndarray, y: np.ndarray, f_val: np.ndarray, y_val: np.ndarray,
                      f_test: np.ndarray, cfg: Paper003Config
                      ) -> tuple[np.ndarray, dict]:  # fmt: skip
    """The focal XGBoost fitted on fused features ``f`` (N, F) with labels ``y`` (N,), α and γ
    of ``cfg``'s grid chosen by the AUC on (``f_val``, ``y_val``); its P(default) at ``f_test``
    and what was searched."""
    best: tuple[float, object, float, float] | None = None
    searched = []
    for alpha in cfg.focal_alpha:
        for gamma in cfg.focal_gamma:
            booster = fit_focal_xgboost(f, y, f_val, y_val, alpha, gamma, cfg.seed)
            auc = binary_metrics(y_val, predict_focal_xgboost(booster, f_val)).auc
            searched.append({"alpha": alpha, "gamma": gamma, "val_auc": round(auc, 5),
                             "rounds": booster.best_iteration + 1})  # fmt: skip
            if best is None or auc > best[0]:
                best = (auc, booster, alpha, gamma)
    assert best is not None
    _, booster, alpha, gamma = best
    return predict_focal_xgboost(booster, f_test), {
        "alpha": alpha, "gamma": gamma, "searched": searched}  # fmt: skip


def fit_predict(table: UciTable, cfg: Paper003Config,
                progress: Callable[[str], None] = lambda _: None) -> Predictions:  # fmt: skip
    """Oversample the training clients with ACTGAN, then fit every model of ``MODELS_003`` on
    the paper's split and predict the test clients; the test clients are seen by nothing
    before their predictions. One native thread."""
    s = split(len(table), cfg)
    test, fits = {}, {}
    with threadpool_limits(1):
        started = time.perf_counter()
        synthetic, gan = oversample(table.take(s.train), cfg.actgan, progress)
        fits["actgan"] = {"seconds": round(time.perf_counter() - started, 1),
                          "synthetic_defaults": len(synthetic),
                          "history": gan.history[:: max(1, len(gan.history) // 20)]
                          + gan.history[-1:]}  # fmt: skip
        both = concat(table, synthetic)  # the synthetic rows after the real ones
        oversampled = np.r_[s.train, len(table) + np.arange(len(synthetic))]
        temporal, static = scaled(both, s.train)
        x, y = flat_features(temporal, static), both.y
        for model, rows in (("system", oversampled), ("no_actgan", s.train)):
            started = time.perf_counter()
            net, info = fit_resnetlstm((temporal[rows], static[rows], y[rows]),
                                       (temporal[s.val], static[s.val], y[s.val]), cfg.network,
                                       progress)  # fmt: skip
            if model == "system":
                test["resnetlstm"] = predict_resnetlstm(net, temporal[s.test], static[s.test])
                fits["resnetlstm"] = info
            f = features(net, temporal, static)
            test[model], chosen = focal_on_features(f[rows], y[rows], f[s.val], y[s.val],
                                                    f[s.test], cfg)  # fmt: skip
            fits[model] = {"network": info, "focal": chosen,
                           "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            progress(f"{model}: {fits[model]['seconds']:.0f} s, focal α {chosen['alpha']} "
                     f"γ {chosen['gamma']}")  # fmt: skip
        for model, rows in (("xgboost", s.train), ("xgboost_actgan", oversampled)):
            started = time.perf_counter()
            _, test[model], info = xgboost_member(cfg.seed)(x[rows], y[rows], x[s.val],
                                                            y[s.val], x[s.test])  # fmt: skip
            fits[model] = {"seconds": round(time.perf_counter() - started, 1), **info}
            progress(f"{model}: {fits[model]['seconds']:.0f} s")
    return Predictions({m: test[m] for m in MODELS_003}, fits, len(synthetic))


def paper003_rows(table: UciTable, predictions: Predictions, cfg: Paper003Config, command: str,
                  progress: Callable[[str], None] = lambda _: None) -> list[Row]:  # fmt: skip
    """Rows of table ``70-30`` (each model on the test clients: AUC, recall, F1, KS and the
    other measures, bootstrap intervals over clients) and ``70-30-differences`` (each pair of
    ``COMPARED``: AUC, KS and Brier differences with bootstrap intervals over clients,
    ``training.core.bootstrap.paired_differences``)."""
    s = split(len(table), cfg)
    y = table.y[s.test]
    train_y = table.y[s.train]
    common = {"paper": "003", "data": "uci", "command": command, "n": len(y),
              "positives": int(y.sum())}  # fmt: skip
    protocol = (f"paper 003's split: {cfg.test_share:.0%} of the clients at random to test, "
                f"{cfg.validation_share:.0%} of the rest to validate; ACTGAN oversampled the "
                f"{len(s.train)} training clients ({int(train_y.sum())} defaults) with "
                f"{predictions.synthetic} synthetic defaults to a ratio of "
                f"{cfg.actgan.ratio}")  # fmt: skip
    rows = []
    for m, label in MODELS_003.items():
        progress(f"70-30: {m}")
        figs = model_figures(y, predictions.test[m], np.zeros(len(y), int), cfg,
                             precision_recall_f1)  # fmt: skip
        rows.append(Row(**common, table="70-30", model=m, paper_text=_PAPER_TEXT[m],
                        figures={k: Figure(round(v["value"], 5), low=round(v["low"], 5),
                                           high=round(v["high"], 5),
                                           interval=f"bootstrap {cfg.level:.0%} over clients")
                                 for k, v in figs.items()},
                        detail={"label": label, "protocol": protocol,
                                "fit": predictions.fit.get(m, {}),
                                **({"actgan": predictions.fit["actgan"]}
                                   if m == "system" else {})}))  # fmt: skip
    for a, b in COMPARED:
        d = paired_differences(y, predictions.test[a], predictions.test[b],
                               users=table.ids[s.test], draws=cfg.draws, seed=cfg.seed,
                               level=cfg.level)  # fmt: skip
        rows.append(Row(**common, table="70-30-differences", model=f"{a}-vs-{b}",
                        figures={f"{k}_difference": Figure(
                            round(d[k]["difference"], 5), low=round(d[k]["interval"][0], 5),
                            high=round(d[k]["interval"][1], 5),
                            interval=f"bootstrap {cfg.level:.0%} over clients, paired")
                            for k in ("auc", "ks", "brier")},
                        detail={"a": a, "b": b, "bootstrap": d["bootstrap"],
                                "protocol": protocol}))  # fmt: skip
    return rows
