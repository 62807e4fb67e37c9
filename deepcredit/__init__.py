"""DeepCredit Stream: the event contract, the records we emit, and the ``deepcredit`` CLI."""

__all__ = ["__version__"]
__version__ = "0.1.0"
