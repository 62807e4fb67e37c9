"""Training one model on several processes: torch's DistributedDataParallel over gloo (CPU).

``fit_distributed`` starts ``TrainConfig.processes`` workers (``torch.multiprocessing.spawn``;
each one torch thread unless ``TrainConfig.threads`` says more). Each maps the same sequences folder
read-only (``Sequences.open``: the pages are shared through the file cache, not copied),
builds the same initial model (same seed) and runs ``train.train_loop`` with its ``Shard``:

- every worker draws the same batch order (``step_batches``: rounds of one batch per worker,
  of similar histories, so no worker waits long for another) and takes its batch of each
  round; after each backward DDP averages the workers' gradients, so one optimizer step reads
  ``processes`` x ``batch_users`` users, and an epoch takes 1 / ``processes`` as many steps.
  The gradient of a step is the gradient of the mean of the workers' batch losses: the same
  update as one process taking those batches together (checked against that in
  tests/training/core/test_distributed.py). The learning rate is ``TrainConfig.lr`` as given
  (README, "Past one machine", gives the AUC per epoch it reaches against one process);
- only batches with a labelled post are drawn (a worker without a loss could not join the
  gradient's average); the epoch's last batches that do not fill a round are left out;
- validation is split among the workers and gathered, so each computes the same figures and
  they keep the same best epoch and stop together; the time budget is rank 0's clock.

Rank 0 writes the best weights, the optimizer's state and the history to a file in a private
temporary folder; ``fit_distributed`` loads them into a model of its own and returns a
``TrainResult`` as ``train.fit`` does. Rendezvous is a file in that folder; gloo's connections
use the loopback interface only. A worker that raises ends them all
(``torch.multiprocessing.ProcessRaisedException``, with its traceback).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from scorer.card import TargetMetrics
from training.core.config import TrainConfig
from training.core.dataset import Sequences, user_rows
from training.core.evaluation import per_target
from training.core.model import DeepCredit, ModelConfig, batch_to_tensors, set_reference
from training.core.train import (
    Shard,
    Split,
    TrainingDataError,
    TrainResult,
    batches,
    check_trainable,
    predict,
    train_loop,
)

__all__ = ["fit_distributed", "sequences_folder", "step_batches"]

log = logging.getLogger(__name__)

_RESULT = "result.pt"


def sequences_folder(seq: Sequences, scratch: Path) -> Path:
    """The folder ``seq``'s arrays are all mapped from (``Sequences.open``), or, for sequences
    held in memory even in part (a field replaced), a copy of them written to ``scratch``
    (``Sequences.save_dir``)."""
    folders = set()
    for f in fields(seq):
        name = getattr(getattr(getattr(seq, f.name), "base", None), "filename", None)
        folders.add(None if name is None or Path(name).name != f"{f.name}.npy"
                    else Path(name).parent)  # fmt: skip
    if len(folders) == 1 and None not in folders:
        return folders.pop()
    seq.save_dir(scratch)
    return scratch


def step_batches(
    seq: Sequences, users: np.ndarray, size: int, processes: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """One epoch's batches of ``size`` users for ``processes`` workers, in rounds of
    ``processes`` batches, one per worker and step: ``train.batches``' groups (users ordered by
    history length) without those whose users have no labelled post (no loss, and in a
    distributed step every worker must have one), consecutive groups in a round, the rounds in
    a random order. A step waits for its slowest worker, and a batch's cost grows with its
    histories' length, so a round of similar batches keeps the workers busy; batches dealt at
    random would make every step as slow as the longer of two random batches. A last round that
    is not whole is left out."""
    labelled = np.isfinite(seq.labels).any(axis=1)
    groups = [g for g in batches(seq, users, size, rng=None)
              if labelled[user_rows(seq.loan_offsets, g)].any()]  # fmt: skip
    whole = len(groups) - len(groups) % processes
    rounds = [groups[i : i + processes] for i in range(0, whole, processes)]
    rng.shuffle(rounds)  # type: ignore[arg-type]
    return [g for r in rounds for g in r]


def fit_distributed(
    seq: Sequences,
    users: Split,
    model_config: ModelConfig,
    config: TrainConfig,
    *,
    strict: bool = False,
    progress: bool = True,
) -> TrainResult:
    """``train.fit`` on ``config.processes`` processes (the module says how). Raises
    TrainingDataError as ``fit`` does and when the training users do not make one batch per
    process, ValueError for fewer than 2 processes, and ProcessRaisedException when a worker
    fails."""
    processes = config.processes
    if processes < 2:
        raise ValueError(f"a distributed training needs at least 2 processes, not {processes}")
    for warning in check_trainable(seq, users, strict=strict):
        log.warning("%s", warning)
        if progress:
            print(f"warning: {warning}", flush=True)
    rounds = len(step_batches(seq, users.train, config.batch_users, processes,
                              np.random.default_rng(config.seed))) // processes  # fmt: skip
    if rounds == 0:
        raise TrainingDataError(f"{len(users.train)} training users make fewer than {processes} "
                                f"batches of {config.batch_users} with a labelled post: too few "
                                f"for {processes} processes (train on one, or on smaller "
                                "--batch-users)")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="deepcredit-ddp-") as tmp:
        work = Path(tmp)
        folder = sequences_folder(seq, work / "sequences")
        torch.multiprocessing.spawn(
            _worker, nprocs=processes, join=True,
            args=(processes, str(work), str(folder), users, model_config, config, progress),
        )  # fmt: skip
        saved = torch.load(work / _RESULT, weights_only=False)
    model = DeepCredit(model_config)
    model.load_state_dict(saved["model"])
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    optimizer.load_state_dict(saved["optimizer"])
    return TrainResult(model, optimizer, saved["best_epoch"], saved["epochs_run"],
                       saved["seconds"], saved["history"])  # fmt: skip


def _worker(
    rank: int, size: int, work: str, folder: str, users: Split, model_config: ModelConfig,
    config: TrainConfig, progress: bool,
) -> None:  # fmt: skip
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"  # loopback only
    torch.set_num_threads(config.threads)
    dist.init_process_group("gloo", init_method=f"file://{work}/rendezvous", rank=rank,
                            world_size=size)  # fmt: skip
    try:
        seq = Sequences.open(Path(folder))
        torch.manual_seed(config.seed)
        model = DeepCredit(model_config)
        set_reference(model, seq, users.train)
        # A variant that switches a TLSTM off leaves its weights out of every graph.
        unused = not (model_config.use_activity and model_config.use_repay)
        ddp = DistributedDataParallel(model, find_unused_parameters=unused)
        shard = Shard(rank, size, _agree)
        result = train_loop(
            ddp,
            config,
            batches=lambda rng: step_batches(seq, users.train, config.batch_users, size, rng),
            loss_of=lambda group: ddp(batch_to_tensors(seq.batch(group)))[1],
            validate=lambda: _validate(model, seq, users.validation, shard),
            progress=progress and rank == 0,
            shard=shard,
        )  # fmt: skip
        if rank == 0:
            torch.save({"model": model.state_dict(), "optimizer": result.optimizer.state_dict(),
                        "best_epoch": result.best_epoch, "epochs_run": result.epochs_run,
                        "seconds": result.seconds, "history": result.history},
                       Path(work) / _RESULT)  # fmt: skip
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _agree(flag: bool) -> bool:
    answer = [flag]
    dist.broadcast_object_list(answer, src=0)
    return bool(answer[0])


def _validate(
    model: DeepCredit, seq: Sequences, users: np.ndarray, shard: Shard
) -> dict[str, TargetMetrics]:
    """The validation figures of all ``users``, each worker predicting its share of them."""
    mine = predict(model, seq, users[shard.rank :: shard.size])
    parts: list[tuple[np.ndarray, np.ndarray] | None] = [None] * shard.size
    dist.all_gather_object(parts, mine)
    y = np.concatenate([part[0] for part in parts if part is not None])
    p = np.concatenate([part[1] for part in parts if part is not None])
    return per_target(y, p)
