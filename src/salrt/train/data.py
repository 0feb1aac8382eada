"""Training clips: the dataset videos decoded and preprocessed by exactly the code ``salrt run``
uses (:func:`salrt.io.open_media` with the model's :class:`~salrt.io.contract.InputContract`),
paired with the ground-truth map and fixations of each clip's target frame, and cached on disk
(one folder of ``.npy`` arrays per video, written by worker processes, resumable: a video whose
folder is complete for this contract is not decoded again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.evaluation import Video, read_fixations, read_map


class DataError(SalrtError):
    """Missing or mismatched training data (reported before training starts)."""


def check_videos(videos: list[Video]) -> list[str]:
    """Problems that would stop training, by video name: no frames or video file, no maps,
    fixations missing or not matching the maps' frame numbers, a missing audio file."""
    problems = []
    for v in videos:
        if v.source is None:
            problems.append(f"{v.name}: no video file or frames")
        elif "%" in v.source:
            folder = Path(v.source).parent
            if not folder.is_dir() or not any(folder.iterdir()):
                problems.append(f"{v.name}: no frames in {folder}")
        elif not Path(v.source).is_file():
            problems.append(f"{v.name}: video file not found: {v.source}")
        if not v.maps:
            problems.append(f"{v.name}: no saliency maps")
        elif set(v.fixations) != set(v.maps):
            missing = sorted(set(v.maps) - set(v.fixations))
            extra = sorted(set(v.fixations) - set(v.maps))
            what = f"{len(missing)} maps without fixations (first: frame {missing[0]})" if missing else ""
            what += ("; " if what and extra else "") + (f"{len(extra)} fixations without a map" if extra else "")
            problems.append(f"{v.name}: {what}")
        if v.audio is not None and not Path(v.audio).is_file():
            problems.append(f"{v.name}: audio file not found: {v.audio}")
    return problems


def contract_key(contract: Any, stride: int) -> str:
    """A short hash of what the cached arrays depend on."""
    text = json.dumps([contract.to_dict(), stride, 2], sort_keys=True)  # bump the last number when the format changes
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    h, w = size
    return np.asarray(Image.fromarray(m.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR), np.float32)


def _pool_fixations(f: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A fixation anywhere in a cell of the model's grid marks the cell (nearest-cell binning)."""
    h, w = size
    ys, xs = np.nonzero(f)
    out = np.zeros((h, w), np.uint8)
    out[np.minimum(ys * h // f.shape[0], h - 1), np.minimum(xs * w // f.shape[1], w - 1)] = 1
    return out


def cache_video(video: Video, contract: Any, stride: int, folder: Path) -> dict[str, Any]:
    """Decode one video's clips (every ``stride``-th target frame that has a map) into
    ``folder``; ``meta.json`` is written last (its presence means the folder is complete)."""
    from salrt.io import open_media

    meta_path = folder / "meta.json"
    key = contract_key(contract, stride)
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return meta
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")  # one per process (torchrun ranks)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    opts: dict[str, Any] = dict(contract.media_options(), stride=stride)
    if video.source_format == "image2":
        opts.update(format="image2", options={"framerate": str(video.fps or 25), "start_number": "1"})
    if video.fps:
        opts["fps"] = video.fps
    if video.audio is not None:
        opts["audio"] = video.audio
    size = tuple(contract.size)
    arrays: dict[str, list[np.ndarray]] = {"video": [], "audio": [], "map": [], "fixations": []}
    frames = []
    media = open_media(str(video.source), **opts)
    try:
        for clip in media:
            n = clip.target_index + 1  # annotations are 1-based
            if n not in video.maps:
                continue
            arrays["video"].append(np.asarray(clip.video, np.float32))
            arrays["audio"].append(np.asarray(clip.audio, np.float32))
            g = read_map(video.maps[n])  # 0..255 from 8-bit JPEG/BMP (as plt.imread), 0..1 from PNG
            g = g.astype(np.float32) / (255.0 if g.dtype == np.uint8 else 1.0)
            arrays["map"].append(_resize_map(g, size)[None])
            arrays["fixations"].append(_pool_fixations(read_fixations(video.fixations[n]), size)[None])
            frames.append(n)
    finally:
        media.close()
    if not frames:
        raise DataError(f"{video.name}: no clip has an annotated target frame (maps at frames {min(video.maps)}..)")
    for k, v in arrays.items():
        np.save(tmp / f"{k}.npy", np.stack(v))
    meta = {"video": video.name, "key": key, "frames": frames, "clips": len(frames), "source": video.source}
    (tmp / "meta.json").write_text(json.dumps(meta))
    if not (folder / "meta.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process finished the same video first
            pass
    shutil.rmtree(tmp, ignore_errors=True)
    return meta


def _cache_one(args: tuple) -> dict[str, Any]:
    return cache_video(*args)


def build_cache(
    videos: list[Video], contract: Any, cache_dir: str | Path, stride: int = 4, workers: int = 0, progress: Any = None
) -> list[Path]:
    """Cache every video (``workers`` processes; 0: in this process); returns the video folders.
    Already complete folders are kept (the cache resumes where it stopped)."""
    root = Path(cache_dir) / contract_key(contract, stride)
    jobs = [(v, contract, stride, root / _safe(v.name)) for v in videos]
    folders = []
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for (_, _, _, folder), _meta in zip(jobs, pool.map(_cache_one, jobs)):
                folders.append(folder)
                if progress:
                    progress()
    else:
        for job in jobs:
            _cache_one(job)
            folders.append(job[3])
            if progress:
                progress()
    return folders


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


@dataclass
class ClipDataset:
    """The cached clips of several videos, memory-mapped; item ``i`` is a dict of arrays plus
    ``source`` (video name and frame) for error messages."""

    folders: list[Path]

    def __post_init__(self) -> None:
        self.index: list[tuple[int, int]] = []
        self.metas = []
        for vi, f in enumerate(self.folders):
            meta = json.loads((f / "meta.json").read_text())
            self.metas.append(meta)
            self.index += [(vi, i) for i in range(meta["clips"])]
        self._arrays: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _video(self, vi: int) -> dict[str, np.ndarray]:
        if vi not in self._arrays:  # opened lazily, per worker process
            self._arrays[vi] = {
                k: np.load(self.folders[vi] / f"{k}.npy", mmap_mode="r") for k in ("video", "audio", "map", "fixations")
            }
        return self._arrays[vi]

    def __getitem__(self, i: int) -> dict[str, Any]:
        vi, ci = self.index[i]
        a = self._video(vi)
        item: dict[str, Any] = {k: np.array(a[k][ci]) for k in a}
        item["fixations"] = item["fixations"].astype(np.float32)
        meta = self.metas[vi]
        item["source"] = f"{meta['video']}#{meta['frames'][ci]}"
        return item


def collate(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the arrays of a list of items into torch tensors; ``source`` stays a list."""
    import torch

    out: dict[str, Any] = {"source": [it["source"] for it in items]}
    for k in items[0]:
        if k != "source":
            out[k] = torch.from_numpy(np.stack([it[k] for it in items]))
    return out
