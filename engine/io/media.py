"""Decoding media with PyAV and assembling model clips (16 frames + 9 log-mel slices).

``open_media(source)`` opens anything FFmpeg opens (files, URLs, capture devices with
``format=``, ``"-"`` for stdin) and yields :class:`Clip` objects in order. Memory is bounded:
frames live in a ring buffer of ``clip_len + stride`` entries, audio only as far back as the
next clip's window needs.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
import warnings
from typing import Any, Iterator

import numpy as np

from salrt.errors import MediaError
from salrt.io import audio as A
from salrt.io import imaging

_RESIZE = {"reference": imaging.reference_frame, "fast": imaging.fast_frame}


@dataclasses.dataclass(frozen=True)
class MediaInfo:
    """What is known about a source once opened."""

    source: str
    container: str
    video_codec: str
    width: int
    height: int
    fps: float  # effective rate used for audio alignment
    fps_origin: str  # "user", "stream average", "stream guess" or "default (25)"
    duration_s: float | None
    has_audio: bool
    audio_codec: str | None
    sample_rate: int | None
    channels: int | None
    frames_hint: int | None


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
class SourceFrame:
    """A decoded source frame kept for outputs (overlays, ROI encoding) at source resolution:
    yuv420p planes as FFmpeg decoded them (half the bytes of RGB), or RGB for odd sizes."""

    data: np.ndarray  # yuv420p: (H * 3 // 2, W) uint8; rgb24: (H, W, 3) uint8
    format: str  # "yuv420p" or "rgb24"
    width: int
    height: int

    @classmethod
    def of(cls, frame: Any) -> "SourceFrame":
        """From a decoded PyAV frame."""
        if frame.width % 2 == 0 and frame.height % 2 == 0:
            data = frame.to_ndarray(format="yuv420p") if frame.format.name == "yuv420p" else \
                frame.reformat(format="yuv420p").to_ndarray()  # fmt: skip
            return cls(data, "yuv420p", frame.width, frame.height)
        return cls(frame.to_ndarray(format="rgb24"), "rgb24", frame.width, frame.height)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, 3), the shape of :meth:`rgb`."""
        return (self.height, self.width, 3)

    def av_frame(self) -> Any:
        """A PyAV VideoFrame of the data (yuv420p or rgb24)."""
        import av

        return av.VideoFrame.from_ndarray(self.data, format=self.format)

    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        return self.data if self.format == "rgb24" else self.av_frame().to_ndarray(format="rgb24")

    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Views of the Y (H, W), U and V (H/2, W/2) planes of a yuv420p frame."""
        h, w = self.height, self.width
        y = self.data[:h]
        uv = self.data[h:].reshape(2, h // 2, w // 2)
        return y, uv[0], uv[1]


@dataclasses.dataclass(frozen=True)
class Clip:
    """One model input. ``video`` (3, T, H, W) and ``audio`` (1, 9, h, w): numpy on CPU,
    torch tensors on ``device`` when one was given."""

    video: Any
    audio: Any
    target_index: int  # 0-based index of the frame this clip's map belongs to (median frame)
    target_time: float  # seconds from the first frame
    frame_indices: tuple[int, ...]  # source frames used (edges repeated)
    timestamps: tuple[float, ...]
    audio_window: tuple[int, int]  # native-rate samples [start, end] of the excerpt
    has_audio: bool
    fps: float
    timing: str  # "index" (constant rate, reference formula) or "timestamps"
    target_frame: SourceFrame | None = None  # the original frame when keep_frames=True
    # every source frame since the previous clip's target up to this target, as (index, time,
    # SourceFrame or None without keep_frames), so sinks can write every frame even at stride > 1
    new_frames: tuple[tuple[int, float, np.ndarray | None], ...] = ()


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


def _open_container(source: str, fmt: str | None, options: dict[str, str] | None, timeout: float | None) -> Any:
    import av

    target: Any = sys.stdin.buffer if source == "-" else source
    try:
        return av.open(target, mode="r", format=fmt, options=options or {}, timeout=timeout)
    except FileNotFoundError:
        raise MediaError(f"{source}: no such file") from None
    except av.FFmpegError as exc:
        raise MediaError(f"{source}: cannot open ({exc.strerror or exc})") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"{source}: cannot open ({exc})") from None


class MediaClips:
    """Iterator over the clips of one source; see :func:`open_media`."""

    def __init__(self, source: str, *, clip_len: int = 16, stride: int = 1, size: tuple[int, int] = (224, 384),
                 audio_size: tuple[int, int] = A.SLICE_SIZE, fps: float | None = None, device: Any = None,
                 resize: str = "reference", resampler: str = "swr", format: str | None = None,
                 options: dict[str, str] | None = None, timeout: float | None = None,
                 keep_frames: bool = False, audio_skew_s: float = 5.0, audio: str | None = None,
                 target: str = "centre", audio_format: str = "logmel", audio_samples: int = A.REFERENCE_BUFFER,
                 audio_rate: int = A.WAVEFORM_RATE, start: str = "repeat") -> None:  # fmt: skip
        if start not in ("repeat", "reverse"):
            raise MediaError(f"unknown clip start {start!r}: use 'repeat' or 'reverse'")
        self.start = start
        if target not in ("centre", "last"):
            raise MediaError(f"unknown clip target {target!r}: use 'centre' or 'last'")
        if audio_format not in ("logmel", "waveform"):
            raise MediaError(f"unknown audio format {audio_format!r}: use 'logmel' or 'waveform'")
        self.target, self.audio_format, self.audio_samples, self.audio_rate = target, audio_format, audio_samples, audio_rate
        if clip_len < 1:
            raise MediaError(f"clip_len must be >= 1, got {clip_len}")
        if stride < 1:
            raise MediaError(f"stride must be >= 1, got {stride}")
        if resize not in _RESIZE:
            raise MediaError(f"unknown resize {resize!r}: use 'reference' or 'fast'")
        if resampler not in ("swr", "resampy"):
            raise MediaError(f"unknown resampler {resampler!r}: use 'swr' or 'resampy'")
        if fps is not None and not fps > 0:
            raise MediaError(f"fps must be positive, got {fps}")
        self.source, self.clip_len, self.stride = str(source), clip_len, stride
        self.size, self.audio_size, self.resize, self.resampler = size, audio_size, resize, resampler
        self.keep_frames, self.audio_skew_s = keep_frames, audio_skew_s
        self.device = self._device(device)
        self.stats = MediaStats()
        self._container = _open_container(self.source, format, options, timeout)
        c = self._container
        if not c.streams.video:
            c.close()
            raise MediaError(f"{self.source}: no video stream")
        self._vs = c.streams.video[0]
        self._vs.thread_type = "AUTO"
        self._as = c.streams.audio[0] if c.streams.audio else None
        self._audio_container = None
        if audio is not None:  # a separate audio file (e.g. frames as images + a wav)
            self._audio_container = _open_container(str(audio), None, None, timeout)
            if not self._audio_container.streams.audio:
                self.close()
                raise MediaError(f"{audio}: no audio stream")
            self._as = self._audio_container.streams.audio[0]
        self.info = self._describe(fps)
        if self._as is None:
            warnings.warn(f"{self.source}: no audio stream; the model runs video-only (silent audio)", stacklevel=2)
        self._silent: Any = None

    # -- setup ---------------------------------------------------------------------------------
    @staticmethod
    def _device(device: Any) -> Any:
        if device is None or str(device) == "numpy":
            return None
        try:
            import torch
        except ImportError:
            raise MediaError("device tensors need torch: pip install torch (or omit device)") from None
        try:
            return torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise MediaError(f"unknown device {device!r}: {exc}") from None

    def _describe(self, fps: float | None) -> MediaInfo:
        vs, aus, c = self._vs, self._as, self._container
        origin = "user"
        if fps is None:
            for name, rate in (("stream average", vs.average_rate), ("stream guess", vs.guessed_rate)):
                if rate:
                    fps, origin = float(rate), name
                    break
            else:
                fps, origin = 25.0, "default (25)"
                warnings.warn(f"{self.source}: frame rate unknown; aligning audio at 25 fps", stacklevel=3)
        duration = float(c.duration) / 1e6 if c.duration else None
        return MediaInfo(
            source=self.source, container=c.format.name, video_codec=vs.codec_context.name,
            width=vs.codec_context.width, height=vs.codec_context.height, fps=float(fps), fps_origin=origin,
            duration_s=duration, has_audio=aus is not None, audio_codec=aus.codec_context.name if aus else None,
            sample_rate=aus.codec_context.sample_rate if aus else None,
            channels=aus.codec_context.channels if aus else None, frames_hint=vs.frames or None,
        )  # fmt: skip

    # -- decoding ------------------------------------------------------------------------------
    def _decoded(self) -> Iterator[tuple[str, Any]]:
        import av

        separate = self._audio_container is not None
        streams = [s for s in (self._vs, None if separate else self._as) if s is not None]
        demux = self._container.demux(*streams)
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                return
            except av.FFmpegError:  # truncated or unreadable container data: end of input
                self.stats.read_errors += 1
                for s in streams:  # the frames still held in the decoders are part of the input
                    try:
                        for frame in s.decode(None):
                            yield ("v" if s is self._vs else "a"), frame
                    except av.FFmpegError:
                        pass
                return
            try:
                frames = packet.decode()
            except av.FFmpegError:
                self.stats.corrupt_packets += 1
                continue
            for frame in frames:
                yield ("v" if packet.stream is self._vs else "a"), frame

    @staticmethod
    def _audio_samples(frame: Any) -> np.ndarray:
        """Mono float64 samples of a planar float frame (the ``fltp`` resampler's output)."""
        x = frame.to_ndarray()  # (channels, n)
        # Reference quirk kept for fidelity: its wav files hold 16-bit samples, so quantise first.
        q = np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767)
        return q.mean(axis=0) / 32768.0

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
            w = A.clip_waveform(excerpt, rate, self.clip_len, self.audio_samples, self.audio_rate, self.resampler)
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
            s = (np.zeros((1, self.audio_samples), np.float32) if self.audio_format == "waveform"
                 else A.silent_audio(self.audio_size))  # fmt: skip
            if self.device is not None:
                import torch

                s = torch.from_numpy(s).to(self.device)
            self._silent = s
        return self._silent

    # -- clip assembly -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Clip]:
        fps = self.info.fps
        before = self.clip_len // 2 if self.target == "centre" else self.clip_len - 1
        after = self.clip_len - before - 1
        frames: collections.deque[_Frame] = collections.deque()
        raw_pending: collections.deque[tuple[int, float, SourceFrame | None]] = collections.deque()
        ring = AudioRing()
        audio_rate = self.info.sample_rate or 0
        audio_eof = self._as is None
        t0: float | None = None
        audio_t0: float | None = None
        last_t = -np.inf
        next_target = 0
        last_emitted = -1
        n_frames = 0
        timing = "index"
        resampler = None
        if self._as is not None:
            import av

            resampler = av.AudioResampler(format="fltp", layout=None, rate=None)

        def time_of(index: int) -> float:
            real = [f for f in frames if f.index == index]
            if real:
                return real[0].time
            first, last = frames[0], frames[-1]
            ref = first if index < first.index else last
            return ref.time + (index - ref.index) / fps

        def audio_offset() -> int:  # video-relative sample 0 in audio-ring indices
            if audio_t0 is None or t0 is None:
                return 0
            return int(round((t0 - audio_t0) * audio_rate))

        def span(target: int) -> tuple[int, int]:
            """First and last source frame of the clip for ``target``; with ``start="reverse"`` an
            early clip is the next ``clip_len`` frames played backwards, so it still ends on ``target``."""
            if self.start == "reverse" and target - before < 0:
                return target, target + self.clip_len - 1
            return target - before, target + after

        def ready(eof: bool) -> bool:
            if not frames or next_target >= n_frames and not eof:
                return False
            hi = span(next_target)[1]
            if not eof and frames[-1].index < hi:
                return False
            if audio_eof or eof:
                return True
            _, end = A.window_bounds(0.0, time_of(hi), fps, audio_rate)
            have = ring.total - audio_offset()
            return have > end or frames[-1].time - time_of(hi) > self.audio_skew_s

        def make_clip(target: int, last: int) -> Clip:
            lo, hi = span(target)
            rev = lo == target and hi > target  # a reversed early clip
            if rev:
                idx = [min(i, last) for i in range(hi, lo - 1, -1)]
            else:
                idx = [min(max(i, 0), last) for i in range(lo, hi + 1)]
            by_index = {f.index: f for f in frames}
            video = [by_index[i].tensor for i in idx]
            if self.device is None:
                vid = np.stack(video, axis=1)
            else:
                import torch

                vid = torch.stack(video, dim=1)
            t_first, t_last = time_of(lo), time_of(min(hi, last) if rev else hi)
            start = end = 0
            if self._as is not None and audio_rate:
                start, end = A.window_bounds(t_first, t_last, fps, audio_rate)
                off = audio_offset()
                excerpt = ring.read(start + off, end + off)
                if excerpt.shape[0] < end - start + 1:
                    self.stats.clips_short_audio += 1
                # the log-mel buffer holds native-rate samples; the waveform buffer, audio_rate samples
                limit = A.REFERENCE_BUFFER if self.audio_format == "logmel" else self.audio_samples * audio_rate / self.audio_rate
                if excerpt.shape[0] > limit:
                    self.stats.excerpts_cropped += 1
                aud = self._audio_tensor(excerpt, audio_rate)
            else:
                aud = self._silent_audio()
            self.stats.clips += 1
            new = []
            while raw_pending and raw_pending[0][0] <= target:
                new.append(raw_pending.popleft())
            # targets increase, so this clip's own frame is always the last of its new frames
            return Clip(video=vid, audio=aud, target_index=target, target_time=by_index[target].time,
                        frame_indices=tuple(idx), timestamps=tuple(by_index[i].time for i in idx),
                        audio_window=(start, end), has_audio=self._as is not None, fps=fps, timing=timing,
                        target_frame=new[-1][2], new_frames=tuple(new))  # fmt: skip

        def add_audio(decoded: Any, align: bool = True) -> None:
            """Resample to planar float and append; ``align`` places the stream by its first timestamp."""
            nonlocal audio_t0, audio_rate
            assert resampler is not None
            for f in resampler.resample(decoded):
                if audio_t0 is None and align:
                    audio_t0 = float(f.time) if f.time is not None else (t0 or 0.0)
                audio_rate = f.sample_rate
                x = self._audio_samples(f)
                ring.append(x)
                self.stats.audio_samples += x.shape[0]

        def emit(eof: bool) -> Iterator[Clip]:
            nonlocal next_target, last_emitted
            while True:
                if eof and next_target >= n_frames and last_emitted < n_frames - 1:
                    next_target = n_frames - 1  # the last frame always gets its own clip
                if not (next_target < n_frames and ready(eof)):
                    return
                last = n_frames - 1 if eof else 1 << 62
                yield make_clip(next_target, last)
                last_emitted = next_target
                next_target += self.stride
                # keep what the next clip needs, and what a final clip for the last frame would need
                keep_from = min(next_target, frames[-1].index) - before
                while frames and frames[0].index < keep_from and len(frames) > 1:
                    frames.popleft()
                if audio_rate and frames:
                    s, _ = A.window_bounds(time_of(keep_from), 0.0, fps, audio_rate)
                    ring.discard_before(s + audio_offset())

        if self._audio_container is not None:  # decoded up front, aligned with the first frame
            import av

            try:
                for f in self._audio_container.decode(self._as):
                    add_audio(f, align=False)
                add_audio(None, align=False)
            except av.FFmpegError:
                self.stats.read_errors += 1
            audio_eof = True
        try:
            for kind, frame in self._decoded():
                if kind == "a":
                    add_audio(frame)
                    yield from emit(False)
                    continue
                t = frame.time
                if t0 is None:
                    t0 = float(t) if t is not None else 0.0
                rel = (float(t) - t0) if t is not None else last_t + 1.0 / fps
                if not rel > last_t:  # missing or non-increasing timestamp: one frame period on
                    rel = last_t + 1.0 / fps if np.isfinite(last_t) else 0.0
                    self.stats.repaired_timestamps += 1
                last_t = rel
                nominal = n_frames * (1.0 / fps)
                if abs(rel - nominal) <= 1e-3 / fps:
                    rel = nominal  # constant frame rate: the reference's exact (k - 1) * (1.0 / fps)
                else:
                    timing = "timestamps"
                rgb = frame.to_ndarray(format="rgb24")
                frames.append(_Frame(n_frames, rel, self._preprocess(rgb)))
                raw_pending.append((n_frames, rel, SourceFrame.of(frame) if self.keep_frames else None))
                n_frames += 1
                self.stats.video_frames += 1
                self.stats.max_buffered_frames = max(self.stats.max_buffered_frames, len(frames))
                yield from emit(False)
            if resampler is not None and not audio_eof:
                add_audio(None)  # flush
            audio_eof = True
            yield from emit(True)
        finally:
            self.close()

    def close(self) -> None:
        """Release the container (idempotent)."""
        for name in ("_container", "_audio_container"):
            c = getattr(self, name, None)
            if c is not None:
                c.close()
                setattr(self, name, None)

    def __enter__(self) -> "MediaClips":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_media(source: str, **kwargs: Any) -> MediaClips:
    """Open ``source`` and return an iterator of :class:`Clip` (see :class:`MediaClips` for options).

    - ``clip_len`` (16) frames per clip; the clip for frame ``k`` holds frames ``k-8 .. k+7``
      (``target="centre"``) or ``k-clip_len+1 .. k`` (``target="last"``), edge frames repeated at
      the start and end, so every frame can get a map;
    - ``start``: ``"repeat"`` (early clips repeat the first frame) or ``"reverse"`` (with
      ``target="last"``: frame k < clip_len - 1 gets the next clip_len frames backwards, AVRSP's rule);
    - ``audio_format``: ``"logmel"`` (VGGish slices, ``audio_size``) or ``"waveform"`` (mono at
      ``audio_rate``, one Hann-windowed segment per frame, centred in ``audio_samples``: SoundNet models);
    - ``stride`` (1): a clip for every ``stride``-th frame, plus always the last frame;
    - ``fps``: override the frame rate used for audio alignment (default: the stream's);
    - ``device``: a torch device; frames and log-mel are then computed there with torch ops;
    - ``resize``: ``"reference"`` (bit-exact to the reference's Pillow 9.4 transforms) or
      ``"fast"`` (one antialiased bilinear pass);
    - ``resampler``: ``"swr"`` (FFmpeg) or ``"resampy"`` (the reference's, exact);
    - ``format``/``options``/``timeout``: passed to FFmpeg (e.g. ``format="v4l2"``);
    - ``keep_frames``: attach every source frame (a :class:`SourceFrame`, yuv420p as decoded) to the
      clips, for overlays and ROI encoding;
    - ``audio``: a separate audio file, decoded up front and aligned with the first frame
      (datasets stored as image sequences + wav: ``source="dir/img_%05d.jpg", format="image2"``).
    """
    return MediaClips(source, **kwargs)



def probe(source: str, **kwargs: Any) -> MediaInfo:
    """What is known about ``source`` once opened (no frame decoded); options as :func:`open_media`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        media = MediaClips(source, **kwargs)
    media.close()
    return media.info
