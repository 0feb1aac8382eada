"""Quality of an encode against its reference: PSNR-Y, SSIM and VMAF from libvmaf itself (the
static FFmpeg of ``imageio-ffmpeg`` is built with it), and attention-weighted PSNR (EW-PSNR) from
the decoded luma planes.

EW-PSNR (eye-tracking-weighted PSNR, Li et al. 2011): per frame, the squared luma error averaged
with the attention map as weights, as a PSNR; averaged over frames. Weighted by a ground-truth map
it measures what viewers see; weighted by the model's own maps it is circular (the encode put its
bits exactly there) and is labelled so wherever it is reported.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from salrt.errors import MediaError, require
from salrt.io.imaging import luma_plane

VMAF_MODEL = "vmaf_v0.6.1"  # libvmaf's default model (1080p viewing); the one results quote


def ffmpeg_exe() -> str:
    """The path of the static FFmpeg (with libvmaf) that ``imageio-ffmpeg`` ships."""
    return require("imageio_ffmpeg", "VMAF (libvmaf)").get_ffmpeg_exe()


def libvmaf_version() -> str:
    """The libvmaf version of that FFmpeg build (from a one-frame run's log)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "v.json"
        src = "color=c=gray:s=64x64:d=0.04"
        _run([ffmpeg_exe(), "-f", "lavfi", "-i", src, "-f", "lavfi", "-i", src, "-lavfi",
              f"libvmaf=log_fmt=json:log_path={log}", "-f", "null", "-"])  # fmt: skip
        return str(json.loads(log.read_text()).get("version", "unknown"))


def _run(cmd: list[str]) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        tail = (res.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise MediaError(f"ffmpeg (libvmaf) failed: {tail}")


def libvmaf(distorted: str | Path, reference: str | Path, threads: int = 2) -> dict[str, float]:
    """Mean VMAF, PSNR-Y and SSIM (libvmaf's ``float_ssim``) of ``distorted`` against
    ``reference`` over their frames (the two must have the same frames and size)."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "vmaf.json"
        graph = (
            "[0:v]setpts=PTS-STARTPTS[d];[1:v]setpts=PTS-STARTPTS[r];"
            f"[d][r]libvmaf=model=version={VMAF_MODEL}:feature=name=psnr|name=float_ssim:"
            f"n_threads={threads}:log_fmt=json:log_path={log}"
        )
        _run([ffmpeg_exe(), "-nostdin", "-i", str(distorted), "-i", str(reference), "-lavfi", graph, "-f", "null", "-"])
        data = json.loads(log.read_text())
    frames = data.get("frames", [])
    if not frames:
        raise MediaError(f"{distorted}: libvmaf measured no frames")
    mean = lambda key: float(np.mean([f["metrics"][key] for f in frames]))  # noqa: E731
    return {"vmaf": mean("vmaf"), "psnr_y": mean("psnr_y"), "ssim": mean("float_ssim"), "frames": len(frames)}


def luma_planes(path: str | Path, limit: int | None = None) -> Iterator[np.ndarray]:
    """The decoded Y planes (H, W) uint8 of a video's first stream, without colour conversion."""
    import av

    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if limit is not None and i >= limit:
                return
            if f.format.name not in ("yuv420p", "yuvj420p"):
                f = f.reformat(format="yuv420p")
            yield luma_plane(f).copy()


def ew_psnr(
    reference: Sequence[np.ndarray], decoded: Iterator[np.ndarray], weights: Mapping[str, Callable[[int], np.ndarray]]
) -> dict[str, float]:
    """For each named weighting, the mean over frames of the weighted-MSE PSNR of ``decoded``
    against ``reference`` luma planes; ``weights[name](i)`` is frame i's non-negative map at the
    frame's size (normalised here). One pass over the decoded frames."""
    values: dict[str, list[float]] = {k: [] for k in weights}
    n = 0
    for i, dec in enumerate(decoded):
        if i >= len(reference):
            raise MediaError(f"the encode has more frames than the reference's {len(reference)}")
        ref = reference[i]
        h, w = ref.shape
        err = (dec[:h, :w].astype(np.float64) - ref.astype(np.float64)) ** 2
        for name, fn in weights.items():
            wt = np.asarray(fn(i), np.float64)
            mse = float((err * wt).sum() / max(wt.sum(), 1e-12))
            values[name].append(10 * np.log10(255.0**2 / max(mse, 1e-10)))
        n += 1
    if n != len(reference):
        raise MediaError(f"the encode has {n} frames, the reference {len(reference)}")
    return {k: float(np.mean(v)) for k, v in values.items()}
