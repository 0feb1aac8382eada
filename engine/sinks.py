"""Outputs of the runtime: overlay video, PNG maps, one .npy per video, a JSON sidecar.

Every sink receives ``write(index, time, frame_rgb | None, saliency)`` for each source frame in
order (saliency: (H, W) float32 in 0..1 at the model's resolution) and ``close()`` exactly once;
``close`` finalises files so they are playable/readable even after an interruption.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.io.imaging import pil_resize

SINKS = ("overlay", "png", "npy", "npz")


def colormap_jet(x: np.ndarray) -> np.ndarray:
    """(H, W) in 0..1 -> (H, W, 3) uint8, the 'jet' colour map (piecewise linear)."""
    x = np.clip(x, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map in 0..1 resized to ``size`` (bilinear, antialiased), float32."""
    if m.shape == tuple(size):
        return m.astype(np.float32)
    u8 = np.clip(np.rint(m * 255), 0, 255).astype(np.uint8)[..., None]
    return pil_resize(u8, size, "bilinear")[..., 0].astype(np.float32) / 255.0


def to_u8(m: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8)


def write_png(path: Path, gray: np.ndarray) -> None:
    """8-bit grey PNG through FFmpeg's PNG encoder (no Pillow needed)."""
    import av

    cc = av.CodecContext.create("png", "w")
    cc.width, cc.height, cc.pix_fmt = gray.shape[1], gray.shape[0], "gray"
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(gray), format="gray")
    packets = [*cc.encode(frame), *cc.encode(None)]
    Path(path).write_bytes(b"".join(bytes(p) for p in packets))


class AudioPassthrough:
    """Stream copy of a source file's first audio stream into an output container. The output
    stream must be added (``add``) before the first packet is muxed; ``copy`` at the end."""

    def __init__(self, source: str | None) -> None:
        self.source, self.stream = source, None

    def add(self, container: Any) -> None:
        import av

        if not (self.source and Path(self.source).is_file()):
            return  # live sources: no passthrough
        try:
            with av.open(self.source) as src:
                if src.streams.audio:
                    self.stream = container.add_stream_from_template(src.streams.audio[0])
        except (av.FFmpegError, ValueError):
            self.stream = None

    def copy(self, container: Any) -> None:
        import av

        if self.stream is None:
            return
        try:
            with av.open(self.source) as src:
                for pkt in src.demux(src.streams.audio[0]):
                    if pkt.dts is None:
                        continue
                    pkt.stream = self.stream
                    container.mux(pkt)
        except av.FFmpegError:
            pass  # the video stays playable; the audio track may be cut short


class VideoFileSink:
    """Base of the sinks that encode a video file: frame timing, audio passthrough, finalising."""

    def __init__(self, path: Path, fps: float, source: str | None) -> None:
        import av

        self.path, self.fps, self.source = Path(path), fps, source
        self.container = av.open(str(path), "w")
        self.stream: Any = None
        self.audio = AudioPassthrough(source)
        self.tb = Fraction(1, 90000)

    def _add_video(self, codec: str, h: int, w: int) -> Any:
        """The yuv420p video stream at the source fps (before any packet; audio stream added too)."""
        s = self.container.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.time_base = self.tb
        s.codec_context.time_base = self.tb
        self.audio.add(self.container)  # streams must all exist before the first packet is written
        self.stream = s
        return s

    def _mux(self, vf: Any, time: float) -> None:
        vf.pts = int(round(time / self.tb))
        vf.time_base = self.tb
        for p in self.stream.encode(vf):
            self.container.mux(p)

    def close(self) -> None:
        if self.stream is not None:
            for p in self.stream.encode(None):
                self.container.mux(p)
        self.audio.copy(self.container)
        self.container.close()


class OverlaySink(VideoFileSink):
    """The input frames with the colour-mapped map blended in (source size and fps), H.264 by
    default, the source's audio copied in at ``close`` when the source is a file."""

    def __init__(self, path: Path, fps: float, source: str | None, codec: str = "libx264", alpha: float = 0.45) -> None:
        super().__init__(path, fps, source)
        self.codec, self.alpha = codec, alpha

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        import av

        if frame is None:
            raise SalrtError("overlay output needs the source frames (keep_frames)")
        h, w = frame.shape[:2]
        if self.stream is None:
            self._add_video(self.codec, h - h % 2, w - w % 2)
        heat = colormap_jet(resize_map(sal, (h, w))).astype(np.float32)
        out = (frame.astype(np.float32) * (1 - self.alpha) + heat * self.alpha).astype(np.uint8)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(out[: h - h % 2, : w - w % 2]), format="rgb24")
        self._mux(vf, time)


class PngSink:
    """``<dir>/<frame:05d>.png`` (1-based, the naming ``salrt eval`` reads), 8-bit grey."""

    def __init__(self, directory: Path, size: tuple[int, int] | None = None) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.dir, self.size = directory, size

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        m = resize_map(sal, self.size) if self.size else sal
        write_png(self.dir / f"{index + 1:05d}.png", to_u8(m))

    def close(self) -> None:
        pass


class NpySink:
    """One uint8 ``.npy`` (N, H, W) per video, written incrementally (flat memory); the header's
    frame count is rewritten at ``close`` so an interrupted run still leaves a valid file.
    ``compress=True`` turns it into ``.npz`` (``maps``, ``times``) at close, streaming from disk."""

    _HEADER = 128

    def __init__(self, path: Path, size: tuple[int, int] | None = None, compress: bool = False) -> None:
        self.path, self.size, self.n, self.shape, self.compress = path, size, 0, None, compress
        self.times: list[float] = []
        self.f = path.open("wb")
        self.f.write(b"\0" * self._HEADER)

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        m = to_u8(resize_map(sal, self.size) if self.size else sal)
        self.shape = m.shape
        self.f.write(m.tobytes())
        self.times.append(time)
        self.n += 1

    def close(self) -> None:
        h, w = self.shape or (0, 0)
        header = f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({self.n}, {h}, {w}), }}"
        body = b"\x93NUMPY\x01\x00"
        text = header.encode().ljust(self._HEADER - len(body) - 2 - 1) + b"\n"
        self.f.seek(0)
        self.f.write(body + len(text).to_bytes(2, "little") + text)
        self.f.close()
        if self.compress:
            maps = np.load(self.path, mmap_mode="r")
            np.savez_compressed(self.path.with_suffix(".npz"), maps=maps, times=np.asarray(self.times))
            del maps
            self.path.unlink()


class JsonSidecar:
    """Per-frame timestamps and the run settings, written at ``close``."""

    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        self.path, self.settings, self.frames = path, settings, []

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        self.frames.append({"frame": index, "time": round(time, 6), "mean": float(sal.mean()),
                            "peak": [int(v) for v in np.unravel_index(int(sal.argmax()), sal.shape)]})  # fmt: skip

    def close(self) -> None:
        self.path.write_text(json.dumps({"settings": self.settings, "frames": self.frames}, indent=1, default=str))
