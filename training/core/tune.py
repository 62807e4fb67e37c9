"""Hyperparameters chosen on validation users only (``deepcredit tune``): an Optuna search.

Each trial trains the model on the training users of ``training.core.train.split`` and is
judged by the validation figure early stopping reads (``TrainConfig.stop_on``, the Brier skill
score by default) at its best epoch. The test users are never scored here: they are for the one
measurement of the model trained with the chosen values (``deepcredit train``).

The search: Optuna's TPE sampler (seeded, so a search can be repeated) and its median pruner,
which ends a trial whose validation figure after an epoch (``PRUNE_FROM_EPOCH`` or later) is
below the median of the earlier trials at that epoch. Searched (``SPACE``): the hidden size,
the head sizes, the learning rate and the users per batch. Not searched: dropout (the model
has none), and eq. 6's α and T, which belong to the paper-literal re-encode baseline and do
not exist in the streaming form (README, "The model in the streaming form").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import optuna

from training.core.config import ModelConfig, TrainConfig, layer_sizes
from training.core.eventlog import load_sequences
from training.core.train import fit, split

__all__ = ["HEAD_SIZES", "PRUNE_FROM_EPOCH", "SPACE", "configs_of", "point_of", "tune"]

log = logging.getLogger(__name__)

#: Head shapes by name (the paper's FCN is 256-128-64).
HEAD_SIZES: dict[str, tuple[int, ...]] = {
    name: layer_sizes(name) for name in ("64-32", "128-64", "256-128-64")
}

#: The first epoch after which the pruner may end a trial. The first epochs rank
#: configurations badly: a slow start (a large batch, a low learning rate) is not a worse end
#: (``results/tune-10k.json``: a search pruning from epoch 1 ended the defaults there, whose
#: validation figure is the best measured at epoch 7).
PRUNE_FROM_EPOCH = 4

#: What is searched: name -> (kind, values or bounds).
SPACE: dict[str, tuple[str, Any]] = {
    "hidden_size": ("choice", (8, 16, 32, 64)),
    "head_sizes": ("choice", tuple(HEAD_SIZES)),
    "lr": ("log", (3e-4, 3e-3)),
    "batch_users": ("choice", (16, 32, 64, 128)),
}


def _suggest(trial: optuna.Trial) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, (kind, domain) in SPACE.items():
        if kind == "choice":
            values[name] = trial.suggest_categorical(name, list(domain))
        else:
            values[name] = trial.suggest_float(name, *domain, log=True)
    return values


def point_of(model: ModelConfig, train: TrainConfig) -> dict[str, Any]:
    """The point of ``SPACE`` the configurations ``model`` and ``train`` are (``configs_of``
    inverted). Raises ValueError when one of them is outside ``SPACE``."""
    heads = "-".join(map(str, model.head_sizes))
    point = {"hidden_size": model.hidden_size, "head_sizes": heads, "lr": train.lr,
             "batch_users": train.batch_users}  # fmt: skip
    for name, (kind, domain) in SPACE.items():
        inside = (point[name] in domain if kind == "choice"
                  else domain[0] <= point[name] <= domain[1])  # fmt: skip
        if not inside:
            raise ValueError(f"{name} {point[name]} is outside the search space {domain}")
    return point


def configs_of(
    values: dict[str, Any], model: ModelConfig, train: TrainConfig
) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configurations of one point of ``SPACE`` over the base ones."""
    return (
        dataclasses.replace(model, hidden_size=int(values["hidden_size"]),
                            head_sizes=HEAD_SIZES[values["head_sizes"]]),
        dataclasses.replace(train, lr=float(values["lr"]),
                            batch_users=int(values["batch_users"])),
    )  # fmt: skip


def tune(
    events: Path,
    model: ModelConfig,
    train: TrainConfig,
    *,
    trials: int,
    max_minutes: float | None = None,
    seed: int = 0,
    journal: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Search ``SPACE`` for ``trials`` trials (fewer when ``max_minutes`` of search run out; a
    trial under way finishes) on the event log ``events``, the first trial of a new study at
    ``model`` and ``train`` themselves (``point_of``). Returns a JSON-ready dict: the best
    point and its configurations, every trial (values, state, validation figure per epoch,
    seconds), the criterion, the data and the split sizes.

    ``seed`` seeds the sampler; the trials train with ``train.seed``. ``journal``: an Optuna
    journal file that holds the study, so that several processes given the same file (and
    each its own ``seed``) search together, one trial each at a time; each returns every
    trial of the study so far, its own and the others'. ``trials`` counts this process's.

    Raises ValueError when no trial finished with a validation figure (a split whose
    validation users hold no measurable target), and ``training.core.train.TrainingDataError``
    on data that cannot train."""
    seq, data = load_sequences(events, progress=progress)
    parts = split(seq, train)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = None
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    study = optuna.create_study(
        study_name="deepcredit-tune",
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=PRUNE_FROM_EPOCH),
    )
    # A shared study is one search: the same data, split and training settings in every
    # process, or trials judged on different things would be ranked together.
    searched = {"data_sha256": data.sha256, "train_config": json.loads(json.dumps(train.to_dict()))}
    for name, value in searched.items():
        held = study.user_attrs.get(name)
        if held is None:
            study.set_user_attr(name, value)
        elif held != value:
            raise ValueError(f"the journal {journal} holds a search with another {name}: "
                             f"{held} (this one: {value}); give this search a journal of its "
                             "own")  # fmt: skip
    if not study.trials:
        # The first trial is the configuration the search starts from (the defaults of
        # 'deepcredit train'), so the chosen point is never one worse than it on validation.
        study.enqueue_trial(point_of(model, train))
    seconds: dict[int, float] = {}

    def objective(trial: optuna.Trial) -> float:
        m, t = configs_of(_suggest(trial), model, train)
        started = time.monotonic()

        def on_epoch(epoch: int, score: float) -> None:
            if math.isfinite(score):
                trial.report(score, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"epoch {epoch}: {score:.4f}")

        try:
            result = fit(seq, parts, m, t, progress=False, on_epoch=on_epoch)
        finally:
            seconds[trial.number] = round(time.monotonic() - started, 1)
            trial.set_user_attr("seconds", seconds[trial.number])
        best = [row[f"val_{t.stop_on}"] for row in result.history
                if row.get(f"val_{t.stop_on}") is not None]  # fmt: skip
        if not best:
            raise optuna.TrialPruned("no measurable validation target")
        return float(max(best))

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress:
            value = "-" if trial.value is None else f"{trial.value:.4f}"
            print(f"trial {trial.number}: {trial.state.name.lower()} {value}  {trial.params}  "
                  f"({seconds.get(trial.number, 0):.0f} s)", flush=True)  # fmt: skip

    study.optimize(objective, n_trials=trials,
                   timeout=None if max_minutes is None else 60 * max_minutes,
                   callbacks=[report])  # fmt: skip
    done = [t for t in study.trials if t.state is optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError("no trial finished with a validation figure: the validation users "
                         "hold no measurable target")  # fmt: skip
    best_model, best_train = configs_of(study.best_params, model, train)
    return {
        "criterion": f"validation {train.stop_on} at the best epoch (test users not scored)",
        "best": {"value": study.best_value, "trial": study.best_trial.number,
                 "params": study.best_params, "model_config": best_model.to_dict(),
                 "train_config": best_train.to_dict()},
        "trials": [{"number": t.number, "state": t.state.name.lower(), "value": t.value,
                    "params": t.params,
                    "validation_by_epoch": {int(k): v for k, v in t.intermediate_values.items()},
                    "seconds": t.user_attrs.get("seconds")} for t in study.trials],
        "space": {name: list(domain) for name, (_, domain) in SPACE.items()},
        "sampler": f"TPE (seed {seed}), median pruner from epoch {PRUNE_FROM_EPOCH}"
                   + (f", the study shared through {journal.name}" if journal else ""),
        "data": {"path": str(events), "sha256": data.sha256, "users": data.users},
        "split": {"train": len(parts.train), "validation": len(parts.validation),
                  "test": len(parts.test)},
    }  # fmt: skip
