"""``deepcredit bench step`` measures something real: bigger states for bigger hidden sizes,
every way of stepping timed."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.cli import main
from scorer.artifact import load_scorer


def test_bench_step_writes_a_row_per_hidden_size_and_model(tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "step.json"
    args = ["bench", "step", "--hidden", "4", "8", "--users", "5", "--repeats", "1",
            "--model", str(model_dir)]  # fmt: skip
    assert main([*args, "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    trained = load_scorer(model_dir)
    assert [r["hidden_size"] for r in rows] == [4, 8, trained.hidden_size]
    assert "model" not in rows[0] and rows[2]["model"] == str(model_dir)
    small, big = rows[:2]
    # Six (h, c) rows of float32: 4 more units cost 6 * 4 * 4 = 96 bytes per user.
    assert big["state_bytes_empty"] - small["state_bytes_empty"] == 96
    for r in rows:
        for way in ("compiled", "numpy", "bookkeeping"):
            assert r[way]["us_per_post"] > 0 and r[way]["us_per_other_event"] > 0
        assert r["numpy_over_compiled"] > 0 and len(r["numpy_over_compiled_runs"]) == 1
        kernel = r["kernel_us"]
        assert list(kernel) == ["activity", "loan", "post", "post_with_reasons"]
        # A post runs two TLSTMs and the heads, its reasons the heads once more per group.
        assert 0 < kernel["activity"] < kernel["post"] < kernel["post_with_reasons"]
    assert all(r["state_bytes_median"] >= r["state_bytes_empty"] for r in rows)
