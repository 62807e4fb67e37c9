"""Streaming math: advance a user's TLSTM state by one event and score a loan post (numpy)."""

__all__: list[str] = []
