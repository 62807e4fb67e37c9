"""Train, evaluate and save: the stages behind ``deepcredit train`` and ``deepcredit evaluate``.

1. load (or build and cache) the sequences of an event log;
2. split users: test 20% by user hash, validation 10% of the rest;
3. fit with early stopping on the validation users (``TrainConfig.stop_on``);
4. measure the held-out test users once, after training (never used to choose anything): AUC,
   KS, Brier, and the reliability table of each target (deciles of the predicted probability:
   mean predicted against the observed rate);
5. save the versioned artifact with its card.
"""

from __future__ import annotations

import resource
from pathlib import Path

import numpy as np
import torch

from scorer.card import ModelCard, TargetMetrics
from training.core.artifact import load_model, save_model
from training.core.bands import score_bands
from training.core.distributed import fit_distributed
from training.core.evaluation import TARGETS, measurable, per_target
from training.core.eventlog import load_sequences
from training.core.model import ModelConfig
from training.core.train import TrainConfig, evaluate, fit, predict, split

__all__ = ["evaluate_model", "peak_rss_mib", "reliability", "reset_peak_rss", "train_model"]

_STATUS = Path("/proc/self/status")


def peak_rss_mib() -> float:
    """Peak resident memory of this process since it started or since ``reset_peak_rss``."""
    if _STATUS.exists():  # Linux: VmHWM, which reset_peak_rss can reset
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Start the peak over from the current resident memory (Linux only; False elsewhere), so
    that one stage's peak can be told from an earlier stage's."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def reliability(y: np.ndarray, p: np.ndarray, bands: int = 10) -> dict[str, list[dict]]:
    """The reliability table of each measurable target from (N, 2) labels (NaN: unknown) and
    probabilities: ``bands`` equal-count bands of the probability, riskiest first, each with
    its probability range, rows, mean predicted probability and observed bad rate
    (``training.core.bands.score_bands``)."""
    out = {}
    for k, target in enumerate(TARGETS):
        if measurable(y[:, k]):
            known = np.isfinite(y[:, k])
            rows = score_bands(y[known, k], p[known, k], bands)
            out[target] = [{"band": b.band, "p_low": b.p_low, "p_high": b.p_high, "n": b.n,
                            "mean_predicted": b.mean_predicted, "bad_rate": b.bad_rate}
                           for b in rows]  # fmt: skip
    return out


def train_model(
    events: Path,
    out_dir: Path,
    model_config: ModelConfig,
    train_config: TrainConfig,
    *,
    parent_version: str | None = None,
    strict: bool = False,
    progress: bool = True,
) -> ModelCard:
    """Stages 1-5 of the module; ``strict`` (``deepcredit train``): refuse data on which a
    target cannot be learnt or early-stopped (``training.core.train.check_trainable``).
    Raises TrainingDataError."""
    seq, data = load_sequences(events, progress=progress)  # 1.
    parts = split(seq, train_config)  # 2.
    if progress:
        print(f"users: {len(parts.train):,} train, {len(parts.validation):,} validation, "
              f"{len(parts.test):,} test (held out)", flush=True)  # fmt: skip
    if train_config.processes > 1:  # 3.
        result = fit_distributed(seq, parts, model_config, train_config, strict=strict,
                                 progress=progress)  # fmt: skip
    else:
        result = fit(seq, parts, model_config, train_config, strict=strict, progress=progress)
    y_test, p_test = predict(result.model, seq, parts.test)  # 4.
    metrics = {
        "validation": evaluate(result.model, seq, parts.validation),
        "test": per_target(y_test, p_test),
    }
    card_fields = {
        "train_config": train_config.to_dict(),
        "data": data,
        "split": {"train": len(parts.train), "validation": len(parts.validation),
                  "test": len(parts.test)},
        "metrics": metrics,
        "training": {
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "seconds": round(result.seconds, 1),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "torch_threads": torch.get_num_threads(),
            "history": result.history,
        },
        "parent_version": parent_version,
        "reliability": {"test": reliability(y_test, p_test)},
    }
    return save_model(out_dir, result.model, result.optimizer, result.epochs_run, card_fields)  # 5.


def evaluate_model(
    model_dir: Path, events: Path, *, progress: bool = True
) -> tuple[ModelCard, dict[str, TargetMetrics], bool]:
    """Test-user metrics of a saved model on an event log, and whether it is the log it was
    trained on (on another log the same user hash still picks the test users)."""
    model, card = load_model(model_dir)
    seq, data = load_sequences(events, progress=progress)
    train_config = TrainConfig(**card.train_config)
    parts = split(seq, train_config)
    return card, evaluate(model, seq, parts.test), data.sha256 == card.data.sha256
