"""The MSU video-saliency benchmark protocol: how the current challenges score (AIM 2024 AViMoS,
NTIRE 2026 video saliency prediction), equal to the organisers' public ``bench.py``
(GitHub msu-video-group/NTIRE26_Saliency_Prediction, commit b67a008; golden values recorded from
it in ``tests/data/msu_bench_reference.json``).

Layout (the challenge's archives, unpacked)::

    ROOT/TrainTestSplit.json                       {"train": [...], "public_test": [...], ...}
    ROOT/Videos/<video>.mp4                        the input videos (with audio), to run a model on
    ROOT/Saliency*/<...>/<video>.mp4               ground-truth maps as a video (crf 0, 10-bit)
        or ROOT/Saliency*/<...>/<video>/001.png    ... as frames (``ffmpeg -i <video>.mp4 %03d.png``)
    ROOT/Fixations*/<...>/<video>/fixations.json   per frame, a list of [row, column] fixations

Predictions: ``PRED/<video>/<frame number>.png`` (what ``salrt run`` writes: ``<video>_maps``
folders are found too) or ``PRED/<video>.mp4`` (a saliency video, as submitted).

Scoring, per frame: both maps are read as grey (the mean over the image's channels, alpha
included), min-max normalised; the prediction is resized to the ground truth's size (bilinear,
OpenCV's ``INTER_LINEAR``); CC and SIM against the map, NSS and AUC-Judd against the fixations
(each fixation counted as often as it occurs). Per video, the mean over frames; the score is the
mean over videos. The metric formulas (their 1e-7 terms included) are written out here because
equality to that script demands them; they differ from :mod:`salrt.metrics` (the DiffSal
reference's) in the fourth decimal.

Differences from ``bench.py``, each a case where the script fails or misaligns: a frame without
fixations scores NaN for NSS and AUC-Judd (counted; the script raises), a fixation outside the
map is an error naming the file (the script raises IndexError or wraps a negative index), and
frames are paired by their number (the script pairs fixations with file names in lexicographic
order, which misaligns videos of 1000 frames or more when names have three digits).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import EvalError

__all__ = [
    "MsuVideo",
    "auc_judd",
    "cc",
    "msu_dataset",
    "nss",
    "read_saliency",
    "resize_linear",
    "score",
    "sim",
]

METRICS = ("cc", "sim", "nss", "auc_judd")
SUBSETS = ("train", "public_test", "private_test")
_EPS32 = float(np.finfo(np.float32).eps)  # bench.py's min-max epsilon


# ----------------------------------------------------------------------------- metrics
def nss(s: np.ndarray, fix: np.ndarray) -> float:
    """NSS of map ``s`` (H, W) at fixations ``fix`` (K, 2) [row, column], duplicates counted."""
    z = (s - np.mean(s)) / (np.std(s) + 1e-7)
    return float(np.mean(z[fix[:, 0], fix[:, 1]]))


def sim(s: np.ndarray, gt: np.ndarray) -> float:
    """Histogram intersection of the two maps, each divided by its sum (+1e-7)."""
    return float(np.sum(np.minimum(s / (np.sum(s) + 1e-7), gt / (np.sum(gt) + 1e-7))))


def cc(s: np.ndarray, gt: np.ndarray) -> float:
    """Pearson correlation, with bench.py's 1e-7 terms."""
    a = (s - np.mean(s)) / (np.std(s) + 1e-7)
    b = (gt - np.mean(gt)) / (np.std(gt) + 1e-7)
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-7))


def auc_judd(s: np.ndarray, fix: np.ndarray) -> float:
    """AUC-Judd: every fixation's value is a threshold; true positives are the fixations at or
    above it, false positives the other pixels at or above it; trapezoidal area."""
    values = s[fix[:, 0], fix[:, 1]]
    n = len(values)
    # Reference quirk kept for score fidelity: bench.py counts unique *columns* of the (K, 2)
    # array (np.unique(F, axis=1)), i.e. 1 or 2, not unique fixations, in the pixel total.
    unique = np.unique(fix, axis=1).shape[-1]
    possible = s.size + (n - unique)
    thresholds = np.sort(values)[::-1]
    flat = np.sort(s.ravel())
    above = flat.size - np.searchsorted(flat, thresholds, side="left")  # pixels >= each threshold
    i = np.arange(1, n + 1)
    tp = np.concatenate([[0.0], i / n, [1.0]])
    fp = np.concatenate([[0.0], (above - i) / (possible - n), [1.0]])
    return float(np.sum((fp[1:] - fp[:-1]) * (tp[1:] + tp[:-1]) / 2))


# ----------------------------------------------------------------------------- maps
def _grey_minmax(img: np.ndarray) -> np.ndarray:
    """(H, W) or (H, W, C) integer samples -> (H, W) min-max normalised, in bench.py's dtype:
    float32 for one channel (an integer array divided by a float32 scalar), float64 for several
    (their mean). The whole score is then computed in that dtype, as the script does."""
    g = img.mean(axis=2) if img.ndim == 3 else img
    return (g - g.min()) / (g.max() - g.min() + np.float32(_EPS32))


def _read_image(path: Path) -> np.ndarray:
    """An image's samples as stored (8- or 16-bit, every channel, alpha included), via FFmpeg."""
    import av

    try:
        with av.open(str(path)) as c:
            f = next(c.decode(video=0))
    except (OSError, StopIteration, av.FFmpegError) as exc:
        raise EvalError(f"{path}: unreadable image ({exc})") from None
    return _samples(f)


def _samples(f: Any) -> np.ndarray:
    """A decoded frame's samples at their own depth: grey stays (H, W), colour becomes RGB(A)."""
    name = f.format.name
    if name in ("gray", "gray8"):
        return f.to_ndarray()
    if name.startswith("gray"):
        return f.to_ndarray(format="gray16le")
    deep = any(c.bits > 8 for c in f.format.components)
    alpha = f.format.has_alpha if hasattr(f.format, "has_alpha") else "a" in name
    fmt = ("rgba64le" if alpha else "rgb48le") if deep else ("rgba" if alpha else "rgb24")
    return f.to_ndarray(format=fmt)


def read_saliency(path: str | Path) -> np.ndarray:
    """A saliency map file as bench.py's ``read_sm`` gives it: (H, W) in [0, 1], float32 for a
    one-channel image, float64 for a colour one."""
    return _grey_minmax(_read_image(Path(path)))


def _video_maps(path: Path) -> Iterator[np.ndarray]:
    """Every frame of a saliency video, as ``ffmpeg -i video %03d.png`` then ``read_sm`` gives it
    (10-bit video -> 16-bit RGB samples)."""
    import av

    try:
        c = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        raise EvalError(f"{path}: cannot open ({exc})") from None
    with c:
        for f in c.decode(video=0):
            yield _grey_minmax(_samples(f))


def resize_linear(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32 or float64 -> ``shape`` (H, W) in the same dtype, as OpenCV's
    ``cv2.resize(x, (W, H))`` (INTER_LINEAR): half-pixel centres, edge samples clamped, no
    antialiasing, columns then rows. Equal to OpenCV 4.7-4.14 to 1e-15 for float64; for float32
    within one unit in the last place (OpenCV's SIMD rounding order is not reproduced)."""
    if x.shape == tuple(shape):
        return x
    dt = x.dtype
    out = x.astype(np.float64)
    for axis, n_out in ((1, shape[1]), (0, shape[0])):
        n_in = out.shape[axis]
        pos = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
        lo = np.floor(pos)
        w1 = pos - lo
        lo = lo.astype(np.int64)
        clamped = (lo < 0) | (lo >= n_in - 1)
        w1[clamped] = 0.0
        lo = np.clip(lo, 0, n_in - 1)
        hi = np.minimum(lo + 1, n_in - 1)
        bshape = (-1, 1) if axis == 0 else (1, -1)
        w1 = w1.reshape(bshape)
        out = np.take(out, lo, axis=axis) * (1.0 - w1) + np.take(out, hi, axis=axis) * w1
        out = out.astype(dt).astype(np.float64)  # each pass stores in the image's type
    return out.astype(dt)


# ----------------------------------------------------------------------------- layout
@dataclasses.dataclass(frozen=True)
class MsuVideo:
    """One video of the benchmark: its input, its ground-truth maps (a video or a frames folder)
    and its fixations file."""

    name: str
    source: Path | None
    saliency: Path
    fixations: Path

    def fixation_lists(self) -> list[np.ndarray]:
        """Per frame (0-based), the (K, 2) int array of [row, column] fixations."""
        try:
            data = json.loads(self.fixations.read_text())
        except (OSError, ValueError) as exc:
            raise EvalError(f"{self.fixations}: unreadable fixations ({exc})") from None
        if not isinstance(data, list):
            raise EvalError(f"{self.fixations}: expected a list with one list of [row, column] per frame")
        out = []
        for i, frame in enumerate(data):
            arr = np.asarray(frame if frame else np.zeros((0, 2)), dtype=np.float64)
            if arr.ndim != 2 or arr.shape[1] != 2 or not np.all(arr == np.round(arr)):
                raise EvalError(f"{self.fixations}: frame {i + 1}: expected [[row, column], ...] integers")
            out.append(arr.astype(np.int64))
        return out

    def maps(self) -> Iterator[tuple[int, np.ndarray]]:
        """(1-based frame number, map) in frame order."""
        if self.saliency.is_dir():
            for n, p in sorted(_frames(self.saliency).items()):
                yield n, read_saliency(p)
        else:
            yield from enumerate(_video_maps(self.saliency), 1)


def _frames(folder: Path) -> dict[int, Path]:
    """Image files named by their frame number (``001.png``), keyed by that number."""
    out = {}
    for p in folder.iterdir():
        m = re.fullmatch(r"(\d+)", p.stem)
        if m and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"):
            out[int(m.group(1))] = p
    return out


def _find(root: Path, prefix: str, name: str, kinds: Sequence[str]) -> Path | None:
    """``name`` as a ``.mp4`` file or a folder (``kinds``) under ``root/<prefix>*/`` (any depth)."""
    for top in sorted(p for p in root.iterdir() if p.is_dir() and p.name.lower().startswith(prefix)):
        for kind in kinds:
            hits = sorted(top.rglob(name + (".mp4" if kind == "video" else "")))
            hits = [h for h in hits if (h.is_file() if kind == "video" else h.is_dir())]
            if hits:
                return hits[0]
    return None


def msu_dataset(root: str | Path, subset: str = "public_test") -> list[MsuVideo]:
    """The ``subset`` videos (:data:`SUBSETS`) of the split file under ``root``."""
    root = Path(root)
    if subset not in SUBSETS:
        raise EvalError(f"subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
    split = root / "TrainTestSplit.json"
    try:
        names = json.loads(split.read_text())[subset]
    except FileNotFoundError:
        raise EvalError(f"split file not found: {split}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvalError(f"{split}: no list {subset!r} ({exc})") from None
    videos = []
    for name in sorted(set(names)):
        sal = _find(root, "saliency", name, ("dir", "video"))
        fix = _find(root, "fixations", name, ("dir",))
        if sal is None or fix is None or not (fix / "fixations.json").is_file():
            what = "saliency maps" if sal is None else "fixations.json"
            raise EvalError(f"{name}: no {what} under {root} (Saliency*/.../{name}[.mp4], Fixations*/.../{name}/)")
        src = root / "Videos" / f"{name}.mp4"
        videos.append(MsuVideo(name, src if src.is_file() else None, sal, fix / "fixations.json"))
    if not videos:
        raise EvalError(f"{split}: the {subset!r} list is empty")
    return videos


def _predictions(pred: Path, name: str) -> dict[int, Path] | Path:
    """A video's predicted frames (by number) or its saliency video."""
    for d in (pred / name, pred / f"{name}_maps"):
        if d.is_dir():
            return _frames(d)
    video = pred / f"{name}.mp4"
    if video.is_file():
        return video
    raise EvalError(f"no predictions for {name} in {pred} ({name}/NNN.png, {name}_maps/ or {name}.mp4)")


# ----------------------------------------------------------------------------- scoring
def score_frame(pred: np.ndarray, gt: np.ndarray, fix: np.ndarray) -> dict[str, float]:
    """The four metrics of one frame: ``pred`` any size (resized to ``gt``), ``fix`` (K, 2)."""
    p = resize_linear(pred, gt.shape)
    out = {"cc": cc(p, gt), "sim": sim(p, gt), "nss": float("nan"), "auc_judd": float("nan")}
    if len(fix):
        out["nss"], out["auc_judd"] = nss(p, fix), auc_judd(p, fix)
    return out


def score(
    videos: Sequence[MsuVideo],
    predictions: str | Path,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Per-frame rows, per-video means and the mean over videos (the shape of
    :func:`salrt.evaluation.evaluate`'s result). Every ground-truth frame needs its prediction."""
    pred_root = Path(predictions)
    if not pred_root.is_dir():
        raise EvalError(f"predictions folder not found: {pred_root}")
    wrap = progress or (lambda it, total: it)
    rows: list[dict[str, Any]] = []
    per_video = []
    for v in wrap(videos, len(videos)):
        fixations = v.fixation_lists()
        preds = _predictions(pred_root, v.name)
        pred_maps = iter(_video_maps(preds)) if isinstance(preds, Path) else None
        vr = []
        for n, gt in v.maps():
            if pred_maps is not None:
                p = next(pred_maps, None)
                if p is None:
                    raise EvalError(f"{preds}: ends before frame {n} of the ground truth")
            else:
                if n not in preds:
                    raise EvalError(
                        f"{v.name}: no prediction for frame {n} (expected {pred_root / v.name / f'{n:03d}.png'})"
                    )
                p = read_saliency(preds[n])
            if n > len(fixations):
                raise EvalError(f"{v.fixations}: {len(fixations)} frames, the ground truth has frame {n}")
            fix = fixations[n - 1]
            if len(fix) and (fix.min() < 0 or (fix >= np.array(gt.shape)).any()):
                raise EvalError(f"{v.fixations}: frame {n}: a fixation outside the {gt.shape[0]}x{gt.shape[1]} map")
            vr.append({"video": v.name, "frame": n, **score_frame(p, gt, fix)})
        if not vr:
            raise EvalError(f"{v.saliency}: no ground-truth frames")
        extra = len(preds) - len(vr) if isinstance(preds, dict) else 0
        if extra > 0:
            raise EvalError(f"{v.name}: {extra} predicted frames have no ground truth (the frame sets must be equal)")
        rows += vr
        entry: dict[str, Any] = {"video": v.name, "frames": len(vr)}
        for m in METRICS:
            vals = np.array([r[m] for r in vr])
            entry[m] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            entry[f"{m}_nan_frames"] = int((~np.isfinite(vals)).sum())
        per_video.append(entry)
    mean = {m: float(np.nanmean([e[m] for e in per_video])) for m in METRICS}
    return {
        "metrics": list(METRICS),
        "frames": rows,
        "videos": per_video,
        "mean": mean,
        "n_videos": len(per_video),
        "n_frames": len(rows),
        "protocol": "msu bench.py (AIM 2024 AViMoS, NTIRE 2026)",
    }
