"""The versioned model artifact: a folder with the weights, their config and a model card.

    <dir>/<version>/model.pt   torch state dicts (model, optimiser) + step: resumable
    <dir>/<version>/card.json  version, lineage, the model's config, data fingerprint, split,
                               metrics, training cost, and the Platt calibration when the model
                               carries one (``scorer.card.ModelCard``)
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
from scorer.card import CARD_FILE, ModelCard, encode_card, read_card
from training.core.evaluation import TARGETS
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig, calibration_tensor

__all__ = [
    "calibration_from_card",
    "calibration_to_card",
    "load_model",
    "save_model",
]


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
    """Write the artifact under ``directory/<version>`` (written aside, then renamed).
    ``card_fields``: the ``ModelCard`` fields but version, created_at, model_config and
    calibration, which the card takes from the model (``model.config``, ``model.calibration``);
    the version's hash covers the calibration: a recalibration of the same weights is another
    version. Raises ValueError when ``card_fields`` repeats one of those with another value."""
    own = {"model_config": model.config.to_dict(),
           "calibration": calibration_to_card(model.calibration)}  # fmt: skip
    for (name, value), attr in zip(own.items(), ("config", "calibration"), strict=True):
        if _as_json(card_fields.get(name, value)) != _as_json(value):
            raise ValueError(f"card_fields {name} {card_fields[name]!r} is not the model's "
                             f"{value!r}: set model.{attr} instead")  # fmt: skip
    card_fields = {**card_fields, **own}
    calibration = own["calibration"]
    buffer = io.BytesIO()
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "step": step,
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
    reference = model.reference.tolist() if model.config.use_aggregates else None
    card = ModelCard(version=version, created_at=created, aggregate_reference=reference,
                     **card_fields)  # fmt: skip
    (partial / "model.pt").write_bytes(payload)
    (partial / SCORER_FILE).write_bytes(export_scorer(model, version).to_bytes())
    (partial / CARD_FILE).write_bytes(encode_card(card))
    # A folder published once under a name no other holds (``_claim``) and never replaced:
    # deepcredit.atomic's replace-a-file does not apply; a plain rename of the folder is atomic.
    partial.rename(final)
    return card


def _as_json(value: object) -> object:
    """``value`` as the card's JSON reads back (tuples as lists), to compare like with like."""
    return msgspec.json.decode(msgspec.json.encode(value))


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
    if not (path / "model.pt").is_file() or not (path / CARD_FILE).is_file():
        raise FileNotFoundError(f"{path} is not a model artifact (needs model.pt and {CARD_FILE})")
    checkpoint = torch.load(path / "model.pt", map_location="cpu", weights_only=True)
    card = read_card(path)
    model = DeepCredit(ModelConfig.from_dict(card.model_config))
    model.load_state_dict(checkpoint["model"])
    model.eval()
    model.calibration = calibration_from_card(card.calibration)
    return model, card
