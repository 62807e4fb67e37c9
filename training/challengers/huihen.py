"""Paper 002's HUIHEN (Hierarchical User Intention-Habit Extract Network) on the event
contract: each post scored from the user's events before it, split into sessions.

The paper's layers (its section 3), as built here:

- **EN layer** (3.2): each behaviour is embedded by its field. Every money-moving activity of
  the contract (borrow, lend, repay, be_repaid, miss_payment, transfers, recharge, withdraw) is
  a *transform operation*: its type's embedding times the log of its amount
  (``scorer.features.money``). An earlier post is an *item click* on the credit-loan item: the
  item's embedding plus a projection of its loan terms (log amount, rate, term / 365). The
  contract has no clicks on function widgets, so that field is absent. *Time period*: one
  embedding per weekday and per day of the month (UTC) of the behaviour.
- **FAN layer** (3.3, eq. 1): one matrix per field, ``ReLU(W_i e)``; the profile features
  (below) are mapped the same way, the target item's and the user's apart.
- **SUIE layer** (3.4, eqs. 2-7): the history is cut into sessions where two behaviours are
  more than an hour apart (``session_starts``); a time-aware GRU (``TimeAwareGruCell``) runs
  over each session's last ``behaviours`` behaviours, fed the weekday and day-of-month vectors
  and the gap to the previous behaviour of the session; its last state is the session's
  intention T_i.
- **LHUHE layer** (3.5, eqs. 8-12): a user-item-aware GRU (``UserItemGruCell``) over the last
  ``sessions`` intentions, fed the user's and the target item's field-wise profile; its last
  state is the habit H_m.
- **UPI layer** (3.6, eqs. 13-15): [T_m; H_m; user profile; item profile] through fully
  connected layers of 50 and 25 PReLU units (dropout 0.6) to two outputs, one per target
  (delinquent, default), then ``sigmoid(PReLU(.))`` (eq. 13) and binary cross-entropy (eq. 15).

Choices the text leaves open are in ``HuihenConfig``'s help and the README ("Paper 002").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from training.challengers.config import HuihenConfig

__all__ = [
    "ACTIVITY_KINDS",
    "POST_KIND",
    "Behaviours",
    "Huihen",
    "HuihenBatch",
    "HuihenStream",
    "TimeAwareGruCell",
    "UserItemGruCell",
    "batch",
    "post_sessions",
    "session_starts",
]

#: Behaviour kinds: the contract's activities, in ``deepcredit.events.Activity`` order.
ACTIVITY_KINDS = ("post", "borrow", "lend", "repay", "be_repaid", "miss_payment",
                  "transfer_in", "transfer_out", "recharge", "withdraw")  # fmt: skip
#: The kind of a post: the item-click field; every other kind is a transform operation.
POST_KIND = 0
_DAY_S = 86_400.0
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def session_starts(ts: np.ndarray, gap_s: float = 3600.0) -> np.ndarray:
    """(N,) bool: True where a behaviour opens a session, for one user's behaviour times
    ``ts`` (N,) in seconds, ascending: the first, and each more than ``gap_s`` seconds after
    the one before (paper 3.4, 5.2: one hour).

    >>> session_starts(np.array([0.0, 60.0, 4000.0, 7601.0, 7700.0])).tolist()
    [True, False, True, True, False]
    """
    ts = np.asarray(ts, dtype=np.float64)
    return np.r_[True, np.diff(ts) > gap_s][: len(ts)]


def post_sessions(
    starts: np.ndarray, posts: np.ndarray, *, sessions: int, min_behaviours: int
) -> np.ndarray:
    """(P, sessions, 2) int64: for a post at each position of ``posts`` (P,) in one user's
    behaviours (session openings ``starts`` (N,) bool), the [first, end) behaviour positions of
    the last ``sessions`` sessions before it with at least ``min_behaviours`` behaviours (paper
    5.2: 50 sessions, shorter than 3 dropped as noise), oldest first, padded at the head with
    -1. The post's own session counts up to the post only: nothing at or after the post is
    read.

    >>> s = session_starts(np.array([0.0, 60, 120, 9000, 9060, 20000, 20050, 20100]))
    >>> post_sessions(s, np.array([7, 8]), sessions=2, min_behaviours=2).tolist()
    [[[3, 5], [5, 7]], [[3, 5], [5, 8]]]
    """
    first = np.flatnonzero(starts)
    ends = np.r_[first[1:], len(starts)]
    kept = np.flatnonzero(ends - first >= min_behaviours)  # complete sessions worth keeping
    out = np.full((len(posts), sessions, 2), -1, np.int64)
    for row, i in enumerate(np.asarray(posts, dtype=np.int64)):
        if i <= 0:
            continue
        k = int(np.searchsorted(first, i - 1, side="right")) - 1  # session of the last behaviour
        pairs = [(first[k], i)] if i - first[k] >= min_behaviours else []
        complete = int(np.searchsorted(kept, k))  # kept sessions closed before session k
        before = kept[max(0, complete - (sessions - len(pairs))) : complete]
        chosen = [(first[j], ends[j]) for j in before] + pairs
        if chosen:
            out[row, sessions - len(chosen) :] = chosen
    return out


@dataclass(frozen=True, eq=False)
class Behaviours:
    """Every user's behaviours, concatenated (row r of each array is one event); a user's rows
    are contiguous and in time order. Positions in ``post_sessions`` pairs are global rows."""

    kind: np.ndarray  # (N,) int64, index into ACTIVITY_KINDS
    money: np.ndarray  # (N,) float32, scorer.features.money(amount)
    terms: np.ndarray  # (N, 3) float32: a post's money(amount), rate, term / 365; else 0
    gap_hours: np.ndarray  # (N,) float32: hours since the session's previous behaviour, 0 first
    weekday: np.ndarray  # (N,) int64, 0 = Monday (UTC)
    monthday: np.ndarray  # (N,) int64, 0 = the 1st (UTC)

    @classmethod
    def from_arrays(cls, ts: np.ndarray, kind: np.ndarray, money: np.ndarray,
                    terms: np.ndarray, starts: np.ndarray) -> Behaviours:  # fmt: skip
        """From times ``ts`` (N,) in Unix seconds and ``starts`` (``session_starts`` of each
        user, concatenated)."""
        ts = np.asarray(ts, dtype=np.float64)
        gap = np.r_[0.0, np.diff(ts)] / 3600.0
        days = np.floor(ts / _DAY_S).astype(np.int64)
        monthday = (days.astype("datetime64[D]") - days.astype("datetime64[D]").astype(
            "datetime64[M]")).astype(np.int64)  # fmt: skip
        return cls(np.asarray(kind, np.int64), np.asarray(money, np.float32),
                   np.asarray(terms, np.float32).reshape(-1, 3),
                   np.where(starts, 0.0, gap).astype(np.float32),
                   (days + _EPOCH_WEEKDAY) % 7, monthday)  # fmt: skip


@dataclass
class HuihenBatch:
    """B posts: S distinct session windows of L behaviours (head-padded), and for each post
    which window fills each of its M session slots (-1: padding), with its profile."""

    kind: Tensor  # (S, L) int64
    money: Tensor  # (S, L)
    terms: Tensor  # (S, L, 3)
    gap_hours: Tensor  # (S, L)
    weekday: Tensor  # (S, L) int64
    monthday: Tensor  # (S, L) int64
    step_mask: Tensor  # (S, L) bool
    slot: Tensor  # (B, M) int64
    item: Tensor  # (B, F_item) normalised target-item profile
    user: Tensor  # (B, F_user) normalised user profile


def batch(beh: Behaviours, pairs: np.ndarray, item: np.ndarray, user: np.ndarray,
          behaviours: int) -> HuihenBatch:  # fmt: skip
    """The batch of posts with session pairs ``pairs`` (B, M, 2) (``post_sessions`` in global
    rows), profiles ``item`` (B, F_item) and ``user`` (B, F_user); each session window read
    once however many posts share it, truncated to its last ``behaviours`` behaviours (paper
    5.2: 25)."""
    valid = pairs[..., 0] >= 0
    key = pairs[..., 0] * (2**31) + pairs[..., 1]
    unique, inverse = np.unique(key[valid], return_inverse=True)
    first, end = unique // (2**31), unique % (2**31)
    slot = np.full(valid.shape, -1, np.int64)
    slot[valid] = inverse
    rows = end[:, None] - behaviours + np.arange(behaviours)[None, :]  # (S, L)
    mask = rows >= first[:, None]
    rows = np.where(mask, rows, 0)

    def t(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a))

    return HuihenBatch(
        t(beh.kind[rows]), t(beh.money[rows]), t(beh.terms[rows]), t(beh.gap_hours[rows]),
        t(beh.weekday[rows]), t(beh.monthday[rows]), t(mask), t(slot),
        t(item.astype(np.float32)), t(user.astype(np.float32)),
    )  # fmt: skip


class TimeAwareGruCell(nn.Module):
    """Paper eqs. 2-6: a GRU whose gates also read the time-period vectors [x_week; x_month],
    with a time gate T = σ(w_m (x_t + σ(Q Δt)) + b_m) scaling the update. The parts that read
    the inputs only are computed for all steps at once (``inputs``); ``forward`` is one step."""

    def __init__(self, d_in: int, d_period: int, hidden: int) -> None:
        super().__init__()
        self.gates_x = nn.Linear(d_in + 2 * d_period, 2 * hidden)  # eqs. 2-3, input part
        self.gates_h = nn.Linear(hidden, 2 * hidden, bias=False)
        self.cand_x = nn.Linear(d_in + 2 * d_period, hidden)  # eq. 4
        self.cand_h = nn.Linear(hidden, hidden, bias=False)
        self.cand_rh = nn.Linear(hidden, hidden, bias=False)
        self.q = nn.Parameter(torch.full((d_in,), 0.1))  # eq. 5's Q
        self.time = nn.Linear(d_in, hidden)  # eq. 5's w_m, b_m

    def inputs(self, x: Tensor, period: Tensor, gap: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(..., 2H), (..., H), (..., H): the gates' and candidate's input parts, and T."""
        xp = torch.cat((x, period), dim=-1)
        time_gate = torch.sigmoid(self.time(x + torch.sigmoid(self.q * gap.unsqueeze(-1))))
        return self.gates_x(xp), self.cand_x(xp), time_gate

    def forward(self, h: Tensor, gx: Tensor, cx: Tensor, time_gate: Tensor) -> Tensor:
        u, r = torch.sigmoid(gx + self.gates_h(h)).chunk(2, dim=-1)
        p = torch.tanh(cx + self.cand_h(h) + self.cand_rh(r * h))
        return (1 - u) * h + p * time_gate * u  # eq. 6


class UserItemGruCell(nn.Module):
    """Paper eqs. 8-11: a GRU over the session intentions whose gates and candidate also read
    the user's and the target item's profile vectors; the candidate reads r ⊙ h only."""

    def __init__(self, d_in: int, d_profile: int, hidden: int) -> None:
        super().__init__()
        self.gates_x = nn.Linear(d_in + d_profile, 2 * hidden)
        self.gates_h = nn.Linear(hidden, 2 * hidden, bias=False)
        self.cand_x = nn.Linear(d_in + d_profile, hidden)
        self.cand_rh = nn.Linear(hidden, hidden, bias=False)

    def forward(self, h: Tensor, x: Tensor, profile: Tensor) -> Tensor:
        xp = torch.cat((x, profile), dim=-1)
        u, r = torch.sigmoid(self.gates_x(xp) + self.gates_h(h)).chunk(2, dim=-1)
        p = torch.tanh(self.cand_x(xp) + self.cand_rh(r * h))
        return (1 - u) * h + p * u  # eq. 11


def _first_used(mask: Tensor) -> int:
    """The first step (column of ``mask`` (N, T)) any row uses: padding is at the head, and a
    padded step leaves the state at zero, so the steps before it can be skipped."""
    used = mask.any(dim=0)
    return int(used.to(torch.int8).argmax()) if bool(used.any()) else mask.shape[1]


class Huihen(nn.Module):
    """The network: ``forward(batch)`` → logits (B, 2) [delinquent, default], sigmoid of which
    is eq. 13's probability. ``item_features`` and ``user_features``: widths of the profiles."""

    def __init__(self, cfg: HuihenConfig, item_features: int, user_features: int) -> None:
        super().__init__()
        d, h = cfg.embedding, cfg.hidden
        self.cfg = cfg
        self.kind = nn.Embedding(len(ACTIVITY_KINDS), d)  # EN: one vector per behaviour type
        self.terms = nn.Linear(3, d, bias=False)  # an item click's loan terms
        self.week = nn.Embedding(7, d)
        self.month = nn.Embedding(31, d)
        self.fan_operation = nn.Linear(d, d)  # FAN, eq. 1: one matrix per field
        self.fan_item_click = nn.Linear(d, d)
        self.fan_period = nn.Linear(d, d)
        self.fan_item = nn.Linear(item_features, d)
        self.fan_user = nn.Linear(user_features, d)
        self.session = TimeAwareGruCell(d, d, h)
        self.habit = UserItemGruCell(h, 2 * d, h)
        self.upi = nn.Sequential(
            nn.Linear(2 * h + 2 * d, cfg.fc[0]), nn.PReLU(init=0.5), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fc[0], cfg.fc[1]), nn.PReLU(init=0.5), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fc[1], 2), nn.PReLU(init=0.5),  # eq. 13: sigmoid(PReLU(MLP(x)))
        )  # fmt: skip

    def profile(self, item: Tensor, user: Tensor) -> Tensor:
        """(B, 2d): the field-wise user and target-item profile, [x_user; x_item]."""
        return torch.cat((torch.relu(self.fan_user(user)), torch.relu(self.fan_item(item))), -1)

    def behaviours(self, kind: Tensor, money: Tensor, terms: Tensor) -> Tensor:
        """(..., d) field-wise behaviour vectors f (EN then FAN)."""
        post = (kind == POST_KIND).unsqueeze(-1)
        e_kind = self.kind(kind)
        operation = torch.relu(self.fan_operation(e_kind * money.unsqueeze(-1)))
        click = torch.relu(self.fan_item_click(e_kind + self.terms(terms)))
        return torch.where(post, click, operation)

    def period(self, weekday: Tensor, monthday: Tensor) -> Tensor:
        """(..., 2d): [x_week; x_month], the time-period field."""
        return torch.cat((torch.relu(self.fan_period(self.week(weekday))),
                          torch.relu(self.fan_period(self.month(monthday)))), -1)  # fmt: skip

    def intentions(self, b: HuihenBatch) -> Tensor:
        """(S, H): each session window's last time-aware GRU state T_i (eq. 7)."""
        x = self.behaviours(b.kind, b.money, b.terms)
        gx, cx, tg = self.session.inputs(x, self.period(b.weekday, b.monthday), b.gap_hours)
        h = x.new_zeros(x.shape[0], self.cfg.hidden)
        for t in range(_first_used(b.step_mask), x.shape[1]):
            step = self.session(h, gx[:, t], cx[:, t], tg[:, t])
            h = torch.where(b.step_mask[:, t : t + 1], step, h)  # head padding leaves h at 0
        return h

    def fuse(self, intents: Tensor, slot: Tensor, profile: Tensor) -> Tensor:
        """Logits (B, 2) from the session intentions ``intents`` (S, H), each post's session
        slots ``slot`` (B, M) and profile (B, 2d): LHUHE then UPI."""
        b, m = slot.shape
        padded = torch.cat((intents.new_zeros(1, intents.shape[1]), intents))
        seq = padded[slot + 1]  # (B, M, H); slot -1 reads the zero row
        h = profile.new_zeros(b, self.cfg.hidden)
        for t in range(_first_used(slot >= 0), m):
            h = torch.where((slot[:, t] >= 0).unsqueeze(-1), self.habit(h, seq[:, t], profile), h)
        has = (slot >= 0).any(dim=1)
        last = seq[:, -1] * has.unsqueeze(-1)  # T_m: the last kept session (zero when none)
        return self.upi(torch.cat((last, h, profile), dim=-1))

    def forward(self, b: HuihenBatch) -> Tensor:
        return self.fuse(self.intentions(b), b.slot, self.profile(b.item, b.user))

    def profile_only(self, item: Tensor, user: Tensor) -> Tensor:
        """Logits (B, 2) with T_m and H_m zero: the transfer auxiliary training network of the
        paper's section 4.2 (Fig. 3), which pre-trains the UPI layer on profiles alone."""
        profile = self.profile(item, user)
        zero = profile.new_zeros(profile.shape[0], 2 * self.cfg.hidden)
        return self.upi(torch.cat((zero, profile), dim=-1))


class HuihenStream:
    """HUIHEN's incremental form for one user: the time-aware GRU state of the open session
    advances one step per behaviour; when a session closes its T_i joins a ring of the last
    ``sessions`` kept intentions (shorter sessions are dropped as in training, and windows
    longer than ``behaviours`` are not truncated here: the state runs over the whole session).
    A post runs the user-item-aware GRU over the ring and the open session's state, then UPI.
    State per user: the ring (sessions × H floats), the open session's state (H), its length
    and the last behaviour's time."""

    def __init__(self, model: Huihen) -> None:
        self.model = model.eval()
        self.ring: list[Tensor] = []
        self.h = torch.zeros(1, model.cfg.hidden)
        self.length = 0
        self.last_ts: float | None = None

    @torch.inference_mode()
    def step(self, ts: float, kind: int, money: float, terms: tuple[float, float, float],
             weekday: int, monthday: int) -> None:  # fmt: skip
        """Feed one behaviour (after the post it may be, if it is one)."""
        cfg = self.model.cfg
        if self.last_ts is None or ts - self.last_ts > cfg.session_gap_s:
            self._close()
            gap = 0.0
        else:
            gap = (ts - self.last_ts) / 3600.0
        f32 = torch.float32
        x = self.model.behaviours(torch.tensor([kind]), torch.tensor([money], dtype=f32),
                                  torch.tensor([terms], dtype=f32))  # fmt: skip
        period = self.model.period(torch.tensor([weekday]), torch.tensor([monthday]))
        gx, cx, tg = self.model.session.inputs(x, period, torch.tensor([gap], dtype=f32))
        self.h = self.model.session(self.h, gx, cx, tg)
        self.length += 1
        self.last_ts = ts

    def _close(self) -> None:
        if self.length >= self.model.cfg.min_behaviours:
            self.ring = [*self.ring, self.h][-self.model.cfg.sessions :]
        self.h = torch.zeros_like(self.h)
        self.length = 0

    @torch.inference_mode()
    def post(self, item: Tensor, user: Tensor) -> Tensor:
        """Probabilities (2,) of a post with profiles ``item`` (F_item,) and ``user``
        (F_user,), from the behaviours fed so far."""
        cfg = self.model.cfg
        intents = list(self.ring)
        if self.length >= cfg.min_behaviours:
            intents = [*intents, self.h][-cfg.sessions :]
        stacked = torch.cat(intents) if intents else torch.zeros(0, cfg.hidden)
        slot = torch.full((1, cfg.sessions), -1, dtype=torch.int64)
        if intents:
            slot[0, cfg.sessions - len(intents) :] = torch.arange(len(intents))
        profile = self.model.profile(item[None], user[None])
        return torch.sigmoid(self.model.fuse(stacked, slot, profile))[0]
