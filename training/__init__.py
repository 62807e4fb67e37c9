"""Offline work: the synthetic clickstream benchmark, datasets, the torch model and training."""

__all__: list[str] = []
