"""Users' histories replayed in one compiled loop: the bookkeeping of ``scorer.steps.plan_step``
(the ledger, the running aggregates, the features, the time gaps) and the model step of
``scorer.fast`` together, over columnar arrays, one user after another.

``scorer.rebuild.rebuild`` decodes each history once into columns (``Columns``: event time,
activity as its ``Activity`` index, amount, rate, term, and the event and loan ids as small
ints, equal for equal ids), runs ``replay`` over them and turns the arrays it fills back into
``UserState`` objects. The loop is the Python rules written out again over arrays, operation
for operation in the same order (float64 as Python's floats, the same libm calls), so the
bookkeeping comes out bit for bit that of ``advance`` event by event, and the model step is
``scorer.fast._step`` itself, so the states and probabilities are too
(tests/scorer/test_replay.py: property tests against ``advance`` on random histories with
disorder and resends). The rules and their sources:

- repeats: an event whose id is among the user's last ``RECENT_IDS`` advanced ids is skipped
  (``scorer.user_state.UserState.seen``); ids are compared as ints here, keys there (a 64-bit
  digest: the two differ only at a digest collision, about 2e-18 per event). Which earlier
  event each repeat repeats is returned, so the caller tells resends from conflicting
  duplicates by their fingerprints (rare: only repeats pay for one).
- the ledger (``scorer.ledger.Ledger``, ``deepcredit.loans.step_loan``): open loans in their
  insertion order (``debt`` sums in that order), held events sorted by time, their release,
  expiry and bound (``HOLD_BOUND``), the record and the whole-unit outcome sums;
- the decayed activity counts (``scorer.aggregates.Rates``) and ``aggregate_features``;
- ``scorer.features.activity_features`` and ``loan_features``, ``scorer.steps.plan_step``.

A user's open loans need at most as many slots as the user has posts (only a post opens one),
held events at most ``HOLD_BOUND.events`` + 1, so no history is too large for the arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from deepcredit.events import DAY_S, Activity
from deepcredit.loans import DEFAULT_DELAY_DAYS
from scorer import fast
from scorer.aggregates import _RATE, AGGREGATE_FEATURES, QUICK_WITHDRAWAL_S
from scorer.features import ACTIVITY_FEATURES, LOAN_FEATURES
from scorer.ledger import DELAY_CLIP_DAYS, HOLD_BOUND, PENDING_POST_TTL_S
from scorer.user_state import RECENT_IDS

__all__ = ["HELD_SLOTS", "LEDGER_FLOATS", "LEDGER_INTS", "MEMORY_FLOATS", "replay"]

_POST, _BORROW, _REPAY, _MISS, _WITHDRAW = (list(Activity).index(a) for a in (
    Activity.POST, Activity.BORROW, Activity.REPAY, Activity.MISS_PAYMENT,
    Activity.WITHDRAW))  # fmt: skip
_N_ACT = len(Activity)
_HOLD_EVENTS, _HOLD_S = HOLD_BOUND.events, HOLD_BOUND.seconds
_DELAY_LO, _DELAY_HI = DELAY_CLIP_DAYS
_RATE_FAST, _RATE_SLOW = _RATE
#: Held events a user's arrays have room for: the bound, and the one inserted before trimming.
HELD_SLOTS = _HOLD_EVENTS + 1
_NAN = np.nan

# Per-user outputs. Floats (NaN for None): activity_ts, loan_ts, post_ts, first_ts, rates ts,
# rates quick, rates loan_ts, then the ledger's last_late_ts, delay_sum_s, delay_max.
MEMORY_FLOATS = 7
LEDGER_FLOATS = 3
# Ints: events, then the ledger's on_time, late, given_up, borrowed_cents, funded, repays,
# open loans, held events, then the recent ids remembered.
LEDGER_INTS = 10


@numba.njit(cache=True, nogil=True)
def _pymax(a, b):
    # Python's max(a, b): the first unless the second is larger.
    return b if b > a else a


@numba.njit(cache=True, nogil=True)
def _find_loan(l_id, start, n, loan):
    for j in range(start, start + n):
        if l_id[j] == loan:
            return j
    return -1


@numba.njit(cache=True, nogil=True)
def _delete_loan(l_id, l_amount, l_due, l_post, l_funded, l_late, start, n, j):
    # Shifting keeps the insertion order of those left, as a dict's deletion does.
    for k in range(j, start + n - 1):
        l_id[k] = l_id[k + 1]
        l_amount[k] = l_amount[k + 1]
        l_due[k] = l_due[k + 1]
        l_post[k] = l_post[k + 1]
        l_funded[k] = l_funded[k + 1]
        l_late[k] = l_late[k + 1]


@numba.njit(cache=True, nogil=True)
def _waits(l_id, l_funded, start, n, act, loan):
    # ``deepcredit.loans.waits_for_loan``
    if act == _BORROW:
        return _find_loan(l_id, start, n, loan) < 0
    if act in (_REPAY, _MISS):
        j = _find_loan(l_id, start, n, loan)
        return j < 0 or not l_funded[j]
    return False


@numba.njit(cache=True, nogil=True)
def _mark_late(lf, li, u, was_late, ts):
    # ``Ledger._mark_late``; the loan's own flag is set by the caller.
    if not was_late:
        li[u, 2] += 1
    lf[u, 0] = ts if np.isnan(lf[u, 0]) else _pymax(lf[u, 0], ts)


@numba.njit(cache=True, nogil=True)
def _drop_preceding(h_ts, h_act, h_loan, li, u, loan, ts):
    # ``Ledger._drop_preceding``: keep the held events of other loans or after ``ts``.
    n = li[u, 8]
    k = 0
    for j in range(n):
        if h_loan[u, j] != loan or h_ts[u, j] > ts:
            h_ts[u, k], h_act[u, k], h_loan[u, k] = h_ts[u, j], h_act[u, j], h_loan[u, j]
            k += 1
    li[u, 8] = k


@numba.njit(cache=True, nogil=True)
def _follow_up(loans, lf, li, held, u, start, act, loan, ts):
    """``step_follow_up`` then ``Ledger._record`` for a borrow, repay or miss_payment: returns
    (changed, delay days; NaN unless a repay settled the loan)."""
    l_id, l_amount, l_due, l_post, l_funded, l_late = loans
    h_ts, h_act, h_loan = held
    n = li[u, 7]
    j = _find_loan(l_id, start, n, loan)
    if j < 0:
        return False, _NAN
    if act == _BORROW:
        l_funded[j] = True
        _drop_preceding(h_ts, h_act, h_loan, li, u, loan, ts)
        li[u, 4] += np.int64(np.rint(l_amount[j] * 100.0))
        li[u, 5] += 1
        return True, _NAN
    if not l_funded[j]:
        return False, _NAN
    if act == _MISS:
        _mark_late(lf, li, u, l_late[j], ts)
        l_late[j] = True
        return True, _NAN
    if act == _REPAY:
        due, late = l_due[j], l_late[j]
        _delete_loan(l_id, l_amount, l_due, l_post, l_funded, l_late, start, n, j)
        li[u, 7] = n - 1
        delay_days = (ts - due) / DAY_S
        delay = min(_pymax(delay_days, _DELAY_LO), _DELAY_HI)
        li[u, 6] += 1
        lf[u, 1] += np.rint(delay * DAY_S)
        lf[u, 2] = delay if np.isnan(lf[u, 2]) else _pymax(lf[u, 2], delay)
        if ts > due:
            _mark_late(lf, li, u, late, ts)
        elif not late:
            li[u, 1] += 1
        return True, delay_days
    return False, _NAN


@numba.njit(cache=True, nogil=True)
def _ledger_apply(loans, lf, li, held, u, start, ts, act, amount, loan, term):
    """``Ledger.apply``: returns the delay (days) when the event settles a funded loan, else
    NaN."""
    l_id, l_amount, l_due, l_post, l_funded, l_late = loans
    h_ts, h_act, h_loan = held
    if li[u, 8] > 0:  # _release(ts)
        n = li[u, 8]
        snap_ts = h_ts[u, :n].copy()
        snap_act = h_act[u, :n].copy()
        snap_loan = h_loan[u, :n].copy()
        for s in range(n):
            if snap_ts[s] > ts:
                break
            at = -1
            for j in range(li[u, 8]):  # the first equal one still held
                if h_ts[u, j] == snap_ts[s] and h_act[u, j] == snap_act[s] \
                        and h_loan[u, j] == snap_loan[s]:  # fmt: skip
                    at = j
                    break
            if at < 0 or _waits(l_id, l_funded, start, li[u, 7], snap_act[s], snap_loan[s]):
                continue
            for j in range(at, li[u, 8] - 1):
                h_ts[u, j], h_act[u, j], h_loan[u, j] = h_ts[u, j + 1], h_act[u, j + 1], \
                    h_loan[u, j + 1]  # fmt: skip
            li[u, 8] -= 1
            _follow_up(loans, lf, li, held, u, start, snap_act[s], snap_loan[s], snap_ts[s])
    delay = _NAN
    changed = False
    if loan >= 0:
        if act != _POST:
            changed, delay = _follow_up(loans, lf, li, held, u, start, act, loan, ts)
        elif term >= 0:
            n = li[u, 7]
            k = start
            for j in range(start, start + n):  # drop the posts unfunded too long
                if not (not l_funded[j] and ts - l_post[j] > PENDING_POST_TTL_S):
                    l_id[k], l_amount[k], l_due[k] = l_id[j], l_amount[j], l_due[j]
                    l_post[k], l_funded[k], l_late[k] = l_post[j], l_funded[j], l_late[j]
                    k += 1
            n = k - start
            li[u, 7] = n
            if _find_loan(l_id, start, n, loan) < 0:
                j = start + n
                l_id[j], l_amount[j], l_due[j], l_post[j] = loan, amount, ts + term * DAY_S, ts
                l_funded[j] = False
                l_late[j] = False
                li[u, 7] = n + 1
                changed = True
                _drop_preceding(h_ts, h_act, h_loan, li, u, loan, ts)
        if not changed and _waits(l_id, l_funded, start, li[u, 7], act, loan):  # _hold
            j = _find_loan(l_id, start, li[u, 7], loan)
            if not (j >= 0 and l_post[j] >= ts):
                n = li[u, 8]
                at = n
                for k in range(n):  # insort_right by time
                    if ts < h_ts[u, k]:
                        at = k
                        break
                for k in range(n, at, -1):
                    h_ts[u, k], h_act[u, k], h_loan[u, k] = h_ts[u, k - 1], h_act[u, k - 1], \
                        h_loan[u, k - 1]  # fmt: skip
                h_ts[u, at], h_act[u, at], h_loan[u, at] = ts, act, loan
                n += 1
                if n > _HOLD_EVENTS:
                    for k in range(n - 1):
                        h_ts[u, k], h_act[u, k], h_loan[u, k] = h_ts[u, k + 1], \
                            h_act[u, k + 1], h_loan[u, k + 1]  # fmt: skip
                    n -= 1
                    li[u, 3] += 1
                li[u, 8] = n
    if li[u, 8] > 0:  # _expire(ts)
        k = 0
        for j in range(li[u, 8]):
            if ts - h_ts[u, j] <= _HOLD_S:
                h_ts[u, k], h_act[u, k], h_loan[u, k] = h_ts[u, j], h_act[u, j], h_loan[u, j]
                k += 1
        li[u, 3] += li[u, 8] - k
        li[u, 8] = k
    return delay


@numba.njit(cache=True, nogil=True)
def _count(n):
    return math.log1p(n) / 3.0


@numba.njit(cache=True, nogil=True)
def _money(amount):
    return math.log1p(amount) / 10.0


@numba.njit(cache=True, nogil=True)
def replay(
    flat, table, hidden, aggregates, off, ts_a, act_a, amount_a, rate_a, term_a, eid_a,
    loan_a, loan_off, hc, y_prev, mf, lf, li, rates, recent, loans, held, repeat_of, post_of,
    probs, history_n, history_days, head_in,
):  # fmt: skip
    """Replay users ``0..len(off) - 2``: user u's events are rows ``off[u]:off[u + 1]`` of the
    columns (``ts_a`` float64 s, ``act_a`` the ``Activity`` index, ``amount_a``, ``rate_a``
    (0 for None), ``term_a`` days (-1 for None), ``eid_a`` and ``loan_a`` ids as ints, -1 for
    no loan), their open loans slots ``loan_off[u]:loan_off[u + 1]`` of ``loans``. Fills, per
    user: ``hc`` (U, 6, D), ``y_prev`` (U, 2), the memory's floats ``mf`` (U, MEMORY_FLOATS),
    the ledger's ``lf`` (U, LEDGER_FLOATS) and ints ``li`` (U, LEDGER_INTS), ``rates`` (U, 2,
    activities) fast and slow, ``recent`` (U, RECENT_IDS) the rows of the remembered events,
    oldest first, ``held`` (U, HELD_SLOTS) ts, activity, loan; per event: ``repeat_of`` the row
    of the event a repeat repeats (-1 for an advanced one), ``post_of`` the post's row in the
    post outputs (-1: not a post, or a repeat); per post: ``probs`` (P, 2) as ``advance``
    returns them, ``history_n`` and ``history_days`` (``scorer.steps.history_at``), ``head_in``
    (P, D + A) float32 what the heads read. Every output starts as a new state's."""
    l_amount, l_due, l_funded = loans[1], loans[2], loans[4]
    d = hidden
    xa = np.zeros(ACTIVITY_FEATURES, np.float32)
    xl = np.zeros(LOAN_FEATURES, np.float32)
    xg = np.zeros(AGGREGATE_FEATURES if aggregates else 0, np.float32)
    no_contrib = np.zeros(0, np.float64)
    posts = 0
    for u in range(off.shape[0] - 1):
        start = loan_off[u]
        fast_r = rates[u, 0]
        slow_r = rates[u, 1]
        h = hc[u]
        yp = y_prev[u]
        for i in range(off[u], off[u + 1]):
            # Repeats: the id among the last RECENT_IDS advanced (UserState.seen, .remember).
            n_recent = li[u, 9]
            eid = eid_a[i]
            found = -1
            for k in range(n_recent):
                if eid_a[recent[u, k]] == eid:
                    found = recent[u, k]
                    break
            if found >= 0:
                repeat_of[i] = found
                continue
            if n_recent == RECENT_IDS:
                for k in range(RECENT_IDS - 1):
                    recent[u, k] = recent[u, k + 1]
                recent[u, RECENT_IDS - 1] = i
            else:
                recent[u, n_recent] = i
                li[u, 9] = n_recent + 1
            ts, act, amount = ts_a[i], act_a[i], amount_a[i]
            # plan_step
            li[u, 0] += 1
            if np.isnan(mf[u, 3]) or ts < mf[u, 3]:
                mf[u, 3] = ts
            delay = _ledger_apply(loans, lf, li, held, u, start, ts, act, amount, loan_a[i],
                                  term_a[i])  # fmt: skip
            # Rates.update
            f = s = 1.0
            last = mf[u, 4]
            if np.isnan(last):
                mf[u, 4] = ts
            elif ts > last:
                dt = ts - last
                decay_fast, decay_slow = math.exp(-_RATE_FAST * dt), math.exp(-_RATE_SLOW * dt)
                for k in range(_N_ACT):
                    fast_r[k] = fast_r[k] * decay_fast
                for k in range(_N_ACT):
                    slow_r[k] = slow_r[k] * decay_slow
                mf[u, 5] *= decay_slow
                mf[u, 4] = ts
            elif ts < last:
                f, s = math.exp(-_RATE_FAST * (last - ts)), math.exp(-_RATE_SLOW * (last - ts))
            fast_r[act] += f
            slow_r[act] += s
            if act in (_POST, _BORROW):
                mf[u, 6] = ts if np.isnan(mf[u, 6]) else _pymax(mf[u, 6], ts)
            elif act == _WITHDRAW and not np.isnan(mf[u, 6]) \
                    and 0.0 <= ts - mf[u, 6] <= QUICK_WITHDRAWAL_S:  # fmt: skip
                mf[u, 5] += s
            kind = 0
            gap_a = 0.0
            if act != _POST:
                kind = 1
                for k in range(ACTIVITY_FEATURES - 1):
                    xa[k] = 0.0
                xa[act - 1] = 1.0
                xa[ACTIVITY_FEATURES - 1] = _money(amount)
                gap_a = 0.0 if np.isnan(mf[u, 0]) else _pymax(0.0, ts - mf[u, 0])
                mf[u, 0] = ts
            # loan_step_of: 0 post, 1 repay that settled, 2 miss_payment
            step = -1
            if act == _POST:
                step = 0
            elif act == _REPAY and not np.isnan(delay):
                step = 1
            elif act == _MISS:
                step = 2
            gap_l = gap_p = 0.0
            if step >= 0:
                unpaid = overdue = 0.0
                undue = 0
                for j in range(start, start + li[u, 7]):  # Ledger.debt
                    if not l_funded[j]:
                        continue
                    unpaid += l_amount[j]
                    if ts > l_due[j]:
                        overdue += l_amount[j]
                    else:
                        undue += 1
                on_time, late = li[u, 1], li[u, 2]
                has_late = not np.isnan(lf[u, 0])
                since = _pymax(0.0, ts - lf[u, 0]) / DAY_S if has_late else 0.0
                for k in range(3):  # loan_features
                    xl[k] = 0.0
                xl[step] = 1.0
                xl[3] = _money(amount)
                xl[4] = rate_a[i] if step == 0 else 0.0
                xl[5] = (term_a[i] if term_a[i] > 0 else 0) / 365.0 if step == 0 else 0.0
                xl[6] = _money(unpaid)
                xl[7] = _money(overdue)
                xl[8] = min(undue, 20) / 10.0
                xl[9] = math.log1p(on_time) / 3.0
                xl[10] = math.log1p(late) / 3.0
                xl[11] = math.exp(-since / 180.0) if has_late else 0.0
                xl[12] = 0.0
                if step == 1:
                    xl[12] = min(_pymax(delay, _DELAY_LO), _DELAY_HI) / DEFAULT_DELAY_DAYS
                gap_l = 0.0 if np.isnan(mf[u, 1]) else _pymax(0.0, ts - mf[u, 1])
                mf[u, 1] = ts
                kind |= 2
                if step == 0:
                    kind |= 4
                    gap_p = 0.0 if np.isnan(mf[u, 2]) else _pymax(0.0, ts - mf[u, 2])
                    mf[u, 2] = ts
                    mf[u, 0] = ts
                    prior = max(0, li[u, 0] - 1)
                    days = _pymax(0.0, ts - mf[u, 3]) / DAY_S
                    history_n[posts] = prior
                    history_days[posts] = days
                    if aggregates:  # aggregate_features (rates.at(ts) is the rates: ts <= rates ts)
                        repays = li[u, 6]
                        delay_mean = lf[u, 1] / DAY_S / repays if repays else 0.0
                        delay_max = 0.0 if np.isnan(lf[u, 2]) else lf[u, 2]
                        borrowed = li[u, 4] / 100.0
                        withdrawals = slow_r[_WITHDRAW]
                        funded = li[u, 5]
                        past_mean = borrowed / funded if funded else 0.0
                        quick = mf[u, 5]
                        xg[0] = _count(late)
                        xg[1] = late / (late + on_time) if late else 0.0
                        xg[2] = delay_mean / DEFAULT_DELAY_DAYS
                        xg[3] = delay_max / DEFAULT_DELAY_DAYS
                        xg[4] = math.exp(-since / 180.0) if has_late else 0.0
                        xg[5] = _money(unpaid)
                        xg[6] = _money(overdue)
                        xg[7] = min(unpaid / borrowed, 1.0) if borrowed > 0 else 0.0
                        xg[8] = min(overdue / borrowed, 1.0) if borrowed > 0 else 0.0
                        xg[9] = min(undue, 20) / 10.0
                        xg[10] = _count(quick)
                        xg[11] = min(quick / withdrawals, 1.0) if withdrawals > 0 else 0.0
                        xg[12] = math.log1p(prior) / 5.0
                        xg[13] = math.log1p(days) / 6.0
                        xg[14] = _count(funded)
                        xg[15] = _count(on_time)
                        for k in range(_N_ACT):
                            xg[16 + k] = math.log1p(fast_r[k]) / 3.0
                        for k in range(_N_ACT):
                            xg[16 + _N_ACT + k] = math.log1p(slow_r[k]) / 3.0
                        xg[16 + 2 * _N_ACT] = _money(amount) - _money(past_mean) \
                            if past_mean > 0 else 0.0  # fmt: skip
            if kind == 0:
                continue
            posted, p0, p1 = fast._step(flat, table, h, yp, xa, gap_a, xl, gap_l, gap_p, kind,
                                        xg, no_contrib)  # fmt: skip
            if posted:
                post_of[i] = posts
                probs[posts, 0] = p0
                probs[posts, 1] = p1
                for k in range(d):
                    head_in[posts, k] = h[4, k]
                for k in range(xg.shape[0]):
                    head_in[posts, d + k] = xg[k]
                posts += 1
    return posts


# The loop has ``scorer.fast``'s step compiled into its cache: recompiled when that changes.
fast.recompile_on_change(replay)
