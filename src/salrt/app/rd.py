"""``salrt rd``: saliency-driven encoding measured as codec engineers measure it: every method
encoded at a ladder of rates, each encode's quality measured (libvmaf's VMAF, PSNR-Y, SSIM;
EW-PSNR weighted by ground truth where given, and, labelled circular, by the model's own maps),
and the Bjøntegaard-delta rate of each method against the encoder's plain encode.

Methods: ``plain`` (the encoder's default adaptive quantisation: the anchor), the encoder's
stronger AQ variants (``aq``: each of :attr:`salrt.encoders.Encoder.aq_variants`), and ROI offsets
from maps: ``model`` (a salrt model run on the input), ``centre`` (content-free centre bias),
``spectral`` (spectral-residual image saliency), ``maps`` (maps the user gives).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from salrt.encoders import ENCODERS, encoder, refusal
from salrt.errors import SalrtError, UsageError
from salrt.roi import RoiConfig
from salrt.spec import RunSpec

ROI_METHODS = ("model", "centre", "spectral", "maps")
METHODS = ("aq",) + ROI_METHODS
METRICS = ("psnr_y", "ssim", "vmaf", "ew_psnr_gt", "ew_psnr_model")
RATE_TOLERANCE = 0.25  # a bitrate point more than 25% off its target was not reached


@dataclasses.dataclass(frozen=True)
class RdSettings:
    """What to encode: ``codecs``; a CRF ladder (``crfs``; None: each encoder's own ladder) or
    target ``bitrates`` (bits/s); ``methods`` besides ``plain`` (:data:`METHODS`); the ROI mapping
    per codec (``roi``; missing codecs: the encoder's default); the first ``frames`` frames (None:
    all); for the model: ``stride`` and ``batch``; ``keep_encodes``: keep the encoded files."""

    codecs: tuple[str, ...] = ("libx264", "libx265")
    crfs: tuple[float, ...] | None = None
    bitrates: tuple[int, ...] | None = None
    methods: tuple[str, ...] = ("aq", "model", "centre", "spectral")
    roi: Mapping[str, RoiConfig] = dataclasses.field(default_factory=dict)
    frames: int | None = None
    stride: int = 1
    batch: int = 1
    keep_encodes: bool = True

    def __post_init__(self) -> None:
        if not self.codecs:
            raise UsageError("give at least one codec")
        for name in self.codecs:
            encoder(name)
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise UsageError(f"unknown method(s) {', '.join(unknown)}: choose from {', '.join(METHODS)}")
        if self.crfs is not None and self.bitrates is not None:
            raise UsageError("give a CRF ladder or bitrates, not both")
        points = self.crfs if self.crfs is not None else self.bitrates
        if points is not None and len(set(points)) < 4:
            raise UsageError(f"a rate ladder needs >= 4 distinct points, got {len(set(points))}")
        if self.bitrates is not None and min(self.bitrates) <= 0:
            raise UsageError("bitrates must be > 0")
        if any(m in ROI_METHODS for m in self.methods):
            for name in self.codecs:
                if ENCODERS[name].roi is None:
                    raise UsageError(refusal(name) + " (for its plain and AQ curves: --methods aq)")
        if self.frames is not None and self.frames < 2:
            raise UsageError(f"frames must be >= 2, got {self.frames}")

    def ladder(self, name: str) -> tuple[list[tuple[str, float | None, int | None]], list[str]]:
        """The rate points of one encoder as (label, crf, bitrate), and the points it cannot take
        (named, with the reason)."""
        if self.bitrates is not None:
            return [(f"{b / 1000:g}k", None, b) for b in sorted(set(self.bitrates), reverse=True)], []
        enc = ENCODERS[name]
        crfs = sorted(set(self.crfs if self.crfs is not None else enc.ladder))
        low, high = enc.crf_range
        dropped = [f"crf {c:g}: outside {name}'s {low:g}-{high:g}" for c in crfs if not low <= c <= high]
        return [(f"crf{c:g}", float(c), None) for c in crfs if low <= c <= high], dropped


@dataclasses.dataclass
class RdResult:
    """What ``rd`` wrote and measured (``rd.json``'s content as ``data``)."""

    data: dict[str, Any]
    json_path: Path
    md_path: Path
    plots: list[Path]


def rd(
    spec: RunSpec | Any | None,
    source: str,
    out_dir: str | Path,
    settings: RdSettings = RdSettings(),
    *,
    maps: np.ndarray | None = None,
    truth: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    notes: Callable[[str], None] = lambda s: None,
) -> RdResult:
    """Encode ``source`` at every rate point with every method and codec, measure, write
    ``rd.json``, ``rd.md`` and the RD-curve plots into ``out_dir``. ``spec`` (a RunSpec or a built
    pipeline) runs the model for the ``model`` method; ``maps`` (N, H, W) for ``maps``;
    ``truth`` (N, H, W) ground-truth attention for EW-PSNR. Interrupted, the report holds the
    encodes finished so far (``complete: false``)."""
    from salrt.rd import baselines
    from salrt.rd.media import read_frames, write_reference
    from salrt.rd.quality import ffmpeg_exe, libvmaf_version

    if not Path(source).is_file():
        raise SalrtError(f"{source}: no such file")
    methods = list(settings.methods)
    if "model" in methods and spec is None:
        raise UsageError("the 'model' method needs a model: give --model (or leave 'model' out of --methods)")
    if maps is not None and "maps" not in methods:
        methods.append("maps")
    if "maps" in methods and maps is None:
        raise UsageError("the 'maps' method needs --maps")
    ffmpeg_exe()  # libvmaf present, or one line naming the extra, before any work
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    frames, fps = read_frames(source, settings.frames)
    n, (h, w) = len(frames), frames[0].luma().shape
    given = {"maps": _checked(maps, "--maps", n, (h, w)), "truth": _checked(truth, "--truth", n, (h, w))}
    reference = out / "reference.mkv"
    has_audio = write_reference(frames, fps, source, reference)
    luma = [f.luma().copy() for f in frames]
    sal: dict[str, Callable[[int], np.ndarray]] = {}
    model_info: dict[str, Any] = {}
    if "model" in methods:
        model_maps, model_info = _model_maps(spec, reference, n, settings, notes)
        if not has_audio:
            notes(f"{source}: no audio stream; the model heard silence")
        sal["model"] = _resized(model_maps, (h, w))
    if "centre" in methods:
        centre = baselines.centre_bias((h, w))
        sal["centre"] = lambda i: centre
    if "spectral" in methods:
        sal["spectral"] = _cached(lambda i: _resize(baselines.spectral_residual(luma[i]), (h, w)))
    if given["maps"] is not None:
        sal["maps"] = _resized(given["maps"], (h, w))
    weights: dict[str, Callable[[int], np.ndarray]] = {}
    if given["truth"] is not None:
        weights["ew_psnr_gt"] = _resized(given["truth"], (h, w))
    if "model" in sal:
        weights["ew_psnr_model"] = sal["model"]

    data: dict[str, Any] = {
        "input": str(source), "frames": n, "fps": fps, "size": [w, h], "audio": has_audio,
        "map_cc_vs_truth": _map_quality(sal, weights.get("ew_psnr_gt"), n),
        "libvmaf": libvmaf_version(), "vmaf_model": "vmaf_v0.6.1", "bd_method": "pchip (JCT-VC/JVET CTC)",
        "model": model_info, "ew_psnr_gt": "ew_psnr_gt" in weights,
        "ew_psnr_model_note": "weighted by the model's own maps: circular, never a headline",
        "codecs": {}, "complete": False,
    }  # fmt: skip
    try:
        for name in settings.codecs:
            data["codecs"][name] = cdata = _codec_run(
                name, settings, methods, frames, fps, luma, reference, sal, weights, out, progress
            )
            cdata["bd_rate"] = _bd_rates(cdata["points"])
        data["complete"] = True
    finally:
        result = _write(data, out)
        if not settings.keep_encodes:
            for f in (out / "encodes").rglob("*.mkv"):
                f.unlink()
    return result


def _map_quality(
    sal: dict[str, Callable[[int], np.ndarray]], truth: Callable[[int], np.ndarray] | None, n: int
) -> dict[str, float]:
    """Mean over frames of each ROI method's CC with the ground truth (empty without it): how good
    the maps that steered the bits were, which bounds what ROI coding can gain on EW-PSNR."""
    if truth is None:
        return {}
    from salrt import metrics

    return {name: float(np.nanmean([metrics.cc(maps(i), truth(i)) for i in range(n)])) for name, maps in sal.items()}


def _checked(maps: np.ndarray | None, what: str, n: int, hw: tuple[int, int]) -> np.ndarray | None:
    """Maps (N, H, W) that match the frames: one per frame and the frame's size."""
    if maps is None:
        return None
    if maps.ndim != 3:
        raise SalrtError(f"{what}: maps must be N x H x W, got shape {tuple(maps.shape)}")
    if len(maps) < n:
        raise SalrtError(f"{what}: {len(maps)} maps for {n} frames: give one map per frame")
    if tuple(maps.shape[1:]) != hw:
        raise SalrtError(
            f"{what}: {maps.shape[2]}x{maps.shape[1]} maps for {hw[1]}x{hw[0]} frames: write them at the "
            "frame size (salrt run --source-size)"
        )
    return maps[:n]


def _resize(m: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    from salrt.io.imaging import resize_any_map

    return resize_any_map(m, hw)


def _cached(fn: Callable[[int], np.ndarray]) -> Callable[[int], np.ndarray]:
    memo: dict[int, np.ndarray] = {}
    return lambda i: memo[i] if i in memo else memo.setdefault(i, fn(i))


def _resized(maps: np.ndarray, hw: tuple[int, int]) -> Callable[[int], np.ndarray]:
    return _cached(lambda i: _resize(maps[i], hw))


def _model_maps(
    spec: Any, reference: Path, n: int, settings: RdSettings, notes: Callable[[str], None]
) -> tuple[np.ndarray, dict[str, Any]]:
    """The model's map for each of the ``n`` frames, run on the reference (the frames encoded,
    with the source's audio), and what ran."""
    from salrt import pipeline
    from salrt.runtime import RunOptions, Runtime

    pipe = pipeline.build(spec, progress=notes) if isinstance(spec, RunSpec) else spec
    maps: dict[int, np.ndarray] = {}

    class Collect:
        def write(self, index: int, time_s: float, frame: Any, sal: np.ndarray) -> None:
            maps[index] = np.asarray(sal, np.float32)

        def close(self) -> None:
            pass

    opts = RunOptions(
        steps=pipe.spec.steps, stride=settings.stride, batch=settings.batch, contract=pipe.contract,
        captions=pipe.captions, seed=pipe.spec.seed,
    )  # fmt: skip
    t0 = time.perf_counter()
    stats = Runtime(pipe.backend, [str(reference)], opts, sinks_for=lambda i, info: [Collect()]).run()
    seconds = time.perf_counter() - t0
    for warning in stats["warnings"]:
        notes(warning)
    if stats["errors"]:
        raise SalrtError(stats["errors"][0])
    missing = [i for i in range(n) if i not in maps]
    if missing:
        raise SalrtError(f"the model gave no map for {len(missing)} of {n} frames (first: {missing[0]})")
    info = {
        "name": pipe.spec.model,
        "backend": type(pipe.backend).__name__,
        "seconds": seconds,
        "stride": settings.stride,
    }
    return np.stack([maps[i] for i in range(n)]), info


def _codec_run(
    name: str, settings: RdSettings, methods: list[str], frames: list[Any], fps: float, luma: list[np.ndarray],
    reference: Path, sal: Mapping[str, Callable[[int], np.ndarray]], weights: Mapping[str, Callable[[int], np.ndarray]],
    out: Path, progress: Callable[[int], None] | None,
) -> dict[str, Any]:  # fmt: skip
    """Every encode of one codec: the points measured, the ladder's dropped points, the ROI used."""
    from salrt.rd.quality import ew_psnr, libvmaf, luma_planes
    from salrt.sinks.roi import RoiEncoderSink

    enc = ENCODERS[name]
    ladder, dropped = settings.ladder(name)
    if len(ladder) < 3:
        raise UsageError(f"{name}: only {len(ladder)} usable rate points ({'; '.join(dropped)})")
    roi = settings.roi.get(name) or (enc.roi.config if enc.roi else None)
    runs: list[tuple[str, dict[str, str], RoiConfig | None, str | None]] = [("plain", {}, None, None)]
    if "aq" in methods:
        runs += [(v, dict(opts), None, None) for v, opts in enc.aq_variants.items()]
    runs += [(m, {}, roi, m) for m in methods if m in sal]
    folder = out / "encodes" / name
    folder.mkdir(parents=True, exist_ok=True)
    points = []
    for method, options, cfg, source_of_maps in runs:
        for label, crf, bitrate in ladder:
            path = folder / f"{method}_{label}.mkv"
            sink = RoiEncoderSink(path, fps, None, codec=name, crf=crf, bitrate=bitrate, roi=cfg, options=options)
            smap = sal[source_of_maps] if source_of_maps else None
            blank = np.zeros((2, 2), np.float32)
            t0 = time.perf_counter()
            try:
                for i, fr in enumerate(frames):
                    sink.write(i, i / fps, fr, smap(i) if smap else blank)
            finally:
                sink.close()
            seconds = time.perf_counter() - t0
            nbytes = _stream_bytes(path)
            kbps = nbytes * 8 / 1000 / (len(frames) / fps)
            point = {
                "method": method, "codec": name, "rate": label, "crf": crf, "target_bps": bitrate,
                "bytes": nbytes, "kbps": kbps, "encode_fps": len(frames) / seconds, "scene_cuts": sink.cuts,
                "file": str(path.relative_to(out)),
            }  # fmt: skip
            point.update({k: v for k, v in libvmaf(path, reference).items() if k != "frames"})
            if weights:
                point.update(ew_psnr(luma, luma_planes(path), weights))
            if bitrate is not None and abs(kbps * 1000 - bitrate) > RATE_TOLERANCE * bitrate:
                point["not_reached"] = f"target {bitrate / 1000:g} kbit/s, got {kbps:.4g}"
            points.append(point)
            if progress:
                progress(1)
    return {
        "ladder": [p[0] for p in ladder], "dropped": dropped, "points": points,
        "roi": dataclasses.asdict(roi) if roi else None,
        "roi_route": {"block": enc.roi.block, "unit": enc.roi.unit, "qp_range": enc.roi.qp_range} if enc.roi else None,
        "anchor_options": dict(enc.options),
    }  # fmt: skip


def _stream_bytes(path: Path) -> int:
    """The video bitstream's size (its packets), without the container's overhead."""
    import av

    with av.open(str(path)) as c:
        return sum(p.size for p in c.demux(video=0) if p.size)


def _bd_rates(points: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """BD-rate of every method against ``plain`` for every metric measured (points whose bitrate
    target was not reached left out, named)."""
    from salrt.rd.bdrate import Curve, bd_rate

    def curve(method: str, metric: str) -> tuple[Curve, list[str]]:
        pts = [p for p in points if p["method"] == method and metric in p]
        off = [f"{p['rate']}: {p['not_reached']}" for p in pts if "not_reached" in p]
        pts = [p for p in pts if "not_reached" not in p]
        return Curve([p["kbps"] for p in pts], [p[metric] for p in pts], [p["rate"] for p in pts]), off

    out: dict[str, dict[str, Any]] = {}
    methods = list(dict.fromkeys(p["method"] for p in points if p["method"] != "plain"))
    for method in methods:
        out[method] = {}
        for metric in METRICS:
            if not any(metric in p for p in points):
                continue
            anchor, off_a = curve("plain", metric)
            test, off_t = curve(method, metric)
            res = bd_rate(anchor, test).as_dict()
            res["dropped"] = list(res["dropped"]) + [f"anchor {o}" for o in off_a] + [f"test {o}" for o in off_t]
            out[method][metric] = res
    return out


def _write(data: dict[str, Any], out: Path) -> RdResult:
    from salrt.rd.report import markdown, plots

    json_path, md_path = out / "rd.json", out / "rd.md"
    tmp = json_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    tmp.replace(json_path)
    md_path.write_text(markdown(data))
    return RdResult(data, json_path, md_path, plots(data, out))
