"""``deepcredit bench reasons``: are the reason codes (``scorer.reasons``) faithful to the model,
stable, and cheap? A small model is trained on a generated stream, then the held-out users'
histories are replayed one event at a time as the live flow replays them
(``scorer.model.advance``, then ``scorer.reasons.post_reasons``), and per post:

- **faithfulness**, on the declined posts (``DEFAULT_THRESHOLDS``; when fewer than
  ``MIN_DECLINED``, the top decile of P(delinquent), and the result says so) with two reasons or
  more: neutralising the evidence of the top reason (its group of aggregates set to the
  reference) lowers the score at least as much as neutralising any other reason's, against a
  control that picks one of the post's reasons at random. Measured on P(delinquent), the target
  the codes are attributed on (occlusion ranks by that very drop, so this checks the
  implementation, not the method), and on P(default), which the codes were not computed from;
- **stability**: the same history replayed twice gives the same codes; the history with an
  irrelevant event added (a ``transfer_in`` of 1 money unit just before the post) gives the
  same top reason;
- **cost**: microseconds per post, timed one post at a time in the same pass, from the same
  state: the step alone (``scorer.model.advance_unseen``), the step with its reason codes as
  the live flow runs it (``scorer.reasons.advance_with_reasons``: the compiled occlusion of
  the head input the step built), their paired difference (what the reasons add to a post),
  and the numpy reference (``scorer.reasons.post_reasons``: the aggregates recomputed, every
  occluded row through every layer), with how often the live codes equal the reference's.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter, defaultdict

import numpy as np

from deepcredit.events import Activity, ClickEvent
from deepcredit.thresholds import DEFAULT_THRESHOLDS
from scorer.aggregates import GROUPS
from scorer.model import (
    ModelWeights,
    advance,
    advance_unseen,
    calibrate,
    head_logits,
    post_head_input,
)
from scorer.reasons import advance_with_reasons, post_reasons
from scorer.steps import history_at
from scorer.user_state import UserState, event_fingerprint, event_key
from training.benchmark.generator import GeneratorConfig, generate
from training.core.config import ModelConfig, TrainConfig
from training.core.dataset import build_sequences
from training.core.export import export_scorer
from training.core.train import fit, split

__all__ = ["MIN_DECLINED", "run_reasons_bench"]

#: Fewer declined posts than this among the held-out users: judge the top decile instead.
MIN_DECLINED = 30
_CODE_INDEX = {g.code: k for k, g in enumerate(GROUPS)}


def _irrelevant(post: ClickEvent, previous_ts: float) -> ClickEvent:
    """A transfer_in of 1 money unit between the previous event and the post."""
    ts = max(previous_ts, post.ts - 1.0) if previous_ts < post.ts else post.ts
    return ClickEvent(event_id=f"{post.event_id}-noise", user_id=post.user_id, ts=ts,
                      activity=Activity.TRANSFER_IN, amount=1.0)  # fmt: skip


def _replay(w: ModelWeights, histories: dict[str, list[ClickEvent]]) -> dict:
    """Per post: probabilities, head input, codes (the numpy reference's), codes with the
    irrelevant event added, the live path's codes, and the seconds of the step alone, of the
    step with its reasons as the flow runs it, and of the reference reasons."""
    out: dict[str, dict] = {}
    clock = time.perf_counter
    for events in histories.values():
        s = UserState.new(w.version, w.hidden_size)
        previous_ts = events[0].ts
        for e in events:
            before = s.copy() if e.activity is Activity.POST else None
            p = advance(w, s, e)
            if p is not None:
                assert before is not None
                t0 = clock()
                codes = post_reasons(w, s, e)
                t1 = clock()
                key, fingerprint = event_key(e.event_id), event_fingerprint(e)
                alone, live = before.copy(), before.copy()
                # Which of the two runs first alternates, so neither always finds warm caches.
                order = (0, 1) if len(out) % 2 else (1, 0)
                seconds = [0.0, 0.0]
                for k in order:
                    t2 = clock()
                    if k == 0:
                        advance_unseen(w, alone, e, key, fingerprint)
                    else:
                        _, live_codes = advance_with_reasons(w, live, e, key, fingerprint)
                    seconds[k] = clock() - t2
                noisy = before
                advance(w, noisy, _irrelevant(e, previous_ts))
                advance(w, noisy, e)
                out[e.event_id] = {
                    "p": p, "head_in": post_head_input(w, s, e), "codes": codes,
                    "noisy_codes": post_reasons(w, noisy, e), "post": e,
                    "history": history_at(s.memory, e.ts), "live_codes": live_codes,
                    "step_s": seconds[0], "live_s": seconds[1], "reference_s": t1 - t0,
                }  # fmt: skip
            previous_ts = e.ts
    return out


def _neutralised(w: ModelWeights, head_in: np.ndarray) -> np.ndarray:
    """(G + 1, 2) probabilities: as scored, then with each group set to the reference."""
    d = w.hidden_size
    rows = np.repeat(head_in[None, :], len(GROUPS) + 1, axis=0)
    assert w.reference is not None
    for k, g in enumerate(GROUPS):
        rows[k + 1, d + g.start : d + g.stop] = w.reference[g.start : g.stop]
    return calibrate(w, head_logits(w, rows))


def _faithfulness(w: ModelWeights, posts: list[dict], rng: random.Random) -> dict:
    result: dict[str, dict] = {}
    for target, name in ((0, "p_delinquent"), (1, "p_default")):
        top = control = judged = 0
        for r in posts:
            codes = r["codes"]
            if len(codes) < 2:
                continue
            p = _neutralised(w, r["head_in"])[:, target]
            drop = {c: float(p[0] - p[1 + _CODE_INDEX[c]]) for c in codes}
            best = max(drop.values())
            judged += 1
            top += drop[codes[0]] >= best
            control += drop[rng.choice(codes)] >= best
        n = judged or 1
        result[name] = {"posts": judged, "top_reason_largest_drop": top / n if judged else None,
                        "random_reason_largest_drop": control / n if judged else None}  # fmt: skip
    return result


def run_reasons_bench(
    *, users: int, epochs: int, hidden: int, seed: int, max_minutes: float | None
) -> dict:
    """Train, replay the held-out users, measure; the result as a JSON-able dict."""
    started = time.perf_counter()
    events = list(generate(GeneratorConfig(users=users, seed=seed)))
    seq = build_sequences(events)
    train_config = TrainConfig(epochs=epochs, seed=seed, max_minutes=max_minutes, patience=epochs)
    parts = split(seq, train_config)
    trained = fit(seq, parts, ModelConfig(hidden_size=hidden), train_config, progress=False)
    w = export_scorer(trained.model, "bench-reasons")
    test_users = set(seq.user_ids[parts.test].tolist())
    histories: dict[str, list[ClickEvent]] = defaultdict(list)
    for e in events:
        if e.user_id in test_users:
            histories[e.user_id].append(e)
    for h in histories.values():
        h.sort(key=lambda e: e.ts)
    train_s = time.perf_counter() - started
    first = _replay(w, histories)
    second = _replay(w, histories)
    posts = list(first.values())
    for r in posts:
        e = r["post"]
        r["decision"] = str(DEFAULT_THRESHOLDS.decide(
            p_delinquent=r["p"][0], p_default=r["p"][1], amount=e.amount,
            term_days=e.term_days, events_seen=r["history"][0]))  # fmt: skip
    declined = [r for r in posts if r["decision"] == "decline"]
    population = "declined under the default thresholds"
    judged = declined
    if len(declined) < MIN_DECLINED:
        cut = float(np.quantile([r["p"][0] for r in posts], 0.9))
        judged = [r for r in posts if r["p"][0] >= cut]
        population = (f"top decile of P(delinquent) (>= {cut:.3f}): only {len(declined)} "
                      "declined posts")  # fmt: skip
    rng = random.Random(seed)
    with_codes = [r for r in posts if r["codes"]]
    same_twice = sum(second[k]["codes"] == r["codes"] for k, r in first.items())
    same_top = sum(r["noisy_codes"][:1] == r["codes"][:1] for r in with_codes)
    step_us = [1e6 * r["step_s"] for r in posts]
    live_us = [1e6 * r["live_s"] for r in posts]
    added_us = [1e6 * (r["live_s"] - r["step_s"]) for r in posts]
    reference_us = [1e6 * r["reference_s"] for r in posts]
    tops = Counter(r["codes"][0] for r in judged if r["codes"])
    return {
        "config": {
            "users": users,
            "epochs": epochs,
            "hidden_size": hidden,
            "seed": seed,
            "max_minutes": max_minutes,
        },
        "model": {
            "epochs_run": trained.epochs_run,
            "best_epoch": trained.best_epoch,
            "history": trained.history,
            "train_s": round(train_s, 1),
        },
        "held_out": {
            "users": len(histories),
            "posts": len(posts),
            "posts_with_reasons": len(with_codes),
            "declined": len(declined),
            "judged_population": population,
            "judged": len(judged),
            "mean_reasons_per_post": statistics.fmean(len(r["codes"]) for r in posts),
        },
        "faithfulness": _faithfulness(w, judged, rng),
        "stability": {
            "same_history_twice_same_codes": same_twice / len(first),
            "irrelevant_event_same_top_reason": same_top / len(with_codes) if with_codes else None,
            "posts_with_reasons": len(with_codes),
            "irrelevant_event": "a transfer_in of 1 money unit just before the post",
        },
        "cost": {
            "us_per_post_step_median": statistics.median(step_us),
            "us_per_post_step_with_reasons_median": statistics.median(live_us),
            "us_per_post_reasons_median": statistics.median(added_us),
            "us_per_post_reasons_p99": float(np.quantile(added_us, 0.99)),
            "reasons_over_step": statistics.median(added_us) / statistics.median(step_us),
            "us_per_post_reference_reasons_median": statistics.median(reference_us),
            "reference_over_live": statistics.median(reference_us) / statistics.median(added_us),
            "live_codes_equal_reference": sum(r["live_codes"] == r["codes"] for r in posts)
            / len(posts),
            "posts_timed": len(posts),
            "what": "per post, from the same state: the step alone (advance_unseen), the step "
            "with its reasons as the flow runs it (advance_with_reasons), the reasons' part "
            "as the paired difference (median, p99), and the numpy reference (post_reasons)",
        },
        "top_reason_counts": dict(sorted(tops.items())),
    }
