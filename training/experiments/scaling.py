"""``deepcredit bench scaling``: training on 1 and on several processes side by side, and what
the measured costs project to a lender of 10 million users and a billion events a day.

**Training.** Arms on the same users, the same initial weights and batch order, each a whole
``fit`` (``training.core.distributed.fit_distributed`` for more than one process), one after
another in an order that rotates from repeat to repeat:

- ``p1``: one process, ``batch_users`` per step, ``lr``;
- ``pN`` for each N in ``processes``: N processes of ``batch_users`` each (a step reads N x
  ``batch_users`` users, an epoch takes 1/N of the steps), the same ``lr``;
- ``pN_scaled_lr``: the same with ``lr`` x sqrt(N), the usual rule for Adam when the batch
  grows N times;
- ``pN_apart``: N processes each training a model of its own on its share of the same
  batches, with no gradient exchange and no validation: the most N processes can do on this
  machine, so ``pN``'s distance from it is DDP's own cost.

Epoch seconds are each epoch's training and validation (the start of the processes is
reported apart), training seconds its training alone; the speed-up of an arm is the median,
over repeats and epochs, of p1's seconds over the arm's for the same repeat and epoch, for
both. The validation AUC after each epoch is
the first repeat's (a repeat trains the same model again).

**Projection** (``project``): arithmetic on measured costs, with its assumptions in the
result: per event of the live flow (``results/live.json``), per event of the compiled
rebuild (``results/rebuild.json``), bytes per user state (``results/live.json``), seconds per
user and epoch of training (this run). ``reproject`` (``deepcredit bench project``) makes it
again from newer live and rebuild results, with the training cost of the run it is given.
"""

from __future__ import annotations

import json
import math
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from training.core.config import ModelConfig, TrainConfig
from training.core.dataset import Sequences
from training.core.distributed import fit_distributed, sequences_folder, step_batches
from training.core.eventlog import load_sequences
from training.core.model import DeepCredit, batch_to_tensors
from training.core.train import fit, split
from training.experiments.config import ScalingBenchConfig

__all__ = ["Costs", "project", "reproject", "run_scaling_bench"]

DAY_S = 86_400.0


def run_scaling_bench(config: ScalingBenchConfig, *, progress: bool = True) -> dict:
    """The training arms of the module, repeated; then the projection from this run's training
    cost and the committed live and rebuild results (``config.results``). Returns the result
    JSON as a dict. Raises FileNotFoundError for a missing events file or results file, and
    KeyError for a results file without a figure the projection reads, before training."""
    Costs.from_results(config.results, 0.0)  # the projection's inputs, read before training
    seq, data = load_sequences(config.events, progress=progress)
    with tempfile.TemporaryDirectory(prefix="deepcredit-scaling-") as tmp:
        if 0 < config.users < seq.users:  # mapped once, so no arm copies the subset again
            seq.subset(np.arange(config.users)).save_dir(Path(tmp))
            seq = Sequences.open(Path(tmp))
        arms = _arms(config)
        parts = split(seq, TrainConfig(seed=config.seed))
        model_config = ModelConfig(hidden_size=config.hidden_size)
        seconds: dict[str, list[list[float]]] = {name: [] for name in arms}
        trained: dict[str, list[list[float]]] = {name: [] for name in arms}
        wall: dict[str, list[float]] = {name: [] for name in arms}
        val_auc: dict[str, list[dict]] = {}
        names = list(arms)
        for repeat in range(config.repeats):
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                processes, lr = arms[name]
                tc = TrainConfig(epochs=config.epochs, patience=config.epochs,
                                 batch_users=config.batch_users, lr=lr, seed=config.seed,
                                 threads=1, processes=processes)  # fmt: skip
                started = time.perf_counter()
                if name.endswith(_APART):
                    epochs = _apart(seq, parts.train, model_config, tc)
                    wall[name].append(time.perf_counter() - started)
                    seconds[name].append(epochs)
                    trained[name].append(epochs)
                    val_auc.setdefault(name, [])
                    continue
                if processes == 1:
                    result = fit(seq, parts, model_config, tc, progress=False)
                else:
                    result = fit_distributed(seq, parts, model_config, tc, progress=False)
                wall[name].append(time.perf_counter() - started)
                cumulative = [row["seconds"] for row in result.history]
                seconds[name].append([float(x) for x in np.diff([0.0, *cumulative])])
                trained[name].append([row["train_seconds"] for row in result.history])
                val_auc.setdefault(name, [{k: row[k] for k in row if k.startswith("val_auc")}
                                          for row in result.history])  # fmt: skip
                if progress:
                    print(f"repeat {repeat + 1}, {name}: {wall[name][-1]:.1f} s, epochs "
                          f"{[round(s, 1) for s in seconds[name][-1]]} s", flush=True)
        train_users = len(parts.train)
    speedup = {k: v for k, v in _speedup(seconds).items() if not k.endswith(_APART)}
    train_speedup = _speedup(trained)  # fmt: skip
    out_arms = {}
    for name, (processes, lr) in arms.items():
        flat = [s for run in seconds[name] for s in run]
        median = statistics.median(flat)
        out_arms[name] = {
            "processes": processes, "lr": lr, "epoch_seconds": [[round(s, 2) for s in run]
                                                                for run in seconds[name]],
            "median_epoch_seconds": round(median, 2),
            "train_seconds": [[round(s, 2) for s in run] for run in trained[name]],
            "epochs_per_hour": round(3600.0 / median, 1),
            "start_seconds": round(statistics.median(
                w - sum(run) for w, run in zip(wall[name], seconds[name], strict=True)), 1),
            "val_auc": val_auc[name],
        }  # fmt: skip
    per_user_epoch = out_arms["p1"]["median_epoch_seconds"] / train_users
    costs = Costs.from_results(config.results, per_user_epoch)
    return {
        "data": {"events": str(config.events), "sha256": data.sha256, "users": seq.users,
                 "train_users": train_users, "validation_users": len(parts.validation)},
        "arms": out_arms,
        "speedup_over_p1": speedup,
        "training_speedup_over_p1": train_speedup,
        "projection": project(costs),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(config).items()},
    }  # fmt: skip


def _speedup(seconds: dict[str, list[list[float]]]) -> dict[str, float]:
    """Per arm, the median over repeats and epochs of p1's seconds over the arm's."""
    return {name: round(statistics.median(
                a / b for r1, rn in zip(seconds["p1"], runs, strict=True)
                for a, b in zip(r1, rn, strict=True)), 2)
            for name, runs in seconds.items() if name != "p1"}  # fmt: skip


_APART = "_apart"


def _arms(config: ScalingBenchConfig) -> dict[str, tuple[int, float]]:
    arms = {"p1": (1, config.lr)}
    for n in sorted(set(config.processes) - {1}):
        arms[f"p{n}"] = (n, config.lr)
        arms[f"p{n}_scaled_lr"] = (n, config.lr * math.sqrt(n))
        arms[f"p{n}{_APART}"] = (n, config.lr)
    return arms


def _apart(
    seq: Sequences, users: np.ndarray, model_config: ModelConfig, config: TrainConfig
) -> list[float]:
    """The ``pN_apart`` arm: ``config.processes`` processes each training a model of its own on
    its share of the same batches (``distributed.step_batches``), with no gradient exchange and
    no validation: the most N processes can do on this machine. Each epoch's seconds are the
    slowest process's."""
    with tempfile.TemporaryDirectory(prefix="deepcredit-apart-") as tmp:
        folder = sequences_folder(seq, Path(tmp) / "sequences")
        torch.multiprocessing.spawn(_apart_worker, nprocs=config.processes, join=True,
                                    args=(config.processes, str(folder), users, model_config,
                                          config, tmp))  # fmt: skip
        runs = [json.loads((Path(tmp) / f"{r}.json").read_text())
                for r in range(config.processes)]  # fmt: skip
    return [max(epoch) for epoch in zip(*runs, strict=True)]


def _apart_worker(
    rank: int, size: int, folder: str, users: np.ndarray, model_config: ModelConfig,
    config: TrainConfig, out: str,
) -> None:  # fmt: skip
    torch.set_num_threads(config.threads)
    seq = Sequences.open(Path(folder))
    torch.manual_seed(config.seed)
    model = DeepCredit(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr,
                                  weight_decay=config.weight_decay)  # fmt: skip
    rng = np.random.default_rng(config.seed)
    epochs = []
    for _ in range(config.epochs):
        started = time.perf_counter()
        for group in step_batches(seq, users, config.batch_users, size, rng)[rank::size]:
            loss = model(batch_to_tensors(seq.batch(group)))[1]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
        epochs.append(time.perf_counter() - started)
    (Path(out) / f"{rank}.json").write_text(json.dumps(epochs))


@dataclass(frozen=True)
class Costs:
    """Measured costs, each with where it comes from."""

    flow_events_per_s: float  # the live flow with the model, one process (bench live)
    rebuild_events_per_s: float  # the compiled rebuild, one core (bench rebuild)
    state_bytes_per_user: float  # median encoded user state (bench live)
    train_seconds_per_user_epoch: float  # one process, training and validation (this run)
    sources: dict[str, str]

    @classmethod
    def from_results(cls, results: Path, train_seconds_per_user_epoch: float) -> Costs:
        """The live and rebuild costs from ``results``/live.json and rebuild.json."""
        live = json.loads((Path(results) / "live.json").read_text())
        rebuild = json.loads((Path(results) / "rebuild.json").read_text())
        return cls(
            flow_events_per_s=live["throughput"]["model"]["median_events_per_s"],
            rebuild_events_per_s=rebuild["events_per_s"]["compiled"],
            state_bytes_per_user=live["state_bytes_per_user"]["median"],
            train_seconds_per_user_epoch=train_seconds_per_user_epoch,
            sources={"flow": live["command"], "rebuild": rebuild["command"],
                     "state_bytes": live["command"]},
        )


def reproject(scaling: dict, results: Path) -> dict:
    """``scaling`` (a result of ``run_scaling_bench``) with its projection made again from the
    live and rebuild costs now in ``results`` and the run's own training cost (p1's median
    epoch over its training users): after ``deepcredit bench live`` or ``bench rebuild`` ran
    again, without training again. Raises KeyError for a result without p1 or its users, and
    for results without a figure the projection reads; FileNotFoundError for a missing one."""
    per_user_epoch = scaling["arms"]["p1"]["median_epoch_seconds"] / scaling["data"]["train_users"]
    return scaling | {"projection": project(Costs.from_results(results, per_user_epoch))}


def project(
    costs: Costs,
    *,
    users: float = 10e6,
    events_per_day: float = 1e9,
    peak_over_mean: float = 3.0,
    history_days: float = 30.0,
    epochs: int = 10,
) -> dict:
    """What ``costs`` make of ``users`` users and ``events_per_day``: the live flow's processes
    at ``peak_over_mean`` times the day's mean rate, the state's bytes, a rebuild of
    ``history_days`` days of events (core-hours, and hours on the flow's processes, each
    rebuilding its own partitions), a training of ``epochs`` epochs over every user
    (core-hours). Pure arithmetic.

    >>> c = Costs(10_000, 100_000, 1_000, 0.01, {})
    >>> p = project(c, users=1e6, events_per_day=8.64e8, peak_over_mean=2, history_days=1)
    >>> p["live"]["processes_at_peak"], p["state"]["gib"] > 0.9, p["rebuild"]["core_hours"]
    (2, True, 2.4)
    """
    mean_rate = events_per_day / DAY_S
    peak = mean_rate * peak_over_mean
    processes = max(1, math.ceil(peak / costs.flow_events_per_s))
    history = events_per_day * history_days
    rebuild_core_h = history / costs.rebuild_events_per_s / 3600.0
    train_core_h = users * epochs * costs.train_seconds_per_user_epoch / 3600.0
    return {
        "assumptions": {"users": users, "events_per_day": events_per_day,
                        "peak_over_mean": peak_over_mean, "history_days": history_days,
                        "epochs": epochs},
        "measured": {"flow_events_per_s_per_process": costs.flow_events_per_s,
                     "rebuild_events_per_s_per_core": costs.rebuild_events_per_s,
                     "state_bytes_per_user": costs.state_bytes_per_user,
                     "train_seconds_per_user_epoch": costs.train_seconds_per_user_epoch,
                     "sources": costs.sources},
        "live": {"mean_events_per_s": round(mean_rate, 1), "peak_events_per_s": round(peak, 1),
                 "processes_at_peak": processes},
        "state": {"gib": round(users * costs.state_bytes_per_user / 2**30, 2)},
        "rebuild": {"events": history, "core_hours": round(rebuild_core_h, 1),
                    "hours_on_flow_processes": round(rebuild_core_h / processes, 2)},
        "training": {"core_hours": round(train_core_h, 1)},
    }
