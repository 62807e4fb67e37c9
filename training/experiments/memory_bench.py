"""``deepcredit bench memory``: peak resident memory of building the training sequences and of
reading them for training, against the number of users, each stage in a fresh process.

For each log (``deepcredit generate --users N --seed S``, generated once into the cache folder)
these stages run, one process each, in this order:

- ``build_in_memory``: ``dataset.build_sequences`` over ``eventlog.read_events``, the build
  before ``training.core.bucketed`` (every event grouped by user in memory), then ``save`` as
  one ``.npz`` (the former cache); only for logs of at most ``in_memory_up_to`` users;
- ``build_on_disk``: ``bucketed.build_on_disk``, what ``load_sequences`` builds now;
- ``epoch_in_memory``: the ``.npz`` read into memory (``Sequences.load``, the former cache
  read), then the data side of one training epoch (below); with ``build_in_memory``;
- ``epoch_mapped``: the folder mapped read-only (``Sequences.open``, today's cache read), then
  the same;
- ``rebuild_in_memory``: the rebuild as a cut-over ran it before its history was spilled:
  every event of the log grouped by user in memory, then ``scorer.rebuild.rebuild`` under a
  fresh D = 32 model, the posts' reason codes included; only for logs of at most
  ``in_memory_up_to`` users;
- ``rebuild_bucketed``: the rebuild as a cut-over's prepare runs it (``state.cutover``): the
  log's clicks spilled to user buckets on disk as they are read (``SpilledHistory``,
  ``BUCKET_EVENTS`` clicks a bucket), then rebuilt a bucket at a time under the same model
  (``rebuild_in_buckets``, reasons included), each bucket's states and posts written as a
  part of a prepared file;
- ``drift_every_user``: the live flow's drift monitors (``scorer.monitors.DriftMonitors``)
  fed every event of the log, each post with fixed probabilities, watching every user (a
  ``max_users`` no log reaches), then pickled as the drift step snapshots them every epoch;
  only for logs of at most ``in_memory_up_to`` users;
- ``drift_sampled``: the same with the flow's default sample (``UserSample``: every user up to
  ``max_users``, then half as many, and so on).

The drift stages also report the snapshot's size, the median time of five picklings of it,
the users the monitors hold state for, the share of users watched and the loans held.

The data side of an epoch is what ``train.fit`` does with the data: the split, the trainability
check, the reasons' reference (``model.set_reference``: the mean aggregates over the training
users' posts), then every training batch (``train.batches`` in a seeded order) padded by
``Sequences.batch`` and handed to torch (``model.batch_to_tensors``). The model's forward and
backward are left out: their memory is per batch, the same whatever the number of users.

Each process reports ``peak_rss_mib`` (the kernel's high-water mark of resident memory, VmHWM,
over the whole process), ``baseline_mib`` (resident after its imports, before the stage) and
``peak_anon_mib``: the largest anonymous resident memory (RssAnon: the process's own, what
cannot be dropped) sampled every 10 ms. They differ for mapped files: pages of a mapped file
that were read count as resident (RssFile) while mapped, but they are the files' cache, which
the kernel drops under pressure and reads back when needed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from training.experiments.config import MEMORY_STAGES as STAGES
from training.experiments.config import MEMORY_STAGES_UNBOUNDED

__all__ = ["STAGES", "log_path", "run_memory_bench", "run_stage"]


_STATUS = Path("/proc/self/status")


def log_path(cache: Path, users: int, seed: int) -> Path:
    """Where the benchmark keeps the log of ``users`` users and ``seed``."""
    return Path(cache) / f"clicks-{users}-seed{seed}.jsonl.gz"


def run_memory_bench(
    users: list[int],
    cache: Path,
    *,
    seed: int = 0,
    in_memory_up_to: int = 10_000,
    bucket_mib: float | None = None,
    progress: bool = True,
    stages: tuple[str, ...] = STAGES,
) -> dict:
    """Every stage on each log, in a fresh process each (the module says what they measure).

    Returns {"logs": [{users, path, bytes, generated_s}], "rows": [{users, stage, peak_rss_mib,
    peak_anon_mib, baseline_mib, seconds, ...}], "growth": {stage: peak at the most users /
    peak at the fewest}, "settings"}. Logs missing from ``cache`` are generated there first
    (``training.benchmark.generator``). ``stages``: which of ``STAGES`` run (the epochs read
    what their build wrote). Raises ValueError for a stage not in ``STAGES``, and
    subprocess.CalledProcessError when a stage fails.
    """
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        raise ValueError(f"no such stages: {unknown} (there are {', '.join(STAGES)})")
    from training.benchmark.config import GeneratorConfig
    from training.benchmark.generator import write_jsonl
    from training.core.bucketed import DEFAULT_BUCKET_MIB

    bucket_mib = DEFAULT_BUCKET_MIB if bucket_mib is None else bucket_mib
    logs, rows = [], []
    for n in sorted(users):
        path = log_path(cache, n, seed)
        generated_s = None
        if not path.is_file():
            started = time.monotonic()
            write_jsonl(GeneratorConfig(users=n, seed=seed), path, progress=progress)
            generated_s = round(time.monotonic() - started, 1)
        logs.append({"users": n, "path": str(path), "bytes": path.stat().st_size,
                     "generated_s": generated_s})  # fmt: skip
        work = Path(cache) / f"work-{n}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        try:
            for stage in (s for s in STAGES if s in stages):
                if stage in MEMORY_STAGES_UNBOUNDED and n > in_memory_up_to:
                    continue
                row = _in_child(stage, path, work, bucket_mib)
                rows.append({"users": n, "stage": stage, **row})
                if progress:
                    print(f"{n:,} users, {stage}: peak {row['peak_rss_mib']:,.0f} MiB resident "
                          f"({row['peak_anon_mib']:,.0f} MiB anonymous; "
                          f"{row['baseline_mib']:,.0f} after imports), "
                          f"{row['seconds']:,.1f} s", flush=True)  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {"logs": logs, "rows": rows, "growth": _growth(rows),
            "settings": {"seed": seed, "bucket_mib": bucket_mib,
                         "in_memory_up_to": in_memory_up_to}}  # fmt: skip


def _growth(rows: list[dict]) -> dict[str, dict]:
    out = {}
    for stage in STAGES:
        mine = sorted((r for r in rows if r["stage"] == stage), key=lambda r: r["users"])
        if len(mine) >= 2:
            first, last = mine[0], mine[-1]
            out[stage] = {
                "users": [first["users"], last["users"]],
                "peak_rss": round(last["peak_rss_mib"] / first["peak_rss_mib"], 2),
                "peak_anon": round(last["peak_anon_mib"] / first["peak_anon_mib"], 2),
            }
    return out


def _in_child(stage: str, log: Path, work: Path, bucket_mib: float) -> dict:
    command = [sys.executable, "-m", "training.experiments.memory_bench", stage, str(log),
               str(work), str(bucket_mib)]  # fmt: skip
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _status_mib(field: str) -> float:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return 0.0


class _AnonSampler(threading.Thread):
    """The largest RssAnon of this process, sampled every 10 ms until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak_mib = _status_mib("RssAnon")
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.01):
            self.peak_mib = max(self.peak_mib, _status_mib("RssAnon"))

    def stop(self) -> float:
        self.done.set()
        self.join()
        self.peak_mib = max(self.peak_mib, _status_mib("RssAnon"))
        return self.peak_mib


def run_stage(stage: str, log: Path, work: Path, bucket_mib: float) -> dict:
    """One stage in this process (meant to be a fresh one): its figures as a dict."""
    from training.core.bucketed import build_on_disk
    from training.core.dataset import Sequences, build_sequences
    from training.core.eventlog import read_events

    if stage.startswith("epoch"):
        from training.core.model import DeepCredit, ModelConfig, batch_to_tensors, set_reference
        from training.core.train import TrainConfig, batches, check_trainable, split
    if stage.startswith("rebuild"):
        from deepcredit.atomic import atomic_writer
        from deepcredit.buckets import BucketFiles, bucket_count
        from deepcredit.jsonlines import read_lines
        from scorer.rebuild import rebuild
        from state.cutover import BUCKET_EVENTS, SpilledHistory, rebuild_in_buckets, write_part
        from training.core.export import export_scorer
        from training.core.model import DeepCredit, ModelConfig
    npz, folder = work / "sequences.npz", work / "sequences"
    baseline = _status_mib("VmRSS")
    sampler = _AnonSampler()
    sampler.start()
    started = time.monotonic()
    figures: dict = {}
    if stage == "build_in_memory":
        seq = build_sequences(read_events(log))
        seq.save(npz)
        figures["disk_mib"] = round(npz.stat().st_size / 2**20, 1)
    elif stage == "build_on_disk":
        built = build_on_disk(log, folder, bucket_mib=bucket_mib)
        figures["buckets"] = built.buckets
        figures["disk_mib"] = round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20, 1)
        seq = Sequences.open(folder)
    elif stage in ("epoch_in_memory", "epoch_mapped"):
        seq = Sequences.load(npz) if stage == "epoch_in_memory" else Sequences.open(folder)
        config = TrainConfig()
        parts = split(seq, config)
        check_trainable(seq, parts, strict=False)
        set_reference(DeepCredit(ModelConfig()), seq, parts.train)
        rng = np.random.default_rng(config.seed)
        figures["batches"] = 0
        for group in batches(seq, parts.train, config.batch_users, rng):
            batch_to_tensors(seq.batch(group))
            figures["batches"] += 1
    elif stage == "rebuild_in_memory":
        histories: dict[str, list] = defaultdict(list)
        for event in read_events(log):  # as the cut-over holds the history it read
            histories[event.user_id].append(event)
        weights = export_scorer(DeepCredit(ModelConfig()), "bench-memory")
        rebuilt = rebuild(weights, histories)
        events = sum(map(len, histories.values()))
        figures |= {"users_rebuilt": len(rebuilt.states), "events": events,
                    "posts": len(rebuilt.posts)}  # fmt: skip
        seq = None
    elif stage == "rebuild_bucketed":
        weights = export_scorer(DeepCredit(ModelConfig()), "bench-memory")
        lines = sum(1 for _ in read_lines(str(log)))  # a cut-over's come from the offsets
        posts = 0
        with BucketFiles(work / "spill", bucket_count(lines, BUCKET_EVENTS)) as files, \
                atomic_writer(work / "prepared.msgpack") as f:  # fmt: skip
            history = SpilledHistory(spill=files)
            for offset, line in enumerate(read_lines(str(log))):
                history.add(line, 0, offset)

            def keep(part) -> None:
                nonlocal posts
                posts += len(part.posts)
                write_part(f, part)

            rebuilt = rebuild_in_buckets(weights, history, keep)
        figures |= {"users_rebuilt": rebuilt.users, "events": history.events, "posts": posts,
                    "buckets": files.buckets,
                    "prepared_mib": round((work / "prepared.msgpack").stat().st_size / 2**20,
                                          1)}  # fmt: skip
        seq = None
    elif stage.startswith("drift"):
        figures |= _drift_state(log, every_user=stage == "drift_every_user")
        seq = None
    else:
        raise ValueError(f"no such stage: {stage}")
    seconds = time.monotonic() - started
    peak_anon = sampler.stop()
    if seq is not None:
        figures |= {"users_built": int(seq.users), "activity_rows": len(seq.act_x),
                    "loan_rows": len(seq.loan_x)}  # fmt: skip
    return {"peak_rss_mib": round(_status_mib("VmHWM"), 1), "peak_anon_mib": round(peak_anon, 1),
            "baseline_mib": round(baseline, 1), "seconds": round(seconds, 1), **figures}


def _drift_state(log: Path, *, every_user: bool) -> dict:
    """The drift stages' figures (the module docstring)."""
    import pickle
    import statistics

    from deepcredit.events import Activity
    from scorer.monitors import DriftMonitors, UserSample
    from training.core.eventlog import read_events

    sample = UserSample(max_users=2**62) if every_user else UserSample()
    monitors = DriftMonitors("bench-memory", sample=sample)
    events = 0
    for event in read_events(log):
        monitors.update(event, (0.15, 0.05) if event.activity is Activity.POST else None)
        events += 1
    times, blob = [], b""
    for _ in range(5):
        started = time.perf_counter()
        blob = pickle.dumps(monitors, protocol=pickle.HIGHEST_PROTOCOL)
        times.append(time.perf_counter() - started)
    return {"events": events, "users_watched": monitors.users, "share": monitors.share,
            "open_loans": monitors.performance.open_loans,
            "snapshot_mib": round(len(blob) / 2**20, 2),
            "snapshot_ms": round(statistics.median(times) * 1000, 1)}  # fmt: skip


if __name__ == "__main__":
    _stage, _log, _work, _mib = sys.argv[1:5]
    print(json.dumps(run_stage(_stage, Path(_log), Path(_work), float(_mib))), flush=True)
