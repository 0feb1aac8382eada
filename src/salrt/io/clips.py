"""The one clip assembler: source frames and audio samples in, model clips out.

Decoding (:mod:`salrt.io.media`, PyAV) and the C API's push interface (:mod:`salrt.embed`) both
feed a :class:`ClipAssembler`, so every entry point gives a model exactly the same clips. Memory
is bounded: frames live in a ring of about ``clip_len + stride`` entries, audio only as far back as
the next clip's window needs.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np

from salrt.errors import MediaError
from salrt.io import audio as A
from salrt.io import imaging

_RESIZE = {"reference": imaging.reference_frame, "fast": imaging.fast_frame}


@dataclasses.dataclass
class MediaStats:
    """Counters reported at the end of a run (nothing is skipped silently)."""

    video_frames: int = 0
    audio_samples: int = 0
    corrupt_packets: int = 0
    read_errors: int = 0
    repaired_timestamps: int = 0
    clips: int = 0
    clips_short_audio: int = 0
    excerpts_cropped: int = 0
    max_buffered_frames: int = 0


@dataclasses.dataclass(frozen=True)
class Clip:
    """One model input. ``video`` (3, T, H, W) and ``audio`` (1, 9, h, w) or (1, N): numpy on CPU,
    torch tensors on ``device`` when one was given."""

    video: Any
    audio: Any
    target_index: int  # 0-based index of the frame this clip's map belongs to (median or last frame)
    target_time: float  # seconds from the first frame
    frame_indices: tuple[int, ...]  # source frames used (edges repeated)
    timestamps: tuple[float, ...]
    audio_window: tuple[int, int]  # native-rate samples [start, end] of the excerpt
    has_audio: bool
    fps: float
    timing: str  # "index" (constant rate, reference formula) or "timestamps"
    target_frame: Any = None  # the original frame (a SourceFrame) when frames are kept
    # every source frame since the previous clip's target up to this target, as (index, time,
    # SourceFrame or None without kept frames), so sinks can write every frame even at stride > 1
    new_frames: tuple[tuple[int, float, Any], ...] = ()


@dataclasses.dataclass
class _Frame:
    index: int
    time: float
    tensor: Any


class AudioRing:
    """Mono samples at the native rate, indexed from the audio stream's first sample."""

    def __init__(self) -> None:
        self.chunks: collections.deque[np.ndarray] = collections.deque()
        self.base = 0  # index of the first retained sample
        self.total = 0  # index one past the last sample

    def append(self, x: np.ndarray) -> None:
        self.chunks.append(x)
        self.total += x.shape[0]

    def read(self, start: int, end: int) -> np.ndarray:
        """Samples [start, end] (inclusive) that exist; shorter at the edges."""
        start, stop = max(start, self.base), min(end + 1, self.total)
        if stop <= start:
            return np.zeros(0)
        data = np.concatenate(self.chunks) if len(self.chunks) > 1 else self.chunks[0]
        self.chunks = collections.deque([data])
        return data[start - self.base : stop - self.base]

    def discard_before(self, index: int) -> None:
        while self.chunks and self.base + self.chunks[0].shape[0] <= index:
            self.base += self.chunks.popleft().shape[0]
        if self.chunks and self.base < index:  # trim inside the first chunk (copy frees the rest)
            self.chunks[0] = self.chunks[0][index - self.base :].copy()
            self.base = index


def check_clip_options(
    clip_len: int, stride: int, target: str, start: str, audio_format: str, resize: str, resampler: str
) -> None:
    """One clear error for a clip option out of range."""
    if start not in ("repeat", "reverse"):
        raise MediaError(f"unknown clip start {start!r}: use 'repeat' or 'reverse'")
    if target not in ("centre", "last"):
        raise MediaError(f"unknown clip target {target!r}: use 'centre' or 'last'")
    if audio_format not in ("logmel", "waveform"):
        raise MediaError(f"unknown audio format {audio_format!r}: use 'logmel' or 'waveform'")
    if clip_len < 1:
        raise MediaError(f"clip_len must be >= 1, got {clip_len}")
    if stride < 1:
        raise MediaError(f"stride must be >= 1, got {stride}")
    if resize not in _RESIZE:
        raise MediaError(f"unknown resize {resize!r}: use 'reference' or 'fast'")
    if resampler not in ("swr", "resampy"):
        raise MediaError(f"unknown resampler {resampler!r}: use 'swr' or 'resampy'")


class ClipAssembler:
    """Clips of one stream, in order: ``push_frame`` / ``push_audio`` add, ``clips()`` yields what
    is ready, ``clips(eof=True)`` the rest at the end. Options as :func:`salrt.io.open_media`;
    ``has_audio=False``: silent audio. A clip for frame ``k`` is ready once its last frame (and
    its audio window, or ``audio_skew_s`` of video past it) has arrived."""

    def __init__(
        self,
        *,
        fps: float,
        clip_len: int = 16,
        stride: int = 1,
        size: tuple[int, int] = (224, 384),
        audio_size: tuple[int, int] = A.SLICE_SIZE,
        target: str = "centre",
        start: str = "repeat",
        audio_format: str = "logmel",
        audio_samples: int = A.REFERENCE_BUFFER,
        audio_rate: int = A.WAVEFORM_RATE,
        device: Any = None,
        resize: str = "reference",
        resampler: str = "swr",
        has_audio: bool = True,
        audio_skew_s: float = 5.0,
        stats: MediaStats | None = None,
    ) -> None:
        check_clip_options(clip_len, stride, target, start, audio_format, resize, resampler)
        self.fps, self.clip_len, self.stride, self.size, self.audio_size = (
            float(fps),
            clip_len,
            stride,
            size,
            audio_size,
        )
        self.target, self.start, self.audio_format = target, start, audio_format
        self.audio_samples, self.out_rate, self.device, self.resize, self.resampler = (
            audio_samples,
            audio_rate,
            device,
            resize,
            resampler,
        )
        self.has_audio, self.audio_skew_s = has_audio, audio_skew_s
        self.stats = stats or MediaStats()
        self.before = clip_len // 2 if target == "centre" else clip_len - 1
        self.after = clip_len - self.before - 1
        self.frames: collections.deque[_Frame] = collections.deque()
        self.raw_pending: collections.deque[tuple[int, float, Any]] = collections.deque()
        self.ring = AudioRing()
        self.rate = 0  # native audio rate
        self.audio_eof = not has_audio
        self.t0: float | None = None  # the first frame's stream time
        self.audio_t0: float | None = None  # the first audio sample's stream time
        self.last_t = -np.inf
        self.next_target = 0
        self.last_emitted = -1
        self.n_frames = 0
        self.timing = "index"
        self._silent: Any = None

    # -- input ---------------------------------------------------------------------------------
    def push_frame(self, time: float | None, rgb: np.ndarray, kept: Any = None) -> None:
        """A frame (H, W, 3) uint8 RGB at stream ``time`` (seconds; None: one period after the last);
        ``kept``: what the clips carry for outputs (a SourceFrame), or None."""
        fps = self.fps
        if self.t0 is None:
            self.t0 = float(time) if time is not None else 0.0
        rel = (float(time) - self.t0) if time is not None else self.last_t + 1.0 / fps
        if not rel > self.last_t:  # missing or non-increasing timestamp: one frame period on
            rel = self.last_t + 1.0 / fps if np.isfinite(self.last_t) else 0.0
            self.stats.repaired_timestamps += 1
        self.last_t = rel
        nominal = self.n_frames * (1.0 / fps)
        if abs(rel - nominal) <= 1e-3 / fps:
            rel = nominal  # constant frame rate: the reference's exact (k - 1) * (1.0 / fps)
        else:
            self.timing = "timestamps"
        self.frames.append(_Frame(self.n_frames, rel, self._preprocess(rgb)))
        self.raw_pending.append((self.n_frames, rel, kept))
        self.n_frames += 1
        self.stats.video_frames += 1
        self.stats.max_buffered_frames = max(self.stats.max_buffered_frames, len(self.frames))

    def push_audio(self, samples: np.ndarray, rate: int, time: float | None = None, align: bool = True) -> None:
        """Mono float64 ``samples`` at ``rate``; ``align`` places the stream by the first chunk's
        ``time`` (else its first sample is the first frame's time)."""
        if self.audio_t0 is None and align:
            self.audio_t0 = float(time) if time is not None else (self.t0 or 0.0)
        self.rate = rate
        self.ring.append(samples)
        self.stats.audio_samples += samples.shape[0]

    def audio_done(self) -> None:
        """No more audio will come (clips no longer wait for it)."""
        self.audio_eof = True

    # -- output --------------------------------------------------------------------------------
    def clips(self, eof: bool = False) -> Iterator[Clip]:
        """The clips that are ready (with ``eof``: all the remaining ones, the last frame's included)."""
        while True:
            if eof and self.next_target >= self.n_frames and self.last_emitted < self.n_frames - 1:
                self.next_target = self.n_frames - 1  # the last frame always gets its own clip
            if not (self.next_target < self.n_frames and self._ready(eof)):
                return
            last = self.n_frames - 1 if eof else 1 << 62
            yield self._make(self.next_target, last)
            self.last_emitted = self.next_target
            self.next_target += self.stride
            # keep what the next clip needs, and what a final clip for the last frame would need
            keep_from = min(self.next_target, self.frames[-1].index) - self.before
            while self.frames and self.frames[0].index < keep_from and len(self.frames) > 1:
                self.frames.popleft()
            if self.rate and self.frames:
                s, _ = A.window_bounds(self._time_of(keep_from), 0.0, self.fps, self.rate)
                self.ring.discard_before(s + self._audio_offset())

    def newest_clip(self) -> Clip:
        """A clip for the newest frame now, without look-ahead (low-latency embedding): frames after
        it repeat it, as at the end of a stream, and the audio is what has arrived. Models whose map
        belongs to the last frame (``target="last"``) get exactly the clips :meth:`clips` gives. Frames
        and audio that no later newest clip needs are dropped."""
        if not self.n_frames:
            raise MediaError("no frame pushed yet")
        target = self.n_frames - 1
        clip = self._make(target, target)
        keep_from = target + 1 - self.before
        while self.frames and self.frames[0].index < keep_from and len(self.frames) > 1:
            self.frames.popleft()
        if self.rate and self.frames:
            s, _ = A.window_bounds(self._time_of(keep_from), 0.0, self.fps, self.rate)
            self.ring.discard_before(s + self._audio_offset())
        self.next_target = self.last_emitted = target
        return clip

    # -- internals -----------------------------------------------------------------------------
    def _time_of(self, index: int) -> float:
        real = [f for f in self.frames if f.index == index]
        if real:
            return real[0].time
        first, last = self.frames[0], self.frames[-1]
        ref = first if index < first.index else last
        return ref.time + (index - ref.index) / self.fps

    def _audio_offset(self) -> int:
        """Video-relative sample 0 in audio-ring indices."""
        if self.audio_t0 is None or self.t0 is None:
            return 0
        return int(round((self.t0 - self.audio_t0) * self.rate))

    def _span(self, target: int) -> tuple[int, int]:
        """First and last source frame of the clip for ``target``; with ``start="reverse"`` an early
        clip is the next ``clip_len`` frames played backwards, so it still ends on ``target``."""
        if self.start == "reverse" and target - self.before < 0:
            return target, target + self.clip_len - 1
        return target - self.before, target + self.after

    def _ready(self, eof: bool) -> bool:
        if not self.frames or self.next_target >= self.n_frames and not eof:
            return False
        hi = self._span(self.next_target)[1]
        if not eof and self.frames[-1].index < hi:
            return False
        if self.audio_eof or eof:
            return True
        _, end = A.window_bounds(0.0, self._time_of(hi), self.fps, self.rate)
        have = self.ring.total - self._audio_offset()
        return have > end or self.frames[-1].time - self._time_of(hi) > self.audio_skew_s

    def _make(self, target: int, last: int) -> Clip:
        lo, hi = self._span(target)
        rev = lo == target and hi > target  # a reversed early clip
        if rev:
            idx = [min(i, last) for i in range(hi, lo - 1, -1)]
        else:
            idx = [min(max(i, 0), last) for i in range(lo, hi + 1)]
        by_index = {f.index: f for f in self.frames}
        video = [by_index[i].tensor for i in idx]
        if self.device is None:
            vid = np.stack(video, axis=1)
        else:
            import torch

            vid = torch.stack(video, dim=1)
        t_first, t_last = self._time_of(lo), self._time_of(min(hi, last) if rev else hi)
        start = end = 0
        if self.has_audio and self.rate:
            start, end = A.window_bounds(t_first, t_last, self.fps, self.rate)
            off = self._audio_offset()
            excerpt = self.ring.read(start + off, end + off)
            if excerpt.shape[0] < end - start + 1:
                self.stats.clips_short_audio += 1
            # the log-mel buffer holds native-rate samples; the waveform buffer, out_rate samples
            limit = (
                A.REFERENCE_BUFFER if self.audio_format == "logmel" else self.audio_samples * self.rate / self.out_rate
            )
            if excerpt.shape[0] > limit:
                self.stats.excerpts_cropped += 1
            if rev:  # the window is played backwards with the frames, so sound and picture stay in sync
                excerpt = np.ascontiguousarray(excerpt[::-1])
            aud = self._audio_tensor(excerpt, self.rate)
        else:
            aud = self._silent_audio()
        self.stats.clips += 1
        new = []
        while self.raw_pending and self.raw_pending[0][0] <= target:
            new.append(self.raw_pending.popleft())
        # targets increase, so this clip's own frame is always the last of its new frames
        return Clip(
            video=vid,
            audio=aud,
            target_index=target,
            target_time=by_index[target].time,
            frame_indices=tuple(idx),
            timestamps=tuple(by_index[i].time for i in idx),
            audio_window=(start, end),
            has_audio=self.has_audio,
            fps=self.fps,
            timing=self.timing,
            target_frame=new[-1][2],
            new_frames=tuple(new),
        )

    def _preprocess(self, rgb: np.ndarray) -> Any:
        if self.device is None:
            return _RESIZE[self.resize](rgb, self.size)
        import torch

        t = torch.from_numpy(rgb).to(self.device, non_blocking=True)
        if self.resize == "reference":
            return imaging.reference_frame_torch(t, self.size)
        return torch.from_numpy(imaging.fast_frame(rgb, self.size)).to(self.device)

    def _audio_tensor(self, excerpt: np.ndarray, rate: int) -> Any:
        if self.audio_format == "waveform":
            w = A.clip_waveform(excerpt, rate, self.clip_len, self.audio_samples, self.out_rate, self.resampler)
            if self.device is None:
                return w
            import torch

            return torch.from_numpy(w).to(self.device)
        if self.device is None:
            return A.clip_audio(excerpt, rate, self.audio_size, self.resampler)
        import torch

        w = A.resample_to_16k(A.centre_in_buffer(excerpt), rate, self.resampler)
        wt = torch.as_tensor(w, dtype=torch.float32).to(self.device)[None]
        return A.log_mel_slices_torch(wt, self.audio_size)[0]

    def _silent_audio(self) -> Any:
        if self._silent is None:
            s = (
                np.zeros((1, self.audio_samples), np.float32)
                if self.audio_format == "waveform"
                else A.silent_audio(self.audio_size)
            )
            if self.device is not None:
                import torch

                s = torch.from_numpy(s).to(self.device)
            self._silent = s
        return self._silent


def shifted(clip: Clip, frames: int, seconds: float) -> Clip:
    """``clip`` with its frame indices and times moved on by ``frames`` / ``seconds`` (a live
    stream that reconnected goes on from its present)."""
    return dataclasses.replace(
        clip,
        target_index=clip.target_index + frames,
        target_time=clip.target_time + seconds,
        frame_indices=tuple(k + frames for k in clip.frame_indices),
        timestamps=tuple(t + seconds for t in clip.timestamps),
        new_frames=tuple((k + frames, t + seconds, rgb) for k, t, rgb in clip.new_frames),
    )
