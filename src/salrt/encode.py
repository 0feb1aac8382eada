"""Saliency-driven ROI encoding through a real encoder, and tools to verify its effect.

Mechanism: for every frame the QP offsets of :mod:`salrt.roi` become FFmpeg regions of interest
(``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data, attached by ``addroi`` filters in a per-frame
filter graph), which FFmpeg's libx264 and libx265 wrappers turn into per-block quantiser offsets.
:func:`block_qps` reads the QP of every block back from the encoded stream (the decoder's
``venc_params`` export) so the effect can be checked, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.roi import BLOCKS, QpMapper, RoiConfig, addroi_filter_args, ffmpeg_regions
from salrt.sinks import VideoFileSink, even_frame

CODECS = {"libx264": "h264", "libx265": "hevc", "libsvtav1": "av1"}
DEFAULT_ROI = RoiConfig()
# Measured: FFmpeg's libsvtav1 wrapper ignores ROI side data (ROI and plain outputs are identical).
ROI_CODECS = ("libx264", "libx265")


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


def encode_with_maps(source: str, output: str | Path, maps: np.ndarray | None, **kwargs: Any) -> RoiEncoderSink:
    """Encode ``source`` with given per-frame saliency maps (N, h, w) in 0..1 (e.g. ground truth),
    one map per frame: a count that differs from the video's frame count is an error (the frames
    encoded up to the first frame without a map are kept, finalised). ``maps=None`` with
    ``roi=None``: a plain encode, no maps needed."""
    import av

    if maps is None:
        if kwargs.get("roi", DEFAULT_ROI) is not None:
            raise SalrtError("ROI encoding needs maps")
        maps = _NoMaps()
    with av.open(source) as c:
        vs = c.streams.video[0]
        if vs.frames and not isinstance(maps, _NoMaps) and vs.frames != len(maps):
            raise SalrtError(f"{len(maps)} maps for {vs.frames} video frames: give one map per frame")
        fps = float(vs.average_rate or 25)
        sink = RoiEncoderSink(Path(output), fps, source, **kwargs)
        t0 = None
        n = 0
        try:
            for i, f in enumerate(c.decode(vs)):
                if i >= len(maps):
                    raise SalrtError(
                        f"only {len(maps)} maps for a video with more frames: give one map per frame "
                        f"({output} holds the first {len(maps)} frames)"
                    )
                t0 = f.time if t0 is None else t0
                sink.write(i, (f.time or 0.0) - (t0 or 0.0), f.to_ndarray(format="rgb24"), maps[i])
                n += 1
        finally:
            sink.close()
    if n < len(maps) and not isinstance(maps, _NoMaps):
        raise SalrtError(f"{len(maps)} maps for {n} video frames: give one map per frame ({output} was written)")
    return sink


class _NoMaps:
    """Stands for the maps of a plain encode: one (unused) empty map per frame, any count."""

    def __len__(self) -> int:
        return 1 << 62

    def __getitem__(self, i: int) -> np.ndarray:
        return np.zeros((1, 1), np.float32)


def block_qps(path: str | Path) -> list[np.ndarray]:
    """Per-block QPs of every decoded frame (H.264: 16x16 macroblocks), via FFmpeg's venc_params."""
    import av

    out = []
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        vs.codec_context.options = {"export_side_data": "venc_params"}
        for f in c.decode(vs):
            sd = f.side_data.get("VIDEO_ENC_PARAMS")
            if sd is None:
                raise SalrtError(f"{path}: the {vs.codec_context.name} decoder exports no per-block QPs")
            out.append(np.asarray(sd.qp_map(), np.float32))
    return out


def _gray(path: str | Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as c:
        return [f.to_ndarray(format="gray").astype(np.float64) for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray, weight: np.ndarray | None = None) -> float:
    """PSNR (8-bit) of luma, optionally weighted per pixel."""
    err = (a - b) ** 2
    mse = float((err * weight).sum() / weight.sum()) if weight is not None else float(err.mean())
    return 10 * np.log10(255.0**2 / max(mse, 1e-10))


def ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel SSIM of luma (Gaussian window, sigma 1.5, the standard constants)."""
    from scipy.ndimage import gaussian_filter

    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = gaussian_filter(a, 1.5), gaussian_filter(b, 1.5)
    saa = gaussian_filter(a * a, 1.5) - mu_a**2
    sbb = gaussian_filter(b * b, 1.5) - mu_b**2
    sab = gaussian_filter(a * b, 1.5) - mu_a * mu_b
    return ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))


def region_quality(
    reference: str | Path, encoded: str | Path, saliency: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """PSNR/SSIM inside the salient region (map >= threshold * max) and outside, and a
    saliency-weighted PSNR, averaged over frames; ``saliency`` (N, H, W) at the frame size."""
    ref, enc = _gray(reference), _gray(encoded)
    if len(ref) != len(enc):
        raise SalrtError(f"{encoded}: {len(enc)} frames, reference has {len(ref)}")
    acc: dict[str, list[float]] = {
        "psnr_salient": [],
        "psnr_background": [],
        "ssim_salient": [],
        "ssim_background": [],
        "psnr_weighted": [],
        "psnr": [],
    }
    for i, (a, b) in enumerate(zip(ref, enc)):
        h, w = a.shape
        b = b[:h, :w]  # odd-sized sources are encoded with one padded row/column
        s = saliency[min(i, len(saliency) - 1)][:h, :w].astype(np.float64)
        mask = s >= threshold * s.max()
        sm = ssim_map(a, b)
        acc["psnr_salient"].append(psnr(a, b, mask.astype(float)))
        acc["psnr_background"].append(psnr(a, b, (~mask).astype(float)))
        acc["ssim_salient"].append(float(sm[mask].mean()))
        acc["ssim_background"].append(float(sm[~mask].mean()))
        acc["psnr_weighted"].append(psnr(a, b, s + 1e-9))
        acc["psnr"].append(psnr(a, b))
    return {k: float(np.mean(v)) for k, v in acc.items()}
