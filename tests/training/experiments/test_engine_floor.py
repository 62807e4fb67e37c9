"""``deepcredit bench engine``: every variant runs every item through Bytewax, and the allowance
is the goals' algebra."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deploy.cli import main
from training.experiments.engine_floor import VARIANTS, _flow, overhead_allowance, run_engine_floor


@given(st.floats(0.1, 100.0))
def test_at_the_allowance_both_goals_hold_with_the_step_the_second_allows(k: float) -> None:
    e = overhead_allowance(k)
    s = (1 - 0.6) / 0.6 * (k + e)  # the slowest step the pass-through goal allows
    assert (k + s) / (k + e + s) == pytest.approx(0.8)
    assert (k + e) / (k + e + s) == pytest.approx(0.6)
    # Above it, no step meets both: the plain-loop goal wants a slower step than the other allows.
    e2 = 1.01 * e
    s2 = (1 - 0.6) / 0.6 * (k + e2)
    assert (k + s2) / (k + e2 + s2) < 0.8


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_delivers_every_item(variant: str) -> None:
    from bytewax.testing import TestingSink, run_main

    items = [(f"user-{i % 7}", i) for i in range(500)]
    got: list = []
    run_main(_flow(variant, items, 64, TestingSink(got)))
    assert sorted(got, key=lambda x: x[1]) == items


def test_the_bench_writes_medians_and_the_allowance(tmp_path: Path) -> None:
    live = tmp_path / "live.json"
    live.write_text(json.dumps({"throughput": {"plain_loop_no_model": {
        "median_cpu_us_per_event": 7.0}}}))  # fmt: skip
    out = tmp_path / "engine.json"
    assert main(["bench", "engine", "--items", "2000", "--repeats", "2", "--live", str(live),
                 "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())
    assert set(result["us_per_item"]) == set(VARIANTS)
    assert all(len(runs) == 2 for runs in result["runs"].values())
    assert result["allowance_us"] == 3.5 and result["kafka_codec_us"] == 7.0
    assert result["command"].startswith("deepcredit bench engine")
    live.write_text("{}")
    assert main(["bench", "engine", "--items", "10", "--live", str(live), "--out", str(out)]) == 1
    with pytest.raises(ValueError, match="at least 1"):
        run_engine_floor(0, 1, 1)
