"""Batch work over many inputs on a Ray cluster (``pip install 'salrt[ray]'``): ``salrt run``,
``salrt encode`` and ``salrt eval`` with ``--ray [ADDRESS]``.

- One model worker per GPU (or per ``worker_cpus`` cores) as a Ray actor that loads the model
  once and runs salrt's own :class:`~salrt.runtime.Runtime` on one input at a time.
- Each input is decoded by a separate Ray task, placed (softly) on its worker's node: decoded
  clips are ~100x larger than the compressed input, so they stay off the network. The task
  streams clips into a bounded Ray queue that the worker's runtime reads (back-pressure).
- A worker writes an input's outputs into a staging folder and commits them when the input is
  complete: files moved into place (local output) or uploaded with fsspec (any URL the cluster
  can reach), then a record ``_salrt_job/<stem>.json`` listing them (written last). A worker
  that dies mid-input leaves only staging debris: its input is retried on another worker
  (``max_attempts``), the dead worker replaced; outputs are never mixed or duplicated.
- ``resume=True`` skips inputs whose record is there and whose files are complete (sizes and,
  for ``.npy``, frame counts match the record).
- An input that fails (bad media, model server error) is reported and the others go on.

Each input runs alone in its runtime, with the run's seed: its maps do not depend on which
worker ran it, when, or beside which other inputs (they equal a single-input ``salrt run``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salrt.errors import MediaError, SalrtError, UsageError, one_line, require
from salrt.spec import RunSpec

JOB_DIR = "_salrt_job"  # per-input completion records and the job summary
STAGING = ".salrt-staging"  # local outputs: uncommitted attempts (same file system: atomic moves)


@dataclasses.dataclass(frozen=True)
class Item:
    """One input of a job: its position, the runtime source and the stem its outputs take."""

    index: int
    source: Any  # salrt.runtime.Source
    stem: str


@dataclasses.dataclass
class JobReport:
    """What a job did: per input ``done``/``skipped``/``failed``, frames, attempts, timings."""

    inputs: list[dict[str, Any]]
    workers: int
    wall_s: float
    startup_s: float
    retried: int
    replaced_workers: int

    @property
    def errors(self) -> list[str]:
        return [f"{r['input']}: {r['error']}" for r in self.inputs if r["status"] == "failed"]

    @property
    def frames(self) -> int:
        return sum(r.get("frames", 0) for r in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# -- output storage: a local folder or any fsspec URL -----------------------------------------
def is_url(path: str) -> bool:
    return "://" in str(path)


class Store:
    """Where committed outputs go. Local folders: atomic moves from a staging folder on the same
    file system; URLs: fsspec uploads (the record, written last, marks completion)."""

    def __init__(self, root: str) -> None:
        self.root = str(root).rstrip("/")
        self.url = is_url(self.root)
        if self.url:
            fsspec = require("fsspec", "output URLs")
            self.fs, self.base = fsspec.core.url_to_fs(self.root)
        else:
            self.fs, self.base = None, self.root

    def staging_root(self) -> Path:
        """A folder for uncommitted attempts (the worker's local disk for URLs)."""
        if self.url:
            return Path(tempfile.mkdtemp(prefix="salrt-staging-"))
        p = Path(self.base) / STAGING
        p.mkdir(parents=True, exist_ok=True)
        return p

    def _join(self, *parts: str) -> str:
        return "/".join([self.base, *parts])

    def remove(self, name: str) -> None:
        target = self._join(name)
        if self.url:
            if self.fs.exists(target):
                self.fs.rm(target, recursive=True)
        elif os.path.isdir(target) and not os.path.islink(target):
            shutil.rmtree(target)
        elif os.path.lexists(target):
            os.remove(target)

    def commit(self, staged: Path) -> None:
        """Move (upload) everything in ``staged`` into place, replacing what an earlier attempt
        left under the same names."""
        for entry in sorted(staged.iterdir()):
            self.remove(entry.name)
            if self.url:
                self.fs.put(str(entry), self._join(entry.name), recursive=entry.is_dir())
            else:
                os.replace(entry, self._join(entry.name))

    def sizes(self, names: Sequence[str]) -> list[dict[str, Any]]:
        out = []
        for name in names:
            target = self._join(name)
            if self.url:
                if self.fs.isdir(target):  # fsspec paths carry no protocol, as self.base
                    for p in sorted(self.fs.find(target)):
                        out.append({"file": f"{name}/{p[len(target) + 1 :]}", "bytes": int(self.fs.size(p))})
                else:
                    out.append({"file": name, "bytes": int(self.fs.size(target))})
            elif os.path.isdir(target):
                for root, _, fs in os.walk(target):
                    for f in sorted(fs):
                        p = os.path.join(root, f)
                        out.append({"file": os.path.relpath(p, self.base), "bytes": os.path.getsize(p)})
            else:
                out.append({"file": name, "bytes": os.path.getsize(target)})
        return out

    def write_text(self, name: str, text: str) -> None:
        target = self._join(name)
        if self.url:
            self.fs.makedirs(os.path.dirname(target), exist_ok=True)
            self.fs.pipe(target, text.encode())
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, target)

    def read_text(self, name: str) -> str | None:
        target = self._join(name)
        try:
            if self.url:
                return self.fs.cat(target).decode()
            with open(target) as f:
                return f.read()
        except (OSError, FileNotFoundError):
            return None

    def size(self, name: str) -> int | None:
        target = self._join(name)
        try:
            return int(self.fs.size(target)) if self.url else os.path.getsize(target)
        except (OSError, FileNotFoundError):
            return None

    def npy_frames(self, name: str) -> int | None:
        """Frames (first axis) of a ``.npy`` from its header, or None when unreadable."""
        import numpy as np

        target = self._join(name)
        try:
            f = self.fs.open(target, "rb") if self.url else open(target, "rb")
            with f:
                fmt = np.lib.format
                major, _ = fmt.read_magic(f)
                shape = (fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0)(f)[0]
            return int(shape[0]) if shape else None
        except (OSError, ValueError, FileNotFoundError):
            return None


def record_name(stem: str) -> str:
    return f"{JOB_DIR}/{stem}.json"


def complete(store: Store, stem: str) -> dict[str, Any] | None:
    """The input's completion record when its outputs are all there and whole, else None."""
    text = store.read_text(record_name(stem))
    if text is None:
        return None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError:
        return None
    if rec.get("status") != "done":
        return None
    for f in rec.get("files", []):
        if store.size(f["file"]) != f["bytes"]:
            return None
        if f["file"].endswith(".npy") and "frames" in rec and store.npy_frames(f["file"]) != rec["frames"]:
            return None
    return rec


# -- decoding task and the worker's view of it ---------------------------------------------------
class QueueMedia:
    """The media of one input as its decode task streams it through a Ray queue: ``info`` on
    arrival, the clips, then the decoder's statistics (what :class:`Runtime` reads)."""

    def __init__(self, queue: Any, timeout_s: float) -> None:
        self.queue, self.timeout_s = queue, timeout_s
        kind, value = self._get()
        if kind == "error":
            raise MediaError(value)
        self.info, self.stats = value
        self._done = False

    def _get(self) -> tuple[str, Any]:
        from ray.util.queue import Empty

        try:
            return self.queue.get(timeout=self.timeout_s)
        except Empty:
            raise MediaError(f"the decode task sent nothing for {self.timeout_s:g} s") from None

    def __iter__(self) -> Any:
        while not self._done:
            kind, value = self._get()
            if kind == "clips":
                yield from value
            elif kind == "end":  # the runtime holds this object: update it in place
                vars(self.stats).update(vars(value))
                self._done = True
            else:
                raise MediaError(value)


def decode_into(queue: Any, source: Any, options: Any, keep_frames: bool, chunk: int = 4) -> int:
    """Decode ``source`` into ``queue`` (the body of the decode task): ``("info", (info, stats))``,
    ``("clips", [clip, ...])`` in chunks, then ``("end", stats)``; an error as ``("error", text)``."""
    from salrt.runtime import open_source

    n = 0
    try:
        media = open_source(source, options, keep_frames)
        queue.put(("info", (media.info, media.stats)))
        batch: list[Any] = []
        for clip in media:
            batch.append(clip)
            n += 1
            if len(batch) >= chunk:
                queue.put(("clips", batch))
                batch = []
        if batch:
            queue.put(("clips", batch))
        queue.put(("end", media.stats))
    except Exception as exc:  # reported by the worker as this input's error
        queue.put(("error", str(exc) if isinstance(exc, SalrtError) else f"{type(exc).__name__}: {exc}"))
    return n


class ModelWorker:
    """A Ray actor body: the model loaded once; ``process`` runs one input and commits it."""

    def __init__(self, spec: RunSpec, options: dict[str, Any], outputs: Any, out: str) -> None:
        from salrt import pipeline
        from salrt.runtime import RunOptions

        self.pipe = pipeline.build(spec)
        self.options = RunOptions(contract=self.pipe.contract, captions=self.pipe.captions, **options)
        self.outputs, self.store = outputs, Store(out)
        self.frames = 0  # maps written for the current input (read by the driver's progress line)

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()

    def progress(self) -> int:
        return self.frames

    def run_options(self) -> Any:
        """The run's options with the model's clip contract (what the decode tasks need)."""
        return self.options

    def process(self, item: Item, queue: Any, attempt: int) -> dict[str, Any]:
        from salrt.runtime import Runtime

        self.frames = 0
        stage = self.store.staging_root() / f"{item.stem}.{attempt}"
        if stage.exists():
            shutil.rmtree(stage)
        stage.mkdir(parents=True)
        (stage.parent / f"{item.stem}.{attempt}.pid").write_text(str(os.getpid()))  # who is writing it
        t0 = time.perf_counter()

        def count(n: int) -> None:
            self.frames += n

        rt = Runtime(
            self.pipe.backend,
            [item.source],
            self.options,
            sinks_for=lambda i, info: self.outputs.sinks(stage, item.stem, item.source, info),
            keep_frames=self.outputs.keep_frames,
            progress=count,
            opener=lambda i: QueueMedia(queue, max(60.0, 6 * self.options.timeout_s)),
        )
        stats = rt.run(handle_signals=False)
        result = {
            "input": item.source.path,
            "stem": item.stem,
            "frames": stats["frames_out"][0],
            "warnings": list(stats["warnings"]),
            "attempt": attempt,
            "worker_pid": os.getpid(),
            "seconds": round(time.perf_counter() - t0, 3),
        }
        try:
            # outputs are committed either way (what was written stays readable); a failed input's
            # record says so, and --resume runs it again
            names = [e.name for e in sorted(stage.iterdir())]
            self.store.commit(stage)
            result["files"] = self.store.sizes(names)
            result["status"] = "failed" if stats["errors"] else "done"
            if stats["errors"]:
                result["error"] = stats["errors"][0]
            self.store.write_text(record_name(item.stem), json.dumps(result, indent=1))
            return result
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            (stage.parent / f"{item.stem}.{attempt}.pid").unlink(missing_ok=True)
            self.frames = 0


# -- the driver -----------------------------------------------------------------------------------
def check_address(address: str, timeout_s: float) -> None:
    """A clear error when a Ray address does not answer within ``timeout_s`` (``ray.init`` would
    wait a minute or more)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray {address!r}: give HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        raise SalrtError(f"cannot reach the Ray cluster at {address} within {timeout_s:g} s: {exc}") from None


def connect(address: str | None, *, num_cpus: int | None = None, timeout_s: float = 10.0) -> float:
    """Join (or start, without ``address``) a Ray cluster; seconds it took. A local cluster runs
    in Ray's single-machine mode: bound to 127.0.0.1, its traffic stays on loopback."""
    import sys

    local = address in (None, "local")
    if local and "ray" not in sys.modules:
        # read by Ray at import: without it Ray swaps 127.0.0.1 for the host's own address
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = require("ray", "--ray")
    t0 = time.perf_counter()
    if not local:
        check_address(address, timeout_s)
    if ray.is_initialized():  # a cluster this process already joined (tests, notebooks)
        return 0.0
    if local:
        from ray._private import ray_constants

        if ray_constants.ENABLE_RAY_CLUSTER:  # Ray was imported before: the same switch, set late
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # for the processes it starts
            ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
            configure_logging=False,
        )
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return time.perf_counter() - t0


def _node_affinity(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=True)


@dataclasses.dataclass
class _Slot:
    actor: Any
    node: str
    pid: int
    item: Item | None = None
    attempt: int = 0
    future: Any = None
    decode: Any = None
    queue: Any = None


def run_job(
    items: Sequence[Item],
    outputs: Any,
    out: str,
    *,
    spec: RunSpec,
    options: dict[str, Any],
    address: str | None = None,
    workers: int | None = None,
    worker_cpus: float = 1.0,
    worker_gpus: float | None = None,
    resume: bool = False,
    max_attempts: int = 3,
    timeout_s: float = 10.0,
    progress: Callable[[int], None] | None = None,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> JobReport:
    """Run ``items`` on a Ray cluster; see the module docstring. ``worker_gpus`` defaults to one
    per worker when the cluster has GPUs (and ``spec`` asks for cuda), else 0;
    ``workers`` defaults to one per GPU, else one per ``worker_cpus`` cores. ``on_event(kind,
    info)`` hears ``started``/``done``/``failed``/``retry`` (tests, logs)."""
    import ray
    from ray.util.queue import Queue

    from salrt.runtime import RunOptions

    if any(it.source.is_stream or it.source.path == "-" for it in items):
        raise UsageError("--ray distributes files (catalogues): live streams and stdin run with plain salrt run")
    emit = on_event or (lambda kind, info: None)
    t0 = time.perf_counter()
    startup = connect(address, timeout_s=timeout_s)
    store = Store(out)
    if not store.url:
        Path(store.base).mkdir(parents=True, exist_ok=True)
    results: dict[int, dict[str, Any]] = {}
    todo: list[tuple[Item, int]] = []
    for it in items:
        rec = complete(store, it.stem) if resume else None
        if rec is not None:
            results[it.index] = {**rec, "status": "skipped"}
            if progress is not None:
                progress(int(rec.get("frames", 0)))
        else:
            todo.append((it, 1))
    if resume:
        log(f"resume: {len(results)} of {len(items)} input(s) complete, {len(todo)} to run")
    res = ray.cluster_resources()
    gpus = res.get("GPU", 0.0)
    on_cuda = str(spec.device).startswith("cuda")
    if worker_gpus is None:
        worker_gpus = 1.0 if gpus and on_cuda else 0.0
    if workers is None:
        workers = int(gpus // worker_gpus) if worker_gpus else int(res.get("CPU", 1) // max(worker_cpus, 1e-9))
    workers = max(1, min(workers, len(todo) or 1))
    opts = dict(options)
    RunOptions(**opts)  # refused here (one line) rather than in every worker
    Actor = ray.remote(ModelWorker).options(num_cpus=worker_cpus, num_gpus=worker_gpus, max_concurrency=2)

    def new_slot() -> _Slot:
        a = Actor.remote(spec, opts, outputs, out)
        try:
            node, pid = ray.get([a.node.remote(), a.pid.remote()])
        except ray.exceptions.RayActorError as exc:
            raise SalrtError(f"a model worker could not start: {one_line(exc, 300)}") from None
        return _Slot(a, node, pid)

    slots = [new_slot() for _ in range(workers)] if todo else []
    log(f"{len(slots)} model worker(s) ready in {time.perf_counter() - t0:.1f} s")
    run_opts = ray.get(slots[0].actor.run_options.remote()) if slots else None
    decode = ray.remote(num_cpus=0)(decode_into)  # mostly I/O and FFmpeg threads; one per busy worker
    retried = replaced = 0
    counted: dict[int, int] = {}  # frames of each input already on the progress line (over attempts)

    def advance(item: Item, frames: int) -> None:
        if progress is not None and frames > counted.get(item.index, 0):
            progress(frames - counted.get(item.index, 0))
            counted[item.index] = frames

    def start(slot: _Slot, item: Item, attempt: int) -> None:
        slot.item, slot.attempt = item, attempt
        slot.queue = Queue(maxsize=4, actor_options={"num_cpus": 0, "scheduling_strategy": _node_affinity(slot.node)})
        slot.decode = decode.options(scheduling_strategy=_node_affinity(slot.node)).remote(
            slot.queue, item.source, run_opts, outputs.keep_frames
        )
        slot.future = slot.actor.process.remote(item, slot.queue, attempt)
        emit("started", {"input": item.source.path, "stem": item.stem, "attempt": attempt, "pid": slot.pid})

    def release(slot: _Slot) -> None:
        if slot.decode is not None:
            ray.cancel(slot.decode, force=True)
        if slot.queue is not None:
            try:
                slot.queue.shutdown(force=True)
            except Exception:  # its actor is already gone
                pass
        slot.item = slot.future = slot.decode = slot.queue = None

    try:
        while todo or any(s.item is not None for s in slots):
            for s in slots:
                if s.item is None and todo:
                    start(s, *todo.pop(0))
            busy = [s for s in slots if s.future is not None]
            ready, _ = ray.wait([s.future for s in busy], num_returns=1, timeout=0.5)
            if progress is not None:  # maps written by busy workers since the last look
                for s in busy:
                    if s.future not in ready:
                        try:
                            advance(s.item, ray.get(s.actor.progress.remote(), timeout=5))
                        except Exception:  # a dying worker: its result says what happened
                            continue
            for ref in ready:
                s = next(x for x in busy if x.future == ref)
                item, attempt = s.item, s.attempt
                try:
                    r = ray.get(ref)
                except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError) as exc:
                    release(s)
                    slots.remove(s)
                    replaced += 1
                    slots.append(new_slot())
                    if attempt < max_attempts:
                        retried += 1
                        todo.insert(0, (item, attempt + 1))
                        emit("retry", {"input": item.source.path, "attempt": attempt + 1, "why": one_line(exc, 300)})
                        log(f"{item.source.path}: worker died ({one_line(exc, 300)}); retrying (attempt {attempt + 1})")
                    else:
                        results[item.index] = {"input": item.source.path, "stem": item.stem, "status": "failed",
                                               "error": f"workers died {attempt} time(s): {one_line(exc, 300)}"}  # fmt: skip
                    continue
                except ray.exceptions.RayTaskError as exc:
                    r = {"input": item.source.path, "stem": item.stem, "status": "failed", "error": one_line(exc, 300)}
                release(s)
                advance(item, int(r.get("frames", 0)))
                results[item.index] = r
                emit(r["status"], r)
    finally:
        for s in slots:
            release(s)
            ray.kill(s.actor)
        if not store.url:
            shutil.rmtree(Path(store.base) / STAGING, ignore_errors=True)
    report = JobReport(
        inputs=[results[it.index] for it in items],
        workers=workers,
        wall_s=round(time.perf_counter() - t0, 3),
        startup_s=round(startup, 3),
        retried=retried,
        replaced_workers=replaced,
    )
    store.write_text(f"{JOB_DIR}/job.json", json.dumps(report.to_dict(), indent=1, default=str))
    return report


def read_input_list(path: str) -> list[str]:
    """Inputs from a file: one per line; blank lines and ``#`` comments skipped."""
    try:
        with open(path) as f:
            lines = [ln.strip() for ln in f]
    except OSError as exc:
        raise SalrtError(f"--input-list {path}: {exc.strerror or exc}") from None
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    if not out:
        raise UsageError(f"--input-list {path}: no inputs listed")
    return out


__all__ = [
    "Item",
    "JobReport",
    "Store",
    "complete",
    "connect",
    "read_input_list",
    "run_job",
]
