"""The synthetic clickstream benchmark (``deepcredit generate``), calibrated to the paper."""

__all__: list[str] = []
