"""``deepcredit challengers cost``: what a post would cost in the stream for a challenger with
no incremental form, which must re-encode the user's whole history to score it, beside what the
live scorer's incremental step costs (``step_cost``, the same bench as ``deepcredit bench
step``), in one run with paired repeats (medians reported).

Paper 004's BiLSTM: its backward direction reads the history from the newest event, so each
new event changes every backward state and a post runs both directions over all of it. Timed
here: one forward of the BiLSTM score (``training.challengers.bilstm``, torch, one thread,
inference mode, batch of one) over a history of 50, 500 and 5,000 events, one event one time
step of its three features; against the compiled step's µs per post of the same repeat.
Weights are a fresh model's (the cost does not depend on their values).

Paper 001's CNN-LSTM (``training.challengers.cnnlstm``, the paper's sizes: 64/128/256 filters,
128 LSTM units), timed the same way re-encoding the history, and in its incremental form
(``CnnLstmStream``: a window of ``receptive_field`` events through the convolutions, one LSTM
step, the attention's running sums) one post after a history of each length: its cost should
not grow with the history.

Paper 003's ResNet-LSTM with focal XGBoost (``training.challengers.resnetlstm``, the sizes of
its UCI run): the BiLSTM over the months has no incremental form (its backward direction, as
004's), so a post re-runs the ResNet over the static features, the BiLSTM and its attention
over the whole history, the fusion layer, and the trees on the fused features. The booster
timed has ``trees_003`` trees of depth 4 (the UCI run's settings), fitted on random features:
its cost depends on the trees' number and depth, not on their splits.

Paper 002's HUIHEN (``training.challengers.huihen``, the paper's sizes: embeddings of 10, both
GRUs of 30, 50 sessions of 25 behaviours), re-encoding: the history cut into sessions, the
last 50 kept sessions (3 behaviours or more) through the time-aware GRU, the user-item-aware
GRU over their intentions, then the UPI layer. The model itself reads at most 50 × 25
behaviours, so past that only the sessionising grows with the history. Its incremental form
(``HuihenStream``) is timed as one post: the user-item-aware GRU over the kept intentions and
the UPI layer, then the post fed as a behaviour (one time-aware GRU step). The synthetic
history's gaps are half within a session (about a minute) and half between (hours to days).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from scorer.aggregates import AGGREGATE_FEATURES
from training.challengers.bilstm import BiLstmScore
from training.challengers.cnnlstm import CnnLstmScore, CnnLstmStream
from training.challengers.config import HuihenConfig, ResNetLstmConfig
from training.challengers.huihen import Behaviours, Huihen, HuihenStream, batch, post_sessions
from training.challengers.huihen import session_starts as huihen_sessions
from training.challengers.resnetlstm import ResNetLstm, fit_focal_xgboost
from training.experiments.step_cost import step_cost

__all__ = ["HISTORY_LENGTHS", "REENCODED", "NetThenTrees", "paper003_scorer", "reencode_cost"]

#: The challengers this bench times: model name → the paper.
REENCODED = {"bilstm": "004", "cnnlstm": "001", "huihen": "002", "resnetlstm": "003"}
#: HUIHEN's profile widths on the benchmark (``training.challengers.paper002``).
_HUIHEN_ITEM, _HUIHEN_USER = 4, 6 + AGGREGATE_FEATURES

#: Events of history a post re-encodes (the issue's three lengths).
HISTORY_LENGTHS = (50, 500, 5000)


def _stream_seconds(model: CnnLstmScore, events: int, calls: int) -> float:
    """Median seconds of one post to the incremental form after ``events`` events of history
    (the history is fed untimed; each timed post is one more event)."""
    rng = np.random.default_rng(events)
    stream = CnnLstmStream(model, rng.normal(size=8))
    for e in rng.normal(size=(events, 3)):
        stream.step(e)
    times = []
    for e in rng.normal(size=(calls, 3)):
        started = time.perf_counter()
        stream.step(e)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


class NetThenTrees:
    """Paper 003's scoring of one client: the network's fused features, then the booster's
    margin on them (``predict`` with the booster's own trees; one thread)."""

    def __init__(self, net: ResNetLstm, booster: object) -> None:
        self.net, self.booster = net, booster

    def __call__(self, temporal: torch.Tensor, static: torch.Tensor) -> np.ndarray:
        fused = self.net.fuse(temporal, static).numpy()
        return self.booster.inplace_predict(fused, predict_type="margin")  # type: ignore[attr-defined]


def paper003_scorer(trees: int, seed: int = 0) -> NetThenTrees:
    """A fresh ResNet-LSTM at the UCI run's sizes and a focal booster of ``trees`` trees (no
    early stop reached: random labels) on its 64 fused features."""
    cfg = ResNetLstmConfig()
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(2000, cfg.fused)), rng.integers(0, 2, 2000)
    booster = fit_focal_xgboost(x, y, x, y, 0.75, 2.0, seed, rounds=trees, patience=None)
    return NetThenTrees(ResNetLstm(3, cfg).eval(), booster)


def _history(events: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A synthetic history of ``events`` behaviours: times (s), kinds, money, loan terms."""
    rng = np.random.default_rng(events)
    gaps = np.where(rng.random(events) < 0.5, rng.exponential(60.0, events),
                    rng.exponential(2 * 86_400.0, events))  # fmt: skip
    ts = 1.6e9 + np.cumsum(gaps)
    kind = rng.integers(0, 10, events)
    terms = np.where((kind == 0)[:, None], rng.random((events, 3)), 0.0)
    return ts, kind, rng.random(events), terms


def _huihen_seconds(model: Huihen, events: int, calls: int) -> float:
    """Median seconds of one post re-encoding ``events`` behaviours of history."""
    ts, kind, amount, terms = _history(events)
    item, user = np.zeros((1, _HUIHEN_ITEM)), np.zeros((1, _HUIHEN_USER))
    cfg = model.cfg

    def post() -> None:
        starts = huihen_sessions(ts, cfg.session_gap_s)
        beh = Behaviours.from_arrays(ts, kind, amount, terms, starts)
        pairs = post_sessions(starts, np.array([events]), sessions=cfg.sessions,
                              min_behaviours=cfg.min_behaviours)  # fmt: skip
        model(batch(beh, pairs, item, user, cfg.behaviours))

    with torch.inference_mode():
        post()  # first call allocates: not timed
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            post()
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def _huihen_stream_seconds(model: Huihen, events: int, calls: int) -> float:
    """Median seconds of one post to the incremental form after ``events`` behaviours (fed
    untimed): the post scored, then fed as a behaviour."""
    ts, kind, amount, terms = _history(events + calls)
    days = np.floor(ts / 86_400.0).astype(np.int64)
    stream = HuihenStream(model)
    item, user = torch.zeros(_HUIHEN_ITEM), torch.zeros(_HUIHEN_USER)

    def feed(i: int) -> None:
        stream.step(float(ts[i]), int(kind[i]), float(amount[i]), tuple(terms[i]),
                    int((days[i] + 3) % 7), int(days[i] % 31))  # fmt: skip

    for i in range(events):
        feed(i)
    times = []
    for i in range(events, events + calls):
        started = time.perf_counter()
        stream.post(item, user)
        feed(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _reencode_seconds(model: torch.nn.Module | NetThenTrees, events: int, calls: int) -> float:
    temporal, static = torch.randn(1, events, 3), torch.randn(1, 8)
    with torch.inference_mode():
        model(temporal, static)  # first call allocates: not timed
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            model(temporal, static)
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def reencode_cost(
    *,
    lengths: tuple[int, ...] = HISTORY_LENGTHS,
    bilstm_hidden: int = 32,
    step_hidden: int = 32,
    step_users: int = 50,
    repeats: int = 5,
    calls: int = 5,
    model_name: str = "bilstm",
    trees_003: int = 300,
) -> dict:
    """µs per post of ``model_name`` (``REENCODED``: paper 004's BiLSTM at ``bilstm_hidden``,
    paper 001's CNN-LSTM or paper 002's HUIHEN at its paper's sizes) re-encoding ``lengths``
    events (median of ``calls`` per repeat) and of the incremental step (``step_cost`` at
    ``step_hidden``, ``step_users`` users), alternating per repeat; the ratio re-encode / step
    per repeat, its median. The CNN-LSTM's and HUIHEN's incremental forms are timed too, one
    post after each history length (``stream_us_per_post``). Torch runs on one thread (the
    machine is shared; the step is single-threaded too). Raises ValueError for another model."""
    if model_name not in REENCODED:
        raise ValueError(f"unknown model {model_name!r}; known: {', '.join(REENCODED)}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model: torch.nn.Module | NetThenTrees
    if model_name == "bilstm":
        model = BiLstmScore(3, 8, bilstm_hidden).eval()
    elif model_name == "resnetlstm":
        model = paper003_scorer(trees_003)
    elif model_name == "huihen":
        model = Huihen(HuihenConfig(), _HUIHEN_ITEM, _HUIHEN_USER).eval()
    else:
        model = CnnLstmScore(8).eval()
    step_us: list[float] = []
    reencode_us: dict[int, list[float]] = {n: [] for n in lengths}
    stream_us: dict[int, list[float]] = {n: [] for n in lengths}
    for r in range(repeats):

        def step() -> None:
            row = step_cost([step_hidden], users=step_users, repeats=1)[0]
            step_us.append(row["compiled"]["us_per_post"])

        def reencode() -> None:
            for n in lengths:
                if isinstance(model, Huihen):
                    reencode_us[n].append(1e6 * _huihen_seconds(model, n, calls))
                    stream_us[n].append(1e6 * _huihen_stream_seconds(model, n, calls))
                    continue
                reencode_us[n].append(1e6 * _reencode_seconds(model, n, calls))
                if isinstance(model, CnnLstmScore):
                    stream_us[n].append(1e6 * _stream_seconds(model, n, calls))

        for part in (step, reencode) if r % 2 == 0 else (reencode, step):
            part()
    rows = []
    for n in lengths:
        ratios = [b / s for b, s in zip(reencode_us[n], step_us, strict=True)]
        rows.append({
            "history_events": n,
            "reencode_us_per_post": round(statistics.median(reencode_us[n]), 1),
            "step_us_per_post": round(statistics.median(step_us), 2),
            "reencode_over_step": round(statistics.median(ratios), 1),
            "reencode_over_step_runs": [round(x, 1) for x in ratios],
            "reencode_us_runs": [round(x, 1) for x in reencode_us[n]],
        })  # fmt: skip
        if stream_us[n]:
            stream = [b / s for b, s in zip(stream_us[n], step_us, strict=True)]
            rows[-1] |= {
                "stream_us_per_post": round(statistics.median(stream_us[n]), 1),
                "stream_over_step": round(statistics.median(stream), 1),
                "stream_us_runs": [round(x, 1) for x in stream_us[n]],
            }  # fmt: skip
    net = ResNetLstmConfig()
    sizes = {"bilstm": {"bilstm_hidden": bilstm_hidden},
             "cnnlstm": {"cnnlstm": {"filters": [64, 128, 256], "lstm_units": 128}},
             "huihen": {"huihen": {"embedding": 10, "hidden": 30, "sessions": 50,
                                   "behaviours": 25, "min_behaviours": 3}},
             "resnetlstm": {"resnetlstm": {
                 "filters": list(net.filters), "lstm_units": net.lstm_units, "fused": net.fused,
                 "trees": trees_003, "depth": 4}}}[model_name]  # fmt: skip
    return {"model": model_name, **sizes, "step_hidden": step_hidden,
            "step_users": step_users, "repeats": repeats, "calls": calls,
            "torch_threads": torch.get_num_threads(), "rows": rows}  # fmt: skip
