"""The versioned model artifact: a folder with the weights, their config and a model card.

    <dir>/<version>/model.pt   torch state dicts (model, optimiser) + config + step: resumable
    <dir>/<version>/card.json  version, lineage, data fingerprint, split, metrics, training cost,
                               and the Platt calibration when the model carries one
    <dir>/<version>/scorer.npz the same weights for the numpy scorer (``scorer.artifact``): the
                               serving path loads this and never needs torch

Load state dicts, never pickled objects: ``torch.load(weights_only=True)``.

The calibration (``DeepCredit.calibration``) is not in the state dict: the card holds it, as
``{"delinquent": [a, b], "default": [a, b]}`` (``calibration_to_card``), and ``load_model`` sets
it back (``calibration_from_card``); a card without it (any written before it existed) loads
an uncalibrated model. The scorer file holds it too (``training.core.export``).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from pathlib import Path

import msgspec
import torch

from scorer.artifact import SCORER_FILE
from training.core.evaluation import TARGETS, TargetMetrics
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig, calibration_tensor

__all__ = [
    "DataInfo",
    "ModelCard",
    "calibration_from_card",
    "calibration_to_card",
    "load_model",
    "save_model",
]


class DataInfo(msgspec.Struct, frozen=True):
    """Which event log a model was trained on: enough to tell if two runs saw the same data."""

    path: str
    sha256: str
    users: int
    loan_steps: int
    activity_steps: int


class ModelCard(msgspec.Struct, kw_only=True):
    version: str
    created_at: float
    model_config: dict
    train_config: dict
    data: DataInfo
    split: dict[str, int]  # users per part
    metrics: dict[str, dict[str, TargetMetrics]]  # part ("validation", "test") -> target -> m
    training: dict  # epochs_run, best_epoch, seconds, peak_rss_mib, history
    parent_version: str | None = None
    # Platt calibration per target, {"delinquent": [a, b], "default": [a, b]}: the model reports
    # sigmoid(a * logit + b). None: the raw probabilities (every card written before it existed).
    calibration: dict[str, list[float]] | None = None

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


def calibration_to_card(calibration: torch.Tensor | None) -> dict[str, list[float]] | None:
    """``DeepCredit.calibration`` (2, 2) [slopes; intercepts] as the card keeps it:
    {target: [a, b]} in ``TARGETS`` order (float32 values as exact floats)."""
    if calibration is None:
        return None
    cal = calibration_tensor(calibration)
    return {t: [float(cal[0, k]), float(cal[1, k])] for k, t in enumerate(TARGETS)}


def calibration_from_card(calibration: dict[str, list[float]] | None) -> torch.Tensor | None:
    """The card's calibration as ``DeepCredit.calibration`` (2, 2) float32; None for None."""
    if calibration is None:
        return None
    if set(calibration) != set(TARGETS) or any(len(calibration[t]) != 2 for t in TARGETS):
        raise ValueError(f"calibration must be {{target: [a, b]}} for {TARGETS}, "
                         f"got {calibration!r}")  # fmt: skip
    return calibration_tensor([[calibration[t][i] for t in TARGETS] for i in (0, 1)])


def save_model(
    directory: Path,
    model: DeepCredit,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    card_fields: dict,
) -> ModelCard:
    """Write the artifact under ``directory/<version>`` (written aside, then renamed). The card
    takes its calibration from ``model.calibration`` (``card_fields`` may repeat it, not differ),
    and the version's hash covers it: a recalibration of the same weights is another version."""
    calibration = calibration_to_card(model.calibration)
    if card_fields.get("calibration", calibration) != calibration:
        raise ValueError(
            f"card_fields calibration {card_fields['calibration']!r} is not the model's "
            f"{calibration!r}: set model.calibration instead"
        )
    card_fields = {**card_fields, "calibration": calibration}
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "step": step,
            "config": model.config.to_dict(),
        },
        buffer,
    )
    payload = buffer.getvalue()
    created = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(created))
    digest = hashlib.sha256(payload)
    if calibration is not None:  # uncalibrated: the hash of the weights alone, as before
        digest.update(json.dumps(calibration, sort_keys=True).encode())
    base = f"dc-{stamp}-{digest.hexdigest()[:8]}"
    version, final, partial = _claim(directory, base)
    card = ModelCard(version=version, created_at=created, **card_fields)
    (partial / "model.pt").write_bytes(payload)
    (partial / SCORER_FILE).write_bytes(export_scorer(model, version).to_bytes())
    card_json = json.dumps(msgspec.to_builtins(card), indent=2) + "\n"
    (partial / "card.json").write_text(card_json)
    # A folder published once under a name no other holds (``_claim``) and never replaced:
    # deepcredit.atomic's replace-a-file does not apply; a plain rename of the folder is atomic.
    partial.rename(final)
    return card


def _claim(directory: Path, base: str) -> tuple[str, Path, Path]:
    """A version name no other artifact in ``directory`` has, and its folder made aside: the
    same weights saved twice in one second (a deterministic retraining on the same data) get
    ``base``, then ``base-2``, ``base-3``... The partial folder's mkdir is the claim."""
    directory.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        version = base if n == 1 else f"{base}-{n}"
        final, partial = directory / version, directory / f".{version}.partial"
        if final.exists():
            continue
        try:
            partial.mkdir()
        except FileExistsError:
            continue
        return version, final, partial
    raise FileExistsError(f"no free version name for {base} in {directory}")


def load_model(path: Path) -> tuple[DeepCredit, ModelCard]:
    """The model (eval mode) and its card from an artifact folder, with the card's calibration
    (None when the card has none)."""
    if not (path / "model.pt").is_file() or not (path / "card.json").is_file():
        raise FileNotFoundError(f"{path} is not a model artifact (needs model.pt and card.json)")
    checkpoint = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    model = DeepCredit(ModelConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    card = msgspec.json.decode((path / "card.json").read_bytes(), type=ModelCard)
    model.calibration = calibration_from_card(card.calibration)
    return model, card
