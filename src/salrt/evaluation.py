"""Benchmark evaluation: dataset readers, prediction matching and the reference's protocol.

Protocol (DiffSal reference): metrics per frame, mean per video, then mean over videos.
Layouts read:

- ``av`` (the six audio-visual datasets as prepared for STAViS/DiffSal)::

      ROOT/fold_lists/<DS>_list_test_<split>_fps.txt   (DIEM: DIEM_list_test_fps.txt)
      ROOT/video_frames/<DS>/<video>/img_00001.jpg
      ROOT/video_audio/<DS>/<video>/<video>.wav
      ROOT/annotations/<DS>/<video>/maps/eyeMap_00001.jpg
      ROOT/annotations/<DS>/<video>/fixMap_00001.mat    (or .png/.jpg; or fixation/ folder)

- ``dhf1k``: ``ROOT/<video>/{images|frames}/``, ``maps/0001.png``, ``fixation/0001.png``;
- ``plain``: one video file, a folder of maps and a folder of fixation maps (frame number = the
  last integer in each file name, 1-based).

Predictions: ``PRED/<video>/<anything with the frame number>.png`` (what ``salrt run`` writes).
Images are read as ``matplotlib.pyplot.imread`` does in the reference's evaluation: PNG as float
in 0..1, JPEG as 0..255 integers; colour maps are converted to grey (Pillow's ``L``).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from salrt import metrics as M
from salrt.errors import EvalError

AV_DATASETS = {
    "avad": "AVAD",
    "diem": "DIEM",
    "coutrot1": "Coutrot_db1",
    "coutrot2": "Coutrot_db2",
    "etmd": "ETMD_av",
    "summe": "SumMe",
    "synthetic": "Synthetic",  # salrt.io.synthetic.make_dataset: the sounding-object task
}
DATASETS = (*AV_DATASETS, "dhf1k")  # the layouts salrt eval and salrt train read (eval also: "plain")
DEFAULT_METRICS = ("cc", "nss", "sim", "auc_judd", "kld")
_IMG = (".png", ".jpg", ".jpeg", ".bmp")


@dataclasses.dataclass
class Video:
    """One annotated video: where its input is and its per-frame annotations (1-based)."""

    name: str
    fps: float | None
    n_frames: int | None
    source: str | None  # a video file or an image-sequence pattern
    source_format: str | None
    audio: str | None
    maps: dict[int, Path]
    fixations: dict[int, Path]


def frame_number(path: Path) -> int | None:
    nums = re.findall(r"\d+", path.stem)
    return int(nums[-1]) if nums else None


def _numbered(folder: Path, prefix: str = "") -> dict[int, Path]:
    out: dict[int, Path] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if p.suffix.lower() in (*_IMG, ".mat") and p.name.startswith(prefix):
            n = frame_number(p)
            if n is not None:
                out[n] = p
    return out


def read_map(path: Path) -> np.ndarray:
    """A saliency or fixation map as the reference's ``plt.imread`` gives it (grey)."""
    try:
        from PIL import Image
    except ImportError:
        raise EvalError("reading maps needs Pillow: pip install 'salrt[eval]'") from None
    try:
        with Image.open(path) as im:
            png = im.format == "PNG"
            mode = im.mode
            if mode not in ("L", "I;16", "I", "F"):
                im = im.convert("L")
            arr = np.asarray(im)
    except (OSError, ValueError) as exc:
        raise EvalError(f"{path}: unreadable image ({exc})") from None
    if png:
        scale = 65535.0 if mode.startswith("I;16") else 255.0
        return (arr.astype(np.float32) / scale) if arr.dtype != np.float32 else arr
    return arr


def read_fixations(path: Path) -> np.ndarray:
    """Binary fixation map from an image (``> 0.5`` of ``read_map``) or a .mat (``eyeMap`` or its one 2-D array)."""
    if path.suffix.lower() == ".mat":
        try:
            from scipy.io import loadmat

            data = loadmat(path)
        except Exception as exc:
            raise EvalError(f"{path}: unreadable .mat ({exc})") from None
        arrays = {k: v for k, v in data.items() if not k.startswith("__") and getattr(v, "ndim", 0) == 2}
        arr = arrays.get("eyeMap", next(iter(arrays.values()), None)) if arrays else None
        if arr is None:
            raise EvalError(f"{path}: no 2-D array in the .mat file")
        return np.asarray(arr) > 0.5
    return read_map(path) > 0.5


# ----------------------------------------------------------------------------- datasets
def fold_list(root: Path, ds: str, split: int, subset: str = "test") -> Path:
    name = f"{ds}_list_{subset}_fps.txt" if ds == "DIEM" else f"{ds}_list_{subset}_{split}_fps.txt"
    return root / "fold_lists" / name


def av_dataset(root: str | Path, dataset: str, split: int = 1, subset: str = "test") -> list[Video]:
    """The ``subset`` ("test" or "train") videos of one audio-visual dataset (STAViS/DiffSal layout)."""
    root = Path(root)
    key = dataset.lower()
    if key not in AV_DATASETS:
        raise EvalError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(AV_DATASETS))}, dhf1k, plain")
    if split not in (1, 2, 3):
        raise EvalError(f"split must be 1, 2 or 3, got {split}")
    if subset not in ("test", "train"):
        raise EvalError(f"subset must be 'test' or 'train', got {subset!r}")
    ds = AV_DATASETS[key]
    lst = fold_list(root, ds, split, subset)
    if not lst.is_file():
        raise EvalError(f"fold list not found: {lst}")
    videos = []
    for i, line in enumerate(lst.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 3:
            raise EvalError(f"{lst}:{i}: expected 'name n_frames fps', got {line!r}")
        name, n, fps = parts[0], int(parts[1]), float(parts[2])
        ann = root / "annotations" / ds / name
        fix = _numbered(ann, "fixMap") or _numbered(ann / "fixation")
        videos.append(
            Video(
                name,
                fps,
                n,
                str(root / "video_frames" / ds / name / "img_%05d.jpg"),
                "image2",
                str(root / "video_audio" / ds / name / f"{name}.wav"),
                _numbered(ann / "maps"),
                fix,
            )
        )
    return videos


def dhf1k_dataset(root: str | Path) -> list[Video]:
    """DHF1K-style folders: ``<video>/{images|frames}``, ``maps/``, ``fixation/``."""
    root = Path(root)
    if not root.is_dir():
        raise EvalError(f"dataset root not found: {root}")
    videos = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        frames = next((d / n for n in ("images", "frames") if (d / n).is_dir()), None)
        pattern = None
        if frames is not None:
            first = sorted(frames.iterdir())
            if first:
                stem = re.sub(r"\d+$", "", first[0].stem)
                width = len(first[0].stem) - len(stem)
                pattern = str(frames / f"{stem}%0{width}d{first[0].suffix}")
        videos.append(
            Video(d.name, None, None, pattern, "image2", None, _numbered(d / "maps"), _numbered(d / "fixation"))
        )
    if not videos:
        raise EvalError(f"no video folders under {root}")
    return videos


def plain_dataset(video: str | Path, maps: str | Path, fixations: str | Path) -> list[Video]:
    """One video file with a folder of maps and a folder of fixation maps."""
    video, maps, fixations = Path(video), Path(maps), Path(fixations)
    for p, what in ((video, "video"), (maps, "maps folder"), (fixations, "fixations folder")):
        if not p.exists():
            raise EvalError(f"{what} not found: {p}")
    return [Video(video.stem, None, None, str(video), None, None, _numbered(maps), _numbered(fixations))]


# ----------------------------------------------------------------------------- matching
@dataclasses.dataclass(frozen=True)
class Item:
    video: str
    frame: int
    pred: Path
    gt_map: Path
    fixation: Path | None
    others: tuple[Path, ...] = ()  # fixation maps of other videos' frames (shuffled AUC)


SHUFFLE_FRAMES = 10  # other frames whose fixations form the shuffled-AUC negatives (Borji's M)


def with_shuffle_pool(items: Sequence[Item], m: int = SHUFFLE_FRAMES) -> list[Item]:
    """Attach to every item the fixation maps of ``m`` frames drawn from *other* videos
    (deterministic per video/frame). Frames of a dataset with a single video draw from the
    same video, excluding the frame itself."""
    pool = [(i.video, i.fixation) for i in items if i.fixation is not None]
    out = []
    for it in items:
        cands = [p for v, p in pool if v != it.video] or [p for v, p in pool if p != it.fixation]
        rng = np.random.RandomState(zlib.crc32(f"shuffle/{it.video}/{it.frame}".encode()))
        pick = tuple(cands[k] for k in rng.choice(len(cands), size=min(m, len(cands)), replace=False)) if cands else ()
        out.append(dataclasses.replace(it, others=pick))
    return out


def match(
    videos: Sequence[Video], predictions: str | Path, allow_missing: bool = False
) -> tuple[list[Item], dict[str, Any]]:
    """Pair every annotated frame with its prediction; report what does not pair up."""
    predictions = Path(predictions)
    if not predictions.is_dir():
        raise EvalError(f"predictions folder not found: {predictions}")
    items: list[Item] = []
    report: dict[str, Any] = {
        "missing_predictions": [],
        "missing_fixations": [],
        "unmatched_predictions": 0,
        "videos_without_maps": [],
    }
    for v in videos:
        if not v.maps:
            report["videos_without_maps"].append(v.name)
            continue
        preds = _numbered(predictions / v.name)
        for n, gt in sorted(v.maps.items()):
            if n not in preds:
                report["missing_predictions"].append(str(predictions / v.name / f"{n:05d}.png"))
                continue
            fx = v.fixations.get(n)
            if fx is None:
                report["missing_fixations"].append(f"{v.name} frame {n}")
            items.append(Item(v.name, n, preds[n], gt, fx))
        report["unmatched_predictions"] += len(set(preds) - set(v.maps))
    problems = [(k, report[k]) for k in ("videos_without_maps", "missing_predictions") if report[k]]
    if problems and not allow_missing:
        k, paths = problems[0]
        shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        raise EvalError(f"{k.replace('_', ' ')}: {shown} (use --allow-missing to evaluate the rest)")
    if not items:
        raise EvalError("no frame has both a prediction and a ground-truth map")
    return items, report


# ----------------------------------------------------------------------------- evaluation
def score_item(item: Item, names: tuple[str, ...] = DEFAULT_METRICS) -> dict[str, Any]:
    """Metrics of one frame. AUC jitter / random draws are seeded from the video and frame."""
    pred = read_map(item.pred).astype(np.float64)
    gt = read_map(item.gt_map)
    fix = read_fixations(item.fixation) if item.fixation is not None else None
    if fix is not None and fix.shape != gt.shape:
        raise EvalError(f"{item.fixation}: size {fix.shape} differs from its map {item.gt_map} {gt.shape}")
    rng = np.random.RandomState(zlib.crc32(f"{item.video}/{item.frame}".encode()))
    values: dict[str, Any] = {"video": item.video, "frame": item.frame}
    need_fix = {"nss", "auc_judd", "auc_borji", "auc_shuffled"}
    usable = tuple(n for n in names if fix is not None or n not in need_fix)
    other = None
    if "auc_shuffled" in usable:
        maps = [read_fixations(p) for p in item.others]
        maps = [m for m in maps if m.shape == fix.shape]  # other sizes cannot be shuffled in
        if maps:
            other = np.logical_or.reduce(maps)
        else:
            usable = tuple(n for n in usable if n != "auc_shuffled")
    values.update(
        M.all_metrics(pred, gt, fix if fix is not None else gt > 0, other_fixations=other, names=usable, rng=rng)
    )
    for n in names:
        values.setdefault(n, float("nan"))
    return values


def evaluate(
    items: Sequence[Item],
    names: tuple[str, ...] = DEFAULT_METRICS,
    workers: int = 1,
    progress: Callable[[Iterable[Any], int], Iterable[Any]] | None = None,
) -> dict[str, Any]:
    """Per-frame rows, per-video means and the mean over videos (NaN frames left out of means, counted)."""
    for n in names:
        if n not in M.METRICS:
            raise EvalError(f"unknown metric {n!r}; known: {', '.join(M.METRICS)}")
    if "auc_shuffled" in names and not any(i.others for i in items):
        items = with_shuffle_pool(items)
    wrap = progress or (lambda it, total: it)
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            rows = list(wrap(ex.map(score_item, items, [names] * len(items), chunksize=8), len(items)))
    else:
        rows = list(wrap((score_item(i, names) for i in items), len(items)))
    per_video: dict[str, dict[str, Any]] = {}
    for v in dict.fromkeys(r["video"] for r in rows):
        vr = [r for r in rows if r["video"] == v]
        entry: dict[str, Any] = {"video": v, "frames": len(vr)}
        for n in names:
            vals = np.array([r[n] for r in vr], dtype=np.float64)
            entry[n] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
            entry[f"{n}_nan_frames"] = int((~np.isfinite(vals)).sum())
        per_video[v] = entry
    mean = {n: float(np.nanmean([e[n] for e in per_video.values()])) for n in names}
    return {
        "metrics": list(names),
        "frames": rows,
        "videos": list(per_video.values()),
        "mean": mean,
        "n_videos": len(per_video),
        "n_frames": len(rows),
    }


def write_results(result: dict[str, Any], out: str | Path, settings: dict[str, Any]) -> tuple[Path, Path]:
    """``results.json`` (everything) and ``results.csv`` (per-video rows and the mean)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / "results.json"
    js.write_text(json.dumps({"settings": settings, **result}, indent=1, default=str, allow_nan=True))
    cs = out / "results.csv"
    names = result["metrics"]
    with cs.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "frames", *names])
        for e in result["videos"]:
            w.writerow([e["video"], e["frames"], *(f"{e[n]:.6f}" for n in names)])
        w.writerow(["mean", result["n_frames"], *(f"{result['mean'][n]:.6f}" for n in names)])
    return js, cs


# ----------------------------------------------------------------------------- predicting
def video_source(video: Video) -> Any:
    """The runtime input (:class:`salrt.runtime.Source`) of a dataset video: its file or image
    sequence (1-based, at its frame rate) and its audio."""
    from salrt.io.sources import Source

    if video.source is None:
        raise EvalError(f"{video.name}: no frames or video file to predict from")
    audio = video.audio if video.audio and Path(video.audio).is_file() else None
    opts = {"framerate": str(video.fps), "start_number": "1"} if video.source_format == "image2" and video.fps else None
    return Source(str(video.source), format=video.source_format, options=opts, fps=video.fps, audio=audio)


def dataset(name: str, root: str | Path | None, split: int = 1, subset: str = "test") -> list[Video]:
    """The videos of dataset layout ``name`` (:data:`DATASETS`) under ``root``."""
    if name not in DATASETS:
        raise EvalError(f"unknown dataset {name!r}: {', '.join(DATASETS)}")
    if root is None:
        raise EvalError(f"dataset {name} needs its root folder")
    return dhf1k_dataset(root) if name == "dhf1k" else av_dataset(root, name, split, subset)
