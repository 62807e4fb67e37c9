"""Platt calibration carried by a model version: per target p = sigmoid(a * logit + b).

The torch evaluation path (``training.core.train.predict``) and the numpy live scorer (``advance``,
``rebuild``) report the same calibrated probabilities; the states, and so the model's dynamics
(Y(i-1) fed back is the raw probability), are those of the same weights uncalibrated; the
artifact (card, scorer.npz) round-trips it, and artifacts written before it load and score as
before.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from deepcredit.events import ClickEvent
from scorer.artifact import SCORER_FILE, load_scorer
from scorer.card import DataInfo, ModelCard
from scorer.features import LoanStep
from scorer.model import ModelWeights, advance, calibrate, head_logits, post_head_input, sigmoid
from scorer.rebuild import rebuild
from scorer.user_state import UserState
from tests.scorer.test_model_parity import (
    TOLERANCE,
    batch_scores,
    benchmark_data,
    by_user,
    export,
    stream_scores,
)
from tests.strategies import make_events
from training.benchmark.generator import GeneratorConfig, generate
from training.core.artifact import (
    calibration_from_card,
    calibration_to_card,
    load_model,
    save_model,
)
from training.core.dataset import Sequences, build_sequences
from training.core.evaluation import TARGETS
from training.core.export import export_scorer
from training.core.model import (
    DeepCredit,
    ModelConfig,
    batch_to_tensors,
    calibrated_logits,
    calibration_tensor,
    probabilities,
)
from training.core.train import TrainConfig, batches, predict, split
from training.core.variants import VARIANTS

#: Slopes (row 0) and intercepts (row 1) per target, far enough from the identity that the
#: calibrated probabilities differ from the raw ones by much more than the tolerance.
CALIBRATION = [[1.7, 0.6], [-0.8, 0.4]]
IDENTITY = [[1.0, 1.0], [0.0, 0.0]]


def calibrated(model: DeepCredit, values: object = CALIBRATION) -> DeepCredit:
    model.calibration = calibration_tensor(values)
    return model


def with_calibration(w: ModelWeights, values: object) -> ModelWeights:
    """The same weights under the same version, with ``values`` as their calibration."""
    return ModelWeights(**{**vars(w), "calibration": values})


def labelled_stream_scores(
    weights: ModelWeights, seq: Sequences, users: np.ndarray, histories: dict
) -> np.ndarray:
    """``advance``'s probabilities at the labelled posts of ``users``, in the order ``predict``
    gives its rows (batches of users grouped by history length, each user's posts in time)."""
    out = []
    for group in batches(seq, users, 64, rng=None):
        for u in group:
            got = stream_scores(weights, histories[str(seq.user_ids[u])])
            l0, l1 = seq.loan_offsets[u], seq.loan_offsets[u + 1]
            post = seq.loan_kind[l0:l1] == LoanStep.POST
            assert len(got) == post.sum()
            out.append(got[np.isfinite(seq.labels[l0:l1][post]).any(axis=1)])
    return np.concatenate(out)


@pytest.fixture(scope="module")
def benchmark() -> tuple[list[ClickEvent], Sequences]:
    return benchmark_data()  # test_model_parity's events: generated once per session


def card_fields(model: DeepCredit) -> dict:
    return {"model_config": model.config.to_dict(), "train_config": {},
            "data": DataInfo("x", "0" * 64, 0, 0, 0), "split": {}, "metrics": {},
            "training": {}}  # fmt: skip


# (a) parity -------------------------------------------------------------------------------


def test_held_out_users_calibrated_advance_equals_torch_predict(
    benchmark: tuple[list[ClickEvent], Sequences],
) -> None:
    """Every labelled post of at least 1,000 held-out users: numpy ``advance`` of a calibrated
    model (through its scorer bytes) gives what torch ``predict`` gives, and not the raw."""
    events, seq = benchmark
    test_users = split(seq, TrainConfig()).test
    assert len(test_users) >= 1000
    torch.manual_seed(0)
    model = calibrated(DeepCredit(ModelConfig(hidden_size=16)).eval())
    weights = export(model)
    np.testing.assert_array_equal(weights.calibration, np.array(CALIBRATION, np.float32))
    _, expected = predict(model, seq, test_users)
    got = labelled_stream_scores(weights, seq, test_users, by_user(events))
    assert got.shape == expected.shape and len(got) > 1000
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)
    model.calibration = None
    _, raw = predict(model, seq, test_users)
    assert np.abs(raw - expected).max() > 100 * TOLERANCE  # the calibration does something


finite = st.floats(-3.0, 3.0)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 300), st.floats(-3.0, 3.0), finite, finite,
       finite)  # fmt: skip
def test_random_histories_random_calibrations(
    seed: int, n: int, a0: float, a1: float, b0: float, b1: float
) -> None:
    """Any slopes (negative and zero too: the two paths agree whatever they are) and
    intercepts."""
    events = make_events(n, users=1, seed=seed)
    seq = build_sequences(events)
    torch.manual_seed(seed)
    model = calibrated(DeepCredit(ModelConfig(hidden_size=8, head_sizes=(16, 8))).eval(),
                       [[a0, a1], [b0, b1]])  # fmt: skip
    [expected] = batch_scores(model, seq, np.array([0]))
    got = stream_scores(export(model), events)
    np.testing.assert_allclose(got, expected, atol=TOLERANCE, rtol=0)


# (b) the dynamics are the raw model's ------------------------------------------------------


@pytest.fixture(scope="module")
def histories() -> dict[str, list[ClickEvent]]:
    return dict(by_user(list(generate(GeneratorConfig(users=25, seed=5, horizon_days=300)))))


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_states_of_a_calibrated_model_are_the_uncalibrated_ones(
    variant: str, histories: dict[str, list[ClickEvent]]
) -> None:
    """hc, y_prev (the raw probability), memory and ids: identical after every event, while
    every post's returned probabilities are the calibrated ones."""
    torch.manual_seed(2)
    raw_w = export_scorer(DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant])), "v")
    cal_w = with_calibration(raw_w, CALIBRATION)
    posts = 0
    for events in histories.values():
        raw_s, cal_s = UserState.new("v", 8), UserState.new("v", 8)
        for e in events:
            p_raw, p_cal = advance(raw_w, raw_s, e), advance(cal_w, cal_s, e)
            assert cal_s == raw_s  # model_version, memory, hc, y_prev, recent ids: bitwise
            assert (p_raw is None) == (p_cal is None)
            if p_cal is not None:
                posts += 1
                # The compiled step's heads against numpy's: equal to float32 rounding.
                z = head_logits(raw_w, post_head_input(raw_w, raw_s, e))
                np.testing.assert_allclose(p_raw, sigmoid(z), rtol=0, atol=1e-6)  # raw
                np.testing.assert_allclose(cal_s.y_prev, sigmoid(z), rtol=0, atol=1e-6)
                a, b = np.array(CALIBRATION, np.float32)
                np.testing.assert_allclose(p_cal, sigmoid(z * a + b), rtol=0, atol=1e-6)
    assert posts > 50


def test_torch_logits_and_loss_do_not_depend_on_the_calibration(
    benchmark: tuple[list[ClickEvent], Sequences],
) -> None:
    _, seq = benchmark
    torch.manual_seed(3)
    model = DeepCredit(ModelConfig(hidden_size=8, head_sizes=(16,)))
    tensors = batch_to_tensors(seq.batch(np.arange(8)))
    raw_logits, raw_loss = model(tensors)
    cal_logits, cal_loss = calibrated(model)(tensors)
    torch.testing.assert_close(cal_logits, raw_logits, atol=0, rtol=0)
    torch.testing.assert_close(cal_loss, raw_loss, atol=0, rtol=0)
    assert "calibration" not in str(list(model.state_dict()))  # not a buffer
    DeepCredit(model.config).load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rebuild_of_a_calibrated_model_agrees_with_advance(
    variant: str, histories: dict[str, list[ClickEvent]]
) -> None:
    torch.manual_seed(4)
    raw_w = export_scorer(DeepCredit(ModelConfig(hidden_size=8, **VARIANTS[variant])), "v")
    cal_w = with_calibration(raw_w, CALIBRATION)
    expected: dict[str, tuple[float, float]] = {}
    states = {}
    for user, events in histories.items():
        s = states[user] = UserState.new("v", 8)
        for e in events:
            p = advance(cal_w, s, e)
            if p is not None:
                expected[e.event_id] = p
    rebuilt = rebuild(cal_w, histories)
    assert set(rebuilt.posts) == set(expected) and len(expected) > 50
    got = np.array([rebuilt.posts[k] for k in expected])
    np.testing.assert_allclose(got, np.array(list(expected.values())), atol=1e-5, rtol=0)
    raw_rebuilt = rebuild(raw_w, histories)
    for user, s in rebuilt.states.items():
        assert s == raw_rebuilt.states[user]  # the calibration never reaches the states
        np.testing.assert_allclose(s.hc, states[user].hc, atol=1e-5, rtol=0)
        np.testing.assert_allclose(s.y_prev, states[user].y_prev, atol=1e-5, rtol=0)


# (c) the artifact carries it ---------------------------------------------------------------


def test_scorer_bytes_round_trip_the_calibration() -> None:
    raw_w = export_scorer(DeepCredit(ModelConfig(hidden_size=4)), "v")
    cal_w = with_calibration(raw_w, CALIBRATION)
    again = ModelWeights.from_bytes(cal_w.to_bytes())
    assert again.calibration is not None and again.calibration.dtype == np.float32
    np.testing.assert_array_equal(again.calibration, np.array(CALIBRATION, np.float32))
    assert again.to_bytes() == cal_w.to_bytes()
    # Uncalibrated: no array in the file, as before calibrations existed.
    with np.load(io.BytesIO(raw_w.to_bytes())) as a:
        assert "calibration" not in a.files
    assert ModelWeights.from_bytes(raw_w.to_bytes()).calibration is None
    with pytest.raises(ValueError, match="calibration"):
        with_calibration(raw_w, [1.0, 0.0])
    with pytest.raises(ValueError, match="calibration"):
        with_calibration(raw_w, [[1.0, np.nan], [0.0, 0.0]])


def test_card_helpers_round_trip() -> None:
    card = calibration_to_card(calibration_tensor(CALIBRATION))
    assert card == {"delinquent": [pytest.approx(1.7), pytest.approx(-0.8)],
                    "default": [pytest.approx(0.6), pytest.approx(0.4)]}  # fmt: skip
    assert list(card) == list(TARGETS)
    back = calibration_from_card(card)
    assert back is not None and back.dtype == torch.float32
    torch.testing.assert_close(back, calibration_tensor(CALIBRATION), atol=0, rtol=0)
    assert calibration_to_card(None) is None and calibration_from_card(None) is None
    with pytest.raises(ValueError, match="calibration"):
        calibration_from_card({"delinquent": [1.0, 0.0]})
    with pytest.raises(ValueError, match="calibration"):
        calibration_tensor([[1.0, 2.0, 3.0]])


def test_save_and_load_round_trip_the_calibration(
    tmp_path: Path, benchmark: tuple[list[ClickEvent], Sequences]
) -> None:
    _, seq = benchmark
    torch.manual_seed(5)
    model = calibrated(DeepCredit(ModelConfig(hidden_size=8)).eval())
    card = save_model(tmp_path, model, None, 0, card_fields(model))
    assert card.calibration == calibration_to_card(model.calibration)
    path = tmp_path / card.version
    loaded, loaded_card = load_model(path)
    assert loaded_card.calibration == card.calibration
    assert loaded.calibration is not None
    torch.testing.assert_close(loaded.calibration, model.calibration, atol=0, rtol=0)
    served = load_scorer(path)
    np.testing.assert_array_equal(served.calibration, model.calibration.numpy())
    assert served.to_bytes() == export_scorer(loaded, card.version).to_bytes()
    users = np.arange(30)
    np.testing.assert_array_equal(predict(loaded, seq, users)[1], predict(model, seq, users)[1])
    assert "calibrated delinquent a 1.7000 b -0.8000" in loaded_card.describe()


def test_a_recalibration_of_the_same_weights_is_another_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from training.core import artifact

    monkeypatch.setattr(artifact.time, "time", lambda: 1.8e9)
    model = DeepCredit(ModelConfig(hidden_size=4))
    raw = save_model(tmp_path, model, None, 0, card_fields(model))
    cal = save_model(tmp_path, calibrated(model), None, 0, card_fields(model))
    assert cal.version.split("-")[:2] == raw.version.split("-")[:2]  # same stamp
    assert cal.version.split("-")[2] != raw.version.split("-")[2]  # another hash, not "-2"
    assert raw.calibration is None
    with pytest.raises(ValueError, match=r"set model\.calibration"):
        save_model(tmp_path, model, None, 0,
                   {**card_fields(model), "calibration": {"delinquent": [1, 0],
                                                          "default": [1, 0]}})  # fmt: skip


def test_an_artifact_written_before_calibrations_loads_and_scores_as_before(
    tmp_path: Path,
    benchmark: tuple[list[ClickEvent], Sequences],
    histories: dict[str, list[ClickEvent]],
) -> None:
    """A card without the field and a scorer file without the array (what the code before
    calibrations wrote): calibration None on both sides, the raw probabilities exactly."""
    _, seq = benchmark
    torch.manual_seed(6)
    model = DeepCredit(ModelConfig(hidden_size=8)).eval()
    card = save_model(tmp_path, model, None, 0, card_fields(model))
    path = tmp_path / card.version
    old_card = json.loads((path / "card.json").read_text())
    del old_card["calibration"]
    (path / "card.json").write_text(json.dumps(old_card, indent=2) + "\n")
    with np.load(path / SCORER_FILE) as a:
        assert "calibration" not in a.files
    assert "calibration" not in msgspec.json.decode((path / "card.json").read_bytes())

    loaded, loaded_card = load_model(path)
    assert loaded.calibration is None and loaded_card.calibration is None
    assert isinstance(loaded_card, ModelCard)
    users = np.arange(30)
    _, p = predict(loaded, seq, users)
    with torch.no_grad():
        logits, _ = loaded(batch_to_tensors(seq.batch(np.arange(5))), targets=False)
    torch.testing.assert_close(probabilities(loaded, logits), torch.sigmoid(logits), atol=0,
                               rtol=0)  # fmt: skip
    np.testing.assert_array_equal(p, predict(model, seq, users)[1])

    served = load_scorer(path)
    assert served.calibration is None
    for events in list(histories.values())[:10]:
        s = UserState.new(served.version, served.hidden_size)
        for e in events:
            got = advance(served, s, e)
            if got is not None:  # the formula of the scorer before calibrations, computed
                # by the compiled step: numpy's to float32 rounding
                expected = sigmoid(head_logits(served, post_head_input(served, s, e)))
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
                np.testing.assert_array_equal(s.y_prev, np.array(got, np.float32))


# (d) identity, ranking ---------------------------------------------------------------------


def test_identity_calibration_gives_the_raw_probabilities(
    benchmark: tuple[list[ClickEvent], Sequences],
) -> None:
    events, seq = benchmark
    torch.manual_seed(7)
    model = DeepCredit(ModelConfig(hidden_size=8)).eval()
    users = np.arange(60)
    _, raw = predict(model, seq, users)
    raw_w = export(model)
    _, identity = predict(calibrated(model, IDENTITY), seq, users)
    np.testing.assert_array_equal(identity, raw)
    id_w = export(model)
    np.testing.assert_array_equal(id_w.calibration, np.array(IDENTITY, np.float32))
    for u in users[:20]:
        history = by_user(events)[str(seq.user_ids[u])]
        np.testing.assert_array_equal(stream_scores(id_w, history), stream_scores(raw_w, history))


@st.composite
def distinct_logits(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) logits on a grid (k / 8), distinct within each target, and (N, 2) 0/1 labels.
    Distinct: numpy's vectorised tanh may give equal inputs results an ulp apart, so ties
    would not stay exact ties on any path; the grid keeps distinct values far apart."""
    grid = st.lists(st.integers(-40, 40), min_size=2, max_size=81, unique=True)
    k0, k1 = draw(grid), draw(grid)
    n = min(len(k0), len(k1))
    y = draw(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=n, max_size=n))
    return np.array([k0[:n], k1[:n]], np.float64).T / 8, np.array(y, np.int64)


@pytest.fixture(scope="module")
def some_weights() -> ModelWeights:
    return export_scorer(DeepCredit(ModelConfig(hidden_size=4, head_sizes=(4,))), "v")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(distinct_logits(), st.floats(0.05, 5.0), st.floats(0.05, 5.0), st.floats(-3.0, 3.0),
       st.floats(-3.0, 3.0))  # fmt: skip
def test_a_positive_slope_keeps_each_targets_ranking(
    some_weights: ModelWeights,
    data: tuple[np.ndarray, np.ndarray],
    a0: float,
    a1: float,
    b0: float,
    b1: float,
) -> None:
    """Calibrated probabilities order each target's posts as the raw ones (strictly), so each
    target's AUC is unchanged, on the numpy and the torch path alike."""
    z, y = data
    values = [[a0, a1], [b0, b1]]
    raw, cal = sigmoid(z), calibrate(with_calibration(some_weights, values), z)
    cal_torch = torch.sigmoid(calibrated_logits(calibration_tensor(values), torch.from_numpy(z)))
    for k in range(2):
        order = np.argsort(z[:, k])
        for p in (raw[:, k], cal[:, k], cal_torch[:, k].numpy()):
            assert (np.diff(p[order]) > 0).all()
        if 0 < y[:, k].sum() < len(y):
            auc = roc_auc_score(y[:, k], raw[:, k])
            assert roc_auc_score(y[:, k], cal[:, k]) == auc
            assert roc_auc_score(y[:, k], cal_torch[:, k].numpy()) == auc
