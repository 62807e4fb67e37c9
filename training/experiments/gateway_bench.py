"""``deepcredit bench gateway``: the request/reply gateway under load on loopback, against the
real broker and a real flow process (``deepcredit serve``), with 1 and 2 gateway processes.

For each process count: the maximum (answers per second with every generator connection
sending as fast as it is answered, closed loop), then posts at a fixed rate of 50% and 90% of
that maximum (open loop), throughput and p50/p99 latency from the moment each post was due to
its scored answer. Everything (broker, flow, gateways, generator) shares the machine: the
figures are this machine's, not the gateway's alone.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import statistics
import subprocess
import sys
import uuid
from pathlib import Path

from deepcredit.settings import Topics
from deepcredit.topics import delete_topics, ensure_topics, topic_specs
from deepcredit.waiting import wait_until
from gateway.loadgen import closed_loop, open_loop, posts, summarise
from training.experiments.config import GatewayBenchConfig
from training.experiments.processes import HOST, free_port, is_ready, serve_process

__all__ = ["run_gateway_bench"]


def _gateway(cfg: GatewayBenchConfig, topics: Topics, flow_url: str, processes: int, port: int,
             log: Path) -> subprocess.Popen:  # fmt: skip
    env = {**os.environ, "DEEPCREDIT_BOOTSTRAP": cfg.kafka.bootstrap_servers,
           "DEEPCREDIT_TOPIC_PREFIX": topics.clicks.removesuffix("clicks")}  # fmt: skip
    cmd = [sys.executable, "-m", "deploy.cli", "gateway", "--port", str(port), "--processes",
           str(processes), "--flow-url", flow_url]  # fmt: skip
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _measure(cfg: GatewayBenchConfig, port: int, run: str, progress: bool) -> dict:
    bodies = posts(run, cfg.users)
    # A short warm-up: connections, the users' first posts, the JIT-less paths' caches.
    asyncio.run(closed_loop(HOST, port, bodies, cfg.connections, min(2.0, cfg.seconds)))
    peak = summarise(asyncio.run(closed_loop(HOST, port, bodies, cfg.connections,
                                             cfg.seconds)))  # fmt: skip
    out = {"max": peak}
    if progress:
        print(f"  max {peak}", flush=True)
    for frac in cfg.fractions:
        rate = frac * float(peak["answered_per_s"])
        load = asyncio.run(open_loop(HOST, port, bodies, rate, cfg.seconds, cfg.connections))
        out[f"at_{round(frac * 100)}pct"] = {"offered_per_s": round(rate, 1), **summarise(load)}
        if progress:
            print(f"  {frac:.0%}: {out[f'at_{round(frac * 100)}pct']}", flush=True)
    return out


def _medians(runs: list[dict]) -> dict:
    """Each load's figures, the median over the runs."""
    out = {}
    for load, first in runs[0].items():
        if isinstance(first, dict):
            out[load] = {k: statistics.median(r[load][k] for r in runs)
                         for k, v in first.items() if isinstance(v, int | float)}  # fmt: skip
    return out


def run_gateway_bench(cfg: GatewayBenchConfig, log: Path, progress: bool = True) -> dict:
    """Every measurement on topics of its own (deleted at the end): one flow process, then a
    gateway of each process count in turn, ``repeats`` times. Returns the figures per process
    count: each run's and their medians."""
    topics = Topics.from_prefix(f"bench-gw-{uuid.uuid4().hex[:8]}-")
    ensure_topics(cfg.kafka, topic_specs(topics, cfg.partitions))
    metrics_port = free_port()
    flow_url = f"http://{HOST}:{metrics_port}"
    flow = serve_process(cfg.kafka, topics, ["--model", str(cfg.model), "--metrics-port",
                                             str(metrics_port)], log)  # fmt: skip
    runs: dict[int, list[dict]] = {n: [] for n in cfg.processes}
    try:
        wait_until(lambda: is_ready(flow_url), 120, 0.2, what="the flow ready")
        # Process counts interleaved repeat by repeat, so a busy spell of the shared machine
        # hits each of them.
        for r, n in itertools.product(range(cfg.repeats), cfg.processes):
            port = free_port()
            gw = _gateway(cfg, topics, flow_url, n, port, log)
            try:
                wait_until(lambda port=port: is_ready(f"http://{HOST}:{port}"), 60, 0.2,
                           what="the gateway ready")  # fmt: skip
                if progress:
                    print(f"{n} gateway process(es), repeat {r + 1}", flush=True)
                run, before = f"b{n}-{uuid.uuid4().hex[:6]}", os.getloadavg()[0]
                row = _measure(cfg, port, run, progress)
                # How busy the machine was (it is shared): 1-minute load before and after.
                row["load_average"] = [round(before, 1), round(os.getloadavg()[0], 1)]
                runs[n].append(row)
            finally:
                _stop(gw)
    finally:
        _stop(flow)
        delete_topics(cfg.kafka, topics.names())
    rows = [{"processes": n, "median": _medians(runs[n]), "runs": runs[n]} for n in runs]
    settings = {"seconds": cfg.seconds, "connections": cfg.connections, "users": cfg.users,
                "fractions": list(cfg.fractions), "partitions": cfg.partitions,
                "model": str(cfg.model), "flow_processes": 1, "repeats": cfg.repeats,
                "load_generator": "gateway.loadgen (asyncio, HTTP/1.1 keep-alive)"}  # fmt: skip
    return {"rows": rows, "settings": settings}
