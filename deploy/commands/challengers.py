"""``deepcredit challengers uci|events|cost``: the seed papers' own systems as challengers, their
published tables reproduced on real data, on the benchmark's event log beside Table 1's
baselines, and what each would cost in the stream; all write their rows into one results file
(``training.challengers.results``)."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from deploy.commands.common import CliError, Subparsers, command
from deploy.commands.options import Option, add_options, from_args
from training.challengers.config import (
    MODELS,
    PROTOCOLS_001,
    ActganConfig,
    BiLstmConfig,
    CnnLstmConfig,
    EventFormConfig,
    HuihenConfig,
    Paper001Config,
    Paper002Config,
    Paper003Config,
    Paper004Config,
    ResNetLstmConfig,
)

if TYPE_CHECKING:
    from training.challengers.results import Figure
    from training.challengers.uci import UciTable

__all__ = ["add"]

_UCI = Path("../shared/data/uci-credit-card/UCI_Credit_Card.csv")
_PAPERS = ("001", "003", "004")  # the papers whose systems run on UCI's table
_EVENT_PAPERS = ("001", "002", "003", "004")  # the papers whose systems read an event log
#: Paper 004's BiLSTM settings on the ``events`` command line (``--bilstm-<field>``, parsed into
#: ``bilstm_<field>``, apart from HUIHEN's options of the same field names).
_BILSTM_OPTIONS = ("hidden", "epochs", "batch", "lr", "patience")
_COST_PAPERS = ("001", "002", "003", "004")
#: Paper 001's CNN-LSTM settings on the command line: field → flag (parsed into
#: ``cnnlstm_<field>``, apart from the BiLSTM's options of the same field names).
_CNNLSTM_OPTIONS = {"epochs": "--cnnlstm-epochs", "patience": "--cnnlstm-patience",
                    "plateau": "--cnnlstm-plateau", "batch": "--cnnlstm-batch",
                    "lr": "--cnnlstm-lr"}  # fmt: skip
#: Paper 003's ACTGAN and ResNet-LSTM settings on the command line: field → flag (parsed into
#: ``actgan_<field>`` and ``resnetlstm_<field>``).
_ACTGAN_OPTIONS = {"epochs": "--gan-epochs", "batch": "--gan-batch",
                   "mixture_rows": "--gan-mixture-rows", "ratio": "--gan-ratio"}  # fmt: skip
_RESNETLSTM_OPTIONS = {"epochs": "--resnetlstm-epochs", "patience": "--resnetlstm-patience",
                       "batch": "--resnetlstm-batch", "lr": "--resnetlstm-lr"}  # fmt: skip


def add(sub: Subparsers) -> None:
    group = sub.add_parser(
        "challengers",
        help="the seed papers' systems as challengers (writes results/challengers.json)",
        description="The seed papers' own systems, built as their papers describe, on the same "
        "data and judged the same way; every row written with the command that produced it.",
    )
    group_sub = group.add_subparsers(title="parts", metavar="PART")
    p = command(
        group_sub, "uci",
        "a paper's system and its benchmark classifiers on the UCI credit-card table with the "
        "paper's protocol (004: five folds, out-of-fold predictions; 001: a 70/15/15 split, "
        "and 004's five folds; 003: a 70/30 split, ACTGAN oversampling of the training "
        "part), its tables with our numbers beside the paper's, bootstrap intervals and fold "
        "spread",
        _uci,
    )  # fmt: skip
    p.add_argument("--paper", required=True, choices=_PAPERS, help="the seed paper")
    p.add_argument("--table", type=Path, default=_UCI,
                   help="the UCI table (CSV: ID, X1..X23, Y; default %(default)s)")  # fmt: skip
    p.add_argument("--models", nargs="+", choices=list(MODELS), metavar="MODEL",
                   help=f"004: only these models, of: {', '.join(MODELS)}")  # fmt: skip
    add_options(p, Paper004Config, "folds", "bootstrap", "level", "seed")
    add_options(p, BiLstmConfig, Option("hidden", "--bilstm-hidden"),
                Option("epochs", "--bilstm-epochs"), Option("batch", "--bilstm-batch"),
                Option("lr", "--bilstm-lr"), Option("patience", "--bilstm-patience"),
                Option("threads", "--torch-threads"))  # fmt: skip
    add_options(p, Paper001Config, Option("protocols", choices=PROTOCOLS_001), "trials", "trees")
    add_options(p, Paper003Config, "draws", "focal_alpha", "focal_gamma")
    _network_options(p)
    p.add_argument("--cache", type=Path,
                   help="folder of out-of-fold predictions: a model found there (same data, "
                        "folds, seed and settings) is read, not trained; one trained is "
                        "written there")  # fmt: skip
    p.add_argument("--only-folds", type=int, nargs="+", metavar="K",
                   help="with --fit-only: only these folds (1-based; 001: of the folds "
                        "protocol)")  # fmt: skip
    p.add_argument("--fit-only", action="store_true",
                   help="train the models into --cache and stop (to fit models in separate "
                        "processes, then table them together)")  # fmt: skip
    _out(p)

    p = command(
        group_sub, "events",
        "a paper's system on an event log (001: the CNN-LSTM ensemble; 002: HUIHEN; 003: "
        "ACTGAN + ResNet-LSTM + focal XGBoost; 004: the BiLSTM) with Table 1's user split, "
        "posts and labels, one fit per target, beside Table 1's gradient-boosted trees and "
        "logistic regression on the same test posts: AUC, KS, Brier, user-bootstrap "
        "intervals of the differences",
        _events,
    )  # fmt: skip
    p.add_argument("--paper", required=True, choices=_EVENT_PAPERS, help="the seed paper")
    p.add_argument("--events", type=Path, required=True,
                   help="event log (JSON lines, optionally gzip): 'deepcredit "
                        "generate'")  # fmt: skip
    p.add_argument("--statements", action="store_true",
                   help="the events are a statement table's ('deepcredit statements'): judge "
                        "each test user's September bill only, whose delinquency label is Y, "
                        "as 'deepcredit uci' does; rows under data 'uci'")  # fmt: skip
    add_options(p, Paper002Config, "bootstrap", "level")
    add_options(p, HuihenConfig,
                Option("max_minutes", help="training time budget of each network fit, "
                                           "minutes, checked after each epoch (002: "
                                           "pre-training included; default: none)"),
                Option("epochs", help="002: most passes over the training posts"),
                Option("patience", help="002: epochs without a lower validation loss before "
                                        "stopping"),
                Option("batch", help="002: posts per gradient step"),
                Option("lr", help="002: Adam learning rate (paper: 0.001)"),
                "pretrain_epochs", "sessions", "behaviours", "min_behaviours",
                Option("threads", "--torch-threads"), "seed")  # fmt: skip
    add_options(p, EventFormConfig, "steps", "flat_steps", "train_posts")
    add_options(p, BiLstmConfig, *(Option(name, f"--bilstm-{name}", dest=f"bilstm_{name}")
                                   for name in _BILSTM_OPTIONS))  # fmt: skip
    add_options(p, Paper001Config, "trials", "trees", "forest_rows")
    add_options(p, Paper003Config, "focal_alpha", "focal_gamma")
    _network_options(p)
    p.add_argument("--cache", type=Path,
                   help="folder of the baselines' predictions: read when fitted before on the "
                        "same events with the same seed, written when fitted here")  # fmt: skip
    p.add_argument("--predictions", type=Path, metavar="DIR",
                   help="also write every model's test predictions as prediction files "
                        "DIR/<paper>-<model>.jsonl.gz (and gbdt, lr), for 'deepcredit report "
                        "build'")  # fmt: skip
    _out(p)

    p = command(
        group_sub, "cost",
        "what a post would cost in the stream re-encoding the user's history of 50, 500 and "
        "5,000 events (004's BiLSTM, 001's CNN-LSTM, 002's HUIHEN, 003's ResNet-LSTM and "
        "focal XGBoost; 001's and 002's streaming forms too), beside the "
        "live scorer's incremental step (the bench of 'deepcredit bench step'), paired "
        "repeats",
        _cost,
    )  # fmt: skip
    p.add_argument("--paper", required=True, choices=_COST_PAPERS, help="the seed paper")
    p.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="paired repeats, the median is reported (default %(default)s)",
    )
    _out(p)


def _network_options(p: argparse.ArgumentParser) -> None:
    """Paper 001's CNN-LSTM and paper 003's ACTGAN and ResNet-LSTM settings, prefixed."""
    for cls, flags, prefix in ((CnnLstmConfig, _CNNLSTM_OPTIONS, "cnnlstm"),
                               (ActganConfig, _ACTGAN_OPTIONS, "actgan"),
                               (ResNetLstmConfig, _RESNETLSTM_OPTIONS, "resnetlstm")):  # fmt: skip
        add_options(p, cls, *(Option(name, flag, dest=f"{prefix}_{name}")
                              for name, flag in flags.items()))  # fmt: skip


def _out(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=Path, default=Path("results/challengers.json"),
                   help="results file; rows of other papers and tables are kept "
                        "(default %(default)s)")  # fmt: skip


def _command(args: argparse.Namespace) -> str:
    return "deepcredit " + shlex.join(args.argv)


def _uci(args: argparse.Namespace) -> int:
    import hashlib

    import numpy as np

    from training.challengers.paper004 import cross_validate, paper004_rows
    from training.challengers.results import merge_into
    from training.challengers.uci import UciError, read_uci

    if not args.table.is_file():
        raise CliError(f"no such file: {args.table} (the UCI table: ../shared/data/"
                       "uci-credit-card/, or tests/data/uci-first-300.csv)")  # fmt: skip
    try:
        table = read_uci(args.table)
    except UciError as exc:
        raise CliError(str(exc)) from None
    started = time.perf_counter()
    say = lambda line: print(line, flush=True)  # noqa: E731
    if args.fit_only and args.cache is None:
        raise CliError("--fit-only needs --cache")
    if args.only_folds and not args.fit_only:
        raise CliError("--only-folds goes with --fit-only (the tables need every fold)")
    only = None if not args.only_folds else {k - 1 for k in args.only_folds}
    data = {"table": str(args.table), "clients": len(table), "defaults": int(table.y.sum()),
            "default_rate": round(float(np.mean(table.y)), 4),
            "sha256": hashlib.sha256(args.table.read_bytes()).hexdigest()}  # fmt: skip
    if args.paper == "001":
        return _uci001(args, table, data, only, started, say)
    if args.paper == "003":
        return _uci003(args, table, data, started, say)
    bilstm = from_args(BiLstmConfig, args, seed=args.seed)
    cfg = from_args(Paper004Config, args, bilstm=bilstm)
    cv = cross_validate(table, cfg, args.models, progress=say, cache=args.cache, only_folds=only)
    if args.fit_only:
        print(f"out-of-fold predictions in {args.cache}")
        return 0
    rows = paper004_rows(table, cv, cfg, _command(args), progress=say)
    run = _run(args, f"{args.paper}/uci/tables", cfg, data, started,
               notes=[] if args.cache is None else [
                  f"fits read from or written to {args.cache} (per model and fold, by "
                  "'deepcredit challengers uci --paper 004 --models M --cache DIR --fit-only "
                  "[--only-folds K]'); each fold's fit time and epochs are in the table3 "
                  "rows' detail.fit"])  # fmt: skip
    merge_into(args.out, rows, run)
    print(_table3(rows))
    print(f"written to {args.out}")
    return 0


def _events(args: argparse.Namespace) -> int:
    from training.core.eventlog import load_sequences
    from training.core.train import split
    from training.experiments.config import AblationConfig

    if not args.events.is_file():
        raise CliError(f"no such events file: {args.events}")
    if args.statements and args.paper != "002":
        raise CliError(f"--statements is paper 002's: paper {args.paper}'s system reads "
                       f"UCI's table ('deepcredit challengers uci --paper {args.paper}')")
    started = time.perf_counter()
    say = lambda line: print(line, flush=True)  # noqa: E731
    seq, info = load_sequences(args.events, progress=False)
    parts = split(seq, AblationConfig().train_config())  # Table 1's users
    say(f"{seq.users:,} users: {len(parts.train)} training, {len(parts.validation)} "
        f"validation, {len(parts.test)} test")  # fmt: skip
    baselines = _baselines(args, seq, parts, info.sha256, say)
    if args.paper == "002":
        return _events002(args, seq, info, parts, baselines, started, say)
    return _event_form(args, seq, info, parts, baselines, started, say)


@dataclasses.dataclass(frozen=True)
class _Baselines:
    """Table 1's gradient-boosted trees and logistic regression at the test posts: labels
    (P, 2), each model's probabilities (P, 2), the trees' at the training posts (HUIHEN's
    teacher), what fitting did."""

    labels: object
    test: dict
    gbdt_train: object
    detail: dict


def _baselines(args: argparse.Namespace, seq: object, parts: object, sha256: str,
               say: Callable[[str], None]) -> _Baselines:  # fmt: skip
    """Fitted on Table 1's training users (chosen on its validation users), or read from
    ``--cache`` where fitted before on the same events with the same seed."""
    import json

    import numpy as np

    from training.baselines import default_baselines

    name = f"baselines-{sha256[:16]}-seed{args.seed}.npz"
    path = None if args.cache is None else args.cache / name
    if path is not None and path.is_file():
        saved = np.load(path)
        say(f"== baselines read from {path}")
        return _Baselines(saved["labels"], {"gbdt": saved["gbdt"], "lr": saved["lr"]},
                          saved["gbdt_train"], json.loads(str(saved["detail"])))  # fmt: skip
    by_name = {b.name: b for b in default_baselines(args.seed, threads=args.threads)}
    test, detail, labels, gbdt_train = {}, {}, None, None
    for name, baseline in (("gbdt", "gbdt"), ("lr", "logistic")):
        fitted_at = time.perf_counter()
        model = by_name[baseline].fit(seq, parts.train, parts.validation)
        labels, test[name] = model.predict(seq, parts.test)
        if name == "gbdt":
            gbdt_train = model.predict(seq, parts.train)[1]
        detail[name] = {"seconds": round(time.perf_counter() - fitted_at, 1),
                        "chosen_on_validation": model.chosen}  # fmt: skip
        say(f"== {name}: fitted in {detail[name]['seconds']:.0f} s")
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial.npz")
        np.savez(partial, labels=labels, gbdt=test["gbdt"], lr=test["lr"],
                 gbdt_train=gbdt_train, detail=json.dumps(detail))  # fmt: skip
        partial.replace(path)
    return _Baselines(labels, test, gbdt_train, detail)


#: The challengers built with a streaming form (``deepcredit challengers cost``): paper → models.
_STREAMING = {"001": {"cnnlstm"}, "002": {"huihen"}}


def _write_predictions(args: argparse.Namespace, seq: object, users: object, labels: object,
                       predictions: dict, described: dict[str, str], sha256: str,
                       say: Callable[[str], None]) -> None:  # fmt: skip
    """Each model's test predictions (P, 2) at the labelled posts of ``users`` as a prediction
    file (``training.core.predictions``); the baselines under their own names."""
    import numpy as np

    from training.core.predictions import ModelManifest, write_predictions
    from training.report.predict import labelled_posts, rows_of

    posts = labelled_posts(seq, np.asarray(users, dtype=np.int64))
    if not np.array_equal(seq.labels[posts], labels, equal_nan=True):
        raise CliError("the test posts are not in the baselines' order (a bug)")
    args.predictions.mkdir(parents=True, exist_ok=True)
    for model, p in predictions.items():
        name = model if model in ("gbdt", "lr") else f"{args.paper}-{model}"
        manifest = ModelManifest(name=name, family=name, description=described.get(model, ""),
                                 streaming=model in _STREAMING.get(args.paper, set()),
                                 source=_command(args),
                                 data=f"{args.events.name} sha256 {sha256}")  # fmt: skip
        path = args.predictions / f"{name}.jsonl.gz"
        write_predictions(path, manifest, rows_of(name, seq, posts, p, "test"))
    say(f"prediction files in {args.predictions}")


def _same_posts(baselines: _Baselines, labels: object, who: str) -> None:
    import numpy as np

    if not np.array_equal(baselines.labels, labels, equal_nan=True):
        raise CliError(f"the baselines' test posts are not {who}'s (a cache of other events? "
                       "remove it)")  # fmt: skip


def _events002(args: argparse.Namespace, seq: object, info: object, parts: object,
               baselines: _Baselines, started: float,
               say: Callable[[str], None]) -> int:  # fmt: skip
    import numpy as np

    from training.challengers.paper002 import (
        fit_huihen,
        paper002_rows,
        post_inputs,
        predict_aux,
        predict_huihen,
        read_history,
    )
    from training.challengers.results import merge_into
    from training.core.eventlog import read_events
    from training.experiments.ablation import benchmark_summary

    cfg = from_args(Paper002Config, args, huihen=from_args(HuihenConfig, args))
    hcfg = cfg.huihen
    say("reading the behaviours")
    hist = read_history(read_events(args.events), seq, hcfg.session_gap_s)
    named = {"train": parts.train, "validation": parts.validation, "test": parts.test}
    inputs = {name: post_inputs(seq, hist, users, hcfg) for name, users in named.items()}
    test = inputs["test"]
    _same_posts(baselines, test.labels, "HUIHEN")
    detail = dict(baselines.detail)
    say("== huihen")
    teacher = baselines.gbdt_train if hcfg.pretrain_epochs > 0 else None
    fit = fit_huihen(hist, inputs["train"], inputs["validation"], hcfg, teacher=teacher,
                     progress=say)  # fmt: skip
    ours = {"huihen": predict_huihen(fit, hist, test)}
    if fit.aux is not None:
        ours["huihen-aux"] = predict_aux(fit, test)
        detail["huihen-aux"] = {"pretrain_epochs": fit.pretrain_epochs}
    predictions = ours | baselines.test
    detail["huihen"] = {"seconds": fit.seconds, "epochs": fit.epochs,
                        "pretrain_epochs": fit.pretrain_epochs,
                        "validation_loss": round(fit.validation_loss, 5),
                        "history": fit.history,
                        "sessions_read_mean": round(float((test.pairs[..., 0] >= 0).sum(1)
                                                          .mean()), 1)}  # fmt: skip
    judged = np.ones(len(test), bool)
    if args.statements:  # the September bill of each test user: its label is Y
        from training.benchmark.statements import last_bill_id

        users = seq.user_ids[test.users]
        judged = np.array([e == f"{last_bill_id(str(u).removeprefix('c'))}-post"
                           for e, u in zip(test.event_ids, users, strict=True)])  # fmt: skip
        say(f"judged: the September bills of {int(judged.sum()):,} test users")
    if args.predictions is not None:
        from training.challengers.config import MODELS_002

        _write_predictions(args, seq, parts.test, test.labels, predictions, MODELS_002,
                           info.sha256, say)  # fmt: skip
    rows = paper002_rows(test.labels[judged], test.users[judged],
                         {k: v[judged] for k, v in predictions.items()}, cfg, _command(args),
                         data="uci" if args.statements else "benchmark",
                         detail=detail)  # fmt: skip
    data = {"events": str(args.events), "sha256": info.sha256,
            **benchmark_summary(seq), "train_posts": len(inputs["train"]),
            "validation_posts": len(inputs["validation"]), "test_posts": len(test)}  # fmt: skip
    data["judged_posts"] = int(judged.sum())
    part = "002/uci/statements" if args.statements else "002/benchmark/events"
    run = _run(args, part, cfg, data, started,
               notes=["split, posts and labels: Table 1's (training.core.train.split, "
                      "Sequences); baselines: training.baselines' gbdt and logistic"])  # fmt: skip
    merge_into(args.out, rows, run)
    _print_rows(rows, say)
    print(f"written to {args.out}")
    return 0


def _event_form(args: argparse.Namespace, seq: object, info: object, parts: object,
                baselines: _Baselines, started: float,
                say: Callable[[str], None]) -> int:  # fmt: skip
    """Papers 001, 003 and 004 on the event log (``training.challengers.events``)."""
    from training.challengers.config import BASELINES, MODELS_001, MODELS_003
    from training.challengers.eventform import fit_scaler, post_arrays
    from training.challengers.events import benchmark_rows, fit_001, fit_003, fit_004
    from training.challengers.results import merge_into
    from training.experiments.ablation import benchmark_summary

    form = from_args(EventFormConfig, args)
    named = {"train": parts.train, "validation": parts.validation, "test": parts.test}
    raw = {name: post_arrays(seq, users, form.steps) for name, users in named.items()}
    scale = fit_scaler(raw["train"])
    posts = {name: scale(a) for name, a in raw.items()}
    train, val, test = posts["train"], posts["validation"], posts["test"]
    _same_posts(baselines, test.labels, f"paper {args.paper}'s")
    say(f"posts: {len(train):,} training, {len(val):,} validation, {len(test):,} test; "
        f"temporal {train.temporal.shape[1:]}, static {train.static.shape[1]}")  # fmt: skip
    common = {"threads": args.threads, "seed": args.seed, "max_minutes": args.max_minutes}
    if args.paper == "004":
        cfg = BiLstmConfig(**common, **{n: getattr(args, f"bilstm_{n}") for n in _BILSTM_OPTIONS})
        fitted = fit_004(train, val, test, cfg, form.train_posts, say)
        reference, labels = "bilstm", {"bilstm": MODELS["bilstm"]}
    elif args.paper == "001":
        cnnlstm = CnnLstmConfig(**common, **{k: getattr(args, f"cnnlstm_{k}")
                                             for k in _CNNLSTM_OPTIONS})  # fmt: skip
        cfg = from_args(Paper001Config, args, cnnlstm=cnnlstm)
        fitted = fit_001(train, val, test, cfg, form.flat_steps, form.train_posts, say)
        reference, labels = "ensemble", MODELS_001
    else:
        actgan = ActganConfig(seed=args.seed, **{k: getattr(args, f"actgan_{k}")
                                                 for k in _ACTGAN_OPTIONS})  # fmt: skip
        network = ResNetLstmConfig(**common, **{k: getattr(args, f"resnetlstm_{k}")
                                                for k in _RESNETLSTM_OPTIONS})  # fmt: skip
        cfg = from_args(Paper003Config, args, actgan=actgan, network=network)
        fitted = fit_003(raw["train"], train, val, test, scale, cfg, form.train_posts, say)
        reference, labels = "system", MODELS_003
    if args.predictions is not None:
        _write_predictions(args, seq, parts.test, test.labels, fitted.test | baselines.test,
                           labels | BASELINES, info.sha256, say)  # fmt: skip
    rows = benchmark_rows(args.paper, test.labels, test.users, fitted.test | baselines.test,
                          reference, labels | BASELINES, bootstrap=args.bootstrap,
                          level=args.level, command=_command(args),
                          detail=fitted.detail | baselines.detail)  # fmt: skip
    data = {"events": str(args.events), "sha256": info.sha256, **benchmark_summary(seq),
            "train_posts": len(train), "validation_posts": len(val), "test_posts": len(test),
            "temporal": list(train.temporal.shape[1:]),
            "static_features": int(train.static.shape[1])}  # fmt: skip
    run = _run(args, f"{args.paper}/benchmark/events",
               {"form": dataclasses.asdict(form), "system": dataclasses.asdict(cfg),
                "bootstrap": args.bootstrap, "level": args.level}, data, started,
               notes=["split, posts and labels: Table 1's (training.core.train.split, "
                      "Sequences); input form: training.challengers.eventform; one fit per "
                      "target (training.challengers.events); baselines: training.baselines' "
                      "gbdt and logistic on the same test posts"])  # fmt: skip
    merge_into(args.out, rows, run)
    _print_rows(rows, say)
    print(f"written to {args.out}")
    return 0


def _print_rows(rows: list, say: Callable[[str], None]) -> None:
    for r in rows:
        say(f"{r.table:11} {r.group:10} {r.model:20} "
            + "  ".join(_figure(k, r.figures[k]) for k in ("auc", "ks", "brier")))  # fmt: skip


def _figure(name: str, f: Figure) -> str:
    interval = "" if f.low is None else f" [{f.low:+.4f}, {f.high:+.4f}]"
    return f"{name} {f.value:.4f}{interval}"


def _run(args: argparse.Namespace, part: str, cfg: object, data: dict, started: float,
         notes: list[str]) -> object:  # fmt: skip
    """The results file's record of this run of ``part`` (``training.challengers.results.Run``)."""
    from training.challengers.results import Run
    from training.experiments.ablation import machine

    return Run(command=_command(args), part=part,
               written_at=datetime.now(UTC).isoformat(timespec="seconds"),
               seconds=round(time.perf_counter() - started, 1), machine=machine(),
               config=cfg if isinstance(cfg, dict) else dataclasses.asdict(cfg), data=data,
               notes=notes)  # fmt: skip


def _uci001(args: argparse.Namespace, table: UciTable, data: dict, only: set[int] | None,
            started: float, say: Callable[[str], None]) -> int:  # fmt: skip
    from training.challengers.paper001 import paper001_rows, predict_all
    from training.challengers.results import merge_into

    if args.models:
        raise CliError("--models is paper 004's; paper 001 fits its ensemble's four members "
                       "and 004's GB together")  # fmt: skip
    given = {k: getattr(args, f"cnnlstm_{k}") for k in _CNNLSTM_OPTIONS}
    cnnlstm = CnnLstmConfig(threads=args.threads, seed=args.seed, **given)
    cfg = from_args(Paper001Config, args, cnnlstm=cnnlstm)
    for protocol in cfg.protocols:
        fold_only = only if protocol == "folds" else None
        if only is not None and protocol == "holdout" and len(cfg.protocols) > 1:
            continue  # --only-folds names folds: the holdout is fitted by its own call
        predictions = predict_all(table, protocol, cfg, progress=say, cache=args.cache,
                                  only=fold_only)  # fmt: skip
        if args.fit_only:
            continue
        rows = paper001_rows(table, protocol, predictions, cfg, _command(args), progress=say)
        run = _run(args, f"001/uci/{protocol}", cfg, data, started,
                   notes=[] if args.cache is None else [
                      f"fits read from or written to {args.cache} (per split, by 'deepcredit "
                      "challengers uci --paper 001 --protocols P --cache DIR --fit-only "
                      "[--only-folds K]'); each split's fit seconds, epochs and rounds are in "
                      "the members' rows' detail.fit"])  # fmt: skip
        merge_into(args.out, rows, run)
        print(_ensemble_table(rows, protocol))
    print(f"out-of-fold predictions in {args.cache}" if args.fit_only else f"written to {args.out}")
    return 0


def _uci003(args: argparse.Namespace, table: UciTable, data: dict, started: float,
            say: Callable[[str], None]) -> int:  # fmt: skip
    from training.challengers.paper003 import fit_predict, paper003_rows
    from training.challengers.results import merge_into

    if args.models or args.cache or args.fit_only:
        raise CliError("--models, --cache and --fit-only are 004's and 001's; paper 003 fits "
                       "its one split in one run")  # fmt: skip
    actgan = ActganConfig(seed=args.seed, **{k: getattr(args, f"actgan_{k}")
                                             for k in _ACTGAN_OPTIONS})  # fmt: skip
    network = ResNetLstmConfig(threads=args.threads, seed=args.seed,
                               **{k: getattr(args, f"resnetlstm_{k}")
                                  for k in _RESNETLSTM_OPTIONS})  # fmt: skip
    cfg = from_args(Paper003Config, args, actgan=actgan, network=network)
    predictions = fit_predict(table, cfg, progress=say)
    rows = paper003_rows(table, predictions, cfg, _command(args), progress=say)
    merge_into(args.out, rows, _run(args, "003/uci/70-30", cfg, data, started, notes=[]))
    print(_ensemble_table(rows, "70-30"))
    for r in rows:
        if r.table == "70-30-differences":
            f = r.figures["auc_difference"]
            say(f"{r.model:28} AUC difference {f.value:+.4f} [{f.low:+.4f}, {f.high:+.4f}]")
    print(f"written to {args.out}")
    return 0


def _ensemble_table(rows: list, protocol: str) -> str:
    keys = ("accuracy", "recall", "f1", "auc", "ks", "brier", "h_measure")
    width = max(9, *(len(r.model) for r in rows if r.table == protocol))
    lines = [f"{protocol}: {'model':{width}} " + " ".join(f"{k:>10}" for k in keys)]
    for r in rows:
        if r.table == protocol:
            lines.append(f"{'':{len(protocol) + 2}}{r.model:{width}} "
                         + " ".join(f"{r.figures[k].value:>10.4f}" for k in keys))  # fmt: skip
    return "\n".join(lines)


def _table3(rows: list) -> str:
    keys = ("accuracy", "balanced_accuracy", "auc", "ks", "brier", "h_measure")
    lines = [f"{'model':8} " + " ".join(f"{k:>17}" for k in keys)]
    for r in rows:
        if r.table == "table3":
            lines.append(f"{r.model:8} " + " ".join(f"{r.figures[k].value:>17.4f}" for k in keys))
    return "\n".join(lines)


#: What each paper says of serving, beside its cost rows.
_COST_TEXT = {
    "004": "no incremental form (bidirectional); 'evaluation of LSTM model is very fast "
           "(seconds of computational time)'",
    "003": "the paper says nothing of serving; its BiLSTM over the months has no incremental "
           "form (backward direction), so each post re-runs the ResNet over the static "
           "features, the BiLSTM and attention over the history, and the focal XGBoost on "
           "the fused features; ACTGAN is training-time only",
    "001": "the paper says nothing of serving; built with causal convolutions here, it has an "
           "incremental form (a window of the last events through the CNN, one LSTM step, "
           "running attention sums), timed as stream_us_per_post",
    "002": "the paper says nothing of serving; HUIHEN has an incremental form: the open "
           "session's time-aware GRU state advances one step per event, a closed session's "
           "intention joins a ring of the last 50; a post runs the user-item-aware GRU over "
           "the ring (its gates read the post's own item, so it cannot be carried between "
           "posts) and the UPI layer. State per user: 50 x 30 intentions, the open session's "
           "30-float state, its length and last time (about 6 KB). Timed as stream_us_per_post",
}  # fmt: skip


def _cost(args: argparse.Namespace) -> int:
    from training.challengers.results import Figure, Row, Run, merge_into
    from training.experiments.ablation import machine
    from training.experiments.challenger_cost import reencode_cost

    if args.repeats < 1:
        raise CliError("--repeats must be at least 1")
    started = time.perf_counter()
    model = {"004": "bilstm", "001": "cnnlstm", "002": "huihen", "003": "resnetlstm"}[args.paper]
    result = reencode_cost(repeats=args.repeats, model_name=model)
    figures = ("reencode_us_per_post", "step_us_per_post", "reencode_over_step",
               "stream_us_per_post", "stream_over_step")  # fmt: skip
    rows = [Row(paper=args.paper, data="stream", table="reencode-cost", model=model,
                group=f"{r['history_events']} events", command=_command(args),
                figures={k: Figure(r[k]) for k in figures if k in r},
                paper_text=_COST_TEXT[args.paper],
                detail={k: v for k, v in r.items() if k.endswith("_runs")})
            for r in result["rows"]]  # fmt: skip
    run = Run(command=_command(args), part=f"{args.paper}/stream/reencode-cost",
              written_at=datetime.now(UTC).isoformat(timespec="seconds"),
              seconds=round(time.perf_counter() - started, 1), machine=machine(),
              config={k: v for k, v in result.items() if k != "rows"})  # fmt: skip
    merge_into(args.out, rows, run)
    for r in result["rows"]:
        streamed = ("" if "stream_us_per_post" not in r else
                    f"; its streaming form {r['stream_us_per_post']:.0f} µs")  # fmt: skip
        print(
            f"{r['history_events']:>5} events: re-encode {r['reencode_us_per_post']:.0f} µs "
            f"per post, step {r['step_us_per_post']:.1f} µs, x{r['reencode_over_step']:.0f}"
            + streamed
        )
    print(f"written to {args.out}")
    return 0
