"""The frames a rate-distortion run encodes, and their lossless reference file."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import MediaError
from salrt.io.imaging import luma_plane
from salrt.io.orientation import Orientation


class Frame:
    """A decoded yuv420p frame as :class:`salrt.sinks.roi.RoiEncoderSink` takes it."""

    format = "yuv420p"

    def __init__(self, vf: Any) -> None:
        self.vf = vf

    def av_frame(self) -> Any:
        return self.vf

    def luma(self) -> np.ndarray:
        """The Y plane (H, W) uint8."""
        return luma_plane(self.vf)


def read_frames(path: str | Path, limit: int | None = None) -> tuple[list[Frame], float]:
    """The first ``limit`` (all when None) frames of the first video stream as yuv420p, even-sized
    (an odd last row/column dropped: 4:2:0 encoders need even sizes), and the stream's frame rate."""
    import av

    try:
        c = av.open(str(path))
    except (OSError, av.error.FFmpegError) as exc:
        raise MediaError(f"{path}: cannot open ({exc})") from None
    with c:
        if not c.streams.video:
            raise MediaError(f"{path}: no video stream")
        vs = c.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        frames = []
        orient = None
        for f in c.decode(vs):
            if limit is not None and len(frames) >= limit:
                break
            if orient is None:  # the first frame's display matrix turns every frame upright
                orient = Orientation.of(f, str(path))
            f = orient.apply_frame(f)
            w, h = f.width - f.width % 2, f.height - f.height % 2
            if (w, h) != (f.width, f.height) or f.format.name != "yuv420p":
                f = f.reformat(width=w, height=h, format="yuv420p")
            frames.append(Frame(f))
    if not frames:
        raise MediaError(f"{path}: no decodable video frames")
    return frames, fps


def write_reference(frames: list[Frame], fps: float, source: str | Path, path: Path) -> bool:
    """The frames losslessly (FFV1) in ``path`` (Matroska) with the source's audio over the same
    time (PCM), so the model and the quality metrics see exactly what the encoders got. Returns
    whether audio was written (False when the source has none)."""
    import av

    rate = Fraction(fps).limit_denominator(1001)
    duration = len(frames) / fps
    with av.open(str(path), "w", format="matroska") as out:
        vs = out.add_stream("ffv1", rate=rate)
        vs.width, vs.height, vs.pix_fmt = frames[0].vf.width, frames[0].vf.height, "yuv420p"
        tb = 1 / rate
        vs.time_base = vs.codec_context.time_base = tb
        audio = _copy_audio(source, out, duration)
        for i, fr in enumerate(frames):
            if audio is not None:  # interleaved as a muxer does: the audio up to this frame's end
                audio((i + 1) / fps)
            vf = fr.vf  # shared with the encodes, which set their own pts on it
            vf.pts, vf.time_base = i, tb
            for p in vs.encode(vf):
                out.mux(p)
        for p in vs.encode(None):
            out.mux(p)
        if audio is not None:
            audio(None)
    return audio is not None


def _copy_audio(source: str | Path, out: Any, duration: float) -> Any:
    """Adds a PCM stream to ``out`` and returns ``fill(until)``, which muxes the source's audio up
    to ``until`` seconds (None: the rest, up to ``duration``, and closes the source); None when
    the source has no audio stream."""
    import av

    src = av.open(str(source))
    if not src.streams.audio:
        src.close()
        return None
    ia = src.streams.audio[0]
    rate = ia.codec_context.sample_rate or 48000
    layout = ia.codec_context.layout.name if ia.codec_context.layout else "stereo"
    oa = out.add_stream("pcm_s16le", rate=rate, layout=layout)
    resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)

    limit = int(round(duration * rate))
    state = {"written": 0}
    pending = _pcm_frames(src, ia, resampler)

    def fill(until: float | None) -> None:
        stop = limit if until is None else min(limit, int(round(until * rate)))
        for rf in pending:
            take = min(rf.samples, limit - state["written"])
            if take > 0:
                data = rf.to_ndarray()[:, : take * len(rf.layout.channels)]
                nf = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="s16", layout=layout)
                nf.sample_rate, nf.pts = rate, state["written"]
                for p in oa.encode(nf):
                    out.mux(p)
                state["written"] += take
            if state["written"] >= stop:
                break
        if until is None:
            for p in oa.encode(None):
                out.mux(p)
            src.close()

    return fill


def _pcm_frames(src: Any, stream: Any, resampler: Any) -> Any:
    for frame in src.decode(stream):
        yield from resampler.resample(frame)
