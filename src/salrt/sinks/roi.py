"""The saliency-driven ROI encoder sink (``salrt encode``): frames encoded with per-block offsets.

Mechanism: for every frame the QP offsets of :mod:`salrt.roi` become FFmpeg regions of interest
(``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data, attached by ``addroi`` filters in a per-frame
filter graph), which FFmpeg's libx264, libx265 and libvpx-vp9 wrappers turn into per-block
quantiser offsets (each encoder's grid and scale: :mod:`salrt.encoders`).
:func:`salrt.app.encode.block_qps` reads the QP of every block back from the encoded stream (the
decoder's ``venc_params`` export) so the effect can be checked, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.encoders import ENCODERS, encoder, refusal, roi_encoders
from salrt.errors import SalrtError
from salrt.io.imaging import luma_plane
from salrt.roi import QpMapper, RoiConfig, SceneCuts, addroi_filter_args, ffmpeg_regions
from salrt.sinks.files import VideoFileSink, even_frame

DEFAULT_ROI = RoiConfig()  # "the encoder's default" (salrt.encoders); a given RoiConfig replaces it


class RoiEncoderSink(VideoFileSink):
    """A runtime sink encoding the source frames with per-frame ROI offsets from the maps.

    ``roi=None`` encodes without ROI (the plain reference encode, same settings otherwise);
    ``roi=DEFAULT_ROI`` takes the encoder's own default mapping. ``options`` go over the
    encoder's plain-encode options (:mod:`salrt.encoders`). The offsets' smoothing restarts at
    every scene cut (``cuts`` counts them).
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

        if codec not in ENCODERS:
            raise SalrtError(f"unsupported codec {codec!r}: {', '.join(ENCODERS)}")
        try:
            av.codec.Codec(codec, "w")
        except Exception:
            raise SalrtError(f"this FFmpeg build has no {codec} encoder") from None
        if (crf is None) == (bitrate is None):
            raise SalrtError("give exactly one of crf or bitrate")
        self.encoder = encoder(codec)
        if roi is not None and self.encoder.roi is None:
            raise SalrtError(refusal(codec) + f" (a plain {codec} encode: no ROI)")
        super().__init__(path, fps, source)
        self.codec, self.crf, self.bitrate, self.preset = codec, crf, bitrate, preset
        self.roi = (self.encoder.roi.config if roi is DEFAULT_ROI else roi) if self.encoder.roi else None
        self.extra = options or {}
        self.mapper: QpMapper | None = None
        self.cut = SceneCuts()
        self.cuts = 0
        self.offsets: list[np.ndarray] = []

    def _open(self, h: int, w: int) -> None:
        from salrt.encoders import merge_options

        opts = self.encoder.encode_options(roi=self.roi is not None, crf=self.crf)
        if self.preset:
            opts["preset"] = self.preset
        opts = merge_options(opts, self.extra)
        self._add_video(self.codec, h, w, opts, bit_rate=None if self.crf is not None else int(self.bitrate))
        route = self.encoder.roi
        self.mapper = QpMapper((h, w), route.block, self.roi) if self.roi and route else None

    def _with_roi(self, frame: Any, offsets: np.ndarray) -> Any:
        import av

        route = self.encoder.roi
        regions = ffmpeg_regions(offsets, route.block, (frame.height, frame.width), route.qp_range, route.levels)
        if not regions:
            # x265 pools its frames and gives a quant-offset buffer only to those first made from a
            # picture that carried offsets; offsets arriving into one made without them crash it
            # (measured: libx265 on carphone, a frame with offsets after a stretch without). So every
            # picture carries offsets: one zero region over the frame, which changes nothing.
            regions = [{"top": 0, "bottom": frame.height, "left": 0, "right": frame.width, "qoffset": 0.0}]
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
            cut = self.cut(luma_plane(vf))
            self.cuts += cut
            off = self.mapper(sal, cut=cut)
            self.offsets.append(off)
            vf = self._with_roi(vf, off)
        self._mux(vf, time)


# the names other modules import from here
CODECS = {n: e.codec for n, e in ENCODERS.items()}
CRF_RANGE = {n: e.crf_range for n, e in ENCODERS.items()}
ROI_CODECS = tuple(roi_encoders())
