"""Per-user scoring state and its msgspec serialisation."""

__all__: list[str] = []
