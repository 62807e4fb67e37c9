"""Real data end to end (``deepcredit uci``): a monthly statement table (the UCI layout) through
the whole Table 1 pipeline, judged on the last bill of each held-out user, whose label is ``Y``.

1. the table as clicks in the event contract (``training.benchmark.statements``);
2. DeepCredit trained on them (``training.core.pipeline.train_model``, its split by user hash);
3. the Table 1 baselines on the same events and split (gradient-boosted trees, logistic
   regression: ``training.report.predict``);
4. the same two model families on the table's raw columns ``X1``..``X23`` of the same users
   (training users to fit, validation users to early-stop or choose), as the papers that use
   this table do;
5. for the September bill of every test user who has one (a bill above zero: a post), AUC, KS
   and Brier of each model, and each difference DeepCredit minus the other with a 95% interval
   from a bootstrap over users (``training.core.bootstrap``).

The delinquency head answers ``Y``: the September bill's delinquency label (repaid after due or
not repaid by the end of the data) is ``Y`` by construction of the mapping, while its default
label (over 120 days late) cannot be known a month after the bill falls due.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from training.baselines.base import validation_auc
from training.benchmark.statements import last_bill_id, read_raw_columns, read_table, write_events
from training.core.bootstrap import paired_differences, weighted_metrics
from training.core.config import ModelConfig, TrainConfig
from training.core.dataset import split_masks
from training.core.pipeline import train_model
from training.core.predictions import Prediction
from training.report.predict import baseline_predictions, deepcredit_predictions

__all__ = ["HEAD", "raw_column_predictions", "run_uci", "september_rows"]

#: The head whose probability is compared with ``Y``.
HEAD = "delinquent"
_LR_STRENGTHS = (0.001, 0.01, 0.1, 1.0)


def september_rows(rows: list[Prediction]) -> dict[str, tuple[int, float]]:
    """User id -> (label, probability) of each test user's September bill post among a model's
    ``HEAD`` predictions."""
    out = {}
    for r in rows:
        last = f"{last_bill_id(r.user_id.removeprefix('c'))}-post"
        if r.split == "test" and r.target == HEAD and r.event_id == last:
            out[r.user_id] = (r.label, r.probability)
    return out


def raw_column_predictions(
    table: Path, train_config: TrainConfig, *, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Model name -> (user id -> probability of ``Y``) for the test users, from a gradient-boosted
    trees model (early-stopped on the validation users' loss, as the events' GBDT) and a
    standardised logistic regression (inverse L2 strength chosen by validation AUC) fitted on
    the training users' raw columns; the users split as the event models' (the same user hash
    and fractions)."""
    users, x, y = read_raw_columns(table)
    ids = np.array(users)
    test, val = split_masks(ids, train_config.test_fraction, train_config.validation_fraction)
    train = ~test & ~val
    with threadpool_limits(1):
        gbdt = HistGradientBoostingClassifier(max_iter=500, learning_rate=0.1, max_leaf_nodes=31,
                                              early_stopping=True, scoring="loss",
                                              n_iter_no_change=20, random_state=seed)  # fmt: skip
        gbdt.fit(x[train], y[train], X_val=x[val], y_val=y[val])
        fitted = []
        for c in _LR_STRENGTHS:
            lr = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=1000))
            lr.fit(x[train], y[train])
            auc = validation_auc(y[val].astype(float), lr.predict_proba(x[val])[:, 1])
            fitted.append((auc, lr))
        lr = max(fitted, key=lambda t: -np.inf if np.isnan(t[0]) else t[0])[1]
        return {name: dict(zip(ids[test], m.predict_proba(x[test])[:, 1].tolist(), strict=True))
                for name, m in (("gbdt_raw_columns", gbdt), ("lr_raw_columns", lr))}  # fmt: skip


def run_uci(
    table: Path,
    work: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    draws: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Stages 1-5 of the module, files under ``work`` (the clicks, the model). Returns a
    JSON-ready dict: per model the September-bill AUC, KS and Brier; per other model the
    differences DeepCredit minus it with their intervals; the users compared and left out; the
    model's card fields. Raises StatementTableError on a malformed table and
    ``training.core.train.TrainingDataError`` when the clicks cannot train a model."""
    work.mkdir(parents=True, exist_ok=True)
    clicks = work / "clicks.jsonl.gz"
    clients, events = write_events(read_table(table), clicks)  # 1.
    if progress:
        print(f"{clients:,} clients, {events:,} clicks in {clicks}", flush=True)
    card = train_model(clicks, work / "models", model_config, train_config,
                       progress=progress)  # 2. fmt: skip
    own = TrainConfig(**card.train_config)
    models: dict[str, dict[str, tuple[int, float]]] = {}
    _, rows = deepcredit_predictions(work / "models" / card.version, clicks, ("test",),
                                     name="deepcredit")  # fmt: skip
    models["deepcredit"] = september_rows(rows)
    for name in ("gbdt", "lr"):  # 3.
        _, rows = baseline_predictions(name, clicks, ("test",), train_config=own, seed=seed)
        models[f"{name}_events"] = september_rows(rows)
    table_users, _, table_y = read_raw_columns(table)
    labels = dict(zip(table_users, table_y.tolist(), strict=True))
    for name, p in raw_column_predictions(table, own, seed=seed).items():  # 4.
        models[name] = {u: (labels[u], q) for u, q in p.items()}
    users = sorted(set.intersection(*(set(m) for m in models.values())))  # 5.
    wrong = [u for u in users if models["deepcredit"][u][0] != labels[u]]
    if wrong:
        raise RuntimeError(f"{len(wrong)} September-bill labels differ from Y, e.g. {wrong[0]}")
    y = np.array([labels[u] for u in users], dtype=float)
    p = {name: np.array([m[u][1] for u in users]) for name, m in models.items()}
    test_users = len(models["gbdt_raw_columns"])
    return {
        "head": HEAD,
        "users": {"test": test_users, "compared": len(users),
                  "without_a_september_bill": test_users - len(users),
                  "positives": int(y.sum())},
        "metrics": {name: weighted_metrics(y, q) for name, q in p.items()},
        "deepcredit_minus": {name: paired_differences(y, p["deepcredit"], q, np.array(users),
                                                      draws=draws, seed=seed)
                             for name, q in p.items() if name != "deepcredit"},
        "model": {"version": card.version, "model_config": card.model_config,
                  "train_config": card.train_config, "training": {
                      k: card.training.get(k) for k in ("epochs_run", "best_epoch", "seconds")},
                  "validation": {t: {"auc": m.auc, "positives": m.positives}
                                 for t, m in card.metrics.get("validation", {}).items()}},
        "data": {"table": str(table), "clients": clients, "clicks": events,
                 "sha256": card.data.sha256},
    }  # fmt: skip
