"""The paper's Table 1 on our benchmark: every model on the same users, split and labelled posts.

Rows: the five switches of the streaming model (DeepCredit = H-TLSTM + CL, H-TLSTM, H-LSTM +
CL, TLSTM(activity), TLSTM(repay)), the paper-literal windowed re-encode, and the baselines
(gradient-boosted trees, HMM, logistic regression). Each is fitted on the training users,
early-stopped on the validation users, and measured once on the held-out test users.

With the generator's oracle side file (``training.benchmark.oracle``), one more row: the true
probabilities of delinquency and default on the same test posts, nothing fitted. It is the
ceiling every gap is read against, and it is read only here, never by a model.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from scorer.card import TargetMetrics
from training.core.bootstrap import paired_differences
from training.core.dataset import Sequences, user_rows
from training.core.evaluation import binary_metrics
from training.core.model import TARGETS, ModelConfig
from training.core.pipeline import peak_rss_mib, reset_peak_rss
from training.core.predictions import (
    ModelManifest,
    Prediction,
    PredictionsError,
    read_predictions,
    write_predictions,
)
from training.core.train import Split, TrainResult, fit, predict_rows, split
from training.core.variants import BASELINES, VARIANTS
from training.experiments.config import AblationConfig

__all__ = [
    "PAPER_TABLE_1",
    "AblationConfig",
    "differences",
    "machine",
    "run_ablation",
    "save_predictions",
    "table",
]

#: Paper Table 1, AUC (delinquent, default). Our GBDT row stands for their XGB.
PAPER_TABLE_1: dict[str, tuple[float, float]] = {
    "deepcredit": (0.870, 0.901),
    "h-tlstm": (0.843, 0.868),
    "h-lstm-cl": (0.830, 0.866),
    "tlstm-activity": (0.815, 0.847),
    "tlstm-repay": (0.811, 0.841),
    "gbdt": (0.804, 0.836),
    "hmm": (0.744, 0.788),
    "lr": (0.720, 0.756),
}
LABELS = {
    "deepcredit": "DeepCredit (H-TLSTM + CL)",
    "h-tlstm": "H-TLSTM",
    "h-lstm-cl": "H-LSTM + CL",
    "tlstm-activity": "TLSTM (activity)",
    "tlstm-repay": "TLSTM (repay)",
    "deep-only": "DeepCredit without the aggregates (deep only)",
    "reencode": "DeepCredit, paper-literal re-encode",
    "gbdt": "Gradient-boosted trees (XGB row)",
    "hmm": "HMM",
    "lr": "Logistic regression",
    "oracle": "Oracle (the generator's true probabilities at settlement)",
    "oracle-at-post": "Oracle as of the post (the hidden state then, its futures simulated)",
}


@dataclass(frozen=True)
class Context:
    """What every row is fitted on: the same sequences, split, settings and event log."""

    seq: Sequences
    parts: Split
    cfg: AblationConfig
    events: Path
    progress: bool


class Fitted(NamedTuple):
    """A row's test labels and predictions, how many epochs it trained (None: not a neural
    row), what a baseline chose on the validation users (None: nothing to choose; a neural
    row: its best epoch and validation figure), and the test users in the order its rows
    follow (None: the split's order)."""

    y: np.ndarray
    p: np.ndarray
    epochs: int | None = None
    chosen: dict | None = None
    order: np.ndarray | None = None


def _chosen(result: TrainResult, stop_on: str) -> dict:
    """A neural row's best epoch and its validation figure (what early stopping read)."""
    key = f"val_{stop_on}"
    best = next((row.get(key) for row in result.history if row["epoch"] == result.best_epoch),
                None)  # fmt: skip
    return {"best_epoch": result.best_epoch, key: best}


Fitter = Callable[[Context], Fitted]


def _streaming(variant: str) -> Fitter:
    def run(c: Context) -> Fitted:
        model_config = ModelConfig(hidden_size=c.cfg.hidden_size, head_sizes=c.cfg.head_sizes,
                                   **VARIANTS[variant])  # fmt: skip
        train = c.cfg.train_config()
        result = fit(c.seq, c.parts, model_config, train, progress=c.progress)
        y, p, row_users = predict_rows(result.model, c.seq, c.parts.test)
        # Each user's rows come together, in time order: the users in their rows' order.
        order = row_users[np.r_[True, row_users[1:] != row_users[:-1]]] if len(y) else None
        return Fitted(y, p, result.epochs_run, _chosen(result, train.stop_on), order=order)

    return run


def _reencode(c: Context) -> Fitted:
    from training.baselines.reencode import (
        align_split,
        build_windows,
        fit_reencode,
        predict_reencode,
    )
    from training.core.eventlog import read_events

    windows = build_windows(read_events(c.events), window=c.cfg.window)
    parts = align_split(c.parts, c.seq.user_ids, windows)
    model_config = ModelConfig(hidden_size=c.cfg.hidden_size, head_sizes=c.cfg.head_sizes)
    train = c.cfg.train_config()
    result = fit_reencode(windows, parts, model_config, train, alpha=c.cfg.alpha,
                          progress=c.progress)  # fmt: skip
    return Fitted(*predict_reencode(result.model, windows, parts.test), result.epochs_run,
                  _chosen(result, train.stop_on))  # fmt: skip


def _baseline(name: str) -> Fitter:
    def run(c: Context) -> Fitted:
        from training.baselines import default_baselines

        by_name = {b.name: b for b in default_baselines(c.cfg.seed, threads=c.cfg.threads)}
        model = by_name[{"lr": "logistic"}.get(name, name)]
        model.fit(c.seq, c.parts.train, c.parts.validation)
        return Fitted(*model.predict(c.seq, c.parts.test), chosen=model.chosen)

    return run


def has_at_post(path: Path) -> bool:
    """Whether the oracle side file ``path`` holds probabilities as of the post
    (``deepcredit generate --oracle-paths``)."""
    from training.benchmark.oracle import read_oracle

    return any(r.paths_at_post > 0 for r in read_oracle(path))


def oracle_predictions(
    seq: Sequences, users: np.ndarray, path: Path, *, at_post: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and the oracle's probabilities (N, 2) at the labelled posts of ``users``, in the
    rows ``training.core.train.predict`` gives: those at settlement, or as of the post when
    ``at_post``. Raises ValueError when a labelled post has no such record (a side file of
    another event log, or one whose probabilities as of the post are of other users)."""
    from training.benchmark.oracle import read_oracle

    p_of = {r.post_event_id: (r.p_delinquent_at_post, r.p_default_at_post) if at_post
            else (r.p_delinquent, r.p_default)
            for r in read_oracle(path) if not at_post or r.paths_at_post > 0}  # fmt: skip
    rows = user_rows(seq.loan_offsets, np.asarray(users, dtype=np.int64))
    rows = rows[np.isfinite(seq.labels[rows]).any(axis=-1)]
    missing = [e for e in seq.event_ids[rows] if e not in p_of]
    if missing:
        what = ("probabilities as of the post (generated with --oracle-paths for other users?)"
                if at_post else "oracle record (the side file of another event log?)")  # fmt: skip
        raise ValueError(f"{len(missing):,} of {len(rows):,} labelled posts have no {what} "
                         f"in {path} (first: {missing[0]})")  # fmt: skip
    p = np.array([p_of[e] for e in seq.event_ids[rows]], dtype=np.float64).reshape(-1, 2)
    return seq.labels[rows], p


ROWS: dict[str, Fitter] = {
    **{v: _streaming(v) for v in VARIANTS},
    "reencode": _reencode,
    **{b: _baseline(b) for b in BASELINES if b != "reencode"},
}


def run_ablation(
    seq: Sequences,
    events: Path,
    cfg: AblationConfig,
    *,
    rows: list[str] | None = None,
    oracle: Path | None = None,
    predictions: Path | None = None,
    data: str = "",
    progress: bool = True,
    on_row: Callable[[list[dict]], None] | None = None,
) -> list[dict]:
    """Fit each row on the training users and measure it once on the test users.

    ``on_row`` sees the rows so far after each one, so a long run can save as it goes.
    ``oracle``: the generator's side file; adds the "oracle" row after the others.
    ``predictions``: a folder where each row's test predictions go, one prediction file per
    row (``save_predictions``, its manifest's ``data`` set to ``data``: what the rows are
    fitted on), for ``differences`` and ``deepcredit report``.
    """
    context = Context(seq, split(seq, cfg.train_config()), cfg, events, progress)
    fitters = dict(ROWS)
    names = list(rows or ROWS)
    if oracle is not None:
        # Read before any row is fitted: a side file that does not cover the test posts is
        # said now, not after hours of fitting.
        kinds = {"oracle": False} | ({"oracle-at-post": True} if has_at_post(oracle) else {})
        for name, at_post in kinds.items():
            read = Fitted(*oracle_predictions(seq, context.parts.test, oracle, at_post=at_post))
            fitters[name] = lambda _, read=read: read
            names.append(name)
    out = []
    for name in names:
        if progress:
            print(f"== {LABELS[name]}", flush=True)
        started = time.monotonic()
        measured = reset_peak_rss()
        fitted = fitters[name](context)
        y, p, epochs, chosen = fitted.y, fitted.p, fitted.epochs, fitted.chosen
        seconds = time.monotonic() - started
        if predictions is not None and name in PREDICTED:
            save_predictions(predictions, name, seq, context.parts.test, fitted, data)
        row: dict = {"model": name, "label": LABELS[name], "seconds": round(seconds, 1)}
        if epochs is not None:
            row["epochs"] = epochs
        if chosen is not None:
            row["chosen_on_validation"] = chosen
        if measured:  # this row's own peak, not the process's (sequences are built before)
            row["peak_rss_mib"] = round(peak_rss_mib(), 1)
        for k, target in enumerate(TARGETS):
            m: TargetMetrics = binary_metrics(y[:, k], p[:, k])
            row |= {f"auc_{target}": round(m.auc, 4), f"ks_{target}": round(m.ks, 4),
                    f"brier_{target}": round(m.brier, 4), f"n_{target}": m.n}  # fmt: skip
        if name in PAPER_TABLE_1:
            row |= dict(zip(("paper_auc_delinquent", "paper_auc_default"), PAPER_TABLE_1[name],
                            strict=True))  # fmt: skip
        out.append(row)
        if on_row is not None:
            on_row(out)
        if progress:
            print(f"   AUC {row['auc_delinquent']:.3f} / {row['auc_default']:.3f} "
                  f"in {seconds:.0f} s", flush=True)  # fmt: skip
    return out


#: The rows whose predictions ``save_predictions`` writes: those that predict the labelled
#: posts of the test users one user after another (the re-encode predicts window by window,
#: in an order of its own, and is left out).
PREDICTED = frozenset(ROWS) - {"reencode"} | {"oracle", "oracle-at-post"}


def save_predictions(
    directory: Path, name: str, seq: Sequences, users: np.ndarray, fitted: Fitted, data: str
) -> Path:
    """Row ``name``'s test predictions as a prediction file ``directory/<name>.jsonl.gz``
    (``training.core.predictions``: one line per labelled post and target, named by user and
    event id), its manifest's ``data`` saying what the row was fitted on (the events' digest and
    the settings: ``differences`` pairs only files of the same). Raises ValueError when the
    row's labels are not those of the labelled posts of
    ``users`` (in ``fitted.order`` when given): predictions that would pair with the wrong
    posts."""
    from training.report.predict import labelled_posts, rows_of

    order = users if fitted.order is None else fitted.order
    posts = labelled_posts(seq, np.asarray(order, dtype=np.int64))
    expected = np.nan_to_num(seq.labels[posts], nan=-1.0)
    if len(posts) != len(fitted.y) or not np.array_equal(
        expected, np.nan_to_num(fitted.y, nan=-1.0)
    ):
        raise ValueError(f"row {name}: its {len(fitted.y)} predictions are not those of the "
                         f"{len(posts)} labelled test posts in order")  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.jsonl.gz"
    manifest = ModelManifest(name=name, family=name, streaming=name in VARIANTS,
                             description=LABELS[name], source="deepcredit ablate",
                             data=data)  # fmt: skip
    write_predictions(path, manifest, rows_of(name, seq, posts, fitted.p, "test"))
    return path


def differences(
    directory: Path,
    reference: str = "deepcredit",
    *,
    models: Collection[str] | None = None,
    draws: int = 1000,
    seed: int = 0,
) -> dict[str, dict[str, dict]]:
    """For every row with a prediction file in ``directory`` (of ``models`` only, when given)
    but ``reference``'s, per target: the reference's AUC, KS and Brier minus the row's on the
    posts both predict, with a 95% interval from ``draws`` bootstrap draws over users
    (``training.core.bootstrap``). A positive AUC or KS difference, or a negative Brier one,
    says the reference is better. Empty when the reference has no file. Raises
    PredictionsError on a broken file, a file of other data or settings than the
    reference's (its manifest's ``data``: ``save_predictions``), or a post whose label differs
    between two files."""
    paths = sorted(p for p in directory.glob("*.jsonl.gz")
                   if models is None or p.name.removesuffix(".jsonl.gz") in models)  # fmt: skip
    manifests, rows = read_predictions(paths)
    by_model: dict[str, dict[tuple[str, str, str], Prediction]] = {}
    for r in rows:
        by_model.setdefault(r.model, {})[(r.user_id, r.event_id, r.target)] = r
    ref = by_model.pop(reference, None)
    if ref is None:
        return {}
    for name in by_model:
        if manifests[name].data != manifests[reference].data:
            raise PredictionsError(f"{name}'s predictions are of other data or settings than "
                                   f"{reference}'s: {manifests[name].data!r} against "
                                   f"{manifests[reference].data!r}")  # fmt: skip
    out: dict[str, dict[str, dict]] = {}
    for name, theirs in sorted(by_model.items()):
        out[name] = {}
        for target in TARGETS:
            keys = [k for k in ref if k[2] == target and k in theirs]
            if not keys:
                continue
            if any(ref[k].label != theirs[k].label for k in keys):
                raise PredictionsError(f"{name} and {reference} disagree on the {target} label "
                                       "of a post: predictions of other events")  # fmt: skip
            y = np.array([ref[k].label for k in keys], dtype=np.float64)
            p_ref = np.array([ref[k].probability for k in keys])
            p_row = np.array([theirs[k].probability for k in keys])
            users = np.array([k[0] for k in keys])
            out[name][target] = paired_differences(y, p_ref, p_row, users, draws=draws,
                                                   seed=seed)  # fmt: skip
    return out


def table(rows: list[dict]) -> str:
    """The rows in the shape of the paper's Table 1, the paper's AUC beside ours."""
    head = ("| model | AUC delinquent (paper) | AUC default (paper) | KS del / def "
            "| Brier del / def | epochs | fit + test, s |")  # fmt: skip
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        paper = (f" ({r['paper_auc_delinquent']:.3f})", f" ({r['paper_auc_default']:.3f})"
                 ) if "paper_auc_delinquent" in r else ("", "")  # fmt: skip
        lines.append(
            f"| {r['label']} | {r['auc_delinquent']:.3f}{paper[0]} | {r['auc_default']:.3f}"
            f"{paper[1]} | {r['ks_delinquent']:.3f} / {r['ks_default']:.3f} | "
            f"{r['brier_delinquent']:.4f} / {r['brier_default']:.4f} | {r.get('epochs', '')} | "
            f"{r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def machine() -> dict:
    """What the numbers were measured on."""
    mem_kib = 0
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        first = meminfo.read_text().splitlines()[0]
        mem_kib = int(first.split()[1])
    return {"cpus": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1),
            "platform": platform.platform(), "python": platform.python_version()}  # fmt: skip


def benchmark_summary(seq: Sequences) -> dict:
    """What the sequences hold: users, steps, posts and the labelled rates."""
    posts = seq.loan_kind == 0
    labels = seq.labels[posts]
    return {
        "users": seq.users,
        "activity_steps": len(seq.act_x),
        "posts": int(posts.sum()),
        "labelled_delinquent": int(np.isfinite(labels[:, 0]).sum()),
        "delinquent_rate": round(float(np.nanmean(labels[:, 0])), 4),
        "default_rate": round(float(np.nanmean(labels[:, 1])), 4),
    }


def config_dict(cfg: AblationConfig) -> dict:
    """``cfg`` as its JSON reads back (tuples as lists), so a saved result compares equal."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}
