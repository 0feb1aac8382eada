"""Decoding media with PyAV into model clips (16 frames + 9 log-mel slices for DiffSal).

``open_media(source)`` opens anything FFmpeg opens (files, URLs, capture devices with
``format=``, ``"-"`` for stdin), decodes it, and hands frames and audio to the
:class:`~salrt.io.clips.ClipAssembler` (the one the C API uses too), yielding its clips in order.
"""

from __future__ import annotations

import dataclasses
import itertools
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from salrt.errors import MediaError, UsageError
from salrt.io import audio as A
from salrt.io.clips import AudioRing, Clip, ClipAssembler, MediaStats, check_clip_options
from salrt.io.orientation import Orientation

__all__ = ["AudioRing", "Clip", "MediaClips", "MediaInfo", "MediaStats", "SourceFrame", "open_media", "probe"]


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
    orientation: str = "upright"  # the display matrix applied at decode (Orientation.describe())


@dataclasses.dataclass(frozen=True)
class SourceFrame:
    """A decoded source frame kept for outputs (overlays, ROI encoding) at source resolution:
    yuv420p planes as FFmpeg decoded them (half the bytes of RGB), or RGB for odd sizes."""

    data: np.ndarray  # yuv420p: (H * 3 // 2, W) uint8; rgb24: (H, W, 3) uint8
    format: str  # "yuv420p" or "rgb24"
    width: int
    height: int

    @classmethod
    def of(cls, frame: Any, orientation: Orientation | None = None) -> SourceFrame:
        """From a decoded PyAV frame, turned upright by ``orientation`` (default: as coded)."""
        o = orientation or Orientation()
        w, h = o.size(frame.width, frame.height)
        if frame.width % 2 == 0 and frame.height % 2 == 0:
            data = (
                frame.to_ndarray(format="yuv420p")
                if frame.format.name == "yuv420p"
                else frame.reformat(format="yuv420p").to_ndarray()
            )
            return cls(o.apply_yuv420p(data, frame.width, frame.height), "yuv420p", w, h)
        return cls(o.apply(frame.to_ndarray(format="rgb24")), "rgb24", w, h)

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


def hwaccels() -> tuple[str, ...]:
    """The hardware decoder device types of the FFmpeg PyAV loaded (e.g. ``cuda`` for NVDEC)."""
    from av.codec.hwaccel import hwdevices_available

    return tuple(hwdevices_available())


def check_hwaccel(kind: str) -> None:
    """A usage error unless ``kind`` is one of :func:`hwaccels`."""
    if kind not in hwaccels():
        raise UsageError(f"unknown hardware decoder {kind!r}; this FFmpeg has: {', '.join(hwaccels()) or 'none'}")


def _hwaccel(kind: str | None, source: str) -> Any:
    """A PyAV HWAccel for ``kind`` (None: software). An unknown kind is a usage error; a device
    that cannot be opened (no GPU, no driver) gives one warning and software decoding."""
    if kind is None:
        return None
    problem = hwaccel_problem(kind)
    if problem is not None:
        warnings.warn(f"{source}: {kind} hardware decoding unavailable ({problem}); decoding in software", stacklevel=4)
        return None
    from av.codec.hwaccel import HWAccel

    # streams the device cannot decode (a codec or profile NVDEC lacks) fall back to software per stream
    return HWAccel(device_type=kind, allow_software_fallback=True)


def hwaccel_problem(kind: str) -> str | None:
    """Why hardware decoder ``kind`` cannot decode here (None when it can; an unknown kind is a
    usage error), tried on a one-frame H.264 stream in memory, so that no input's bytes (stdin's
    cannot be reread) are spent on the probe."""
    import io

    import av
    from av.codec.hwaccel import HWAccel

    check_hwaccel(kind)
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        st = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        st.width, st.height, st.pix_fmt = 64, 64, "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((64, 64, 3), np.uint8), format="rgb24")
        for packet in [*st.encode(frame), *st.encode(None)]:
            out.mux(packet)
    buf.seek(0)
    try:
        with av.open(buf, hwaccel=HWAccel(device_type=kind, allow_software_fallback=False)) as c:
            next(c.decode(video=0))
    except (OSError, av.FFmpegError, ValueError, StopIteration) as exc:
        return str(getattr(exc, "strerror", None) or exc)
    return None


def _open_container(
    source: str, fmt: str | None, options: dict[str, str] | None, timeout: float | None, hwaccel: str | None = None
) -> Any:
    import av

    hw = _hwaccel(hwaccel, source)
    extra = {} if hw is None else {"hwaccel": hw}
    target: Any = sys.stdin.buffer if source == "-" else source
    try:
        return av.open(target, mode="r", format=fmt, options=options or {}, timeout=timeout, **extra)
    except FileNotFoundError:
        raise MediaError(f"{source}: no such file") from None
    except av.FFmpegError as exc:
        raise MediaError(f"{source}: cannot open ({exc.strerror or exc})") from None
    except (OSError, ValueError) as exc:
        raise MediaError(f"{source}: cannot open ({exc})") from None


class MediaClips:
    """Iterator over the clips of one source; see :func:`open_media`."""

    def __init__(
        self,
        source: str,
        *,
        clip_len: int = 16,
        stride: int = 1,
        size: tuple[int, int] = (224, 384),
        audio_size: tuple[int, int] = A.SLICE_SIZE,
        fps: float | None = None,
        device: Any = None,
        resize: str = "reference",
        resampler: str = "swr",
        format: str | None = None,
        options: dict[str, str] | None = None,
        timeout: float | None = None,
        keep_frames: bool = False,
        audio_skew_s: float = 5.0,
        audio: str | None = None,
        target: str = "centre",
        audio_format: str = "logmel",
        audio_samples: int = A.REFERENCE_BUFFER,
        audio_rate: int = A.WAVEFORM_RATE,
        start: str = "repeat",
        hwaccel: str | None = None,
    ) -> None:
        check_clip_options(clip_len, stride, target, start, audio_format, resize, resampler)
        self.start = start
        self.target, self.audio_format, self.audio_samples, self.audio_rate = (
            target,
            audio_format,
            audio_samples,
            audio_rate,
        )
        if fps is not None and not fps > 0:
            raise MediaError(f"fps must be positive, got {fps}")
        self.source, self.clip_len, self.stride = str(source), clip_len, stride
        self.size, self.audio_size, self.resize, self.resampler = size, audio_size, resize, resampler
        self.keep_frames, self.audio_skew_s = keep_frames, audio_skew_s
        self.device = self._device(device)
        self.stats = MediaStats()
        self._container = _open_container(self.source, format, options, timeout, hwaccel)
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
        # the first video frame is decoded now: its display matrix sets the picture's orientation
        self._frames = self._decoded()
        self._head = self._until_first_video_frame()
        first = next((f for kind, f in self._head if kind == "v"), None)
        try:
            self.orientation = Orientation.of(first, self.source) if first is not None else Orientation()
        except MediaError:
            self.close()
            raise
        self.info = self._describe(fps)
        if not self.orientation.identity:
            warnings.warn(
                f"{self.source}: display matrix {self.orientation.describe()}: frames are turned upright "
                "before the model, and maps and outputs are upright (as a player shows them)",
                stacklevel=2,
            )
        if self._as is None:
            warnings.warn(f"{self.source}: no audio stream; the model runs video-only (silent audio)", stacklevel=2)

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
        width, height = self.orientation.size(vs.codec_context.width, vs.codec_context.height)
        return MediaInfo(
            source=self.source,
            container=c.format.name,
            video_codec=vs.codec_context.name,
            width=width,
            height=height,
            fps=float(fps),
            fps_origin=origin,
            duration_s=duration,
            has_audio=aus is not None,
            audio_codec=aus.codec_context.name if aus else None,
            sample_rate=aus.codec_context.sample_rate if aus else None,
            channels=aus.codec_context.channels if aus else None,
            frames_hint=vs.frames or None,
            orientation=self.orientation.describe(),
        )

    def _until_first_video_frame(self) -> list[tuple[str, Any]]:
        """The decoded items up to and including the first video frame (all of them when none)."""
        head = []
        for kind, frame in self._frames:
            head.append((kind, frame))
            if kind == "v":
                break
        return head

    # -- decoding ------------------------------------------------------------------------------
    def _decoded(self) -> Iterator[tuple[str, Any]]:
        import av

        separate = self._audio_container is not None
        streams = [s for s in (self._vs, None if separate else self._as) if s is not None]
        demux = self._container.demux(*streams)
        unwrap = self._timestamp_unwrapper()
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
                unwrap(frame)
                yield ("v" if packet.stream is self._vs else "a"), frame

    def _timestamp_unwrapper(self) -> Any:
        """MPEG-TS/PS timestamps are 33-bit 90 kHz ticks: a slightly negative one (AAC's priming
        frame, -1024 samples) reads as ~95443 s. Such a frame time, more than half the wrap period
        past the container's start, is moved back by one period, so audio and video stay aligned."""
        if self._container.format.name not in ("mpegts", "mpeg", "mpegtsraw"):
            return lambda frame: None
        wrap_s = 2**33 / 90000
        start = (self._container.start_time or 0) / 1e6

        def unwrap(frame: Any) -> None:
            if frame.pts is not None and frame.time_base and float(frame.pts * frame.time_base) - start > wrap_s / 2:
                frame.pts -= int(round(wrap_s / frame.time_base))

        return unwrap

    @staticmethod
    def _audio_samples(frame: Any) -> np.ndarray:
        """Mono float64 samples of a planar float frame (the ``fltp`` resampler's output)."""
        x = frame.to_ndarray()  # (channels, n)
        # Reference quirk kept for fidelity: its wav files hold 16-bit samples, so quantise first.
        q = np.clip(np.rint(np.asarray(x, np.float64) * 32768.0), -32768, 32767)
        return q.mean(axis=0) / 32768.0

    # -- clip assembly -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Clip]:
        """Decode and hand frames and audio to the :class:`ClipAssembler`; yield its clips."""
        import av

        asm = ClipAssembler(
            fps=self.info.fps,
            clip_len=self.clip_len,
            stride=self.stride,
            size=self.size,
            audio_size=self.audio_size,
            target=self.target,
            start=self.start,
            audio_format=self.audio_format,
            audio_samples=self.audio_samples,
            audio_rate=self.audio_rate,
            device=self.device,
            resize=self.resize,
            resampler=self.resampler,
            has_audio=self._as is not None,
            audio_skew_s=self.audio_skew_s,
            stats=self.stats,
        )
        resampler = av.AudioResampler(format="fltp", layout=None, rate=None) if self._as is not None else None

        def add_audio(decoded: Any, align: bool = True) -> None:
            """Resample to planar float and hand over; ``align`` places the stream by its first timestamp."""
            for f in resampler.resample(decoded):
                asm.push_audio(self._audio_samples(f), f.sample_rate, f.time, align)

        if self._audio_container is not None:  # decoded up front, aligned with the first frame
            try:
                for f in self._audio_container.decode(self._as):
                    add_audio(f, align=False)
                add_audio(None, align=False)
            except av.FFmpegError:
                self.stats.read_errors += 1
            asm.audio_done()
        try:
            for kind, frame in itertools.chain(self._head, self._frames):
                if kind == "a":
                    add_audio(frame)
                else:
                    kept = SourceFrame.of(frame, self.orientation) if self.keep_frames else None
                    rgb = self.orientation.apply(frame.to_ndarray(format="rgb24"))
                    asm.push_frame(frame.time, rgb, kept)
                yield from asm.clips()
            if resampler is not None and not asm.audio_eof:
                add_audio(None)  # flush
            asm.audio_done()
            yield from asm.clips(eof=True)
        finally:
            self.close()

    def close(self) -> None:
        """Release the container (idempotent)."""
        for name in ("_container", "_audio_container"):
            c = getattr(self, name, None)
            if c is not None:
                c.close()
                setattr(self, name, None)

    def __enter__(self) -> MediaClips:
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
    - ``hwaccel``: a hardware decoder device type (:func:`hwaccels`, e.g. ``"cuda"``: NVDEC); when
      the device cannot be opened, one warning and software decoding;
    - ``audio``: a separate audio file, decoded up front and aligned with the first frame
      (datasets stored as image sequences + wav: ``source="dir/img_%05d.jpg", format="image2"``).
    """
    return MediaClips(source, **kwargs)


def probe(source: str, **kwargs: Any) -> MediaInfo:
    """What is known about ``source`` once opened (its first video frame decoded, for the display
    orientation); options as :func:`open_media`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        media = MediaClips(source, **kwargs)
    media.close()
    return media.info
