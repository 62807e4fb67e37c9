"""Load the numpy scorer's weights from a model artifact folder, without torch.

``deepcredit train`` writes ``<dir>/<version>/scorer.npz`` beside the torch checkpoint; the live
flow loads only this file (and the card for its version), so a serving host needs numpy alone.
"""

from __future__ import annotations

from pathlib import Path

from scorer.card import CARD_FILE, CardError, read_card
from scorer.model import ModelWeights

__all__ = ["SCORER_FILE", "ArtifactError", "load_scorer"]

SCORER_FILE = "scorer.npz"


class ArtifactError(ValueError):
    """The folder is not a usable model artifact; the message says what is missing."""


def load_scorer(path: Path) -> ModelWeights:
    """The scorer weights of the artifact at ``path`` (a folder made by ``deepcredit train``).

    The version inside the weights must match the card's, so a hand-copied file cannot pass
    for another model.
    """
    path = Path(path)
    weights_file, card_file = path / SCORER_FILE, path / CARD_FILE
    if not path.is_dir():
        raise ArtifactError(f"no such model folder: {path}")
    if not weights_file.is_file() or not card_file.is_file():
        raise ArtifactError(
            f"{path} is not a model artifact for the scorer: it needs {SCORER_FILE} and "
            "card.json, which 'deepcredit train' writes"
        )
    try:
        card_version = read_card(path).version
    except CardError as e:
        raise ArtifactError(str(e)) from None
    weights = ModelWeights.from_bytes(weights_file.read_bytes())
    if weights.version != card_version:
        raise ArtifactError(
            f"{weights_file} holds model {weights.version} but card.json says {card_version}"
        )
    return weights
