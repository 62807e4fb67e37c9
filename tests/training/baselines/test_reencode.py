"""The paper-literal re-encode baseline: windows (shapes, no look-ahead, delinquency as known
then, same posts and labels as the streaming sequences) and the model (gradients, eq. 6)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from deepcredit.events import Activity, ClickEvent
from deepcredit.loans import loan_outcomes
from scorer.features import LoanStep, activity_features
from training.baselines.reencode import (
    ReencodeDeepCredit,
    Windows,
    align_split,
    build_windows,
    fit_reencode,
    predict_reencode,
    window_loss,
)
from training.baselines.reencode_data import REPAY_FEATURES
from training.benchmark.generator import GeneratorConfig, generate
from training.core.dataset import build_sequences
from training.core.model import ModelConfig
from training.core.train import TrainConfig, split

DELINQUENT, KNOWN = REPAY_FEATURES - 2, REPAY_FEATURES - 1


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Small tensors: thread hand-offs cost more than they save, badly so on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def events() -> list[ClickEvent]:
    return list(generate(GeneratorConfig(users=80, seed=5, horizon_days=500)))


@pytest.fixture(scope="module")
def windows(events: list[ClickEvent]) -> Windows:
    return build_windows(events, window=6, max_activities=16)


def histories(events: list[ClickEvent]) -> dict[str, list[ClickEvent]]:
    by_user: dict[str, list[ClickEvent]] = {}
    for e in events:
        by_user.setdefault(e.user_id, []).append(e)
    return by_user


def test_same_posts_labels_and_ids_as_the_streaming_sequences(
    events: list[ClickEvent], windows: Windows
) -> None:
    seq = build_sequences(events)
    is_post = seq.loan_kind == LoanStep.POST
    np.testing.assert_array_equal(windows.user_ids, seq.user_ids)
    np.testing.assert_array_equal(windows.event_ids, seq.event_ids[is_post])
    np.testing.assert_array_equal(windows.labels, seq.labels[is_post])  # NaN == NaN here
    posts_per_user = [
        is_post[a:b].sum() for a, b in zip(seq.loan_offsets[:-1], seq.loan_offsets[1:], strict=True)
    ]
    np.testing.assert_array_equal(np.diff(windows.post_offsets), posts_per_user)
    parts = split(seq, TrainConfig())
    aligned = align_split(parts, seq.user_ids, windows)
    np.testing.assert_array_equal(aligned.test, parts.test)


def test_shapes_padding_and_activity_subsequences(
    events: list[ClickEvent], windows: Windows
) -> None:
    t = windows.window
    u = int(np.argmax(np.diff(windows.post_offsets) > t))  # a user with more than T posts
    rows = windows.rows(np.array([u]))
    b = windows.batch(rows)
    n = len(rows)
    assert b.repay_x.shape == (n, t, REPAY_FEATURES) and b.labels.shape == (n, t, 2)
    real = np.minimum(np.arange(n) + 1, t)  # post k sees min(k + 1, T) posts
    np.testing.assert_array_equal(b.mask.sum(axis=1), real)
    np.testing.assert_array_equal(b.mask, np.arange(t) >= t - real[:, None])  # padding first
    assert not b.repay_x[~b.mask].any() and np.isnan(b.labels[~b.mask]).all()
    assert (b.slot_sub[~b.mask] == -1).all()
    np.testing.assert_array_equal(b.labels[:, -1], windows.labels[rows])
    np.testing.assert_array_equal(b.labels[t - 1 :, 0], windows.labels[rows[: n - t + 1]])
    assert (np.diff(b.sub_len) <= 0).all() and b.sub_x.shape[1] == b.sub_len.max()
    # A_k: the last L non-post events before post k and after post k − 1.
    history = sorted(histories(events)[str(windows.user_ids[u])], key=lambda e: e.ts)
    subsequences: list[list[ClickEvent]] = [[]]
    for e in history:
        if e.activity is Activity.POST:
            subsequences.append([])
        else:
            subsequences[-1].append(e)
    for k in range(n):
        expected = subsequences[k][-windows.max_activities :]
        s = b.slot_sub[k, -1]
        if not expected:
            assert s == -1
            continue
        got = b.sub_x[s, : b.sub_len[s]]
        np.testing.assert_allclose(got, [activity_features(e) for e in expected], rtol=1e-6)


def window_inputs(w: Windows, rows: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """Every input of each row's window, activities per slot unpadded."""
    b = w.batch(rows)
    out = []
    for i in range(len(rows)):
        acts = [(b.sub_x[s, : b.sub_len[s]], b.sub_gap[s, : b.sub_len[s]])
                for s in b.slot_sub[i] if s >= 0]  # fmt: skip
        flat = [a for pair in acts for a in pair]
        out.append((b.repay_x[i], b.repay_gap[i], b.mask[i], b.slot_sub[i] >= 0, *flat))
    return out


def test_no_look_ahead(events: list[ClickEvent], windows: Windows) -> None:
    """Removing every event after a post's time leaves that post's window unchanged."""
    post_ts = sorted(e.ts for e in events if e.activity is Activity.POST)
    for cut in (post_ts[len(post_ts) // 3], post_ts[2 * len(post_ts) // 3]):
        early = build_windows([e for e in events if e.ts <= cut], window=windows.window,
                              max_activities=windows.max_activities)  # fmt: skip
        full_row = {str(e): g for g, e in enumerate(windows.event_ids)}
        rows = np.arange(early.posts)
        full_rows = np.array([full_row[str(e)] for e in early.event_ids])
        assert len(rows) > 100
        for a, b in zip(window_inputs(early, rows), window_inputs(windows, full_rows),
                        strict=True):  # fmt: skip
            assert len(a) == len(b)
            for x, y in zip(a, b, strict=True):
                np.testing.assert_array_equal(x, y)


def test_delinquency_is_what_was_known_at_the_post(
    events: list[ClickEvent], windows: Windows
) -> None:
    """Slot flags equal ``loan_outcomes`` of the user's events up to the post, as of its time;
    a past loan is unknown while undue and known once repaid or past due."""
    by_user = histories(events)
    final = loan_outcomes(events, as_of=max(e.ts for e in events))
    t = windows.window
    seen_change = 0
    for u in range(0, windows.users, 4):
        history = sorted(by_user[str(windows.user_ids[u])], key=lambda e: e.ts)
        posts = [(i, e) for i, e in enumerate(history) if e.activity is Activity.POST]
        rows = windows.rows(np.array([u]))
        b = windows.batch(rows)
        for k, (position, post) in enumerate(posts):
            then = loan_outcomes(history[: position + 1], as_of=post.ts)
            for j in range(max(0, t - 1 - k), t):
                loan = posts[k - (t - 1) + j][1].loan_id or ""
                known, delinquent = b.repay_x[k, j, KNOWN], b.repay_x[k, j, DELINQUENT]
                flag = then[loan].delinquent
                assert known == (flag is not None) and delinquent == bool(flag)
                o = final[loan]
                if post.ts < min(o.due_ts, o.repay_ts or np.inf):
                    assert known == 0  # undue and not repaid yet
                elif o.funded and post.ts > min(o.due_ts, o.repay_ts or np.inf):
                    assert known == 1
                    seen_change += j < t - 1
    assert seen_change > 50


@pytest.fixture(scope="module")
def model() -> ReencodeDeepCredit:
    torch.manual_seed(0)
    return ReencodeDeepCredit(ModelConfig(hidden_size=8, head_sizes=(16, 8)))


def test_forward_backward_finite(windows: Windows, model: ReencodeDeepCredit) -> None:
    rows = np.arange(min(64, windows.posts))
    logits, loss = model(windows.batch(rows).tensors())
    assert logits.shape == (len(rows), windows.window, 2)
    assert loss is not None and torch.isfinite(loss)
    model.zero_grad()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.activity.gates.weight.grad.abs().sum() > 0  # activity path is trained


def test_alpha_zero_is_the_last_step_loss(windows: Windows, model: ReencodeDeepCredit) -> None:
    b = windows.batch(np.arange(min(64, windows.posts))).tensors()
    logits, _ = model(b, targets=False)
    labels = b["labels"]
    expected = sum(
        F.binary_cross_entropy_with_logits(logits[:, -1, k][known], labels[:, -1, k][known])
        for k in range(2)
        if (known := ~torch.isnan(labels[:, -1, k])).any()
    )
    torch.testing.assert_close(window_loss(logits, labels, 0.0), expected)
    assert window_loss(logits, labels, 0.5) > expected  # past slots add a positive term


def test_fit_and_predict_run(windows: Windows) -> None:
    parts = split(windows, TrainConfig())  # type: ignore[arg-type]  # only user ids are read
    config = TrainConfig(epochs=1, seed=0)
    result = fit_reencode(windows, parts, ModelConfig(hidden_size=8, head_sizes=(16,)), config,
                          batch_windows=512, progress=False)  # fmt: skip
    y, p = predict_reencode(result.model, windows, parts.test)
    labelled = np.isfinite(windows.labels[windows.rows(parts.test)]).any(axis=1).sum()
    assert y.shape == p.shape == (labelled, 2) and ((p > 0) & (p < 1)).all()
