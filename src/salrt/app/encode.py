"""``salrt encode``: saliency-driven ROI encoding of a video through a real encoder, and the tools
that check its effect (per-block QPs read back, PSNR/SSIM inside and outside the salient region).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salrt.encoders import encoder, refusal
from salrt.errors import SalrtError, UsageError
from salrt.io.orientation import Orientation
from salrt.roi import RoiConfig
from salrt.sinks.roi import DEFAULT_ROI, RoiEncoderSink
from salrt.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class EncodeSettings:
    """The encoder and its ROI: ``codec`` (:data:`salrt.encoders.ENCODERS`), ``crf`` or ``bitrate``
    (bits/s; CRF 28 when neither), ``roi`` (None: a plain encode, same settings otherwise;
    ``DEFAULT_ROI``: the encoder's own default mapping); for a model run: ``stride`` and ``batch``."""

    codec: str = "libx264"
    crf: float | None = None
    bitrate: int | None = None
    roi: RoiConfig | None = DEFAULT_ROI
    stride: int = 1
    batch: int = 1

    def __post_init__(self) -> None:
        enc = encoder(self.codec)
        if self.crf is not None and self.bitrate is not None:
            raise UsageError("give a CRF or a bitrate, not both")
        enc.rate_options(self.crf)  # the encoder's CRF range
        if self.roi is not None and enc.roi is None:
            raise UsageError(refusal(self.codec) + f" (a plain {self.codec} encode: no ROI)")

    def encoder_options(self) -> dict[str, Any]:
        crf = 28.0 if self.crf is None and self.bitrate is None else self.crf
        return {"codec": self.codec, "crf": crf, "bitrate": self.bitrate, "roi": self.roi}


def refuse_overwriting_input(source: str | Path, output: str | Path) -> None:
    """Refuse an ``output`` that is ``source`` (the same path, a symlink to it, or a hard link):
    encoding would overwrite the input while reading it."""
    src, out = Path(source), Path(output)
    same = src.resolve() == out.resolve()
    if not same and out.exists():
        try:
            same = os.path.samefile(src, out)
        except OSError:
            same = False
    if same:
        raise UsageError(f"{output}: the output is the input {source}; write the encode to another file")


def check_output_path(output: str | Path) -> None:
    """Make the output's folder (as ``salrt run -o`` does), or one clear error naming the output
    before anything opens: a folder that cannot be made, or an output that is a folder."""
    out = Path(output)
    if out.is_dir():
        raise UsageError(f"{output}: a folder; give the encode's file name (e.g. {out / 'roi.mp4'})")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SalrtError(f"{output}: cannot make its folder {out.parent} ({exc.strerror or exc})") from None
    if not os.access(out.parent, os.W_OK):
        raise SalrtError(f"{output}: its folder {out.parent} is not writable")
    import av

    probe_path = out.with_name(f".{out.stem}.salrt-probe{out.suffix}")
    try:  # FFmpeg chooses the container by the name: ask it now, not after the model has loaded
        av.open(str(probe_path), "w").close()
    except (av.FFmpegError, ValueError):
        raise UsageError(
            f"{output}: FFmpeg knows no container for the name {out.name!r}: end it in .mp4, .mkv, .mov or .ts"
        ) from None
    finally:
        probe_path.unlink(missing_ok=True)


def read_maps(path: str) -> np.ndarray:
    """Per-frame maps (N, H, W) in 0..1 from an ``.npy``/``.npz`` (uint8 maps scaled by 1/255)."""
    try:
        data = np.load(path)
        maps = data["maps"] if hasattr(data, "files") else data
    except (OSError, ValueError, KeyError) as exc:
        raise SalrtError(f"{path}: cannot read maps ({exc})") from None
    if maps.ndim != 3:
        raise SalrtError(f"{path}: maps must be N x H x W, got shape {maps.shape}")
    return maps.astype(np.float32) / (255.0 if maps.dtype == np.uint8 else 1.0)


def encode(
    spec: RunSpec | Any,
    source: str,
    output: str | Path,
    settings: EncodeSettings = EncodeSettings(),
    *,
    maps: np.ndarray | None = None,
    progress: Callable[[int], None] | None = None,
    notes: Callable[[str], None] | None = None,
) -> Any:
    """Encode ``source`` into ``output`` with ROI offsets from ``spec``'s model (or a built
    :class:`salrt.pipeline.Pipeline`) run now, or from given ``maps``, or none (``spec`` None and
    ``roi`` None: the plain encode). The run's
    :class:`salrt.runtime.RunStats` (None without a model)."""
    if not Path(source).is_file():
        raise SalrtError(f"{source}: no such file")
    refuse_overwriting_input(source, output)
    check_output_path(output)
    kw = settings.encoder_options()
    if spec is None:
        encode_with_maps(source, output, maps, **kw)
        return None
    from salrt import pipeline
    from salrt.io import probe
    from salrt.runtime import RunOptions, Runtime

    pipe = pipeline.build(spec, progress=notes) if isinstance(spec, RunSpec) else spec
    spec = pipe.spec
    sink = RoiEncoderSink(Path(output), probe(source).fps, source, **kw)
    rt = Runtime(
        pipe.backend,
        [source],
        RunOptions(
            steps=spec.steps,
            stride=settings.stride,
            batch=settings.batch,
            contract=pipe.contract,
            captions=pipe.captions,
            seed=spec.seed,
        ),  # fmt: skip
        sinks_for=lambda i, info: [sink],
        keep_frames=True,
        progress=progress,
    )
    return rt.run()


def encode_ray(
    spec: RunSpec, inputs: list[str], output: str, settings: EncodeSettings, ray: Any, *,
    progress: Callable[[int], None] | None = None, log: Callable[[str], None] = lambda s: None,
    started: bool = False,
) -> Any:  # fmt: skip
    """``encode`` over many files as a Ray job into the folder (or URL) ``output``; the job's report."""
    from salrt.app.jobs import run_job
    from salrt.cluster import Item
    from salrt.io.sources import Source
    from salrt.sinks import output_stems
    from salrt.sinks.sets import EncodeOutputs

    for path in inputs:
        if not Path(path).is_file():
            raise SalrtError(f"{path}: no such file")
    sources = [Source.of(p) for p in inputs]
    items = [Item(i, src, stem) for i, (src, stem) in enumerate(zip(sources, output_stems(sources)))]
    options = {"steps": spec.steps, "stride": settings.stride, "batch": settings.batch}
    return run_job(
        spec, items, EncodeOutputs(settings.encoder_options()), output, options, ray, progress=progress, log=log,
        started=started,
    )  # fmt: skip


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
                if t0 is None:  # the first frame's display matrix turns every frame upright
                    t0, orient = f.time, Orientation.of(f, source)
                sink.write(i, (f.time or 0.0) - (t0 or 0.0), orient.apply(f.to_ndarray(format="rgb24")), maps[i])
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
