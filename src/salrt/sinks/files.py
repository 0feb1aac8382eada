"""Outputs of the runtime: overlay video, PNG maps, ``.npy``/``.npz`` per video, a JSON sidecar.

Every sink receives ``write(index, time, frame, saliency)`` for each source frame in order
(``frame``: the :class:`salrt.io.media.SourceFrame` when the run keeps frames, else None;
saliency: (h, w) float32 in 0..1 at the model's resolution) and ``close()`` exactly once.

Crash safety (what survives a SIGKILL or power loss at any moment): the ``.npy`` carries a valid
header from its first frame, its frame count updated after every frame (``np.load`` and
``mmap_mode`` read it); the overlay is a fragmented MP4 (playable up to its last fragment, about
one second); PNGs and JSON files are written to a temporary name and renamed, so a file with a
final name is always complete; the JSON sidecar is rewritten every few seconds.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import time as _time
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.io.imaging import colormap_jet, resize_map, to_u8

log = logging.getLogger("salrt.sinks")


_JET_LUT = colormap_jet(np.arange(256) / 255.0)  # (256, 3): jet of each uint8 level


def _scale_u8(img: np.ndarray, size: tuple[int, int], fmt: str) -> np.ndarray:
    """A uint8 gray (h, w) or rgb24 (h, w, 3) image scaled to ``size`` = (H, W) by FFmpeg's
    bilinear swscale (fast at any resolution; used for display, never for model inputs)."""
    import av

    if img.shape[:2] == tuple(size):
        return img
    vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format=fmt)
    return vf.reformat(width=size[1], height=size[0], interpolation="BILINEAR").to_ndarray()


def blend_heatmap(frame: np.ndarray, sal: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``frame`` (H, W, 3) uint8 with the jet-coloured ``sal`` (h, w) in 0..1 blended in, the
    blend weight proportional to saliency (zero saliency leaves the frame untouched)."""
    h, w = frame.shape[:2]
    s8 = to_u8(sal)
    heat = _scale_u8(_JET_LUT[s8], (h, w), "rgb24").astype(np.uint16)
    a = (_scale_u8(s8, (h, w), "gray").astype(np.uint16) * int(round(alpha * 256))) >> 8  # 0..255 weight
    out = (frame.astype(np.uint16) * (255 - a[..., None]) + heat * a[..., None]) // 255
    return out.astype(np.uint8)


def blend_heatmap_yuv(frame: Any, sal: np.ndarray, alpha: float = 0.6) -> Any:
    """:func:`blend_heatmap` on a yuv420p :class:`~salrt.io.media.SourceFrame`, plane by plane
    (no full-resolution RGB is made); returns a yuv420p PyAV frame for the encoder."""
    import av

    h, w = frame.height, frame.width
    s8 = to_u8(sal)
    heat = av.VideoFrame.from_ndarray(np.ascontiguousarray(_JET_LUT[s8]), format="rgb24")
    heat = heat.reformat(width=w, height=h, format="yuv420p", interpolation="BILINEAR").to_ndarray()
    k = int(round(alpha * 256))
    out = np.empty_like(frame.data)
    for rows, size in ((slice(0, h), (h, w)), (slice(h, None), (h // 2, w // 2))):  # Y, then U and V
        a = (_scale_u8(s8, size, "gray").astype(np.uint16) * k) >> 8
        if rows.start:  # U and V planes are stored one after the other in the chroma rows
            a = np.concatenate([a.reshape(-1), a.reshape(-1)]).reshape(h // 2, w)
        src, hot = frame.data[rows].astype(np.uint16), heat[rows].astype(np.uint16)
        out[rows] = ((src * (255 - a) + hot * a) // 255).astype(np.uint8)
    return av.VideoFrame.from_ndarray(out, format="yuv420p")


def even_frame(frame: np.ndarray) -> np.ndarray:
    """Pad an odd-sized (H, W, 3) frame by repeating its last row/column (4:2:0 needs even sizes)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def atomic_write(path: Path, data: bytes | str | Iterable[str], sync: bool = True) -> None:
    """Write ``data`` (or its pieces, as they come: large files in flat memory) to ``path`` via a
    temporary file and a rename: ``path`` is never half-written."""
    path = Path(path)
    tmp = _tmp_name(path)
    pieces = [data] if isinstance(data, (bytes, str)) else data
    try:
        with open(tmp, "wb") as f:
            for piece in pieces:
                f.write(piece.encode() if isinstance(piece, str) else piece)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:  # no temporary file left behind (a full disk, an interrupt)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def png_bytes(gray: np.ndarray) -> bytes:
    """An 8-bit grey PNG through FFmpeg's PNG encoder (no Pillow needed)."""
    import av

    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = gray.shape[1], gray.shape[0], "gray"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(gray), format="gray")
    packets = [*cc.encode(frame), *cc.encode(None)]
    return b"".join(bytes(p) for p in packets)


def write_png(path: Path, gray: np.ndarray) -> None:
    """An 8-bit grey PNG, written atomically."""
    atomic_write(Path(path), png_bytes(gray), sync=False)


# audio codecs FFmpeg's MP4 muxer takes by stream copy (others, e.g. PCM from AVI or WAV, are re-encoded to AAC)
_MP4_AUDIO = {"aac", "mp3", "mp2", "opus", "flac", "alac", "ac3", "eac3"}


# errors about the output file itself (not about an audio stream the container refuses)
_FILE_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS, errno.EISDIR, errno.ENOTDIR}

FRAGMENT_US = 250_000  # the overlay's fragment length (what a hard kill can lose, plus one frame)


class AudioPassthrough:
    """The source file's first audio stream in an output container, interleaved with the video
    as it is written and cut where the video ends (an interrupted run's overlay has audio as long
    as its video). Stream copy where the container takes the codec, else re-encoded to AAC (PCM
    from AVI or WAV into MP4). ``add`` before the first packet is muxed, ``finish`` at the end."""

    def __init__(self, source: str | None, quiet: bool = False) -> None:
        self.source, self.stream, self.quiet = source, None, quiet
        self._src: Any = None
        self._packets: Any = None
        self._next: Any = None
        self._t0: float | None = None
        self._resampler: Any = None  # set when re-encoding
        self._samples = 0

    def add(self, container: Any) -> None:
        import av

        if not self.source or self.source == "-" or not Path(self.source).is_file():
            if self.quiet or self.source is None:  # None: a video-only output asked for, nothing lost
                return
            log.warning(
                "%s: the overlay has no audio track (audio is copied from files only, not from streams or stdin)",
                self.source if self.source != "-" else "stdin",
            )
            return
        try:
            self._src = av.open(self.source)
            src = self._src.streams.audio[0] if self._src.streams.audio else None
            if src is not None and not (src.codec_context.sample_rate and src.codec_context.layout.nb_channels):
                log.warning(
                    "%s: its audio stream has no sample rate or channels (damaged); the output has no audio track",
                    self.source,
                )
            elif src is not None:
                cc = src.codec_context
                # ADTS AAC (MPEG-TS, .aac: no extradata) needs a header MP4 cannot write before the first packet
                if "mp4" in container.format.name and (
                    cc.name not in _MP4_AUDIO or cc.name == "aac" and not cc.extradata
                ):
                    cc = src.codec_context
                    n = cc.layout.nb_channels
                    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(n, "stereo")  # AAC needs a named layout
                    self.stream = container.add_stream("aac", rate=cc.sample_rate, layout=layout)
                    self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=cc.sample_rate)
                else:
                    self.stream = container.add_stream_from_template(src)
                self._packets = self._src.demux(src)
        except (av.FFmpegError, ValueError, OSError):
            self.stream = None
        if self.stream is None:
            self._close_source()

    def feed(self, container: Any, until: float) -> None:
        """Mux the source's audio packets that start before ``until`` seconds (video time)."""
        import av

        if self._packets is None:
            return
        try:
            while True:
                pkt = self._next if self._next is not None else next(self._packets, None)
                self._next = None
                if pkt is None:
                    self._close_source()
                    return
                if pkt.dts is None or pkt.pts is None:
                    continue
                t = float(pkt.pts * pkt.time_base)
                self._t0 = t if self._t0 is None else self._t0
                if t - self._t0 >= until:
                    self._next = pkt
                    return
                if self._resampler is None:
                    try:
                        pkt.stream = self.stream
                        container.mux(pkt)
                    except av.FFmpegError as exc:  # a damaged packet (timestamps): the audio ends here
                        log.warning(
                            "%s: audio copy stopped at %.2f s (%s)", self.source, t - self._t0, exc.strerror or exc
                        )
                        self._close_source()
                        return
                    continue
                for frame in pkt.decode():
                    for f in self._resampler.resample(frame):
                        self._encode(container, f)
        except av.FFmpegError:
            self._close_source()  # the video stays playable; the audio track ends here

    def _encode(self, container: Any, frame: Any) -> None:
        frame.pts, frame.time_base = self._samples, Fraction(1, frame.sample_rate)
        self._samples += frame.samples
        for p in self.stream.encode(frame):
            container.mux(p)

    def finish(self, container: Any, until: float) -> None:
        """The audio up to ``until`` seconds, the encoder flushed when re-encoding."""
        self.feed(container, until)
        if self._resampler is not None and self.stream is not None:
            for p in self.stream.encode(None):
                container.mux(p)
        self._close_source()

    def _close_source(self) -> None:
        self._packets = self._next = None
        if self._src is not None:
            self._src.close()
            self._src = None


class VideoFileSink:
    """Base of the sinks that encode a video file: frame timing, audio passthrough, finalising.
    ``fragmented``: a fragmented MP4 (playable after a hard kill up to its last ~1 s fragment)."""

    def __init__(self, path: Path, fps: float, source: str | None, fragmented: bool = False) -> None:
        self.path, self.fps, self.source, self.fragmented = Path(path), fps, source, fragmented
        self.container = self._open_container()
        self.stream: Any = None
        self.audio = AudioPassthrough(source)
        self.tb = Fraction(1, 90000)
        self.end_time = 0.0  # video time written so far (last frame + one frame period)

    def _open_container(self) -> Any:
        import av

        # fragmented: a moov up front, a fragment every 0.25 s (and at each keyframe), each flushed to
        # disk: with a zero-latency encoder a hard kill loses at most ~0.3 s of the overlay
        opts = (
            {"movflags": "frag_keyframe+empty_moov+default_base_moof", "frag_duration": str(FRAGMENT_US),
             "flush_packets": "1"}
            if self.fragmented
            else {}
        )  # fmt: skip
        return av.open(str(self.path), "w", options=opts)

    def _add_video(
        self, codec: str, h: int, w: int, options: dict[str, str] | None = None, bit_rate: int | None = None
    ) -> Any:
        """The yuv420p video stream at the source fps, the audio stream, and the file header. An
        audio stream the container refuses at the header (damaged parameters) is left out, warned."""
        import av

        for with_audio in (True, False):
            s = self.container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.time_base = self.tb
            s.codec_context.time_base = self.tb
            if bit_rate:
                s.codec_context.bit_rate = int(bit_rate)
            if self.fragmented:  # a keyframe (so a fragment) every second
                s.codec_context.gop_size = max(1, int(round(self.fps)))
            if options:
                s.options = dict(options)
            if with_audio:
                self.audio.add(self.container)  # streams must all exist before the header is written
            try:
                with keep_scheduling():  # the encoders open here
                    self.container.start_encoding()
                break
            except av.FFmpegError as exc:
                if (
                    not with_audio
                    or self.audio.stream is None
                    or isinstance(exc, OSError)
                    and exc.errno in _FILE_ERRNOS
                ):
                    raise  # the file itself cannot be written: not the audio's fault
                log.warning(
                    "%s: the source's audio cannot be written (%s); %s has no audio track",
                    self.source,
                    exc.strerror or exc,
                    self.path.name,
                )
                self.audio = AudioPassthrough(None, quiet=True)
                self.container.close()
                self.container = self._open_container()
        self.stream = s
        return s

    def _mux(self, vf: Any, time: float) -> None:
        vf.pts = int(round(time / self.tb))
        vf.time_base = self.tb
        for p in self.stream.encode(vf):
            self.container.mux(p)
        self.end_time = time + 1.0 / self.fps
        self.audio.feed(self.container, self.end_time)

    def close(self) -> None:
        try:
            if self.stream is not None:
                for p in self.stream.encode(None):
                    self.container.mux(p)
                self.audio.finish(self.container, self.end_time)
        finally:
            self.audio._close_source()
            self.container.close()


@contextlib.contextmanager
def keep_scheduling() -> Iterator[None]:
    """Restores the calling thread's scheduling policy on exit. SVT-AV1 makes the thread that opens
    it real-time (SCHED_FIFO, where it may: as root), and every process started afterwards inherits
    that: worker processes whose BLAS threads spin then starve each other (a 30-s training cache
    build ran for over an hour after an AV1 encode in the same process)."""
    if not hasattr(os, "sched_getscheduler"):  # not Linux
        yield
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        yield
    finally:
        if os.sched_getscheduler(0) != policy:
            os.sched_setscheduler(0, policy, param)


class OverlaySink(VideoFileSink):
    """The input frames with the colour-mapped map blended in (source size, odd sizes padded by
    one row/column, source fps), H.264 in a fragmented MP4, the source's audio copied alongside
    when the source is a file."""

    def __init__(self, path: Path, fps: float, source: str | None, codec: str = "libx264", alpha: float = 0.6) -> None:
        super().__init__(path, fps, source, fragmented=True)
        self.codec, self.alpha = codec, alpha

    def write(self, index: int, time: float, frame: Any, sal: np.ndarray) -> None:
        import av

        if frame is None:
            raise SalrtError("overlay output needs the source frames (keep_frames)")
        if getattr(frame, "format", None) == "yuv420p":
            vf, (h2, w2) = blend_heatmap_yuv(frame, sal, self.alpha), (frame.height, frame.width)
        else:  # RGB (odd sizes): padded to even
            rgb = frame.rgb() if hasattr(frame, "rgb") else frame
            out = even_frame(blend_heatmap(rgb, sal, self.alpha))
            vf, (h2, w2) = av.VideoFrame.from_ndarray(np.ascontiguousarray(out), format="rgb24"), out.shape[:2]
        if self.stream is None:
            h, w = frame.shape[:2]
            if (h, w) != (h2, w2):
                log.warning(
                    "%s: %dx%d frames padded to %dx%d in the overlay (H.264 4:2:0 needs even sizes)",
                    self.path.name,
                    w,
                    h,
                    w2,
                    h2,
                )
            # a preview: above 1080p x264's lighter preset (4K: ~180 MB of encoder memory instead of ~600)
            # zerolatency: no look-ahead, no B-frames, so every frame leaves the encoder when it is
            # written and a hard kill loses only the open fragment (FRAGMENT_US)
            opts = (
                {"preset": "ultrafast" if h2 * w2 > 1920 * 1088 else "veryfast", "tune": "zerolatency"}
                if self.codec == "libx264"
                else None
            )
            self._add_video(self.codec, h2, w2, opts)
        self._mux(vf, time)


class PngSink:
    """``<dir>/<frame:05d>.png`` (1-based, the naming ``salrt eval`` reads), 8-bit grey, each
    written to a temporary name and renamed (a half-written PNG never carries a final name)."""

    def __init__(self, directory: Path, size: tuple[int, int] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.size = directory, size
        # an earlier run's frames must not mix with this run's (a shorter input would leave its tail)
        stale = [p for p in directory.glob("*.png") if re.fullmatch(r"\d{5}\.png", p.name)]
        for p in stale:
            p.unlink()
        if stale:
            log.warning("%s: replaced the %d PNG maps of an earlier run", directory, len(stale))

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        m = resize_map(sal, self.size) if self.size else sal
        write_png(self.dir / f"{index + 1:05d}.png", to_u8(m))

    def close(self) -> None:
        pass


class NpyWriter:
    """An uint8 ``.npy`` of shape (N, H, W) growing one frame at a time, valid at every moment:
    the header is written with the first frame and its count rewritten after each frame's data
    (so the count never exceeds the data on disk, whatever moment the process dies)."""

    HEADER = 128  # fixed header size: the count can grow without moving the data

    def __init__(self, path: Path) -> None:
        self.path, self.n, self.shape = Path(path), 0, None
        self.fd: int | None = None

    def _header(self) -> bytes:
        h, w = self.shape or (0, 0)
        text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({self.n}, {h}, {w}), }}"
        magic = b"\x93NUMPY\x01\x00"
        body = text.encode().ljust(self.HEADER - len(magic) - 2 - 1) + b"\n"
        return magic + len(body).to_bytes(2, "little") + body

    def append(self, m: np.ndarray) -> None:
        if self.fd is None:
            self.shape = m.shape
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(self.fd, self._header())
        if m.shape != self.shape:
            raise SalrtError(f"{self.path.name}: map of shape {m.shape} after maps of shape {self.shape}")
        os.pwrite(self.fd, np.ascontiguousarray(m, np.uint8).tobytes(), self.HEADER + self.n * m.size)
        self.n += 1
        os.pwrite(self.fd, self._header(), 0)

    def close(self) -> None:
        if self.fd is not None:
            os.fsync(self.fd)
            os.close(self.fd)
            self.fd = None


class _RowFile:
    """Fixed-width float64 rows appended to an anonymous temporary file (deleted with it, even
    after a hard kill): per-frame records of a stream of any length without growing memory."""

    def __init__(self, width: int) -> None:
        import tempfile

        self.width, self.n = width, 0
        self.file = tempfile.TemporaryFile()

    def append(self, row: tuple[float, ...]) -> None:
        os.pwrite(self.file.fileno(), np.asarray(row, np.float64).tobytes(), self.n * self.width * 8)
        self.n += 1

    def chunks(self, rows: int = 65536) -> Iterator[np.ndarray]:
        """The rows so far, ``rows`` at a time, as (k, width) arrays."""
        for start in range(0, self.n, rows):
            k = min(rows, self.n - start)
            data = os.pread(self.file.fileno(), k * self.width * 8, start * self.width * 8)
            yield np.frombuffer(data, np.float64).reshape(k, self.width)

    def close(self) -> None:
        self.file.close()


class NpySink:
    """One uint8 ``.npy`` (N, H, W) per video (``<name>.npy``), written as frames arrive (flat
    memory, readable at every moment). ``compress=True`` writes ``<name>.npz`` (``maps``,
    ``times``) at close instead, streaming from ``<name>.partial.npy``, which is left readable if
    the run is killed before then."""

    def __init__(self, path: Path, size: tuple[int, int] | None = None, compress: bool = False) -> None:
        self.path, self.size, self.compress = Path(path), size, compress
        self.times = _RowFile(1) if compress else None  # the npz's times, kept on disk: flat memory
        raw = self.path.with_suffix(".partial.npy") if compress else self.path.with_suffix(".npy")
        self.writer = NpyWriter(raw)

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        self.writer.append(to_u8(resize_map(sal, self.size) if self.size else sal))
        if self.times is not None:
            self.times.append((time,))

    def close(self) -> None:
        self.writer.close()
        if self.times is None:
            return
        times = np.concatenate([c[:, 0] for c in self.times.chunks()] or [np.zeros(0)])
        self.times.close()
        if self.writer.shape is None:
            return
        raw = self.writer.path
        final = self.path.with_suffix(".npz")
        tmp = _tmp_name(final)
        maps = np.load(raw, mmap_mode="r")
        with open(tmp, "wb") as f:
            np.savez_compressed(f, maps=maps, times=times)
        del maps
        os.replace(tmp, final)
        raw.unlink()


class JsonSidecar:
    """Per-frame timestamps, mean and peak (row, column at the model's map resolution) and the run
    settings, rewritten atomically every ``interval_s`` seconds (longer as the file grows, so a
    long stream spends at most ~5 % of its time on it) and at ``close``. The frames' rows are kept
    in an anonymous temporary file and the JSON is written from it in chunks, so memory stays flat
    however long the stream (the file itself grows by ~100 bytes a frame)."""

    def __init__(self, path: Path, settings: dict[str, Any], interval_s: float = 2.0) -> None:
        self.path, self.settings, self.interval_s = path, settings, interval_s
        self.rows = _RowFile(5)  # index, time, mean, peak row, peak column
        self._last, self._cost = _time.monotonic(), 0.0
        self._save()  # exists (valid, no frames yet) from the start

    @property
    def n(self) -> int:
        return self.rows.n

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        r, c = np.unravel_index(int(sal.argmax()), sal.shape)
        self.rows.append((index, time, float(sal.mean()), r, c))
        if _time.monotonic() - self._last >= max(self.interval_s, 20 * self._cost):
            self._save()

    @staticmethod
    def _frame(row: np.ndarray) -> dict[str, Any]:
        i, t, m, r, c = row
        return {"frame": int(i), "time": round(float(t), 6), "mean": float(m), "peak": [int(r), int(c)]}

    @property
    def frames(self) -> list[dict[str, Any]]:
        return [self._frame(row) for chunk in self.rows.chunks() for row in chunk]

    def _save(self) -> None:
        t0 = _time.monotonic()
        atomic_write(self.path, self._json())
        self._last = _time.monotonic()
        self._cost = self._last - t0

    def _json(self) -> Iterator[str]:
        """The layout ``json.dumps(indent=1)`` gives, frame by frame."""
        head = json.dumps({"settings": self.settings}, indent=1, default=str)
        yield head[:-2] + ',\n "frames": ['
        first = True
        for chunk in self.rows.chunks():
            for row in chunk:
                yield ("\n  " if first else ",\n  ") + json.dumps(self._frame(row), indent=1).replace("\n", "\n  ")
                first = False
        yield "\n ]\n}" if not first else "]\n}"

    def close(self) -> None:
        self._save()
        self.rows.close()
