"""The video encoders salrt drives, and what each takes: CRF scale, default rate ladder, the plain
encode's options (the encoder's own adaptive quantisation), its stronger AQ variants, and the route
(if any) by which per-block quantiser offsets reach it.

Everything here was checked against the encoders' documentation and FFmpeg's wrappers (PyAV's
FFmpeg 8.1 and FFmpeg 9.0), and measured where a document is silent:

- libx264 / libx265: FFmpeg's ``AV_FRAME_DATA_REGIONS_OF_INTEREST`` side data; the wrapper
  multiplies ``qoffset`` by 51 QP (``51 + 6 * (bit depth - 8)``) and applies it per 16x16 block
  (x265: per 8x8 when ``qg-size=8``); ignored unless adaptive quantisation is on (``aq-mode`` > 0).
- libvpx-vp9: the same side data becomes a VP9 ROI map of 8x8 blocks, at most 8 segments;
  ``qoffset`` 1.0 = 63 q-index steps (a q-index is ~1/4 of the 0-63 quantiser scale); libvpx
  honours it only with ``deadline=realtime``, ``cpu-used`` >= 5 and ``aq-mode=0`` (otherwise the
  wrapper skips ROI with a warning).
- libsvtav1: no route. FFmpeg's wrapper ignores ROI side data (plain and ROI encodes are the same
  size, measured in FFmpeg 8.1 and 9.0), its ``svtav1-params`` parser rejects ``roi-map-file`` (an
  option of SVT-AV1's app, not its library), and the installable app (Debian 12's SvtAv1EncApp
  1.4.1) predates ``--roi-map-file``. SVT-AV1's library API has ROI maps; salrt does not bind it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from salrt.errors import UsageError
from salrt.roi import RoiConfig


@dataclasses.dataclass(frozen=True)
class RoiRoute:
    """How per-block offsets reach an encoder: FFmpeg's ROI side data, with the wrapper's block
    grid (``block`` pixels), its scale (``qp_range`` encoder quantiser steps for ``qoffset`` 1.0),
    the number of distinct offsets per frame it takes (``levels``), the options it needs, and the
    default mapping for this encoder (``config``: offsets in the encoder's own steps)."""

    block: int
    qp_range: float
    levels: int
    unit: str
    options: Mapping[str, str]
    config: RoiConfig


@dataclasses.dataclass(frozen=True)
class Encoder:
    """One FFmpeg encoder as salrt uses it (see the module docstring for the sources)."""

    name: str
    codec: str
    crf_range: tuple[float, float]
    ladder: tuple[float, ...]  # the default CRF ladder of `salrt rd` (low CRF = high rate first)
    options: Mapping[str, str]  # the plain encode: the encoder's default adaptive quantisation
    aq_variants: Mapping[str, Mapping[str, str]]  # its stronger AQ modes, by method name
    roi: RoiRoute | None
    no_roi: str = ""  # why there is no ROI route

    def rate_options(self, crf: float | None) -> dict[str, str]:
        """The options of one constant-quality point (``crf``) or of a bitrate point (``None``)."""
        if crf is None:
            return {}
        low, high = self.crf_range
        if not low <= crf <= high:
            raise UsageError(f"{self.name} takes a CRF from {low:g} to {high:g}, got {crf:g}")
        opts = {"crf": f"{crf:g}"}
        if self.codec == "vp9":  # libvpx's constant-quality mode needs a zero target bitrate
            opts["b"] = "0"
        return opts

    def encode_options(self, *, roi: bool, variant: str | None = None, crf: float | None = None) -> dict[str, str]:
        """The options of one encode: the plain encode's, a variant's or ROI's on top, the rate."""
        if roi and self.roi is None:
            raise UsageError(refusal(self.name))
        opts = merge_options(self.options, self.aq_variants[variant] if variant else {})
        if roi:
            opts = merge_options(opts, self.roi.options)
        return merge_options(opts, self.rate_options(crf))


def merge_options(base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """``extra`` over ``base``; ``*-params`` lists (``a=1:b=2``) are merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if key.endswith("-params") and key in out:
            merged = dict(p.split("=", 1) for p in out[key].split(":") if p)
            merged.update(dict(p.split("=", 1) for p in value.split(":") if p))
            out[key] = ":".join(f"{k}={v}" for k, v in merged.items())
        else:
            out[key] = value
    return out


ENCODERS: dict[str, Encoder] = {
    e.name: e
    for e in (
        Encoder(
            "libx264", "h264", (0.0, 51.0), (22, 27, 32, 37),
            {"preset": "veryfast"},  # x264's default AQ: aq-mode=1 (variance) with mb-tree
            {"aq2": {"x264-params": "aq-mode=2"}, "aq3": {"x264-params": "aq-mode=3"}},
            RoiRoute(16, 51.0, 9, "H.264 QP", {}, RoiConfig(strength=3.0, max_offset=8.0, floor=4.0)),
        ),
        Encoder(
            "libx265", "hevc", (0.0, 51.0), (24, 29, 34, 39),
            {"preset": "veryfast", "x265-params": "log-level=error"},  # default: aq-mode=2 with cu-tree
            {"aq3": {"x265-params": "aq-mode=3"}, "aq4": {"x265-params": "aq-mode=4"}},
            RoiRoute(16, 51.0, 9, "HEVC QP", {}, RoiConfig(strength=3.0, max_offset=8.0, floor=4.0)),
        ),
        Encoder(
            "libvpx-vp9", "vp9", (0.0, 63.0), (28, 36, 44, 52),
            # ROI needs the real-time mode, so the plain encode uses it too (one comparison)
            {"deadline": "realtime", "cpu-used": "7", "row-mt": "1"},
            {"aq1": {"aq-mode": "1"}, "aq3": {"aq-mode": "3"}},
            # 7 levels: zero and three steps each way fit the 8 segments
            RoiRoute(8, 63.0, 7, "VP9 q-index", {"aq-mode": "0"}, RoiConfig(strength=12.0, max_offset=32.0, floor=16.0)),
        ),
        Encoder(
            "libsvtav1", "av1", (0.0, 63.0), (30, 38, 46, 54),
            {"preset": "10", "svtav1-params": "log-level=1"},  # default: aq-mode=2
            {"vboost": {"svtav1-params": "enable-variance-boost=1"}},
            None,
            "FFmpeg's libsvtav1 wrapper ignores regions of interest (SVT-AV1's ROI map is an API its "
            "wrapper does not pass on)",
        ),
    )
}  # fmt: skip


def encoder(name: str) -> Encoder:
    """The encoder called ``name``, or a usage error listing those salrt knows."""
    if name not in ENCODERS:
        raise UsageError(f"unsupported codec {name!r}: {', '.join(ENCODERS)}")
    return ENCODERS[name]


def roi_encoders() -> list[str]:
    """The encoders with per-block control."""
    return [n for n, e in ENCODERS.items() if e.roi is not None]


def roi_config(name: str, **given: float | int | None) -> RoiConfig:
    """The encoder's default mapping with the ``given`` fields (those not None) replaced."""
    route = encoder(name).roi
    base = route.config if route is not None else RoiConfig()
    return dataclasses.replace(base, **{k: v for k, v in given.items() if v is not None})


def refusal(name: str) -> str:
    """The one-line refusal of ROI with an encoder that has no per-block control."""
    e = ENCODERS[name]
    return f"{name}: {e.no_roi}; ROI encoding works with {', '.join(roi_encoders())}"
