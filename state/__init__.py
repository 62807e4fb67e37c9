"""Per-user scoring state and its msgspec serialisation."""

from state.user_state import UserState, decode_state, encode_state

__all__ = ["UserState", "decode_state", "encode_state"]
