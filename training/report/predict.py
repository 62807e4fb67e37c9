"""Prediction files of our own models on an event log: a DeepCredit artifact, or a baseline
fitted on the artifact's split, at the labelled posts of the users of each chosen split.

The rows are the posts ``training.core.train.predict`` scores (funded, outcome known at the
end of the log), one row per target whose label is known; the split is the artifact's (the
user hash and fractions of its card), so two models' test rows are the same posts.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from scorer.card import DataInfo
from scorer.features import LoanStep
from training.core.config import TrainConfig
from training.core.dataset import Sequences
from training.core.evaluation import TARGETS
from training.core.predictions import ModelManifest, Prediction
from training.core.train import Split

__all__ = ["baseline_predictions", "deepcredit_predictions", "labelled_posts", "rows_of"]

#: What each baseline is, for its manifest; none has an incremental form here: each scores a
#: post from features recomputed over the user's history.
BASELINE_FAMILIES = {
    "gbdt": "gradient-boosted trees over flat post features (the XGB row of Table 1)",
    "lr": "logistic regression over flat post features",
}


def labelled_posts(seq: Sequences, users: np.ndarray) -> np.ndarray:
    """Global loan-step rows of the posts of ``users`` (in that order, each user's in time
    order) with at least one known label: the rows every model of Table 1 predicts, in the
    order the baselines return them."""
    rows = []
    for u in users:
        r = np.arange(seq.loan_offsets[u], seq.loan_offsets[u + 1])
        keep = (seq.loan_kind[r] == LoanStep.POST) & np.isfinite(seq.labels[r]).any(axis=1)
        rows.append(r[keep])
    return np.concatenate(rows) if rows else np.zeros(0, np.int64)


def rows_of(
    name: str, seq: Sequences, posts: np.ndarray, p: np.ndarray, split_name: str
) -> Iterator[Prediction]:
    """Predictions of model ``name`` at loan-step rows ``posts`` (R,) with probabilities ``p``
    (R, 2) in ``TARGETS`` order; a target whose label is unknown at a row gives no row."""
    loan_user = np.searchsorted(seq.loan_offsets, posts, side="right") - 1
    for i, row in enumerate(posts):
        user, event = str(seq.user_ids[loan_user[i]]), str(seq.event_ids[row])
        for k, target in enumerate(TARGETS):
            label = seq.labels[row, k]
            if np.isfinite(label):
                yield Prediction(name, user, event, target, int(label),
                                 float(np.clip(p[i, k], 0.0, 1.0)), split_name)  # fmt: skip


def _by_split(parts: Split, splits: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    return [(s, getattr(parts, s)) for s in splits]


def deepcredit_predictions(
    model_dir: Path,
    events: Path,
    splits: Sequence[str] = ("test",),
    *,
    name: str | None = None,
    progress: bool = False,
) -> tuple[ModelManifest, list[Prediction]]:
    """A DeepCredit artifact's predictions (calibrated when its card carries a calibration)
    at the labelled posts of the users of ``splits`` of its own split of ``events``."""
    from training.core.artifact import load_model
    from training.core.eventlog import load_sequences
    from training.core.train import predict_rows, split

    model, card = load_model(model_dir)
    seq, data = load_sequences(events, progress=progress)
    parts = split(seq, TrainConfig(**card.train_config))
    name = name or card.version
    rows: list[Prediction] = []
    for split_name, users in _by_split(parts, splits):
        _, p, row_users = predict_rows(model, seq, users)
        # predict_rows returns each user's rows together, in time order: the user's labelled
        # posts, so the rows are those of labelled_posts over the users in that order.
        order = row_users[np.r_[True, row_users[1:] != row_users[:-1]]] if len(row_users) else []
        posts = labelled_posts(seq, np.asarray(order, dtype=np.int64))
        if len(posts) != len(p):
            raise RuntimeError(f"{len(p)} predictions for {len(posts)} labelled posts")
        rows.extend(rows_of(name, seq, posts, p, split_name))
    manifest = ModelManifest(
        name=name, family="deepcredit", streaming=True,  # every variant steps per event
        description="hierarchical time-aware LSTM in the streaming form: one state step per "
                    f"event (hidden size {card.model_config.get('hidden_size')})",
        source=f"model artifact {card.version}", data=_data(data),
    )  # fmt: skip
    return manifest, rows


def baseline_predictions(
    baseline: str,
    events: Path,
    splits: Sequence[str] = ("test",),
    *,
    train_config: TrainConfig | None = None,
    seed: int = 0,
    name: str | None = None,
    progress: bool = False,
) -> tuple[ModelManifest, list[Prediction]]:
    """A baseline (``gbdt`` or ``lr``) fitted on the training users of ``train_config``'s split
    (a model card's, for the same test users as that model; default ``TrainConfig()``),
    early-stopped or chosen on its validation users, predicting the users of ``splits``."""
    from training.baselines import GradientBoostingBaseline, LogisticBaseline
    from training.core.eventlog import load_sequences
    from training.core.train import split

    if baseline not in BASELINE_FAMILIES:
        raise ValueError(f"unknown baseline {baseline!r}: one of {sorted(BASELINE_FAMILIES)}")
    seq, data = load_sequences(events, progress=progress)
    parts = split(seq, train_config or TrainConfig())
    model = (GradientBoostingBaseline(seed=seed, threads=1) if baseline == "gbdt"
             else LogisticBaseline(threads=1))  # fmt: skip
    model.fit(seq, parts.train, parts.validation)
    name = name or baseline
    rows: list[Prediction] = []
    for split_name, users in _by_split(parts, splits):
        _, p = model.predict(seq, users)
        posts = labelled_posts(seq, users)
        if len(posts) != len(p):
            raise RuntimeError(f"{len(p)} predictions for {len(posts)} labelled posts")
        rows.extend(rows_of(name, seq, posts, p, split_name))
    manifest = ModelManifest(name=name, family=baseline, streaming=False,
                             description=BASELINE_FAMILIES[baseline],
                             source=f"fitted by deepcredit report predict, chosen "
                                    f"{model.chosen}", data=_data(data))  # fmt: skip
    return manifest, rows


def _data(data: DataInfo) -> str:
    return f"{data.path} (SHA-256 {data.sha256[:12]}…, {data.users:,} users)"
