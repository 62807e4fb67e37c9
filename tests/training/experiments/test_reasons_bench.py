"""The reasons benchmark's measures on a tiny random model (the command trains a real one)."""

from __future__ import annotations

import random
from collections import defaultdict

import torch

from deepcredit.events import ClickEvent
from tests.strategies import make_events
from training.core.export import export_scorer
from training.core.model import DeepCredit, ModelConfig
from training.experiments.reasons_bench import _faithfulness, _replay


def test_replay_gives_codes_stable_twice_and_the_top_reason_its_largest_drop() -> None:
    torch.manual_seed(1)
    model = DeepCredit(ModelConfig(hidden_size=4, head_sizes=(8,)))
    with torch.no_grad():
        model.reference.uniform_(0.0, 0.5)
    w = export_scorer(model, "t")
    histories: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in sorted(make_events(300, users=3, seed=2), key=lambda e: e.ts):
        histories[e.user_id].append(e)
    first, second = _replay(w, histories), _replay(w, histories)
    assert first.keys() == second.keys() and len(first) > 5
    assert all(second[k]["codes"] == r["codes"] for k, r in first.items())
    # The flow's compiled reasons, timed beside the reference, are the reference's codes.
    assert all(r["live_codes"] == r["codes"] for r in first.values())
    assert all(r["step_s"] > 0 and r["live_s"] > 0 for r in first.values())
    f = _faithfulness(w, list(first.values()), random.Random(0))
    assert f["p_delinquent"]["posts"] > 0
    # Occlusion ranks by the drop of the delinquency logit: its top reason's drop is largest.
    assert f["p_delinquent"]["top_reason_largest_drop"] == 1.0
