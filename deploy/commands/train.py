"""``deepcredit train``, ``deepcredit evaluate`` and ``deepcredit tune``: fit a model, measure a
saved one, choose its hyperparameters on validation users."""

from __future__ import annotations

import argparse
from pathlib import Path

from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.models import MODELS_DIR
from deploy.commands.options import Option, add_options, from_args
from training.core.config import ModelConfig, TrainConfig, layer_sizes

__all__ = ["add"]


def add(sub: Subparsers) -> None:
    _add_train(sub)
    _add_evaluate(sub)
    _add_tune(sub)


def _add_train(sub: Subparsers) -> None:
    from training.core.variants import VARIANTS

    p = command(
        sub, "train",
        "train the DeepCredit model on an event log (80/20 split by user, early stopping on "
        "validation users carved from the training users) and save a versioned artifact",
        _train,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--out-dir", type=Path, default=MODELS_DIR,
                   help="where model folders go (default %(default)s)")  # fmt: skip
    p.add_argument(
        "--variant",
        choices=sorted(VARIANTS),
        default="deepcredit",
        help="model variant, a row of the paper's Table 1 (default %(default)s: H-TLSTM + CL)",
    )
    add_options(p, ModelConfig, Option("hidden_size", "--hidden"),
                Option("head_sizes", "--heads", type=layer_sizes, metavar="W-W-..."))  # fmt: skip
    add_options(p, TrainConfig, "epochs", "patience", "stop_on", "batch_users", "lr", "seed",
                "max_minutes", "threads", "processes")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")


def reliability_text(card) -> str:  # card: scorer.card.ModelCard
    """The card's reliability tables as text: one line per band, mean predicted against the
    observed rate."""
    lines = []
    for part, targets in (card.reliability or {}).items():
        for target, bands in targets.items():
            lines.append(f"reliability, {part} users, {target}: band  p range  n  "
                         "mean predicted  observed")  # fmt: skip
            lines += [f"  {b['band']:>2}  {b['p_low']:.3f}-{b['p_high']:.3f}  {b['n']:>7,}  "
                      f"{b['mean_predicted']:.4f}  {b['bad_rate']:.4f}" for b in bands]  # fmt: skip
    return "\n".join(lines)


def _train(args: argparse.Namespace) -> int:
    from training.core.pipeline import train_model
    from training.core.train import TrainingDataError
    from training.core.variants import VARIANTS

    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    model_config = from_args(ModelConfig, args, **VARIANTS[args.variant])
    try:
        train_config = from_args(TrainConfig, args)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    try:
        card = train_model(args.events, args.out_dir, model_config, train_config, strict=True,
                           progress=not args.quiet)  # fmt: skip
    except TrainingDataError as exc:
        raise CliError(f"cannot train on {args.events}: {exc}") from None
    print(card.describe())
    print(reliability_text(card))
    print(f"saved {args.out_dir / card.version}")
    return 0


def _add_evaluate(sub: Subparsers) -> None:
    p = command(sub, "evaluate",
                "AUC, KS and Brier of a saved model on the held-out (test) users of an event log",
                _evaluate)  # fmt: skip
    p.add_argument("--model", required=True, type=Path, help="a model folder made by 'train'")
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")


def _evaluate(args: argparse.Namespace) -> int:
    from training.core.pipeline import evaluate_model

    for path in (args.model, args.events):
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
    try:
        card, metrics, same_data = evaluate_model(args.model, args.events)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    print(f"model {card.version} on {args.events} (test users)")
    if not same_data:
        print("  note: not the event log this model was trained on")
    for target, m in metrics.items():
        print(f"  {target:<10} AUC {m.auc:.4f}  KS {m.ks:.4f}  Brier {m.brier:.4f}  "
              f"(n={m.n:,}, positives={m.positives:,})")  # fmt: skip
    return 0


def _add_tune(sub: Subparsers) -> None:
    p = command(
        sub, "tune",
        "choose the hidden size, head sizes, learning rate and batch size by an Optuna search "
        "on the validation users only (the test users are not scored), and write every trial "
        "and the best values as JSON; train the chosen model with 'deepcredit train'",
        _tune,
    )  # fmt: skip
    p.add_argument("--events", required=True, type=Path, help="event log (.jsonl or .jsonl.gz)")
    p.add_argument("--trials", type=int, default=20, help="most trials (default %(default)s)")
    p.add_argument("--search-minutes", type=float,
                   help="start no trial after this many minutes (default: no limit)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/tune.json"),
                   help="JSON result (default %(default)s)")  # fmt: skip
    p.add_argument("--journal", type=Path,
                   help="keep the study in this Optuna journal file: tune commands given the "
                        "same file, each with its own --sampler-seed, search together (one "
                        "per core); each writes every trial of the study")  # fmt: skip
    p.add_argument("--sampler-seed", type=int,
                   help="seed of the search's sampler (default: --seed; needed with "
                        "--journal)")  # fmt: skip
    add_options(p, TrainConfig, "epochs", "patience", "stop_on", "seed", "max_minutes",
                "threads")  # fmt: skip
    p.add_argument("--quiet", action="store_true", help="no progress output")


def _tune(args: argparse.Namespace) -> int:
    import shlex

    from deepcredit.atomic import write_json
    from training.core.train import TrainingDataError
    from training.core.tune import tune
    from training.experiments.ablation import machine

    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    if args.trials < 1:
        raise CliError("--trials must be at least 1")
    if args.journal is not None and args.sampler_seed is None:
        raise CliError("--journal needs --sampler-seed, another for each tune command "
                       "sharing the journal: with one seed they would try the same points")
    train_config = from_args(TrainConfig, args)
    try:
        result = tune(args.events, ModelConfig(), train_config, trials=args.trials,
                      max_minutes=args.search_minutes,
                      seed=args.seed if args.sampler_seed is None else args.sampler_seed,
                      journal=args.journal, progress=not args.quiet)  # fmt: skip
    except (TrainingDataError, ValueError) as exc:
        raise CliError(f"cannot tune on {args.events}: {exc}") from None
    result |= {"command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    write_json(args.out, result)
    best = result["best"]
    print(f"best of {len(result['trials'])} trials: {best['value']:.4f} "
          f"({result['criterion']}), {best['params']}")  # fmt: skip
    print(f"written to {args.out}")
    return 0
