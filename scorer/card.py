"""The model card (``<model folder>/card.json``): what a model is, what it was trained on and how
well it scored. One schema, torch-free, read by the scorer, the registry and training alike.

``deepcredit train`` writes it beside ``model.pt`` (torch) and ``scorer.npz`` (numpy); its
``model_config`` is the one record of the model's configuration (``ModelConfig.to_dict``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import msgspec

from deepcredit.atomic import strict_json

__all__ = [
    "CARD_FILE",
    "CardError",
    "DataInfo",
    "ModelCard",
    "TargetMetrics",
    "encode_card",
    "read_card",
]

CARD_FILE = "card.json"


class CardError(ValueError):
    """A card that is missing or does not decode; the message names the file and the field."""


class TargetMetrics(msgspec.Struct, frozen=True):
    """Discrimination (AUC, KS) and calibration (Brier) of one target's probabilities, over
    ``n`` labelled posts of which ``positives`` are 1."""

    auc: float
    ks: float
    brier: float
    n: int
    positives: int


class DataInfo(msgspec.Struct, frozen=True):
    """Which event log a model was trained on: enough to tell if two runs saw the same data."""

    path: str
    sha256: str
    users: int
    loan_steps: int
    activity_steps: int


class ModelCard(msgspec.Struct, kw_only=True):
    """``version``: the model's name (``dc-<UTC time>-<hash>``); ``created_at``: Unix seconds;
    ``model_config``: the model's configuration; ``train_config``: how it was trained;
    ``split``: users per part; ``metrics``: part ("validation", "test") -> target
    ("delinquent", "default") -> metrics; ``training``: epochs_run, best_epoch, seconds,
    peak_rss_mib, history; ``parent_version``: the model it was retrained from;
    ``calibration``: Platt parameters per target, {target: [a, b]}, the model reporting
    sigmoid(a * logit + b); None: the raw probabilities. ``reliability``: part ("test") ->
    target -> the reliability table, deciles of the predicted probability riskiest first,
    each {band, p_low, p_high, n, mean_predicted, bad_rate}; None where not measured
    (a recalibrated model, a card written before the field). ``aggregate_reference``: the
    training population's mean running aggregates (``scorer.aggregates.FEATURE_NAMES``
    order), the reference reason codes are attributed against (``scorer.reasons``); None for
    a model without aggregates."""

    version: str
    created_at: float
    model_config: dict[str, Any]
    train_config: dict[str, Any]
    data: DataInfo
    split: dict[str, int]
    metrics: dict[str, dict[str, TargetMetrics]]
    training: dict[str, Any]
    parent_version: str | None = None
    calibration: dict[str, list[float]] | None = None
    reliability: dict[str, dict[str, list[dict[str, float]]]] | None = None
    aggregate_reference: list[float] | None = None

    def describe(self) -> str:
        lines = [f"model {self.version}  (data {self.data.sha256[:12]}, {self.data.users:,} users)"]
        for part, targets in self.metrics.items():
            for target, m in targets.items():
                lines.append(
                    f"  {part:<10} {target:<10} AUC {m.auc:.4f}  KS {m.ks:.4f}  "
                    f"Brier {m.brier:.4f}  (n={m.n:,}, positives={m.positives:,})"
                )
        if self.calibration is not None:
            lines.append("  calibrated " + "  ".join(
                f"{t} a {a:.4f} b {b:.4f}" for t, (a, b) in self.calibration.items()))  # fmt: skip
        return "\n".join(lines)


def _nan_for_null(metrics: Any) -> Any:
    if not isinstance(metrics, dict):
        return metrics
    return {k: math.nan if v is None else v for k, v in metrics.items()}


def read_card(folder: Path) -> ModelCard:
    """The card of the model folder ``folder``. Raises CardError when it is missing or does not
    decode (the message says which field)."""
    path = Path(folder) / CARD_FILE
    try:
        raw = msgspec.json.decode(path.read_bytes())
        if isinstance(raw, dict) and isinstance(raw.get("metrics"), dict):
            raw["metrics"] = {part: {t: _nan_for_null(m) for t, m in targets.items()}
                              if isinstance(targets, dict) else targets
                              for part, targets in raw["metrics"].items()}  # fmt: skip
        return msgspec.convert(raw, ModelCard)
    except FileNotFoundError:
        raise CardError(f"{path} is missing: a model folder needs the card "
                        "'deepcredit train' writes") from None  # fmt: skip
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise CardError(f"{path} is not a model card: {e}") from None


def encode_card(card: ModelCard) -> bytes:
    """The card as indented strict JSON (``deepcredit.atomic.strict_json``): an undefined
    metric (NaN, e.g. the AUC of a target with one class among the test users) is written as
    null, and ``read_card`` reads it back as NaN."""
    return strict_json(msgspec.to_builtins(card))
