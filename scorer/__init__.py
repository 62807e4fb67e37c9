"""The model as served: advance a user's TLSTM state by one event and score a loan post (numpy,
the step's arithmetic compiled with numba).

The per-event plan (``steps``), the debt ledger, features, the TLSTM cell, the scorer (its
compiled step in ``fast``, the numpy step kept as the reference) and its lockstep rebuild,
the per-user state (``user_state``), the drift monitors that watch the scorer (``monitors``),
the model card (``card``), the model artifact as the scorer loads it and the model registry.
No torch here: the live scorer runs on numpy and numba. Imports only ``deepcredit``.
Importing the package loads nothing: the command line reads ``monitor_config`` without numpy.
"""

__all__: list[str] = []
