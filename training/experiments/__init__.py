"""Scenarios and benchmarks that write ``results/``: Table 1 (``ablation``), the drift
measurements and the end-to-end loop, the step, rebuild and live benchmarks."""

__all__: list[str] = []
