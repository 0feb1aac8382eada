"""The streaming runtime: decode -> clip assembly -> model (batched) -> maps -> sinks, overlapped.

Threads connected by bounded queues: one decoder per input (``salrt.io.open_media``), one model
worker shared by all inputs (batches clips across inputs up to ``batch`` or ``max_wait_ms``), one
writer per input (temporal interpolation at stride > 1, then the sinks). File mode never drops
(a full queue blocks the decoder); live mode drops the oldest pending clip and counts it.
"""

from __future__ import annotations

import dataclasses
import queue
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from salrt.backends.base import to_numpy
from salrt.errors import MediaError, SalrtError
from salrt.io import open_media
from salrt.io.contract import InputContract

_END = object()


@dataclasses.dataclass
class RunOptions:
    """Settings of a run (all inputs share them)."""

    steps: int | None = 4  # None: the model picks (MUBiC's adaptive count)
    stride: int = 1
    batch: int = 1
    max_wait_ms: float = 20.0
    live: bool = False
    queue_clips: int = 8
    retries: int = 3
    backoff_s: float = 1.0
    timeout_s: float = 10.0  # network inputs: open/read timeout, so a stalled stream is retried
    seed: int = 0
    contract: InputContract = dataclasses.field(default_factory=InputContract)  # the model's clip format
    captions: Any = None  # salrt.captions.Captions for text-conditioned models


@dataclasses.dataclass
class _Job:
    source: int
    clip: Any
    decoded_at: float


class _StageStats:
    def __init__(self) -> None:
        self.count = 0
        self.busy_s = 0.0
        self.depths: list[int] = []

    def summary(self, wall: float) -> dict[str, float]:
        d = np.array(self.depths or [0])
        return {"items": self.count, "busy_s": round(self.busy_s, 3), "per_s": round(self.count / wall, 3) if wall else 0,
                "queue_depth_mean": round(float(d.mean()), 2), "queue_depth_max": int(d.max())}  # fmt: skip


class Runtime:
    """Runs ``backend`` over ``sources``; ``sinks_for(i, info)`` returns the sinks of input ``i``.

    ``run()`` returns the statistics (also printed by the CLI). ``on_map(i, index, time, sal)``
    receives every map (the iterator API uses it).
    """

    def __init__(self, backend: Any, sources: Sequence[str], options: RunOptions,
                 sinks_for: Callable[[int, Any], list[Any]] | None = None,
                 on_map: Callable[[int, int, float, np.ndarray], None] | None = None,
                 keep_frames: bool = False, progress: Callable[[int], None] | None = None) -> None:  # fmt: skip
        if options.batch < 1 or options.stride < 1 or (options.steps is not None and options.steps < 1):
            raise SalrtError("batch, stride and steps must be >= 1")
        self.backend, self.sources, self.opt = backend, list(sources), options
        self.sinks_for, self.on_map, self.keep_frames, self.progress = sinks_for, on_map, keep_frames, progress
        self.stop = threading.Event()
        self.clips: queue.Queue[Any] = queue.Queue(maxsize=options.queue_clips)
        self.outs = [queue.Queue(maxsize=options.queue_clips * 2) for _ in self.sources]
        self.errors: list[str] = []
        self.dropped = [0] * len(self.sources)
        self.frames_out = [0] * len(self.sources)
        self.latencies: list[float] = []
        self.media_stats: list[Any] = [None] * len(self.sources)
        self.infos: list[Any] = [None] * len(self.sources)
        self.stats = {"decode": _StageStats(), "model": _StageStats(), "write": _StageStats()}

    # -- stages ------------------------------------------------------------------------------
    def _open(self, i: int) -> Any:
        o = self.opt
        return open_media(self.sources[i], stride=o.stride, keep_frames=self.keep_frames,
                          timeout=o.timeout_s if _is_stream(self.sources[i]) else None, **o.contract.media_options())  # fmt: skip

    def _decode(self, i: int) -> None:
        attempt, delivered = 0, -1
        try:
            while not self.stop.is_set():
                try:
                    media = self._open(i)
                except MediaError as exc:
                    if attempt >= self.opt.retries or not _is_stream(self.sources[i]):
                        self.errors.append(str(exc))
                        return
                    attempt += 1
                    time.sleep(self.opt.backoff_s * 2 ** (attempt - 1))
                    continue
                self.infos[i] = media.info
                for clip in media:
                    if self.stop.is_set():
                        break
                    if clip.target_index <= delivered:  # resumed stream: skip what was delivered
                        continue
                    t0 = time.perf_counter()
                    self._put_clip(_Job(i, clip, t0))
                    delivered = clip.target_index
                    self.stats["decode"].count += 1
                self.media_stats[i] = media.stats
                if not _is_stream(self.sources[i]) or self.stop.is_set() or media.stats.read_errors == 0:
                    return
                attempt += 1  # a live stream ended with a read error: reconnect with backoff
                if attempt > self.opt.retries:
                    self.errors.append(f"{self.sources[i]}: stream lost after {self.opt.retries} retries")
                    return
                time.sleep(self.opt.backoff_s * 2 ** (attempt - 1))
        except Exception as exc:  # noqa: BLE001 - one broken input is reported, the others go on
            self.errors.append(f"{self.sources[i]}: {type(exc).__name__}: {exc}")
        finally:
            self.clips.put(("eof", i))

    def _put_clip(self, job: _Job) -> None:
        self.stats["decode"].depths.append(self.clips.qsize())
        if not self.opt.live:
            while not self.stop.is_set():
                try:
                    self.clips.put(job, timeout=0.1)
                    return
                except queue.Full:
                    continue
            return
        while True:
            try:
                self.clips.put_nowait(job)
                return
            except queue.Full:
                try:
                    old = self.clips.get_nowait()
                except queue.Empty:
                    continue
                if isinstance(old, _Job):
                    self.dropped[old.source] += 1
                else:  # never drop an end marker
                    self.clips.put(old)

    def _model(self) -> None:
        o = self.opt
        rng = np.random.default_rng(o.seed)
        eof = 0
        pending: list[_Job] = []
        while eof < len(self.sources):
            try:
                item = self.clips.get(timeout=o.max_wait_ms / 1000.0 if pending else 0.5)
            except queue.Empty:
                item = None
            if isinstance(item, tuple):
                eof += 1
                self._flush(pending, rng)
                pending = []
                self.outs[item[1]].put(_END)
                continue
            if item is not None:
                pending.append(item)
            if pending and (len(pending) >= o.batch or item is None):
                self._flush(pending, rng)
                pending = []

    def _flush(self, jobs: list[_Job], rng: np.random.Generator) -> None:
        if not jobs:
            return
        t = time.perf_counter()
        self.stats["model"].depths.append(self.clips.qsize())
        video = np.stack([j.clip.video for j in jobs])
        audio = np.stack([j.clip.audio for j in jobs])
        noise = rng.standard_normal((len(jobs), 1, *self.opt.contract.size)).astype(np.float32)
        conditions = {}
        ctx = self.opt.contract.text_context
        if ctx:  # text-conditioned model: caption ids per clip, zeros (its AV variant) without captions
            cap = self.opt.captions
            conditions["text"] = np.stack([cap.tokens(self.sources[j.source], j.clip.target_index, j.clip.target_time)
                                           if cap is not None else np.zeros(ctx, np.int64) for j in jobs])  # fmt: skip
        maps = to_numpy(self.backend.sample(video, audio, steps=self.opt.steps, noise=noise, **conditions))
        self.stats["model"].busy_s += time.perf_counter() - t
        self.stats["model"].count += len(jobs)
        for j, m in zip(jobs, maps):
            self.outs[j.source].put((j, np.asarray(m[0], np.float32)))

    def _write(self, i: int) -> None:
        sinks: list[Any] = []
        prev: tuple[int, float, np.ndarray] | None = None
        failed = False
        try:
            while True:
                item = self.outs[i].get()
                if item is _END:
                    break
                if failed:
                    continue  # keep draining so the model worker never blocks on this queue
                job, sal = item
                t = time.perf_counter()
                try:
                    if not sinks and self.sinks_for is not None:
                        sinks = self.sinks_for(i, self.infos[i])
                    clip = job.clip
                    tgt = (clip.target_index, clip.target_time, sal)
                    for idx, ts, rgb in clip.new_frames:  # frames since the previous target, this one last
                        if prev is None or idx == tgt[0]:
                            m = sal
                        else:  # between two clips: linear in time
                            w = (idx - prev[0]) / (tgt[0] - prev[0])
                            m = (1 - w) * prev[2] + w * sal
                        self._emit(i, sinks, idx, ts, rgb, m)
                except Exception as exc:  # noqa: BLE001 - a failing output stops the run, reported
                    self.errors.append(f"{self.sources[i]}: output failed: {type(exc).__name__}: {exc}")
                    failed = True
                    self.stop.set()
                    continue
                prev = tgt
                self.latencies.append(time.perf_counter() - job.decoded_at)
                self.stats["write"].busy_s += time.perf_counter() - t
                self.stats["write"].count += 1
        finally:
            for s in sinks:
                try:
                    s.close()
                except Exception as exc:  # noqa: BLE001 - report, keep closing the others
                    self.errors.append(f"closing {type(s).__name__}: {exc}")

    def _emit(self, i: int, sinks: list[Any], idx: int, ts: float, rgb: np.ndarray | None, m: np.ndarray) -> None:
        for s in sinks:
            s.write(idx, ts, rgb, m)
        if self.on_map is not None:
            self.on_map(i, idx, ts, m)
        self.frames_out[i] += 1
        if self.progress is not None:
            self.progress(1)

    # -- driver ------------------------------------------------------------------------------
    def run(self, handle_signals: bool = True) -> dict[str, Any]:
        """Run to the end (or until Ctrl-C/SIGTERM); outputs are finalised either way."""
        t0 = time.perf_counter()
        cpu0 = time.process_time()
        threads = [threading.Thread(target=self._decode, args=(i,), name=f"decode-{i}", daemon=True)
                   for i in range(len(self.sources))]  # fmt: skip
        threads += [threading.Thread(target=self._write, args=(i,), name=f"write-{i}", daemon=True)
                    for i in range(len(self.sources))]  # fmt: skip
        model = threading.Thread(target=self._model_guard, name="model", daemon=True)
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda *_: self.stop.set())
        interrupted = False
        try:
            for th in [*threads, model]:
                th.start()
            while any(th.is_alive() for th in [*threads, model]):
                for th in [*threads, model]:
                    th.join(timeout=0.2)
        finally:
            interrupted = self.stop.is_set()
            for sig, h in old.items():
                signal.signal(sig, h)
        wall = time.perf_counter() - t0
        lat = np.array(self.latencies or [np.nan]) * 1e3
        return {
            "inputs": self.sources, "wall_s": round(wall, 3), "interrupted": interrupted,
            "frames_out": self.frames_out, "fps_out": round(sum(self.frames_out) / wall, 3) if wall else 0,
            "clips_per_s": round(self.stats["model"].count / wall, 3) if wall else 0,
            "dropped_clips": self.dropped,
            "latency_ms": {p: round(float(np.nanpercentile(lat, q)), 2) for p, q in (("p50", 50), ("p95", 95), ("p99", 99))},
            "stages": {k: v.summary(wall) for k, v in self.stats.items()},
            "cpu_utilisation": round((time.process_time() - cpu0) / wall, 3) if wall else 0,
            "media": [dataclasses.asdict(s) if s is not None else None for s in self.media_stats],
            "errors": self.errors,
        }  # fmt: skip

    def _model_guard(self) -> None:
        try:
            self._model()
        except Exception as exc:  # noqa: BLE001 - stop everything, report one line
            self.errors.append(f"model: {exc}")
            self.stop.set()
            for q in self.outs:
                q.put(_END)
            while True:  # unblock decoders waiting on a full queue
                try:
                    self.clips.get_nowait()
                except queue.Empty:
                    break


def expected_frames(sources: Sequence[str]) -> int | None:
    """Total frame count of file inputs when the containers say (for progress ETAs); None otherwise."""
    import av

    total = 0
    for src in sources:
        if _is_stream(src) or src == "-":
            return None
        try:
            with av.open(src) as c:
                vs = c.streams.video[0]
                n = vs.frames or (int(float(vs.duration * vs.time_base) * float(vs.average_rate))
                                  if vs.duration and vs.average_rate else 0)  # fmt: skip
        except (av.FFmpegError, IndexError, OSError):
            return None
        if not n:
            return None
        total += n
    return total


def _is_stream(source: str) -> bool:
    return "://" in source and not source.startswith("file://")


def stream(source: str, *, model: Any = None, backend: Any = None, **options: Any) -> Iterator[tuple[float, np.ndarray]]:
    """Iterate ``(timestamp_s, saliency)`` for every frame of ``source`` (saliency: (H, W) float32
    in 0..1 at the model's resolution). Pass a loaded ``model`` or any ``backend``."""
    from salrt.backends import load_backend

    if backend is None:
        if model is None:
            raise SalrtError("salrt.stream needs model= or backend=")
        backend = load_backend("torch", model=model)
        options.setdefault("contract", InputContract.of(model.config))
    out: queue.Queue[Any] = queue.Queue(maxsize=64)
    rt = Runtime(backend, [source], RunOptions(**options), on_map=lambda i, idx, ts, m: out.put((ts, m)))
    result: dict[str, Any] = {}
    th = threading.Thread(target=lambda: result.update(rt.run(handle_signals=False)), daemon=True)
    th.start()
    try:
        while th.is_alive() or not out.empty():
            try:
                yield out.get(timeout=0.1)
            except queue.Empty:
                continue
    finally:
        rt.stop.set()
        th.join(timeout=10)
    if result.get("errors"):
        raise SalrtError(result["errors"][0])


def default_sinks(outdir: Path, outputs: Sequence[str], settings: dict[str, Any],
                  source_size: bool = False) -> Callable[[int, Any], list[Any]]:  # fmt: skip
    """The CLI's sinks: ``<outdir>/<input stem>{_overlay.mp4, _maps/, _maps.npy, .json}``."""
    from salrt import sinks as S

    def make(i: int, info: Any) -> list[Any]:
        src = settings["inputs"][i]
        stem = Path(src).stem if "://" not in src else f"stream{i}"
        size = (info.height, info.width) if source_size and info else None
        out: list[Any] = []
        if "overlay" in outputs:
            out.append(S.OverlaySink(outdir / f"{stem}_overlay.mp4", info.fps if info else 25.0, src))
        if "png" in outputs:
            out.append(S.PngSink(outdir / f"{stem}_maps", size))
        for kind in ("npy", "npz"):
            if kind in outputs:
                out.append(S.NpySink(outdir / f"{stem}_maps.npy", size, compress=kind == "npz"))
        out.append(S.JsonSidecar(outdir / f"{stem}.json", {**settings, "input": src}))
        return out

    return make
