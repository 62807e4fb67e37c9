"""Paper 002's HUIHEN: sessions cut at one-hour gaps and read up to the post only, the shapes,
the incremental form scoring what the batch model scores, a planted signal learned in a few
epochs, the cost bench's HUIHEN rows, and ``deepcredit challengers events --paper 002`` end to
end on a small statement table's events, judged on the September bills."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from deploy.cli import main
from training.challengers.config import HuihenConfig
from training.challengers.huihen import (
    Behaviours,
    Huihen,
    HuihenStream,
    batch,
    post_sessions,
    session_starts,
)
from training.challengers.paper002 import EventHistory, PostInputs, fit_huihen, predict_huihen
from training.experiments.challenger_cost import reencode_cost

SMALL = HuihenConfig(sessions=4, behaviours=5, min_behaviours=2, embedding=4, hidden=6,
                     dropout=0.0, seed=0)  # fmt: skip


def test_sessions_open_after_more_than_an_hour_and_a_post_reads_only_before_itself() -> None:
    ts = np.array([0, 3600, 7201, 7202, 7300, 20000, 20001, 20002, 20003], dtype=float)
    starts = session_starts(ts)
    assert starts.tolist() == [True, False, True, False, False, True, False, False, False]
    # Sessions: [0, 2) [2, 5) [5, 9). A post at 7 sits inside the third: its session is the
    # prefix [5, 7); a post at 5 opens a session, so the second is its last, complete.
    pairs = post_sessions(starts, np.array([0, 1, 5, 7, 9]), sessions=2, min_behaviours=2)
    assert pairs[0].tolist() == [[-1, -1], [-1, -1]]  # nothing before the first behaviour
    assert pairs[1].tolist() == [[-1, -1], [-1, -1]]  # one behaviour: below the minimum
    assert pairs[2].tolist() == [[0, 2], [2, 5]]
    assert pairs[3].tolist() == [[2, 5], [5, 7]]  # the last two only
    assert pairs[4].tolist() == [[2, 5], [5, 9]]
    assert (pairs[..., 1] <= np.array([0, 1, 5, 7, 9])[:, None]).all()
    dropped = post_sessions(starts, np.array([9]), sessions=4, min_behaviours=3)
    assert dropped.tolist() == [[[-1, -1], [-1, -1], [2, 5], [5, 9]]]  # [0, 2) is noise


def _history(
    rng: np.random.Generator, users: int, per_user: int
) -> tuple[Behaviours, np.ndarray, np.ndarray]:
    """Behaviours, session openings and times of ``users`` users of ``per_user`` behaviours
    each, in bursts a minute or two apart, the bursts hours apart."""
    ts, kind, money, terms, starts, offsets = [], [], [], [], [], [0]
    for _ in range(users):
        gaps = np.where(rng.random(per_user) < 0.3, rng.uniform(2, 48, per_user) * 3600,
                        rng.uniform(10, 120, per_user))  # fmt: skip
        t = 1.6e9 + np.cumsum(gaps)
        k = rng.integers(1, 10, per_user)
        k[rng.random(per_user) < 0.1] = 0  # some earlier posts: item clicks
        ts.append(t)
        kind.append(k)
        money.append(rng.random(per_user))
        terms.append(np.where((k == 0)[:, None], rng.random((per_user, 3)), 0.0))
        starts.append(session_starts(t))
        offsets.append(offsets[-1] + per_user)
    beh = Behaviours.from_arrays(np.concatenate(ts), np.concatenate(kind), np.concatenate(money),
                                 np.concatenate(terms), np.concatenate(starts))  # fmt: skip
    return beh, np.concatenate(starts), np.concatenate(ts)


def test_the_batch_reads_each_session_once_and_the_model_gives_two_logits_per_post() -> None:
    rng = np.random.default_rng(0)
    beh, starts, _ = _history(rng, users=1, per_user=40)
    pairs = post_sessions(starts, np.array([20, 21, 40]), sessions=SMALL.sessions,
                          min_behaviours=SMALL.min_behaviours)  # fmt: skip
    b = batch(beh, pairs, np.zeros((3, 4)), np.zeros((3, 7)), SMALL.behaviours)
    distinct = {tuple(p) for p in pairs.reshape(-1, 2).tolist() if p[0] >= 0}
    assert b.kind.shape == (len(distinct), SMALL.behaviours) == b.step_mask.shape
    assert b.slot.shape == (3, SMALL.sessions)
    assert b.weekday.max() < 7 and b.monthday.max() < 31
    model = Huihen(SMALL, 4, 7)
    assert model.intentions(b).shape == (len(distinct), SMALL.hidden)
    assert model(b).shape == (3, 2)


def test_the_incremental_form_scores_what_the_batch_model_scores() -> None:
    rng = np.random.default_rng(1)
    beh, starts, ts = _history(rng, users=1, per_user=60)
    cfg = replace(SMALL, behaviours=25)  # no session longer: both read whole sessions
    model = Huihen(cfg, 4, 7).eval()
    item, user = rng.normal(size=(1, 4)), rng.normal(size=(1, 7))
    stream = HuihenStream(model)
    for i in range(60):
        stream.step(float(ts[i]), int(beh.kind[i]), float(beh.money[i]), tuple(beh.terms[i]),
                    int(beh.weekday[i]), int(beh.monthday[i]))  # fmt: skip
    streamed = stream.post(torch.tensor(item[0], dtype=torch.float32),
                           torch.tensor(user[0], dtype=torch.float32))  # fmt: skip
    pairs = post_sessions(starts, np.array([60]), sessions=cfg.sessions,
                          min_behaviours=cfg.min_behaviours)  # fmt: skip
    with torch.no_grad():
        batched = torch.sigmoid(model(batch(beh, pairs, item, user, cfg.behaviours)))[0]
    assert torch.allclose(streamed, batched, atol=1e-5)


def test_huihen_learns_a_planted_signal_in_the_last_session() -> None:
    """Bad users withdrew (kind 9) in the session right before the post; good ones did not.
    The profiles are noise: only the behaviours can tell them apart."""
    rng = np.random.default_rng(2)
    users, per_user = 200, 30
    beh, starts, _ = _history(rng, users, per_user)
    kind = beh.kind.copy()
    pairs_all, labels = [], []
    for u in range(users):
        base = u * per_user
        local = post_sessions(
            starts[base : base + per_user],
            np.array([per_user]),
            sessions=SMALL.sessions,
            min_behaviours=SMALL.min_behaviours,
        )
        first, end = local[0, -1]
        bad = u % 2 == 0 and first >= 0
        if first >= 0:
            window = kind[base + first : base + end]  # a view: edits the kinds
            window[window == 9] = 8
            window[-1] = 9 if bad else window[-1]
        pairs_all.append(np.where(local >= 0, local + base, -1))
        labels.append([float(bad), float(bad)])
    beh = replace(beh, kind=kind)
    hist = EventHistory(beh, np.arange(users + 1) * per_user, starts, {})
    posts = PostInputs(np.concatenate(pairs_all), rng.normal(size=(users, 4)).astype(np.float32),
                       rng.normal(size=(users, 7)).astype(np.float32),
                       np.array(labels, np.float32), np.arange(users))  # fmt: skip
    train = _take(posts, np.arange(140))
    test = _take(posts, np.arange(140, users))
    cfg = replace(SMALL, epochs=10, patience=10, batch=32, lr=1e-2)
    fit = fit_huihen(hist, train, test, cfg)
    p = predict_huihen(fit, hist, test)
    assert roc_auc_score(test.labels[:, 0], p[:, 0]) > 0.9


def _take(posts: PostInputs, idx: np.ndarray) -> PostInputs:
    return PostInputs(posts.pairs[idx], posts.item[idx], posts.user[idx], posts.labels[idx],
                      posts.users[idx])  # fmt: skip


def test_huihen_reencodes_and_streams_a_post() -> None:
    r = reencode_cost(lengths=(20, 400), step_users=5, repeats=1, calls=2, model_name="huihen")
    assert [row["history_events"] for row in r["rows"]] == [20, 400]
    for row in r["rows"]:
        assert row["reencode_us_per_post"] > 0 and row["stream_us_per_post"] > 0
    assert r["huihen"]["sessions"] == 50


def test_on_statements_only_each_test_users_september_bill_is_judged(tmp_path: Path) -> None:
    sample = Path(__file__).parents[2] / "data" / "uci-first-300.csv"
    events, out = tmp_path / "uci.jsonl", tmp_path / "challengers.json"
    assert main(["statements", "--table", str(sample), "--out", str(events)]) == 0
    args = [
        "challengers",
        "events",
        "--paper",
        "002",
        "--events",
        str(events),
        "--statements",
        "--epochs",
        "1",
        "--pretrain-epochs",
        "0",
        "--bootstrap",
        "20",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    written = json.loads(out.read_text())
    run = written["runs"]["002/uci/statements"]
    rows = [r for r in written["rows"] if r["paper"] == "002" and r["table"] == "uci"]
    # One post per test user with a September bill, fewer than all the test users' posts; the
    # default head has no September label (120 days late cannot be reached): no rows.
    assert {(r["model"], r["group"]) for r in rows} == {
        (m, "delinquent")
        for m in ("huihen", "gbdt", "lr")  # no pre-training: no aux row
    }
    differences = [r for r in written["rows"] if r["table"] == "differences"]
    assert {r["model"] for r in differences} == {"huihen-gbdt", "huihen-lr"}
    assert all(r["command"].startswith("deepcredit challengers events") for r in rows)
    for r in differences:
        f = r["figures"]["auc"]
        assert f["low"] <= f["high"] and r["n"] == rows[0]["n"]
    assert all(r["n"] == run["data"]["judged_posts"] < run["data"]["test_posts"] for r in rows)
    assert 0 < rows[0]["positives"] < rows[0]["n"]
