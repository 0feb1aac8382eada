"""The streaming runtime: decode -> clip assembly -> model (batched) -> maps -> sinks, overlapped.

Threads connected by bounded queues: one decoder per input (``salrt.io.open_media``), one model
worker shared by all inputs (batches clips across inputs up to ``batch`` or ``max_wait_ms``), one
writer per input (temporal interpolation at stride > 1, then the sinks). File mode never drops
(a full queue blocks the decoder); live mode drops the oldest pending clip and counts it.

Memory is bounded at any resolution: source frames kept for outputs (overlays) count against a
byte budget that the decoders wait on. On a stop (Ctrl-C, SIGTERM) the decoders end, clips not
yet sampled are discarded (counted), and every output is finalised with what was written.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salrt.backends.base import to_numpy
from salrt.budget import ByteBudget
from salrt.errors import MediaError, RemoteError, SalrtError, UsageError
from salrt.io.clips import shifted as _shifted
from salrt.io.contract import InputContract
from salrt.io.sources import Source, expected_frames, is_stream, open_source
from salrt.memory import release_every
from salrt.stepping import StreamStates, waves

__all__ = ["RunOptions", "RunStats", "Runtime", "Source", "expected_frames", "is_stream", "open_source", "stream"]

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
    frame_budget_mb: float = 256.0  # source frames held for outputs (overlay) across all inputs
    stats_interval_s: float = 5.0  # rewrite of the statistics file during a run
    release_memory_s: float = 30.0  # free C-heap pages handed back to the OS (salrt.memory; 0: never)
    hwaccel: str | None = None  # hardware video decoding (salrt.io.media.hwaccels()), software fallback

    def __post_init__(self) -> None:
        if self.batch < 1 or self.stride < 1 or (self.steps is not None and self.steps < 1):
            raise UsageError("batch, stride and steps must be >= 1")
        for name in ("max_wait_ms", "retries", "backoff_s", "timeout_s", "frame_budget_mb", "release_memory_s"):
            if getattr(self, name) < 0:
                raise UsageError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.queue_clips < 1:
            raise UsageError(f"queue_clips must be >= 1, got {self.queue_clips}")


@dataclasses.dataclass
class RunStats:
    """What a run did (``run_stats.json``): per input (lists in input order) and per stage.

    Indexable by field name as well (``stats["errors"]``), as the JSON file is read."""

    inputs: list[str]
    wall_s: float
    interrupted: bool
    frames_out: list[int]
    fps_out: float
    clips_per_s: float
    dropped_clips: list[int]  # live mode: clips dropped because the model was behind
    discarded_on_stop: list[int]  # clips not sampled because the run was stopped
    latency_ms: dict[str, float | None]  # p50/p95/p99 from clip decode to map out (None: no map)
    stages: dict[str, dict[str, float]]
    cpu_utilisation: float
    media: list[dict[str, Any] | None]  # decoder statistics (salrt.io.MediaStats) per input
    stream_gaps_s: list[list[float]]  # seconds without data before each reconnect, per input
    warnings: list[str]
    errors: list[str]
    # streaming models: times each input's state was reset after its start (frames not consecutive:
    # clips dropped by --live, a reconnect, a seek)
    state_resets: list[int] = dataclasses.field(default_factory=list)
    # a model server's traffic: tensor bytes sent and received, requests (empty for local backends)
    wire_bytes: dict[str, int] = dataclasses.field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class _Job:
    source: int
    clip: Any
    decoded_at: float
    nbytes: int = 0  # kept source frames, counted against the frame budget


class _StageStats:
    """Items, busy time and queue depths of one stage (running sums: constant memory however long
    the run)."""

    def __init__(self) -> None:
        self.count, self.busy_s = 0, 0.0
        self.depth_sum = self.depth_n = self.depth_max = 0

    def depth(self, d: int) -> None:
        self.depth_sum, self.depth_n, self.depth_max = self.depth_sum + d, self.depth_n + 1, max(self.depth_max, d)

    def summary(self, wall: float) -> dict[str, float]:
        return {
            "items": self.count,
            "busy_s": round(self.busy_s, 3),
            "per_s": round(self.count / wall, 3) if wall else 0,
            "queue_depth_mean": round(self.depth_sum / self.depth_n, 2) if self.depth_n else 0.0,
            "queue_depth_max": self.depth_max,
        }


class Runtime:
    """Runs ``backend`` over ``sources``; ``sinks_for(i, info)`` returns the sinks of input ``i``.

    ``run()`` returns the statistics (also printed by the CLI). ``on_map(i, index, time, sal)``
    receives every map (the iterator API uses it). ``stats_path``: a JSON file rewritten
    atomically every ``options.stats_interval_s`` seconds and at the end. ``opener(i)``: where
    input ``i``'s clips come from (default :func:`open_source` here; a Ray job's model worker
    reads clips decoded by a separate task).
    """

    def __init__(
        self,
        backend: Any,
        sources: Sequence[str | Source],
        options: RunOptions,
        sinks_for: Callable[[int, Any], list[Any]] | None = None,
        on_map: Callable[[int, int, float, np.ndarray], None] | None = None,
        keep_frames: bool = False,
        progress: Callable[[int], None] | None = None,
        stats_path: str | Path | None = None,
        opener: Callable[[int], Any] | None = None,
    ) -> None:
        self.backend, self.opt = backend, options
        self.opener = opener  # input i -> its media (clips, info, stats); default: decoded here
        self.specs = [Source.of(s) for s in sources]
        self.sources = [s.path for s in self.specs]
        self.sinks_for, self.on_map, self.keep_frames, self.progress = sinks_for, on_map, keep_frames, progress
        self.stats_path = Path(stats_path) if stats_path is not None else None
        self.stop = threading.Event()
        self.interrupted = False  # set by SIGINT/SIGTERM (a stop after a failure is not an interruption)
        self.budget = ByteBudget(int(options.frame_budget_mb * 2**20), self.stop)
        self.clips: queue.Queue[Any] = queue.Queue(maxsize=options.queue_clips)
        self.outs = [queue.Queue(maxsize=options.queue_clips * 2) for _ in self.sources]
        self.errors: list[str] = []
        self.warnings: list[str] = []
        # clips dropped (--live), and clips not sampled because the run was stopped
        self.dropped, self.discarded = [0] * len(self.sources), [0] * len(self.sources)
        # inputs whose clips a model server could not sample after its retries: ended, others go on
        self.failed = [False] * len(self.sources)
        self.frames_out = [0] * len(self.sources)
        # the latest maps' latencies (percentiles over the last 100k maps: bounded memory on streams)
        self.latencies: collections.deque[float] = collections.deque(maxlen=100_000)
        self.media_stats: list[Any] = [None] * len(self.sources)
        self.gaps: list[list[float]] = [[] for _ in self.sources]  # seconds without data before each reconnect
        self.infos: list[Any] = [None] * len(self.sources)
        self.stats = {"decode": _StageStats(), "model": _StageStats(), "write": _StageStats()}
        self.streaming = bool(getattr(backend, "streaming", False))  # its state per input: self.states
        self.states = StreamStates(backend.state_shapes(1) if self.streaming else {}, options.stride, len(self.sources))
        # a backend that keeps each stream's window (Backend.sample_streams); duck-typed ones sample clips
        self._by_stream = getattr(backend, "sample_streams", lambda streams, v, a, **kw: backend.sample(v, a, **kw))
        self._end_stream = getattr(backend, "end_stream", lambda stream: None)
        self._t0, self._cpu0 = time.perf_counter(), time.process_time()

    # -- stages ------------------------------------------------------------------------------
    def _open(self, i: int) -> Any:
        if self.opener is not None:
            return self.opener(i)
        return open_source(self.specs[i], self.opt, self.keep_frames)

    def _decode(self, i: int) -> None:
        attempt, delivered, last_time = 0, -1, 0.0
        shift: tuple[int, float] | None = None  # (frames, seconds) added to a reconnected live stream
        lost_at: float | None = None
        spec = self.specs[i]
        try:
            while not self.stop.is_set():
                try:
                    media = self._open(i)
                except MediaError as exc:
                    if attempt >= self.opt.retries or not spec.is_stream:
                        self.errors.append(
                            str(exc) if attempt == 0 else f"{spec.path}: stream lost after {attempt} retries ({exc})"
                        )
                        return
                    attempt += 1
                    time.sleep(self.opt.backoff_s * 2 ** (attempt - 1))
                    continue
                if lost_at is not None:  # reconnected after a loss
                    gap = time.monotonic() - lost_at
                    live = not media.info.duration_s  # no declared length: a live source goes on from now
                    shift = (delivered + 1, last_time + gap) if live else None
                    self.gaps[i].append(round(gap, 2))
                    self.warnings.append(
                        f"{spec.path}: no data for {gap:.1f} s; reconnected (attempt {attempt}), "
                        + (
                            "frames continue from the live stream's present"
                            if live
                            else "frames already delivered are skipped"
                        )
                    )
                    lost_at = None
                self.infos[i] = media.info
                self.media_stats[i] = media.stats
                mark = time.perf_counter()
                for clip in media:
                    self.stats["decode"].busy_s += time.perf_counter() - mark  # decoding + assembly
                    if self.stop.is_set() or self.failed[i]:
                        break
                    if shift is not None:
                        clip = _shifted(clip, *shift)
                    elif clip.target_index <= delivered:  # resumed file-like stream: skip what was delivered
                        continue
                    nbytes = sum(f[2].nbytes for f in clip.new_frames if f[2] is not None)
                    self.budget.acquire(nbytes)
                    self._put_clip(_Job(i, clip, time.perf_counter(), nbytes))
                    delivered, last_time = clip.target_index, clip.target_time
                    self.stats["decode"].count += 1
                    mark = time.perf_counter()
                if not spec.is_stream or self.stop.is_set() or media.stats.read_errors == 0:
                    break
                attempt += 1  # a network stream ended with a read error: reconnect with backoff
                lost_at = lost_at or time.monotonic()
                if attempt > self.opt.retries:
                    self.errors.append(f"{spec.path}: stream lost after {self.opt.retries} retries")
                    return
                time.sleep(self.opt.backoff_s * 2 ** (attempt - 1))
            if not self.stop.is_set() and not self.failed[i]:
                self._check_input(i)
        except Exception as exc:
            self.errors.append(f"{spec.path}: {type(exc).__name__}: {exc}")
        finally:
            self.clips.put(("eof", i))

    def _check_input(self, i: int) -> None:
        """Input truth after a complete decode: nothing decoded is an error; a read that ended
        before the container's declared duration, and skipped corrupt data, are warnings."""
        name = "stdin" if self.sources[i] == "-" else self.sources[i]
        st, info = self.media_stats[i], self.infos[i]
        if st is None or info is None:
            return
        if st.video_frames == 0:
            hint = (
                " (an MP4 whose index is at the end cannot be read from a pipe: pass the file, or remux it "
                "with -movflags +faststart)"
                if self.sources[i] == "-"
                else ""
            )
            self.errors.append(f"{name}: no video frame could be decoded{hint}")
            return
        if info.duration_s and info.fps and not self.specs[i].is_stream:
            decoded_s = st.video_frames / info.fps
            missing = int(round((info.duration_s - decoded_s) * info.fps))
            if missing > max(2, 0.02 * info.duration_s * info.fps):
                self.warnings.append(
                    f"{name}: input ended early: {st.video_frames} frames decoded, about "
                    f"{missing} more expected from its declared duration {info.duration_s:.2f} s "
                    f"(truncated or damaged file)"
                )
        # the clips at the end reach past the last frame (a centred window: half a clip), so they may
        # lack a few samples of audio: that much is expected and not said
        if st.clips_short_audio > self.opt.contract.clip_len + 0.01 * st.clips:
            self.warnings.append(
                f"{name}: {st.clips_short_audio} of {st.clips} clips had less audio than their window (the audio "
                "starts late, ends early, or comes more than a few seconds behind the picture in the file); "
                "the missing part is silence"
            )
        if st.excerpts_cropped:
            self.warnings.append(
                f"{name}: {st.excerpts_cropped} clips' audio excerpts were longer than the model's buffer and were "
                "centre-cropped (a sample rate above ~48 kHz or a frame rate below ~20 fps)"
            )
        if st.corrupt_packets or st.read_errors:
            self.warnings.append(
                f"{name}: skipped {st.corrupt_packets} corrupt packet(s), {st.read_errors} read "
                f"error(s); every decoded frame has a map"
            )

    def _put_clip(self, job: _Job) -> None:
        self.stats["decode"].depth(self.clips.qsize())
        if not self.opt.live:
            while not self.stop.is_set():
                try:
                    self.clips.put(job, timeout=0.1)
                    return
                except queue.Full:
                    continue
            self.budget.release(job.nbytes)
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
                    self.budget.release(old.nbytes)
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
            if self.stop.is_set():  # stopping: discard what was not sampled yet, finalise quickly
                for j in pending + ([item] if isinstance(item, _Job) else []):
                    self.discarded[j.source] += 1
                    self.budget.release(j.nbytes)
                pending = []
                if isinstance(item, tuple):
                    eof += 1
                    self.outs[item[1]].put(_END)
                continue
            if isinstance(item, tuple):
                eof += 1
                self._flush(pending, rng)
                pending = []
                self.states.end(item[1])  # an ended input's state is freed
                self._end_stream(item[1])  # and a server's window for it
                self.outs[item[1]].put(_END)
                continue
            if item is not None and self.failed[item.source]:  # its input failed: nothing more is sampled
                self.discarded[item.source] += 1
                self.budget.release(item.nbytes)
                item = None
            if item is not None:
                pending.append(item)
            if pending and (len(pending) >= o.batch or item is None):
                self._flush(pending, rng)
                pending = []

    def _flush(self, jobs: list[_Job], rng: np.random.Generator) -> None:
        """Sample ``jobs`` as one batch. A model server's failure (:class:`RemoteError`, after the
        backend's own retries) is retried once per input of a mixed batch; an input that still
        fails is ended with its error (its outputs keep what was written); the others go on."""
        jobs = [j for j in jobs if not self.failed[j.source]]
        if not jobs:
            return
        noise = rng.standard_normal((len(jobs), 1, *self.opt.contract.size)).astype(np.float32)
        try:
            self._sample(jobs, noise)
        except RemoteError as exc:
            groups: dict[int, list[int]] = {}
            for k, j in enumerate(jobs):
                groups.setdefault(j.source, []).append(k)
            for src, rows in groups.items():
                try:
                    if len(groups) == 1:
                        raise exc
                    self._sample([jobs[k] for k in rows], noise[rows])
                except RemoteError as err:
                    self.failed[src] = True
                    self.errors.append(f"{self.sources[src]}: model server: {err}")
                    for k in rows:
                        self.discarded[src] += 1
                        self.budget.release(jobs[k].nbytes)

    def _sample(self, jobs: list[_Job], noise: np.ndarray) -> None:
        if self.streaming:
            self._steps(jobs)
            return
        t = time.perf_counter()
        self.stats["model"].depth(self.clips.qsize())
        video = np.stack([j.clip.video for j in jobs])
        audio = np.stack([j.clip.audio for j in jobs])
        conditions = {}
        ctx = self.opt.contract.text_context
        if ctx:  # text-conditioned model: caption ids per clip, zeros (its AV variant) without captions
            cap = self.opt.captions
            conditions["text"] = np.stack(
                [
                    cap.tokens(self.sources[j.source], j.clip.target_index, j.clip.target_time)
                    if cap is not None
                    else np.zeros(ctx, np.int64)
                    for j in jobs
                ]
            )
        maps = self._by_stream([j.source for j in jobs], video, audio, steps=self.opt.steps, noise=noise, **conditions)
        maps = to_numpy(maps)
        self.stats["model"].busy_s += time.perf_counter() - t
        self.stats["model"].count += len(jobs)
        for j, m in zip(jobs, maps):
            self.outs[j.source].put((j, np.asarray(m[0], np.float32)))

    def _steps(self, jobs: list[_Job]) -> None:
        """A streaming model: waves of at most one frame per input, each with its input's state
        (:mod:`salrt.stepping`)."""
        for wave in waves(jobs):
            t = time.perf_counter()
            self.stats["model"].depth(self.clips.qsize())
            state = self.states.batch([(j.source, j.clip.target_index) for j in wave])
            video = np.stack([j.clip.video for j in wave])
            audio = np.stack([j.clip.audio for j in wave])
            maps, nxt = self.backend.step(video, audio, state)
            maps = to_numpy(maps)
            nxt = {k: np.asarray(to_numpy(v), np.float32) for k, v in nxt.items()}
            self.stats["model"].busy_s += time.perf_counter() - t
            self.stats["model"].count += len(wave)
            for r, j in enumerate(wave):
                self.states.after(j.source, j.clip.target_index, {k: v[r : r + 1] for k, v in nxt.items()})
                self.outs[j.source].put((j, np.asarray(maps[r, 0], np.float32)))

    def _write(self, i: int) -> None:
        sinks: list[Any] = []
        prev: tuple[int, float, np.ndarray] | None = None
        failed = False
        try:
            while True:
                item = self.outs[i].get()
                if item is _END:
                    break
                job, sal = item
                if failed:
                    self.budget.release(job.nbytes)
                    continue  # keep draining so the model worker never blocks on this queue
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
                except Exception as exc:
                    where = getattr(exc, "filename", None)  # the output file the error is about, when it says
                    self.errors.append(
                        f"{self.sources[i]}: output {where + ' ' if where else ''}failed: {type(exc).__name__}: {exc}"
                    )
                    failed = True
                    self.stop.set()
                    continue
                finally:
                    self.budget.release(job.nbytes)
                prev = tgt
                self.latencies.append(time.perf_counter() - job.decoded_at)
                self.stats["write"].busy_s += time.perf_counter() - t
                self.stats["write"].count += 1
        finally:
            for s in sinks:
                try:
                    s.close()
                except Exception as exc:
                    self.errors.append(f"{self.sources[i]}: closing {type(s).__name__}: {exc}")

    def _emit(self, i: int, sinks: list[Any], idx: int, ts: float, rgb: np.ndarray | None, m: np.ndarray) -> None:
        for s in sinks:
            s.write(idx, ts, rgb, m)
        if self.on_map is not None:
            self.on_map(i, idx, ts, m)
        self.frames_out[i] += 1
        if self.progress is not None:
            self.progress(1)

    # -- driver ------------------------------------------------------------------------------
    def run(self, handle_signals: bool = True) -> RunStats:
        """Run to the end (or until Ctrl-C/SIGTERM); outputs are finalised either way."""
        self._t0, self._cpu0 = time.perf_counter(), time.process_time()
        threads = [
            threading.Thread(target=self._decode, args=(i,), name=f"decode-{i}", daemon=True)
            for i in range(len(self.sources))
        ]
        threads += [
            threading.Thread(target=self._write, args=(i,), name=f"write-{i}", daemon=True)
            for i in range(len(self.sources))
        ]
        model = threading.Thread(target=self._model_guard, name="model", daemon=True)
        old = {}
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                old[sig] = signal.signal(sig, lambda *_: self.interrupt())
        last_save = time.monotonic()
        releasing = release_every(self.opt.release_memory_s) if self.opt.release_memory_s else None
        try:
            for th in [*threads, model]:
                th.start()
            while any(th.is_alive() for th in [*threads, model]):
                for th in [*threads, model]:
                    th.join(timeout=0.2)
                if self.stats_path is not None and time.monotonic() - last_save >= self.opt.stats_interval_s:
                    last_save = time.monotonic()
                    self._save_stats(self.summary(False))
        finally:
            if releasing is not None:
                releasing.set()
            for sig, h in old.items():
                signal.signal(sig, h)
        result = self.summary(self.interrupted)
        if self.stats_path is not None:
            self._save_stats(result)
        return result

    def interrupt(self) -> None:
        """Stop the run as Ctrl-C does: outputs are finalised with what was written."""
        self.interrupted = True
        self.stop.set()

    def summary(self, interrupted: bool) -> RunStats:
        """The run's statistics so far (``latency_ms`` values are None before the first map)."""
        wall = time.perf_counter() - self._t0
        lat = np.array(self.latencies) * 1e3
        pct = {
            p: (round(float(np.percentile(lat, q)), 2) if lat.size else None)
            for p, q in (("p50", 50), ("p95", 95), ("p99", 99))
        }
        return RunStats(
            inputs=list(self.sources),
            wall_s=round(wall, 3),
            interrupted=interrupted,
            frames_out=list(self.frames_out),
            fps_out=round(sum(self.frames_out) / wall, 3) if wall else 0,
            clips_per_s=round(self.stats["model"].count / wall, 3) if wall else 0,
            dropped_clips=list(self.dropped),
            discarded_on_stop=list(self.discarded),
            latency_ms=pct,
            stages={k: v.summary(wall) for k, v in self.stats.items()},
            cpu_utilisation=round((time.process_time() - self._cpu0) / wall, 3) if wall else 0,
            media=[dataclasses.asdict(s) if s is not None else None for s in self.media_stats],
            stream_gaps_s=[list(g) for g in self.gaps],
            warnings=list(self.warnings),
            errors=list(self.errors),
            state_resets=list(self.states.resets),
            wire_bytes=dict(getattr(self.backend, "wire_bytes", dict)()),
        )

    def _save_stats(self, stats: RunStats) -> None:
        from salrt.sinks import atomic_write

        try:
            atomic_write(self.stats_path, json.dumps(stats.to_dict(), indent=1, default=str))
        except OSError as exc:
            if f"statistics: {exc}" not in self.warnings:
                self.warnings.append(f"statistics: {exc}")

    def _model_guard(self) -> None:
        try:
            self._model()
        except Exception as exc:
            self.errors.append(f"model: {type(exc).__name__}: {exc}")
            self.stop.set()
            for q in self.outs:
                q.put(_END)
            while True:  # unblock decoders waiting on a full queue
                try:
                    self.clips.get_nowait()
                except queue.Empty:
                    break


def stream(
    source: str | Source, *, model: Any = None, backend: Any = None, pipeline: Any = None, **options: Any
) -> Iterator[tuple[float, np.ndarray]]:
    """Iterate ``(timestamp_s, saliency)`` for every frame of ``source`` (saliency: (H, W) float32
    in 0..1 at the model's resolution). Pass a :class:`salrt.pipeline.Pipeline`, a loaded ``model``
    or any ``backend`` (with ``contract=`` among the options)."""
    from salrt.backends import for_model

    if pipeline is not None:
        backend = pipeline.backend
        options.setdefault("contract", pipeline.contract)
        options.setdefault("captions", pipeline.captions)
    if backend is None:
        if model is None:
            raise UsageError("salrt.runtime.stream needs pipeline=, model= or backend=")
        backend = for_model(model)
        options.setdefault("contract", InputContract.of(model.config))
    out: queue.Queue[Any] = queue.Queue(maxsize=64)
    rt = Runtime(backend, [source], RunOptions(**options), on_map=lambda i, idx, ts, m: out.put((ts, m)))
    result: dict[str, Any] = {}
    th = threading.Thread(target=lambda: result.update(rt.run(handle_signals=False).to_dict()), daemon=True)
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
