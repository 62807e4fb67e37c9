"""Papers 001, 003 and 004's systems on the benchmark's event log, on Table 1's users, posts and
labels, and the rows that judge any challenger there beside Table 1's baselines.

Each system reads the posts in the UCI models' input form (``training.challengers.eventform``)
and is fitted as on UCI, once per target (delinquency, default): the papers' models have one
output, P(default next month) on UCI. Fitted on the training users' posts whose label of that
target is known, early-stopped (networks, boosting) or weighted (001's ensemble) on the
validation users' posts, scored at every test post.

What the benchmark needs beyond the papers' text, chosen here:

- the networks train on a seeded sample of ``train_posts`` training posts (one user's posts
  are alike; 400,000 posts a pass would leave a CPU run one or two epochs) within a time
  budget per fit (``max_minutes`` of each network's settings); the trees see every training
  post, the last ``flat_steps`` steps flattened beside the static part (``PostArrays.flat``);
- 001's CNN branches (``EVENT_BRANCHES``): the step's kind, delay, gap and presence (kernel 3,
  the UCI status branch's analogue) and its amounts: terms, debt and record (kernel 2);
- 003's ACTGAN learns the sampled training posts' raw flat rows (the temporal part flattened
  beside the static part; columns holding only 0 and 1 categorical, the others continuous) and
  oversamples that sample to the paper's ratio; its rows go back into the input form and
  through the same scaling; every model of ``MODELS_003`` sees the same sample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits

from training.challengers.bilstm import fit_bilstm, predict_bilstm
from training.challengers.cnnlstm import fit_cnnlstm, predict_cnnlstm
from training.challengers.config import (
    MEMBERS_001,
    BiLstmConfig,
    Paper001Config,
    Paper003Config,
)
from training.challengers.eventform import PostArrays, flatten
from training.challengers.results import Figure, Row
from training.core.bootstrap import paired_differences
from training.core.evaluation import TARGETS, binary_metrics

__all__ = ["EVENT_BRANCHES", "Fitted", "benchmark_rows", "fit_001", "fit_003", "fit_004",
           "sample_posts"]  # fmt: skip

#: 001's CNN branches over ``PostArrays.temporal``'s channels (``loan_x``: kind 0-2, terms 3-5,
#: debt 6-8, record 9-11, delay 12; then gap 13, present 14).
EVENT_BRANCHES: tuple[tuple[str, tuple[int, ...], int], ...] = (
    ("steps", (0, 1, 2, 12, 13, 14), 3),
    ("amounts", tuple(range(3, 12)), 2),
)


@dataclass
class Fitted:
    """Each model's probabilities (P, 2) [delinquent, default] at the test posts, and what
    fitting did (model → target → settings, epochs, seconds)."""

    test: dict[str, np.ndarray] = field(default_factory=dict)
    detail: dict[str, dict] = field(default_factory=dict)

    def put(self, model: str, k: int, p: np.ndarray, info: dict) -> None:
        if model not in self.test:
            self.test[model] = np.full((len(p), len(TARGETS)), np.nan)
        self.test[model][:, k] = p
        self.detail.setdefault(model, {})[TARGETS[k]] = info


def sample_posts(n: int, size: int | None, seed: int) -> np.ndarray:
    """``size`` of ``n`` row numbers at random (seeded), sorted; all when ``size`` is None or
    at least ``n``.

    >>> sample_posts(5, None, 0).tolist(), len(sample_posts(100, 10, 0))
    ([0, 1, 2, 3, 4], 10)
    """
    if size is None or size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


def _known(posts: PostArrays, k: int) -> np.ndarray:
    return np.flatnonzero(np.isfinite(posts.labels[:, k]))


def _arrays(posts: PostArrays, rows: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    return posts.temporal[rows], posts.static[rows], posts.labels[rows, k]


def fit_004(train: PostArrays, val: PostArrays, test: PostArrays, cfg: BiLstmConfig,
            train_posts: int | None, progress: Callable[[str], None]) -> Fitted:  # fmt: skip
    """Paper 004's BiLSTM (``training.challengers.bilstm``) per target on scaled posts."""
    out = Fitted()
    for k, target in enumerate(TARGETS):
        tr = _known(train, k)
        tr = tr[sample_posts(len(tr), train_posts, cfg.seed)]
        model, info = fit_bilstm(*_arrays(train, tr, k), cfg,
                                 validation=_arrays(val, _known(val, k), k))  # fmt: skip
        out.put("bilstm", k, predict_bilstm(model, test.temporal, test.static),
                {**info, "train_posts": len(tr)})  # fmt: skip
        progress(f"bilstm {target}: {info['epochs_run']} epochs, best {info['best_epoch']}, "
                 f"{info['seconds']:.0f} s")  # fmt: skip
    return out


def fit_001(train: PostArrays, val: PostArrays, test: PostArrays, cfg: Paper001Config,
            flat_steps: int, train_posts: int | None,
            progress: Callable[[str], None]) -> Fitted:  # fmt: skip
    """Paper 001's ensemble per target: the CNN-LSTM (on a sample of ``train_posts``), LightGBM,
    XGBoost and the random forest (on every training post's flat row), the weights chosen by
    TPE for the validation AUC (``paper001.ensemble_weights``); rows ``ensemble`` and each
    member."""
    from training.challengers.paper001 import (
        blend,
        ensemble_weights,
        forest_member,
        lightgbm_member,
        xgboost_member,
    )

    out = Fitted()
    x, xv, xt = train.flat(flat_steps), val.flat(flat_steps), test.flat(flat_steps)
    trees = {"lightgbm": lightgbm_member(cfg.seed), "xgboost": xgboost_member(cfg.seed),
             "rf": forest_member(cfg)}  # fmt: skip
    for k, target in enumerate(TARGETS):
        tr, va = _known(train, k), _known(val, k)
        y, yv = train.labels[tr, k], val.labels[va, k]
        p_val: dict[str, np.ndarray] = {}
        for m in MEMBERS_001:
            started = time.perf_counter()
            if m == "cnnlstm":
                rows = tr[sample_posts(len(tr), train_posts, cfg.seed)]
                model, info = fit_cnnlstm(_arrays(train, rows, k), _arrays(val, va, k),
                                          cfg.cnnlstm, EVENT_BRANCHES)  # fmt: skip
                p_val[m] = predict_cnnlstm(model, val.temporal[va], val.static[va])
                p_test = predict_cnnlstm(model, test.temporal, test.static)
                info = {**info, "train_posts": len(rows)}
            else:
                with threadpool_limits(1):
                    p_val[m], p_test, info = trees[m](x[tr], y, xv[va], yv, xt)
            out.put(m, k, p_test, {**info, "seconds": round(time.perf_counter() - started, 1)})
            progress(f"{m} {target}: {time.perf_counter() - started:.0f} s, validation AUC "
                     f"{binary_metrics(yv, p_val[m]).auc:.4f}")  # fmt: skip
        weights, auc = ensemble_weights(p_val, yv, cfg.trials, cfg.seed)
        out.put("ensemble", k, blend({m: out.test[m][:, k] for m in MEMBERS_001}, weights),
                {"weights": weights, "validation_auc": round(auc, 5)})  # fmt: skip
        progress(f"ensemble {target}: weights {weights}, validation AUC {auc:.4f}")
    return out


def _discrete_columns(flat: np.ndarray) -> np.ndarray:
    """Columns (bool mask) whose values are all 0 or 1: the GAN's categorical columns."""
    return np.all((flat == 0) | (flat == 1), axis=0)


def fit_003(raw_train: PostArrays, train: PostArrays, val: PostArrays, test: PostArrays,
            scale: Callable[[PostArrays], PostArrays], cfg: Paper003Config,
            train_posts: int | None, progress: Callable[[str], None]) -> Fitted:  # fmt: skip
    """Paper 003's system per target on one sample of ``train_posts`` training posts: ACTGAN
    trained on their raw rows oversamples them to ``cfg.actgan.ratio``; the ResNet-LSTM on the
    oversampled posts, focal XGBoost on its fused features (α and γ by the validation AUC);
    and ``MODELS_003``'s ablations on the same sample. ``raw_train`` and ``train`` are the
    same posts unscaled and scaled by ``scale``."""
    import pandas as pd

    from training.challengers.actgan import LABEL, Actgan, to_generate
    from training.challengers.paper001 import xgboost_member
    from training.challengers.paper003 import focal_on_features
    from training.challengers.resnetlstm import features, fit_resnetlstm, predict_resnetlstm

    out = Fitted()
    steps, channels = train.temporal.shape[1:]
    for k, target in enumerate(TARGETS):
        tr = _known(train, k)
        tr = tr[sample_posts(len(tr), train_posts, cfg.seed)]
        va = _known(val, k)
        y = train.labels[tr, k].astype(np.int64)
        started = time.perf_counter()
        raw = raw_train.take(tr)
        flat_raw = raw.flat(steps)
        names = [f"c{j}" for j in range(flat_raw.shape[1])]
        frame = pd.DataFrame(flat_raw.astype(np.float64), columns=names)
        discrete = _discrete_columns(flat_raw)
        frame[LABEL] = y
        for c, d in zip(names, discrete, strict=True):
            if d:
                frame[c] = frame[c].astype(int)
        gan = Actgan(cfg.actgan, discrete=(*(c for c, d in zip(names, discrete, strict=True)
                                             if d), LABEL)).fit(frame, progress)  # fmt: skip
        n = to_generate(y, cfg.actgan.ratio)
        rows = gan.defaults(n, cfg.actgan.seed)[names].to_numpy(np.float32) if n else \
            np.zeros((0, len(names)), np.float32)  # fmt: skip
        t_syn = rows[:, : steps * channels].reshape(-1, steps, channels)
        t_syn[..., -1] = np.round(np.clip(t_syn[..., -1], 0, 1))  # presence stays a flag
        synthetic = scale(PostArrays(t_syn, rows[:, steps * channels :],
                                     np.ones((len(rows), len(TARGETS)), np.float32),
                                     np.full(len(rows), -1), np.full(len(rows), "")))  # fmt: skip
        gan_info = {"seconds": round(time.perf_counter() - started, 1),
                    "synthetic": int(n), "train_posts": len(tr), "positives": int(y.sum()),
                    "history": gan.history[-1:]}  # fmt: skip
        progress(f"actgan {target}: {n} synthetic positives in {gan_info['seconds']:.0f} s")
        real = (train.temporal[tr], train.static[tr], y.astype(np.float32))
        both = tuple(
            np.concatenate([a, b])
            for a, b in zip(
                real, (synthetic.temporal, synthetic.static, np.ones(n, np.float32)), strict=True
            )
        )
        val_arrays = (val.temporal[va], val.static[va], val.labels[va, k])
        yv = val.labels[va, k].astype(np.int64)
        for model, data in (("system", both), ("no_actgan", real)):
            started = time.perf_counter()
            net, info = fit_resnetlstm(data, val_arrays, cfg.network, progress)
            if model == "system":
                out.put("resnetlstm", k, predict_resnetlstm(net, test.temporal, test.static),
                        info)  # fmt: skip
            f_fit, f_val, f_test = (features(net, t, s) for t, s in (
                data[:2], val_arrays[:2], (test.temporal, test.static)))  # fmt: skip
            p, chosen = focal_on_features(f_fit, data[2], f_val, yv, f_test, cfg)
            detail = {"network": info, "focal": chosen,
                      "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip
            if model == "system":
                detail["actgan"] = gan_info
            out.put(model, k, p, detail)
            progress(f"{model} {target}: {detail['seconds']:.0f} s, focal α {chosen['alpha']} "
                     f"γ {chosen['gamma']}")  # fmt: skip
        xv, xt = flatten(*val_arrays[:2]), flatten(test.temporal, test.static)
        flats = {"xgboost": real, "xgboost_actgan": both}
        for model, (t, s, yx) in flats.items():
            x = flatten(t, s)
            started = time.perf_counter()
            with threadpool_limits(1):
                _, p, info = xgboost_member(cfg.seed)(x, yx, xv, yv, xt)
            out.put(model, k, p, {**info, "seconds": round(time.perf_counter() - started, 1)})
            progress(f"{model} {target}: {time.perf_counter() - started:.0f} s")
    return out


def benchmark_rows(paper: str, y: np.ndarray, users: np.ndarray,
                   predictions: dict[str, np.ndarray], reference: str, labels: dict[str, str],
                   *, bootstrap: int, level: float, command: str, data: str = "benchmark",
                   detail: dict[str, dict] | None = None) -> list[Row]:  # fmt: skip
    """Rows of table ``data`` (one per model of ``predictions``: name → (P, 2)) and
    "differences" (``reference`` minus each other model), per target: AUC, KS and Brier, the
    differences with a ``level`` interval from ``bootstrap`` draws of test users
    (``training.core.bootstrap.paired_differences``). ``y`` (P, 2) the test labels, ``users``
    (P,) each row's user; ``labels``: model → what it is. A target whose test labels hold one
    class has no rows. ``data``: the rows' data set ("benchmark", or "uci" for a statement
    table's events)."""
    rows = []
    detail = detail or {}
    for target_k, target in enumerate(TARGETS):
        known = np.isfinite(y[:, target_k])
        yk = y[known, target_k]
        if not 0 < yk.sum() < len(yk):
            continue  # one class only (a small log): AUC and KS say nothing
        common = {"paper": paper, "data": data, "group": target, "command": command,
                  "n": int(known.sum()), "positives": int(yk.sum())}  # fmt: skip
        for name, p in predictions.items():
            m = binary_metrics(yk, p[known, target_k])
            rows.append(Row(**common, table=data, model=name,
                            figures={"auc": Figure(m.auc), "ks": Figure(m.ks),
                                     "brier": Figure(m.brier)},
                            paper_text=labels.get(name, name),
                            detail=detail.get(name, {})))  # fmt: skip
        for name, p in predictions.items():
            if name == reference:
                continue
            d = paired_differences(yk, predictions[reference][known, target_k],
                                   p[known, target_k], users[known], draws=bootstrap,
                                   level=level)  # fmt: skip
            figures = {k: Figure(float(d[k]["difference"]), low=d[k]["interval"][0],
                                 high=d[k]["interval"][1],
                                 interval=f"{level:.0%} user bootstrap, "
                                          f"{d['bootstrap']['draws']} draws")
                       for k in ("auc", "ks", "brier")}  # fmt: skip
            rows.append(Row(**common, table="differences", model=f"{reference}-{name}",
                            figures=figures,
                            paper_text=f"{labels.get(reference, reference)} minus "
                                       f"{labels.get(name, name)}"))  # fmt: skip
    return rows
