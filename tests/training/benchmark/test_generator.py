"""The synthetic benchmark: determinism, the event contract, loan lifecycles, derived labels,
calibration sanity at small N, and the regime shift."""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepcredit.codec import decode_click
from deepcredit.events import DAY_S, Activity, ClickEvent
from deepcredit.loans import loan_outcomes
from training.benchmark.generator import BenchmarkStats, GeneratorConfig, generate, write_jsonl
from training.benchmark.stats import PAPER, StatsCollector

SMALL = GeneratorConfig(users=150, seed=3)
T0 = 1.5e9


@pytest.fixture(scope="module")
def events() -> list[ClickEvent]:
    return list(generate(SMALL))


@pytest.fixture(scope="module")
def stats(events: list[ClickEvent]) -> BenchmarkStats:
    collector = StatsCollector(SMALL)
    for event in events:
        collector.add(event)
    return collector.finish()


def _write(tmp_path: Path, name: str, config: GeneratorConfig) -> bytes:
    path = tmp_path / name
    write_jsonl(config, path, progress=False)
    return path.read_bytes()


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_the_same_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    config = GeneratorConfig(users=30, seed=11, horizon_days=200)
    first = _write(tmp_path, "a.jsonl.gz", config)
    assert first == _write(tmp_path, "b.jsonl.gz", config)
    assert first != _write(
        tmp_path, "c.jsonl.gz", GeneratorConfig(users=30, seed=12, horizon_days=200)
    )
    assert gzip.decompress(first) == _write(tmp_path, "d.jsonl", config)
    assert not list(tmp_path.glob("*.partial"))


def test_a_users_stream_does_not_depend_on_how_many_users_are_generated() -> None:
    few = [e for e in generate(GeneratorConfig(users=3, seed=5)) if e.user_id == "u000002"]
    many = [e for e in generate(GeneratorConfig(users=12, seed=5)) if e.user_id == "u000002"]
    assert few and few == many


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**32))
def test_generation_is_a_function_of_the_config(seed: int) -> None:
    config = GeneratorConfig(users=2, seed=seed, horizon_days=120)
    assert list(generate(config)) == list(generate(config))


# --- the event contract ------------------------------------------------------------------------


def test_every_written_line_decodes_into_a_valid_click_event(tmp_path: Path) -> None:
    config = GeneratorConfig(users=40, seed=2)
    lines = _write(tmp_path, "clicks.jsonl", config).splitlines()
    decoded = [decode_click(line) for line in lines]
    assert decoded and all(isinstance(event, ClickEvent) for event in decoded)
    assert decoded == list(generate(config))


def test_stream_is_in_global_time_order_within_the_horizon(events: list[ClickEvent]) -> None:
    stamps = [event.ts for event in events]
    assert stamps == sorted(stamps)
    assert SMALL.start_ts <= stamps[0] and stamps[-1] < SMALL.end_ts
    assert len({event.event_id for event in events}) == len(events)
    assert len({event.user_id for event in events}) == SMALL.users


def test_loan_lifecycles_are_consistent(events: list[ClickEvent]) -> None:
    by_loan: dict[str, list[ClickEvent]] = defaultdict(list)
    for event in events:
        if event.loan_id is not None:
            by_loan[event.loan_id].append(event)
    checked = Counter[str]()
    for loan_id, life in by_loan.items():
        post, *rest = life
        assert post.activity is Activity.POST, loan_id
        assert post.rate is not None and post.term_days is not None
        assert all(e.user_id == post.user_id for e in rest)
        due = post.ts + post.term_days * DAY_S
        kinds = [e.activity for e in rest]
        assert kinds.count(Activity.POST) == 0
        assert kinds.count(Activity.BORROW) <= 1
        assert kinds.count(Activity.REPAY) <= 1
        assert kinds.count(Activity.MISS_PAYMENT) <= 1
        if not kinds:
            checked["unfunded"] += 1
            continue
        borrow = rest[0]
        assert borrow.activity is Activity.BORROW, "repay or miss before the loan was funded"
        assert post.ts < borrow.ts < due
        miss = [e for e in rest if e.activity is Activity.MISS_PAYMENT]
        repay = [e for e in rest if e.activity is Activity.REPAY]
        if miss:
            assert miss[0].ts == due
            assert all(r.ts > due for r in repay)
            checked["late"] += 1
        elif repay:
            assert repay[0].ts <= due
            checked["on time"] += 1
    assert min(checked["unfunded"], checked["late"], checked["on time"]) > 0


# --- labels derived from events ----------------------------------------------------------------


def _click(n: int, ts: float, activity: Activity, loan: str = "a", **fields: float) -> ClickEvent:
    return ClickEvent(
        event_id=f"e{n}",
        user_id="u",
        ts=ts,
        activity=activity,
        amount=100.0,
        loan_id=loan,
        **fields,
    )


def _loan(delay_days: float | None, term_days: int = 30, funded: bool = True) -> list[ClickEvent]:
    """One loan posted at T0, repaid ``delay_days`` after due (None: never)."""
    due = T0 + term_days * DAY_S
    life = [_click(1, T0, Activity.POST, rate=0.1, term_days=term_days)]
    if not funded:
        return life
    life.append(_click(2, T0 + 3600, Activity.BORROW))
    if delay_days is None or delay_days > 0:
        life.append(_click(3, due, Activity.MISS_PAYMENT))
    if delay_days is not None:
        life.append(_click(4, due + delay_days * DAY_S, Activity.REPAY))
    return life


LATE = T0 + 1000 * DAY_S


@pytest.mark.parametrize(
    ("delay_days", "delinquent", "default"),
    [
        (-2.0, False, False),
        (0.0, False, False),
        (5.0, True, False),
        (120.0, True, False),
        (121.0, True, True),
        (None, True, True),
    ],
)
def test_outcome_labels_follow_the_delay(
    delay_days: float | None, delinquent: bool, default: bool
) -> None:
    outcome = loan_outcomes(_loan(delay_days), as_of=LATE)["a"]
    assert (outcome.funded, outcome.delinquent, outcome.default) == (True, delinquent, default)
    assert outcome.delay_days == delay_days
    assert not outcome.censored


def test_outcomes_not_yet_knowable_are_censored() -> None:
    due = T0 + 30 * DAY_S
    not_due = loan_outcomes(_loan(None), as_of=due - DAY_S)["a"]
    assert (not_due.delinquent, not_due.default, not_due.censored) == (None, None, True)
    overdue = loan_outcomes(_loan(None), as_of=due + 60 * DAY_S)["a"]
    assert (overdue.delinquent, overdue.default, overdue.censored) == (True, None, True)
    # The repayment 200 days late has not happened yet at as_of: no look-ahead.
    late = loan_outcomes(_loan(200.0), as_of=due + 150 * DAY_S)["a"]
    assert (late.repay_ts, late.delinquent, late.default) == (None, True, True)


def test_unfunded_posts_and_stray_events_get_no_label() -> None:
    stray = [_click(9, T0 + 1, Activity.REPAY, loan="ghost")]
    outcomes = loan_outcomes(_loan(0.0, funded=False) + stray, as_of=LATE)
    assert list(outcomes) == ["a"]
    assert (outcomes["a"].funded, outcomes["a"].delinquent, outcomes["a"].censored) == (
        False,
        None,
        False,
    )


@given(delay=st.floats(min_value=-29.0, max_value=400.0), term=st.sampled_from([30, 90, 360]))
def test_labels_match_the_definition_for_any_delay(delay: float, term: int) -> None:
    outcome = loan_outcomes(_loan(delay, term_days=term), as_of=LATE)["a"]
    assert outcome.delay_days == pytest.approx(delay, abs=1e-6)
    assert outcome.delinquent == (outcome.delay_days > 0)
    assert outcome.default == (outcome.delay_days > 120)


# --- statistics --------------------------------------------------------------------------------


def test_small_benchmark_statistics_are_in_a_sane_range(stats: BenchmarkStats) -> None:
    per_user = stats.activities / stats.users
    assert 0.6 < per_user / (PAPER.activities / PAPER.users) < 1.5
    assert 0.6 < stats.posts / stats.users / (PAPER.posts / PAPER.users) < 1.5
    assert 0.75 < stats.funded_loans / stats.posts < 0.9
    assert 0.08 < stats.delinquent_fraction < 0.2
    assert 0.02 < stats.default_fraction < stats.delinquent_fraction
    assert 0 < stats.censored_loans < 0.25 * stats.funded_loans
    assert max(stats.activity_mix, key=stats.activity_mix.__getitem__) == "post"
    assert sum(stats.activity_mix.values()) == pytest.approx(1.0)
    gaps = stats.gap_quantiles_s
    assert gaps["p10"] < 120.0 and gaps["p99"] > 7 * DAY_S  # seconds in sessions, weeks apart


def test_stats_match_the_labels_derived_from_the_stream(
    events: list[ClickEvent], stats: BenchmarkStats
) -> None:
    outcomes = loan_outcomes(events, as_of=SMALL.end_ts).values()
    labelled = [o for o in outcomes if o.delinquent is not None]
    assert stats.labelled_delinquent == len(labelled)
    assert stats.delinquent_fraction == pytest.approx(
        sum(bool(o.delinquent) for o in labelled) / len(labelled)
    )
    assert stats.funded_loans == sum(o.funded for o in outcomes)


def test_table_shows_the_paper_targets_and_to_dict_is_json(stats: BenchmarkStats) -> None:
    at_paper_scale = BenchmarkStats(**{**stats.to_dict(), "users": 10_000})
    table = at_paper_scale.table()
    for target in ("4,881,056", "712,857", "586,957", "13.40%", "4.80%"):
        assert target in table
    assert "paper x0.015" in stats.table()
    assert json.loads(json.dumps(stats.to_dict()))["posts"] == stats.posts


# --- regime shift ------------------------------------------------------------------------------


def test_the_shift_leaves_the_past_alone_and_raises_risk_after_it() -> None:
    base = GeneratorConfig(users=250, seed=8)
    shift_ts = base.start_ts + 1.5 * 365 * DAY_S
    shifted = GeneratorConfig(users=250, seed=8, shift_at_ts=shift_ts)
    calm_events, shocked_events = list(generate(base)), list(generate(shifted))
    assert [e for e in calm_events if e.ts < shift_ts] == [
        e for e in shocked_events if e.ts < shift_ts
    ]

    def after_shift(stream: list[ClickEvent]) -> tuple[float, float]:
        outcomes = loan_outcomes(stream, as_of=base.end_ts).values()
        labels = [
            o.delinquent for o in outcomes if o.post_ts >= shift_ts and o.delinquent is not None
        ]
        late = [e for e in stream if e.ts >= shift_ts]
        lend_share = sum(e.activity is Activity.LEND for e in late) / len(late)
        return sum(labels) / len(labels), lend_share

    calm_rate, calm_lend = after_shift(calm_events)
    shocked_rate, shocked_lend = after_shift(shocked_events)
    assert shocked_rate > calm_rate + 0.05
    assert shocked_lend < 0.8 * calm_lend


def test_shift_statistics_are_reported_by_regime() -> None:
    config = GeneratorConfig(
        users=60, seed=4, shift_at_ts=GeneratorConfig(1).start_ts + 1.5 * 365 * DAY_S
    )
    collector = StatsCollector(config)
    for event in generate(config):
        collector.add(event)
    stats = collector.finish()
    assert stats.delinquent_fraction_before_shift is not None
    assert stats.delinquent_fraction_after_shift is not None
    assert stats.delinquent_fraction_after_shift > stats.delinquent_fraction_before_shift
    assert "after" in stats.table()


def test_the_term_risk_makes_longer_loans_riskier_after_the_shift_and_nothing_before() -> None:
    shift_ts = GeneratorConfig(1).start_ts + 1.5 * 365 * DAY_S
    calibrated = GeneratorConfig(users=150, seed=8, shift_at_ts=shift_ts)
    termed = GeneratorConfig(users=150, seed=8, shift_at_ts=shift_ts, shift_term_risk=2.0)
    plain, risky = list(generate(calibrated)), list(generate(termed))
    assert [e for e in plain if e.ts < shift_ts] == [e for e in risky if e.ts < shift_ts]

    def delinquent_by_term(stream: list[ClickEvent]) -> dict[int, float]:
        seen: dict[int, list[bool]] = defaultdict(list)
        for o in loan_outcomes(stream, as_of=termed.end_ts).values():
            if o.post_ts >= shift_ts and o.delinquent is not None:
                seen[round((o.due_ts - o.post_ts) / DAY_S)].append(o.delinquent)
        return {term: sum(flags) / len(flags) for term, flags in seen.items()}

    before, after = delinquent_by_term(plain), delinquent_by_term(risky)
    assert after[90] > after[30] + 0.15  # log(90 / 30) * 2 = 2.2 more risk
    assert abs(before[90] - before[30]) < 0.1  # the calibrated shift: term carries no risk


@pytest.mark.parametrize(
    "bad",
    [
        {"users": 0},
        {"users": 1, "horizon_days": 0},
        {"users": 1, "seed": -1},
        {"users": 1, "shift_at_ts": 1.0},
        {"users": 1, "start_ts": 10.0},
        {"users": 1, "shift_term_risk": 1.0},
    ],
)
def test_config_rejects_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)
