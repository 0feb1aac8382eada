"""The student's training data: every frame of a video decoded once in the student's input
contract, beside the teacher's map of that frame (and the ground truth where a dataset has it),
cached per video (float16 arrays, ``meta.json`` written last); sequences of consecutive frames
drawn from it (the student is trained unrolled over them, from its start state)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError

FORMAT = 1


def cache_student_video(
    name: str,
    source: Any,
    contract: Any,
    teacher_maps: Path,
    folder: Path,
    truth: tuple[dict[int, Path], dict[int, Path]] | None = None,
) -> dict[str, Any]:
    """Decode ``source`` (a :class:`salrt.io.sources.Source`) at stride 1 in ``contract`` into
    ``folder``: ``video.npy`` (N,3,H,W), ``audio.npy`` (N,1,S,h,w), ``teacher.npy`` (N,1,H,W)
    and, with ``truth`` (1-based maps and fixation files), ``truth.npy`` / ``fixations.npy``;
    ``has`` marks the frames with a teacher map (a teacher stride > 1 leaves gaps)."""
    from salrt.evaluation import read_fixations, read_map
    from salrt.io import open_media
    from salrt.train.data import _pool_fixations, _resize_map  # salrt train's own: both caches agree

    meta_path = folder / "meta.json"
    key = json.dumps([FORMAT, contract.to_dict(), str(teacher_maps.stat().st_mtime_ns), truth is not None])
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("key") == key:
            return meta
    with np.load(teacher_maps) as z:
        t_maps, t_times = z["maps"].astype(np.float32) / 255.0, z["times"]
    size = tuple(contract.size)
    video, audio, times = [], [], []
    media = open_media(str(source.path), stride=1, **contract.media_options(), **source.open_kwargs())
    try:
        for clip in media:
            video.append(np.asarray(clip.video, np.float16)[:, 0])
            audio.append(np.asarray(clip.audio, np.float16))
            times.append(clip.target_index)
    finally:
        media.close()
    if not video:
        raise SalrtError(f"{name}: no frame could be decoded")
    n = len(video)
    teacher = np.zeros((n, 1, *size), np.float16)
    has = np.zeros(n, bool)
    # the teacher's maps are per frame at its stride; map them to frame indices by their time order
    if len(t_maps) == n:  # stride 1: one map per frame
        idx = np.arange(n)
    else:  # a map every few frames: placed by its time from the first frame's
        t = np.asarray(t_times, np.float64)
        idx = np.round((t - t[0]) * float(media.info.fps)).astype(int) if len(t) else np.zeros(0, int)
    resized = [_resize_map(m, size) for m in t_maps]
    for k, m in zip(idx, resized):
        if 0 <= k < n:
            teacher[k, 0], has[k] = m, True
    tmp = folder.with_name(f"{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    np.save(tmp / "video.npy", np.stack(video))
    np.save(tmp / "audio.npy", np.stack(audio))
    np.save(tmp / "teacher.npy", teacher)
    np.save(tmp / "has.npy", has)
    if truth is not None:
        maps, fix = truth
        gt = np.zeros((n, 1, *size), np.float16)
        fx = np.zeros((n, 1, *size), np.uint8)
        for k in range(n):
            if k + 1 in maps:
                g = read_map(maps[k + 1])
                gt[k, 0] = _resize_map(g.astype(np.float32) / (255.0 if g.dtype == np.uint8 else 1.0), size)
            if k + 1 in fix:
                fx[k, 0] = _pool_fixations(read_fixations(fix[k + 1]), size)
        np.save(tmp / "truth.npy", gt)
        np.save(tmp / "fixations.npy", fx)
    meta = {"video": name, "key": key, "frames": n, "teacher_frames": int(has.sum()), "truth": truth is not None}
    (tmp / "meta.json").write_text(json.dumps(meta))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return meta


@dataclass
class SequenceDataset:
    """Windows of ``length`` consecutive frames (every ``hop`` frames) of cached videos. Item:
    ``video`` (3,L,H,W), ``audio`` (L,1,S,h,w), ``map`` (L,1,H,W) the target (the teacher's map,
    mixed with the ground truth at ``truth_weight`` where there is one), ``teacher`` and ``truth``
    maps (L,1,H,W), ``fixations`` (L,1,H,W), ``has`` (L,) frames with a teacher map; ``source``."""

    folders: list[Path]
    length: int = 8
    hop: int = 4
    truth_weight: float = 0.0

    def __post_init__(self) -> None:
        self.metas = [json.loads((f / "meta.json").read_text()) for f in self.folders]
        self.index: list[tuple[int, int]] = []
        for vi, meta in enumerate(self.metas):
            n = meta["frames"]
            starts = list(range(0, max(n - self.length, 0) + 1, self.hop)) if n >= self.length else []
            self.index += [(vi, s) for s in starts]
        self._arrays: dict[int, dict[str, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.index)

    def _video(self, vi: int) -> dict[str, np.ndarray]:
        if vi not in self._arrays:
            f = self.folders[vi]
            names = ["video", "audio", "teacher", "has"] + (["truth", "fixations"] if self.metas[vi]["truth"] else [])
            self._arrays[vi] = {k: np.load(f / f"{k}.npy", mmap_mode="r") for k in names}
        return self._arrays[vi]

    def __getitem__(self, i: int) -> dict[str, Any]:
        vi, s = self.index[i]
        a = self._video(vi)
        sl = slice(s, s + self.length)
        teacher = np.asarray(a["teacher"][sl], np.float32)
        truth = np.asarray(a["truth"][sl], np.float32) if "truth" in a else np.zeros_like(teacher)
        fix = np.asarray(a["fixations"][sl], np.float32) if "fixations" in a else np.zeros_like(teacher)
        target = teacher
        if self.truth_weight and "truth" in a:
            target = (1 - self.truth_weight) * teacher + self.truth_weight * truth
        return {
            "video": np.ascontiguousarray(np.asarray(a["video"][sl], np.float32).transpose(1, 0, 2, 3)),
            "audio": np.asarray(a["audio"][sl], np.float32),
            "map": target,
            "teacher": teacher,
            "truth": truth,
            "fixations": fix,
            "has": np.asarray(a["has"][sl], bool),
            "source": f"{self.metas[vi]['video']}#{s + 1}",
        }
