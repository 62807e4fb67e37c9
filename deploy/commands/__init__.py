"""The ``deepcredit`` subcommands, one module per command group, each with ``add(sub)``.

A module imports only argparse and light settings at the top; what a command needs (torch,
Bytewax, the Kafka client) it imports when it runs, so ``deepcredit --help`` stays fast.
"""

__all__: list[str] = []
