"""Saliency -> per-block quantiser offsets for video encoders (more bits where people look).

Mapping (per frame; ``s_b`` = mean saliency of block b after optional dilation, the map first
resized to the frame):

    z_b      = (s_b - mean(s)) / (std(s) + 1e-6)          standardised block saliency
    o_b      = clip(-strength * z_b, -max_offset, floor)   negative = finer quantisation
    o_b     -= mean(o) (repeated a few times, re-clipped)  mean offset ~ 0: rate stays comparable
    o_t      = smoothing * o_{t-1} + (1 - smoothing) * o_b temporal smoothing (EMA)

``floor`` (default +4) caps how much coarser any block may get, so nothing is starved.
The smoothing restarts at a scene cut (:class:`SceneCuts`): a new shot never carries the previous
shot's offsets. Block sizes and offset scales per encoder: :mod:`salrt.encoders`. Also writes the
offsets in the forms encoders take: x264's per-macroblock ``quant_offsets`` float array, FFmpeg
regions of interest (``qoffset`` in [-1, 1], which FFmpeg's wrappers scale by the encoder's
``qp_range``: 51 QP for libx264/libx265) and NVENC's ``qpDeltaMap`` (int8 per block).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from salrt.errors import SalrtError, UsageError, require

BLOCKS = {"h264": 16, "hevc": 16, "hevc-ctu": 64, "av1": 64}
# NVENC's qpDeltaMap grid (NVENC SDK, NV_ENC_PIC_PARAMS.qpDeltaMap): one signed byte per H.264
# macroblock, per HEVC CTB (NVENC's default 32x32) or per AV1 superblock (64x64), raster order
NVENC_BLOCKS = {"h264": 16, "hevc": 32, "av1": 64}


@dataclasses.dataclass(frozen=True)
class RoiConfig:
    """Strength and limits of the mapping (documented in the module docstring)."""

    strength: float = 3.0
    max_offset: float = 8.0
    floor: float = 4.0
    smoothing: float = 0.5
    dilation: int = 0  # pixels of max-filter on the saliency map before averaging per block

    def __post_init__(self) -> None:
        # a bad value is a usage error (exit 2), found before anything opens
        if self.strength < 0 or self.max_offset <= 0 or self.floor < 0:
            raise UsageError("roi strength >= 0, max_offset > 0 and floor >= 0 are required")
        if not 0.0 <= self.smoothing < 1.0:
            raise UsageError(f"roi smoothing must be in [0, 1), got {self.smoothing}")
        if self.dilation < 0:
            raise UsageError(f"roi dilation must be >= 0, got {self.dilation}")
        if self.dilation > 0:
            require("scipy", "ROI dilation")


def block_saliency(sal: np.ndarray, frame_hw: tuple[int, int], block: int, dilation: int = 0) -> np.ndarray:
    """Mean saliency per block of a frame of ``frame_hw`` (partial edge blocks included)."""
    from salrt.io.imaging import resize_any_map

    h, w = frame_hw
    m = resize_any_map(sal, (h, w))  # the standardisation in QpMapper ignores the map's scale
    if dilation > 0:
        from scipy.ndimage import maximum_filter

        m = maximum_filter(m, size=2 * dilation + 1)
    rows, cols = -(-h // block), -(-w // block)
    pad = np.pad(m, ((0, rows * block - h), (0, cols * block - w)), mode="edge")
    return pad.reshape(rows, block, cols, block).mean(axis=(1, 3))


class QpMapper:
    """Stateful (temporal smoothing) saliency -> offsets for one stream."""

    def __init__(self, frame_hw: tuple[int, int], block: int = 16, config: RoiConfig | None = None) -> None:
        if block < 4:
            raise SalrtError(f"block size must be >= 4, got {block}")
        self.hw, self.block, self.cfg = frame_hw, block, config or RoiConfig()
        self.prev: np.ndarray | None = None

    def reset(self) -> None:
        """Forget the smoothing state (a scene cut: the next frame starts afresh)."""
        self.prev = None

    def __call__(self, sal: np.ndarray, cut: bool = False) -> np.ndarray:
        """(rows, cols) float32 QP offsets for the next frame; ``cut``: it starts a new shot."""
        if cut:
            self.reset()
        c = self.cfg
        s = block_saliency(sal, self.hw, self.block, c.dilation)
        z = (s - s.mean()) / (s.std() + 1e-6)
        o = np.clip(-c.strength * z, -c.max_offset, c.floor)
        for _ in range(4):
            o = np.clip(o - o.mean(), -c.max_offset, c.floor)
        if self.prev is not None and c.smoothing > 0:
            o = c.smoothing * self.prev + (1 - c.smoothing) * o
        self.prev = o
        return o.astype(np.float32)


def x264_quant_offsets(offsets: np.ndarray) -> bytes:
    """x264 ``x264_picture_t.prop.quant_offsets``: float32 per macroblock, row-major."""
    return np.ascontiguousarray(offsets, np.float32).tobytes()


class SceneCuts:
    """Adaptive scene-cut detector over consecutive frames' luma (as PySceneDetect's adaptive
    detector): a cut where the mean absolute difference of the 1/16-size thumbnails exceeds
    ``ratio`` times its median over the last ``window`` frames and ``floor`` grey levels, or where
    the 32-bin luma histograms differ by more than ``threshold`` (L1, 0..2). The first frame is no cut."""

    def __init__(self, ratio: float = 4.0, floor: float = 3.0, threshold: float = 0.6, window: int = 8) -> None:
        self.ratio, self.floor, self.threshold, self.window = ratio, floor, threshold, window
        self.prev: tuple[np.ndarray, np.ndarray] | None = None
        self.recent: list[float] = []

    def __call__(self, luma: np.ndarray) -> bool:
        """``luma`` (H, W) uint8 or float: whether this frame starts a new shot."""
        y = np.asarray(luma, np.float32)
        hist = np.histogram(y, bins=32, range=(0, 256))[0] / max(y.size, 1)
        h, w = y.shape
        bh, bw = max(1, h // 16), max(1, w // 16)
        thumb = y[: h // bh * bh, : w // bw * bw].reshape(h // bh, bh, w // bw, bw).mean(axis=(1, 3))
        prev, self.prev = self.prev, (hist, thumb)
        if prev is None or prev[1].shape != thumb.shape:
            self.recent = []
            return False
        mad = float(np.abs(thumb - prev[1]).mean())
        typical = float(np.median(self.recent)) if len(self.recent) >= 2 else None
        cut = float(np.abs(hist - prev[0]).sum()) > self.threshold or (
            mad > 10 * self.floor if typical is None else mad > max(self.floor, self.ratio * typical)
        )
        self.recent = [] if cut else (self.recent + [mad])[-self.window :]
        return cut


def nvenc_qp_delta_map(offsets: np.ndarray) -> bytes:
    """NVENC's ``qpDeltaMap`` (with ``NV_ENC_RC_PARAMS.qpMapMode = NV_ENC_QP_MAP_DELTA``): one int8
    per block of :data:`NVENC_BLOCKS`, raster order, rounded and clipped to the SDK's -51..51."""
    return np.clip(np.rint(offsets), -51, 51).astype(np.int8).tobytes()


def ffmpeg_regions(
    offsets: np.ndarray,
    block: int,
    frame_hw: tuple[int, int],
    qp_range: float,
    levels: int = 9,
    min_abs: float = 0.5,
) -> list[dict[str, Any]]:
    """FFmpeg regions of interest: offsets quantised to ``levels`` values, equal neighbours in a row
    merged into one rectangle; ``qoffset`` = offset / ``qp_range`` (the encoder wrapper's scale, see
    :mod:`salrt.encoders`), as FFmpeg's ROI side data expects. Blocks with |offset| < ``min_abs``
    get no region."""
    h, w = frame_hw
    lim = max(float(np.abs(offsets).max()), 1e-6)
    step = 2 * lim / (levels - 1)
    q = np.round(offsets / step) * step
    regions = []
    for r in range(q.shape[0]):
        c0 = 0
        while c0 < q.shape[1]:
            c1 = c0
            while c1 + 1 < q.shape[1] and q[r, c1 + 1] == q[r, c0]:
                c1 += 1
            if abs(q[r, c0]) >= min_abs:
                regions.append(
                    {
                        "top": r * block,
                        "bottom": min((r + 1) * block, h),
                        "left": c0 * block,
                        "right": min((c1 + 1) * block, w),
                        "qoffset": float(np.clip(q[r, c0] / qp_range, -1, 1)),
                    }
                )
            c0 = c1 + 1
    return regions


def addroi_filter_args(regions: list[dict[str, Any]]) -> list[str]:
    """Arguments of FFmpeg's ``addroi`` filter, one per region."""
    from fractions import Fraction

    out = []
    for r in regions:
        qo = Fraction(r["qoffset"]).limit_denominator(1000)
        out.append(
            f"x={r['left']}:y={r['top']}:w={r['right'] - r['left']}:h={r['bottom'] - r['top']}:"
            f"qoffset={qo.numerator}/{qo.denominator}:clear=0"
        )
    return out
