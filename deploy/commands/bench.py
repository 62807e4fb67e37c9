"""``deepcredit bench live|step|rebuild|train|scaling|project|reasons|memory|engine``:
benchmarks that write their results to a file."""

from __future__ import annotations

import argparse
from pathlib import Path

from deepcredit.settings import KafkaSettings
from deploy.commands.common import CliError, Subparsers, add_bootstrap, command
from deploy.commands.options import Option, add_options, from_args
from training.core.config import ModelConfig
from training.experiments.config import (
    MEMORY_STAGES,
    GatewayBenchConfig,
    LiveBenchConfig,
    ScalingBenchConfig,
    TrainBenchConfig,
)

__all__ = ["add"]

_STEP_HIDDEN_SIZES = [16, 32, 64, 128, 256]  # the rows of the README's hidden-size table


def add(sub: Subparsers) -> None:
    bench = sub.add_parser(
        "bench",
        help="measure the live flow (writes results/live.json)",
        description="Benchmarks that write their results to a file.",
    )
    bench_sub = bench.add_subparsers(title="benchmarks", metavar="BENCH")
    p = command(
        bench_sub, "live",
        "the live flow Kafka to Kafka on the real broker, with the model, with a pass-through "
        "in its place, and the plain loop (one consumer and producer, our codec and step, no "
        "engine: the ceiling), in one run: events/s (medians of paired repeats), their ratios, "
        "and post-to-score latency p50/p99 at a steady replay rate",
        _live,
    )  # fmt: skip
    add_options(p, LiveBenchConfig, "events", "model")
    add_bootstrap(p)
    add_options(p, LiveBenchConfig, "limit", "repeats", Option("latency_rate", "--rate"),
                "latency_events", "drift_sample")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/live.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip

    p = command(
        bench_sub, "latency",
        "post-to-score latency of the live flow with two models side by side (e.g. one with "
        "running aggregates and reason codes against a 'deep-only' one without): p50/p99 of "
        "each, measured alternately at a steady replay rate, and the median paired p99 "
        "difference",
        _latency,
    )  # fmt: skip
    add_options(p, LiveBenchConfig, "events", "model")
    p.add_argument("--reference-model", required=True, type=Path,
                   help="the model the flow's latency is compared with")  # fmt: skip
    add_bootstrap(p)
    add_options(p, LiveBenchConfig, "repeats", Option("latency_rate", "--rate"),
                "latency_events")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/latency.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip

    p = command(
        bench_sub, "gateway",
        "the request/reply gateway on loopback against the real broker and a flow process: "
        "maximum answers/s, then throughput and p50/p99 latency at fixed rates of 50%% and 90%% "
        "of it, for 1 and 2 gateway processes",
        _gateway,
    )  # fmt: skip
    add_options(p, GatewayBenchConfig, "model")
    add_bootstrap(p)
    add_options(p, GatewayBenchConfig, "processes", "seconds", "connections", "fractions",
                "users", "repeats")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/gateway.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip

    p = command(
        bench_sub, "step",
        "what one event costs the live scorer: microseconds per event of the compiled step, "
        "of the numpy reference step and of the bookkeeping alone, side by side (one event "
        "at a time, medians of paired repeats), the compiled kernel alone per kind of step, "
        "and bytes per user state, per hidden size (a fresh model's weights) and per --model",
        _step,
    )  # fmt: skip
    p.add_argument("--hidden", type=int, nargs="+", default=_STEP_HIDDEN_SIZES,
                   help=f"hidden sizes (default {' '.join(map(str, _STEP_HIDDEN_SIZES))})")
    p.add_argument("--model", type=Path, action="append", default=[],
                   help="a model folder made by 'deepcredit train': a row with its weights "
                        "too (the reasons' cost depends on them); may be repeated")  # fmt: skip
    p.add_argument("--users", type=int, default=200,
                   help="users in the stream (default %(default)s)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=5,
                   help="passes over the stream per hidden size, the median is reported "
                        "(default %(default)s)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/step.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip

    p = command(
        bench_sub, "rebuild",
        "rebuilding every user's state for a new model: compiled over columns (what a "
        "cut-over uses), the lockstep reference and one event at a time, on the same "
        "histories in one run",
        _rebuild,
    )  # fmt: skip
    p.add_argument("--users", type=int, default=500, help="users replayed (default %(default)s)")
    add_options(p, ModelConfig, Option("hidden_size", "--hidden"))
    p.add_argument("--repeats", type=int, default=3,
                   help="runs of each way, the median is reported (default %(default)s)")
    p.add_argument("--out", type=Path, default=Path("results/rebuild.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip
    _add_train(bench_sub)
    _add_scaling(bench_sub)
    _add_project(bench_sub)
    _add_reasons(bench_sub)
    _add_memory(bench_sub)
    _add_engine(bench_sub)


def _add_memory(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "memory",
        "peak resident memory of building the training sequences and of reading them for a "
        "training epoch, against the number of users: the bucketed build on disk and the "
        "mapped arrays, beside the former in-memory build and .npz; and of the cut-over's "
        "rebuild as it holds the history; and of the drift monitors' state and snapshot, "
        "every user watched or the flow's bounded sample; each stage in a fresh process, on "
        "logs generated once into --cache",
        _memory,
    )  # fmt: skip
    p.add_argument("--cache", type=Path, required=True,
                   help="folder of the generated logs (clicks-N-seedS.jsonl.gz), made when "
                        "missing; the stages' scratch goes there too")  # fmt: skip
    p.add_argument("--users", type=int, nargs="+", default=[2_000, 10_000],
                   help="users of each log (default %(default)s)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="generator seed (default %(default)s)")
    p.add_argument("--in-memory-up-to", type=int, default=10_000,
                   help="run the former in-memory build and .npz, the in-memory rebuild and the "
                        "drift monitors of every user only on logs of at most this many users "
                        "(default %(default)s; what they hold grows with the users)")
    p.add_argument("--stages", nargs="+", default=list(MEMORY_STAGES), choices=MEMORY_STAGES,
                   metavar="STAGE", help="the stages to run, of: " + ", ".join(MEMORY_STAGES)
                   + " (default: all; an epoch reads what its build wrote)")  # fmt: skip
    p.add_argument("--bucket-mib", type=float, default=None,
                   help="JSON text per bucket of the build on disk, MiB (default: the build's, "
                        "training.core.bucketed.DEFAULT_BUCKET_MIB)")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/memory.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip


def _memory(args: argparse.Namespace) -> int:
    from training.experiments.memory_bench import run_memory_bench

    result = run_memory_bench(args.users, args.cache, seed=args.seed,
                              in_memory_up_to=args.in_memory_up_to, bucket_mib=args.bucket_mib,
                              progress=True, stages=tuple(args.stages))  # fmt: skip
    _write(args, result)
    for stage, g in result["growth"].items():
        print(f"{stage}: peak resident x{g['peak_rss']:.2f}, anonymous x{g['peak_anon']:.2f} "
              f"from {g['users'][0]:,} to {g['users'][1]:,} users")  # fmt: skip
    print(f"written to {args.out}")
    return 0


def _add_engine(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "engine",
        "what Bytewax itself costs per item with no work in the steps (source to sink, a map, "
        "a keyed stateful step, two), beside the most the flow's engine and operators "
        "(everything but Kafka, the codec and the model step) may cost for the flow to reach "
        "both 0.8 of the plain loop's throughput and 0.6 of the pass-through's: half of what "
        "Kafka and the codec cost, read from a 'bench live' result",
        _engine,
    )  # fmt: skip
    p.add_argument("--items", type=int, default=300_000,
                   help="items through each flow (default %(default)s)")  # fmt: skip
    p.add_argument("--users", type=int, default=1000,
                   help="distinct keys of the keyed steps (default %(default)s)")  # fmt: skip
    p.add_argument("--repeats", type=int, default=5,
                   help="runs of each flow, in rotating order (default %(default)s)")  # fmt: skip
    p.add_argument("--live", type=Path, default=Path("results/live.json"),
                   help="a 'bench live' result: its plain loop without the model is Kafka and "
                        "the codec's cost per event (default %(default)s; skipped if absent)")
    p.add_argument("--out", type=Path, default=Path("results/engine.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip


def _engine(args: argparse.Namespace) -> int:
    import json

    from training.experiments.engine_floor import run_engine_floor

    kafka_codec_us = None
    if args.live.is_file():
        try:
            live = json.loads(args.live.read_text())
            kafka_codec_us = live["throughput"]["plain_loop_no_model"]["median_cpu_us_per_event"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CliError(f"{args.live}: not a 'bench live' result ({exc!r})") from None
    try:
        result = run_engine_floor(args.items, args.users, args.repeats,
                                  kafka_codec_us=kafka_codec_us)  # fmt: skip
    except ValueError as exc:
        raise CliError(str(exc)) from None
    result["live"] = str(args.live) if kafka_codec_us is not None else None
    _write(args, result)
    for variant, us in result["us_per_item"].items():
        print(f"{variant}: {us['cpu_us']:.2f} µs CPU per item ({us['wall_us']:.2f} wall)")
    if kafka_codec_us is not None:
        allowance, floor = result["allowance_us"], result["us_per_item"]["two_keyed_steps"]
        print(f"Kafka and the codec: {kafka_codec_us:.2f} µs an event ({args.live}); for both "
              f"live goals the flow's engine and operators may cost at most {allowance:.2f} µs "
              "an event")
        verdict = "over" if floor["cpu_us"] > allowance else "under"
        print(f"two keyed steps with no work: {floor['cpu_us']:.2f} µs, {verdict} the "
              f"allowance before the flow does anything")
    print(f"written to {args.out}")
    return 0


def _add_reasons(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "reasons",
        "reason codes: train a small model on a generated stream, replay the held-out users "
        "one event at a time as the flow does, and measure the codes' faithfulness (declined "
        "posts: the top reason's evidence neutralised lowers the score most, against a random "
        "reason), stability (replayed twice; with an irrelevant event added) and cost (µs per "
        "post beside the step)",
        _reasons,
    )  # fmt: skip
    p.add_argument("--users", type=int, default=600, help="users generated (default %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="training epochs (default %(default)s)")
    add_options(p, ModelConfig, Option("hidden_size", "--hidden"))
    p.add_argument("--seed", type=int, default=0, help="generator and training seed "
                   "(default %(default)s)")  # fmt: skip
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop training after the epoch that crosses this many minutes")
    p.add_argument("--out", type=Path, default=Path("results/reasons.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip


def _reasons(args: argparse.Namespace) -> int:
    from training.experiments.reasons_bench import run_reasons_bench

    r = run_reasons_bench(users=args.users, epochs=args.epochs, hidden=args.hidden_size,
                          seed=args.seed, max_minutes=args.max_minutes)  # fmt: skip
    _write(args, r)
    f, st, c, h = r["faithfulness"], r["stability"], r["cost"], r["held_out"]
    print(f"{h['posts']:,} held-out posts, {h['declined']:,} declined; judged: "
          f"{h['judged_population']} ({h['judged']:,})")  # fmt: skip
    for target, x in f.items():
        print(f"faithfulness on {target} ({x['posts']:,} posts with 2+ reasons): top reason "
              f"{x['top_reason_largest_drop']}, random reason {x['random_reason_largest_drop']}")
    print(f"stability: same history twice {st['same_history_twice_same_codes']:.3f}, with an "
          f"irrelevant event {st['irrelevant_event_same_top_reason']}")  # fmt: skip
    print(f"cost: the reasons add {c['us_per_post_reasons_median']:.1f} µs per post (median "
          f"of paired differences; step {c['us_per_post_step_median']:.1f} µs; numpy reference "
          f"{c['us_per_post_reference_reasons_median']:.1f} µs; live codes equal the "
          f"reference's on {c['live_codes_equal_reference']:.4f} of posts)")  # fmt: skip
    print(f"written to {args.out}")
    return 0


def _add_train(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "train",
        "training epochs per hour before and after the speed-up (the forward of commit "
        "ac23ed3 against today's, and today's with larger batches), with validation AUC after "
        "each epoch, side by side in one run",
        _train,
    )  # fmt: skip
    add_options(p, TrainBenchConfig, "events", "users", "epochs", Option("hidden_size", "--hidden"),
                "batch_users", "lr", "large_batch_users", "seed", "threads")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/train_speed.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip


def _train(args: argparse.Namespace) -> int:
    from training.experiments.train_speed import run_train_bench

    if not args.events.exists():
        raise CliError(f"no such file: {args.events}")
    result = run_train_bench(from_args(TrainBenchConfig, args))
    _write(args, result)
    for name, arm in result["arms"].items():
        last = arm["val_auc"][-1] if arm["val_auc"] else {}
        print(f"{name}: batch {arm['batch_users']}, lr {arm['lr']:.2g}: "
              f"{arm['median_epoch_seconds']:.1f} s per epoch ({arm['epochs_per_hour']:.1f} "
              f"epochs/h, x{result['speedup'].get(name, 1.0):.2f}); validation AUC after "
              f"{len(arm['val_auc'])} epochs {last}")  # fmt: skip
    print(f"written to {args.out}")
    return 0


def _add_scaling(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "scaling",
        "training on 1 and on several processes (torch DDP) side by side: epochs per hour, "
        "speed-up and validation AUC per epoch, the learning rate as given and scaled; and "
        "what the measured costs (this run's training, results/live.json, "
        "results/rebuild.json) project to 10M users and 1B events a day",
        _scaling,
    )  # fmt: skip
    add_options(p, ScalingBenchConfig, "events", "users", "epochs", "repeats", "processes",
                Option("hidden_size", "--hidden"), "batch_users", "lr", "seed",
                "results")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("results/scaling.json"),
                   help="result JSON (default %(default)s)")  # fmt: skip


def _add_project(bench_sub: Subparsers) -> None:
    p = command(
        bench_sub, "project",
        "the projection to 10M users and 1B events a day made again from the live and rebuild "
        "results now in --results and the training cost of a 'bench scaling' result, without "
        "training again: run it after 'bench live' or 'bench rebuild'; rewrites that result",
        _project,
    )  # fmt: skip
    add_options(p, ScalingBenchConfig, "results")
    p.add_argument("--scaling", type=Path, default=Path("results/scaling.json"),
                   help="the 'bench scaling' result to update (default %(default)s)")


def _project(args: argparse.Namespace) -> int:
    import json
    import shlex

    from deepcredit.atomic import write_json
    from training.experiments.scaling import reproject

    try:
        result = reproject(json.loads(args.scaling.read_text()), args.results)
    except FileNotFoundError as exc:
        raise CliError(f"{exc.filename}: no such file ('deepcredit bench scaling', 'bench live', "
                       "'bench rebuild' write them)") from None
    except (KeyError, json.JSONDecodeError) as exc:
        raise CliError(f"{args.scaling} or the results in {args.results} lack what the "
                       f"projection reads: {exc}") from None
    p = result["projection"]
    p["remade_by"] = "deepcredit " + shlex.join(args.argv)  # the training's command stays
    write_json(args.scaling, result)
    print(f"{p['live']['processes_at_peak']} flow processes at the peak "
          f"({p['live']['peak_events_per_s']:,.0f} events/s), {p['state']['gib']} GiB of states, "
          f"a rebuild of {p['assumptions']['history_days']:.0f} days in "
          f"{p['rebuild']['core_hours']} core-hours, training "
          f"{p['training']['core_hours']} core-hours")  # fmt: skip
    print(f"written to {args.scaling}")
    return 0


def _scaling(args: argparse.Namespace) -> int:
    from training.experiments.scaling import run_scaling_bench

    if not args.events.exists():
        raise CliError(f"no such file: {args.events}")
    try:
        result = run_scaling_bench(from_args(ScalingBenchConfig, args))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    except (FileNotFoundError, KeyError) as exc:
        raise CliError(f"the projection reads live.json and rebuild.json in {args.results} "
                       f"('deepcredit bench live', 'deepcredit bench rebuild'): {exc}") from None
    _write(args, result)
    for name, arm in result["arms"].items():
        per_epoch = result["speedup_over_p1"].get(name)
        alone = result["training_speedup_over_p1"].get(name)
        print(f"{name}: {arm['processes']} process(es), lr {arm['lr']:.2g}: "
              f"{arm['median_epoch_seconds']:.1f} s per epoch ({arm['epochs_per_hour']:.1f} "
              f"epochs/h" + (f", x{per_epoch:.2f}" if per_epoch else "")
              + (f", training alone x{alone:.2f}" if alone else "")
              + f"); validation AUC after each epoch "
              f"{arm['val_auc'] or 'not measured'}")  # fmt: skip
    live = result["projection"]["live"]
    print(f"projection: {live['processes_at_peak']} flow processes at a peak of "
          f"{live['peak_events_per_s']:,.0f} events/s; written to {args.out}")
    return 0


def _latency(args: argparse.Namespace) -> int:
    from training.experiments.live_bench import run_latency_pair

    for path in (args.events, args.model, args.reference_model):
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
    cfg = from_args(LiveBenchConfig, args, kafka=KafkaSettings(args.bootstrap))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run_latency_pair(cfg, args.reference_model, args.out.with_suffix(".serve.log"))
    _write(args, result)
    p50, p99 = result["median_p50_ms"], result["median_p99_ms"]
    print(f"post-to-score, medians of {cfg.repeats} runs each: model p50 {p50['model']} ms, "
          f"p99 {p99['model']} ms; reference p50 {p50['reference']} ms, p99 "
          f"{p99['reference']} ms; p99 model - reference (paired) "
          f"{result['p99_ms_model_minus_reference']} ms")  # fmt: skip
    return 0


def _live(args: argparse.Namespace) -> int:
    from training.experiments.live_bench import run_live_bench

    for path in (args.events, args.model):
        if not path.exists():
            raise CliError(f"no such file or folder: {path}")
    try:
        cfg = from_args(LiveBenchConfig, args, kafka=KafkaSettings(args.bootstrap))
    except ValueError as exc:
        raise CliError(f"--drift-sample: {exc}") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = run_live_bench(cfg, args.out.with_suffix(".serve.log"))
    _write(args, result)
    t, lat = result["throughput"], result["latency"]
    print(
        f"events/s (median): model {t['model']['median_events_per_s']:,.0f}, pass-through "
        f"{t['pass_through']['median_events_per_s']:,.0f}, plain loop "
        f"{t['plain_loop']['median_events_per_s']:,.0f} (without the model "
        f"{t['plain_loop_no_model']['median_events_per_s']:,.0f}); without recovery snapshots "
        f"{t['model_no_recovery']['median_events_per_s']:,.0f}"
    )
    print(
        f"flow / plain loop {result['model_over_plain_loop']:.2f}, flow / pass-through "
        f"{result['model_over_pass_through']:.2f}, tuned collector / default "
        f"{result['gc_tuned_over_default']:.2f}, the drift monitors on {cfg.drift_sample:g} of "
        f"the users / all {result['drift_sample_over_model']:.2f} (medians of paired repeats)"
    )
    c = result["cpu"]
    print(f"CPU time per event of this process, inverted to read like the rates: flow / plain "
          f"loop {c['model_over_plain_loop']:.2f}, flow / pass-through "
          f"{c['model_over_pass_through']:.2f}")  # fmt: skip
    steady = result["steady"]
    if None not in steady.values():
        print(f"steady rates (first score to last, start-up left out): flow / plain loop "
              f"{steady['model_over_plain_loop']:.2f}, flow / pass-through "
              f"{steady['model_over_pass_through']:.2f}")  # fmt: skip
    for v, x in lat.items():
        print(
            f"post-to-score latency at {x['rate']:g} events/s, {v}: p50 {x['p50_ms']:.1f} ms, "
            f"p99 {x['p99_ms']:.1f} ms ({x['measured']:,} posts)"
        )
    print(f"written to {args.out}")
    return 0


def _gateway(args: argparse.Namespace) -> int:
    from training.experiments.gateway_bench import run_gateway_bench

    if not args.model.exists():
        raise CliError(f"no such folder: {args.model}")
    cfg = from_args(GatewayBenchConfig, args, kafka=KafkaSettings(args.bootstrap))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args, run_gateway_bench(cfg, args.out.with_suffix(".log")))
    print(f"wrote {args.out}")
    return 0


def _step(args: argparse.Namespace) -> int:
    from training.experiments.step_cost import step_cost

    for model in args.model:
        if not model.exists():
            raise CliError(f"no such model folder: {model}")
    rows = step_cost(args.hidden, users=args.users, repeats=args.repeats, models=args.model)
    _write(args, {"rows": rows})
    print("| D | µs per post: compiled / numpy / bookkeeping | µs per other event: the same | "
          "numpy / compiled | state bytes (median user) |")  # fmt: skip
    print("| ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        c, n, b = r["compiled"], r["numpy"], r["bookkeeping"]
        print(
            f"| {r['hidden_size']}{' (' + r['model'] + ')' if r.get('model') else ''} | "
            f"{c['us_per_post']:.1f} / {n['us_per_post']:.1f} / "
            f"{b['us_per_post']:.1f} | {c['us_per_other_event']:.1f} / "
            f"{n['us_per_other_event']:.1f} / {b['us_per_other_event']:.1f} | "
            f"×{r['numpy_over_compiled']:.2f} | {r['state_bytes_median']:,} |"
        )
    print("The compiled kernel alone, µs per step:")
    for r in rows:
        print(f"  D = {r['hidden_size']}{' (' + r['model'] + ')' if r.get('model') else ''}: "
              + ", ".join(
            f"{kind.replace('_', ' ')} {us:.2f}" for kind, us in r["kernel_us"].items()))
    print(f"written to {args.out}")
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    from training.experiments.rebuild_cost import rebuild_cost

    r = rebuild_cost(users=args.users, hidden=args.hidden_size, repeats=args.repeats)
    _write(args, r)
    e, x = r["events_per_s"], r["speedup_over_event_by_event"]
    print(f"{r['users']:,} users, {r['events']:,} events, D = {r['hidden_size']}, median of "
          f"{r['repeats']} paired repeats:")  # fmt: skip
    print(f"  event by event: {e['event_by_event']:,} events/s")
    for way in ("lockstep", "compiled", "compiled_with_reasons"):
        print(f"  {way}: {e[way]:,} events/s (x{x[way]:.2f})")
    p = r["compiled_profile"]
    print(f"  compiled: {p['loop_us_per_event']} us/event in the compiled loop, "
          f"{p['rest_us_per_event']} us/event around it; event by event over the loop alone "
          f"x{p['event_by_event_over_loop']:.2f}")  # fmt: skip
    print(f"written to {args.out}")
    return 0


def _write(args: argparse.Namespace, result: dict) -> None:
    """``result`` with the command and the machine, as JSON at ``args.out``."""
    import os
    import shlex

    from deepcredit.atomic import write_json
    from training.experiments.ablation import machine

    result = {**result, "command": "deepcredit " + shlex.join(args.argv), "machine": machine()}
    # BLAS threads change what batched numpy costs on a shared machine: say when they are set.
    threads = {k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                          "MKL_NUM_THREADS") if k in os.environ}  # fmt: skip
    if threads:
        result["environment"] = threads
    write_json(args.out, result)
