"""The saliency-driven ROI encoder sink (``salrt encode``): frames encoded with per-block offsets.

Mechanism: for every frame the QP offsets of :mod:`salrt.roi` become FFmpeg regions of interest
(``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data, attached by ``addroi`` filters in a per-frame
filter graph), which FFmpeg's libx264 and libx265 wrappers turn into per-block quantiser offsets.
:func:`salrt.app.encode.block_qps` reads the QP of every block back from the encoded stream (the
decoder's ``venc_params`` export) so the effect can be checked, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.roi import BLOCKS, QpMapper, RoiConfig, addroi_filter_args, ffmpeg_regions
from salrt.sinks.files import VideoFileSink, even_frame

CODECS = {"libx264": "h264", "libx265": "hevc", "libsvtav1": "av1"}
DEFAULT_ROI = RoiConfig()
# Measured: FFmpeg's libsvtav1 wrapper ignores ROI side data (ROI and plain outputs are identical).
ROI_CODECS = ("libx264", "libx265")
# each encoder's CRF scale (x264 and x265: 0-51; SVT-AV1: 0-63), from the encoders' documentation
CRF_RANGE = {"libx264": (0.0, 51.0), "libx265": (0.0, 51.0), "libsvtav1": (0.0, 63.0)}


class RoiEncoderSink(VideoFileSink):
    """A runtime sink encoding the source frames with per-frame ROI offsets from the maps.

    ``roi=None`` encodes without ROI (the plain reference encode, same settings otherwise).
    """

    def __init__(
        self,
        path: Path,
        fps: float,
        source: str | None,
        codec: str = "libx264",
        crf: float | None = None,
        bitrate: int | None = None,
        roi: RoiConfig | None = DEFAULT_ROI,
        preset: str | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        import av

        if codec not in CODECS:
            raise SalrtError(f"unsupported codec {codec!r}: {', '.join(CODECS)}")
        try:
            av.codec.Codec(codec, "w")
        except Exception:
            raise SalrtError(f"this FFmpeg build has no {codec} encoder") from None
        if (crf is None) == (bitrate is None):
            raise SalrtError("give exactly one of crf or bitrate")
        if roi is not None and codec not in ROI_CODECS:
            raise SalrtError(
                f"{codec}: FFmpeg's wrapper ignores regions of interest; ROI encoding works with "
                f"{', '.join(ROI_CODECS)} (use --no-roi for a plain {codec} encode)"
            )
        super().__init__(path, fps, source)
        self.codec, self.crf, self.bitrate, self.roi, self.preset = codec, crf, bitrate, roi, preset
        self.extra = options or {}
        self.mapper: QpMapper | None = None
        self.offsets: list[np.ndarray] = []

    def _open(self, h: int, w: int) -> None:
        opts = dict(self.extra)
        if self.codec == "libx264":
            opts.setdefault("preset", self.preset or "veryfast")  # keeps adaptive quantisation (ROI needs it)
        elif self.codec == "libx265":
            opts.setdefault("preset", self.preset or "veryfast")
            opts.setdefault("x265-params", "log-level=error")
        elif self.codec == "libsvtav1":
            opts.setdefault("preset", self.preset or "10")
            opts.setdefault("svtav1-params", "log-level=1")
        if self.crf is not None:
            opts["crf"] = str(self.crf)
        self._add_video(self.codec, h, w, opts, bit_rate=None if self.crf is not None else int(self.bitrate))
        self.mapper = QpMapper((h, w), BLOCKS[CODECS[self.codec]], self.roi) if self.roi else None

    def _with_roi(self, frame: Any, offsets: np.ndarray) -> Any:
        import av

        regions = ffmpeg_regions(offsets, self.mapper.block, (frame.height, frame.width))
        if not regions:
            return frame
        g = av.filter.Graph()
        src = g.add_buffer(width=frame.width, height=frame.height, format=frame.format.name, time_base=self.tb)
        last = src
        for args in addroi_filter_args(regions):
            f = g.add("addroi", args)
            last.link_to(f)
            last = f
        sink = g.add("buffersink")
        last.link_to(sink)
        g.configure()
        g.push(frame)
        return g.pull()

    def write(self, index: int, time: float, frame: np.ndarray | None, sal: np.ndarray) -> None:
        import av

        if frame is None:
            raise SalrtError("ROI encoding needs the source frames (keep_frames)")
        if getattr(frame, "format", None) == "yuv420p":
            vf = frame.av_frame()
        else:  # RGB (a numpy array or an odd-sized source frame): odd sizes padded by one row/column
            rgb = even_frame(frame.rgb() if hasattr(frame, "rgb") else frame)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
        if self.stream is None:
            self._open(vf.height, vf.width)
        if self.mapper is not None:
            off = self.mapper(sal)
            self.offsets.append(off)
            vf = self._with_roi(vf, off)
        self._mux(vf, time)
