"""``salrt distill``: a heavy teacher (any registry model, any backend) into the real-time student
(:mod:`salrt.models.student`) on the user's own videos, unlabelled or with ground truth.

1. the teacher's map of every frame (every ``teacher_stride``-th), by salrt's runtime, cached and
   resumable (:mod:`salrt.distill.teacher`);
2. every frame decoded once in the student's contract beside its teacher map (:mod:`salrt.distill.data`);
3. the student trained by salrt's trainer (exact resume, validation every epoch, best checkpoint,
   logs and curves, DDP) on sequences of consecutive frames, with its distillation loss;
4. a report on held-out videos: student and teacher side by side (CC / KLD / SIM against the
   teacher's maps and, with ground truth, both against it; the student with swapped soundtracks)
   and the speed of both.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError, UsageError, require
from salrt.spec import RunSpec

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".ts", ".m4v", ".flv", ".mpg", ".mpeg")


@dataclasses.dataclass(frozen=True)
class DistillSettings:
    """``student_config``: the student's preset (``s`` or ``m``); ``sequence``/``hop``: training
    windows of consecutive frames; ``teacher_stride``: a teacher map every N frames (its cost / N);
    ``truth_weight``: the share of the ground truth in the target where a dataset has one;
    ``held_out``: the share of videos kept for the report (``--videos``; a dataset's test split
    otherwise); the rest as :class:`salrt.train.TrainOptions`."""

    student_config: str = "s"
    epochs: int = 10
    batch: int = 8
    lr: float | None = None
    sequence: int = 8
    hop: int = 4
    teacher_stride: int = 1
    teacher_batch: int = 4
    truth_weight: float = 0.0
    held_out: float = 0.2
    seed: int = 0
    resume: bool = False
    workers: int = 0
    device: str = "cpu"
    checkpoint_every: int = 200
    max_steps: int | None = None
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.student_config not in ("s", "m", "paper", "tiny"):
            raise UsageError(f"student config {self.student_config!r}: choose s or m (tiny: tests)")
        for name in ("epochs", "batch", "sequence", "hop", "teacher_stride", "teacher_batch"):
            if getattr(self, name) < 1:
                raise UsageError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.truth_weight <= 1:
            raise UsageError(f"truth weight must be in 0..1, got {self.truth_weight}")
        if not 0 < self.held_out < 1:
            raise UsageError(f"held-out share must be between 0 and 1, got {self.held_out}")


@dataclasses.dataclass
class Item:
    """One video of the distillation: its name, its input, and ground truth when it has one."""

    name: str
    source: Any
    truth: tuple[dict[int, Path], dict[int, Path]] | None = None


def video_items(videos: str | Path | list[str]) -> list[Item]:
    """The videos of a folder (its video files, sorted), of a list file (one path per line, ``#``
    comments) or of a list of paths."""
    from salrt.io.sources import Source

    if isinstance(videos, (list, tuple)):
        paths = [Path(v) for v in videos]
    else:
        p = Path(videos)
        if p.is_dir():
            paths = sorted(f for f in p.iterdir() if f.suffix.lower() in VIDEO_SUFFIXES)
            if not paths:
                raise UsageError(f"{p}: no video files ({', '.join(VIDEO_SUFFIXES)})")
        elif p.is_file():
            lines = [ln.split("#", 1)[0].strip() for ln in p.read_text(errors="replace").splitlines()]
            paths = [Path(ln) if Path(ln).is_absolute() else p.parent / ln for ln in lines if ln]
            if not paths:
                raise UsageError(f"{p}: the list names no video")
        else:
            raise UsageError(f"{p}: no such folder or list file")
    items, seen = [], set()
    for path in paths:
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in path.stem) or "video"
        base, k = name, 1
        while name in seen:
            k += 1
            name = f"{base}_{k}"
        seen.add(name)
        items.append(Item(name, Source(str(path))))
    return items


def dataset_items(dataset: str, root: str, split: int = 1) -> tuple[list[Item], list[Item]]:
    """(train, held-out) videos of a dataset layout with their ground truth (its test split held out)."""
    from salrt import evaluation

    def items(subset: str) -> list[Item]:
        return [
            Item(v.name, evaluation.video_source(v), (v.maps, v.fixations))
            for v in evaluation.dataset(dataset, root, split, subset)
        ]

    return items("train"), items("test")


def readable(items: list[Item], warn: Callable[[str], None]) -> tuple[list[Item], list[str]]:
    """The items whose input opens with a video stream; the others named (warned, counted)."""
    from salrt.errors import MediaError
    from salrt.io.media import probe

    ok, bad = [], []
    for it in items:
        try:
            info = probe(it.source.path, **it.source.open_kwargs())
            if not info.width:
                raise MediaError("no video stream")
            ok.append(it)
        except (MediaError, OSError) as exc:
            bad.append(f"{it.source.path}: {exc}")
            warn(f"skipping unreadable video {bad[-1]}")
    return ok, bad


def check_teacher(spec: RunSpec) -> None:
    """Refuse a student as the teacher (by name or by its checkpoint)."""
    from salrt import checkpoint as ckpt

    if spec.model == "student":
        raise UsageError("the student cannot be the teacher: pass a registry model as --teacher (diffsal, ...)")
    if spec.checkpoint and ckpt.is_salrt_checkpoint(spec.checkpoint):
        meta = json.loads(ckpt.config_path(spec.checkpoint).read_text())
        if isinstance(meta, dict) and meta.get("model") == "student":
            raise UsageError(
                f"{spec.checkpoint}: a student checkpoint, not a teacher's: pass the teacher's weights as --checkpoint"
            )


def _scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    from salrt import metrics as M

    vals = {"cc": [], "kld": [], "sim": []}
    for p, g in zip(pred, ref):
        vals["cc"].append(M.cc(p, g))
        vals["kld"].append(M.kld(p, g))
        vals["sim"].append(M.sim(p, g))
    return {k: float(np.nanmean(v)) if v else float("nan") for k, v in vals.items()}


def stream_maps(model: Any, video: np.ndarray, audio: np.ndarray) -> np.ndarray:
    """The student's maps of one video's frames in order, from its start state: video (N,3,H,W),
    audio (N,1,S,h,w) -> (N,H,W)."""
    from salrt.backends.torch_backend import TorchBackend

    return TorchBackend(model).step_through(np.asarray(video, np.float32)[:, :, None], np.asarray(audio, np.float32))


def report(model: Any, folders: list[Path], teacher_videos: dict[str, Any], truth: bool) -> dict[str, Any]:
    """Student and teacher on the held-out videos' cached frames (see the module docstring)."""
    rows: dict[str, list[dict[str, float]]] = {"student_vs_teacher": [], "student_vs_truth": [],
                                               "teacher_vs_truth": [], "student_swapped_vs_truth": []}  # fmt: skip
    cached = [
        {k: np.load(f / f"{k}.npy", mmap_mode="r") for k in ("video", "audio", "teacher", "has")} for f in folders
    ]
    metas = [json.loads((f / "meta.json").read_text()) for f in folders]
    for i, (arr, meta) in enumerate(zip(cached, metas)):
        maps = stream_maps(model, arr["video"], arr["audio"])
        has = np.asarray(arr["has"])
        teacher = np.asarray(arr["teacher"][:, 0], np.float32)
        rows["student_vs_teacher"].append(_scores(maps[has], teacher[has]))
        if truth and meta["truth"]:
            gt = np.load(folders[i] / "truth.npy")[:, 0].astype(np.float32)
            other = cached[(i + 1) % len(cached)]["audio"]
            n = min(len(other), len(arr["audio"]))
            swapped = stream_maps(model, arr["video"][:n], other[:n])
            rows["student_vs_truth"].append(_scores(maps, gt))
            rows["teacher_vs_truth"].append(_scores(teacher[has], gt[has]))
            rows["student_swapped_vs_truth"].append(_scores(swapped, gt[:n]))
    return {k: {m: float(np.nanmean([r[m] for r in v])) for m in ("cc", "kld", "sim")} for k, v in rows.items() if v}


def measure_student_speed(model: Any, frames: int = 60) -> dict[str, float]:
    """Maps per second of the student (torch, batch 1, this process's threads), model alone."""
    import torch

    cfg = model.config
    v = torch.zeros(1, 3, 1, cfg.height, cfg.width)
    a = torch.zeros(1, *cfg.audio_shape)
    h = model.init_state(1)["h"]
    with torch.no_grad():
        for _ in range(5):
            model.step(v, a, h)
        t = time.perf_counter()
        for _ in range(frames):
            _, h = model.step(v, a, h)
        dt = time.perf_counter() - t
    return {"maps_per_s_torch": round(frames / dt, 1), "ms_per_map_torch": round(dt / frames * 1e3, 2)}


def student_gflops(model: Any) -> float:
    """GFLOPs of one map (one step at batch 1, torch's counter)."""
    import torch

    from salrt.cost import full_flops

    inputs = {k: torch.zeros_like(v, device="cpu") for k, v in model.example_inputs(1).items()}
    return full_flops(model, inputs, torch.zeros(1), torch.zeros(1))["forward"] / 1e9


@dataclasses.dataclass
class DistillResult:
    """Where the student is, what the report measured."""

    student: Path
    report: dict[str, Any]
    report_path: Path


def distill(
    teacher: RunSpec,
    output: str | Path,
    settings: DistillSettings = DistillSettings(),
    *,
    videos: str | Path | list[str] | None = None,
    dataset: str | None = None,
    root: str | None = None,
    split: int = 1,
    log: Callable[[str], None] = lambda s: None,
    warn: Callable[[str], None] = lambda s: None,
    status: Callable[[str], Any] | None = None,
) -> DistillResult:
    """Distil ``teacher`` into the student on ``videos`` (folder, list file or paths) or a
    ``dataset`` layout under ``root``; everything under ``output`` (see the module docstring)."""
    require("torch", "salrt distill")
    import contextlib

    import salrt
    from salrt import pipeline
    from salrt.distill.data import SequenceDataset, cache_student_video
    from salrt.distill.teacher import TeacherMaps
    from salrt.io.contract import InputContract
    from salrt.models.student import StudentConfig
    from salrt.train import TrainOptions
    from salrt.train import train as run_training

    show = status or (lambda text: contextlib.nullcontext())
    out = Path(output)
    check_teacher(teacher)
    if (videos is None) == (dataset is None):
        raise UsageError("give the videos (a folder or list) or a dataset layout with its root, not both")
    if dataset is not None:
        if root is None:
            raise UsageError(f"dataset {dataset} needs its root folder")
        if dataset == "synthetic" and not (Path(root) / "fold_lists").is_dir():
            from salrt.io.synthetic import make_dataset

            with show(f"writing the synthetic sounding-object dataset to {root}"):
                make_dataset(root, seed=settings.seed)
        train_items, held = dataset_items(dataset, root, split)
    else:
        every = video_items(videos)  # type: ignore[arg-type]
        n_held = max(1, int(round(len(every) * settings.held_out))) if len(every) > 1 else 0
        train_items, held = every[: len(every) - n_held], every[len(every) - n_held :]
    train_items, bad_train = readable(train_items, warn)
    held, bad_held = readable(held, warn)
    if not train_items:
        raise SalrtError("no readable training video")
    everything = train_items + held

    out.mkdir(parents=True, exist_ok=True)
    teacher = pipeline.prepare(teacher)
    cache = TeacherMaps(out / "teacher_maps", teacher, settings.teacher_stride)
    with show(f"the teacher ({teacher.model}, {teacher.backend}) maps {len(everything)} videos"):
        pipe = pipeline.build(teacher)
        t_videos = cache.make(
            [(it.name, it.source) for it in everything], pipe, batch=settings.teacher_batch,
            progress=lambda name, k, n: log(f"teacher: {name} ({k + 1}/{n})"),
            warn=warn,
        )  # fmt: skip
        pipe.backend.close()
    by_name = {t.name: t for t in t_videos}
    silent = sorted({t.name for t in t_videos if t.silent})
    measured = [t for t in t_videos if t.seconds > 0]
    teacher_cost = (
        {
            "seconds_per_video": round(sum(t.seconds for t in measured) / len(measured), 2),
            "seconds_per_map": round(sum(t.seconds for t in measured) / max(sum(t.frames for t in measured), 1), 4),
            "videos_measured": len(measured),
        }
        if measured
        else None
    )

    cfg = StudentConfig.preset(settings.student_config)
    contract = InputContract.of(cfg)
    inputs = out / "student_inputs"
    with show(f"decoding {len(everything)} videos for the student"):
        folders = {}
        for it in everything:
            folders[it.name] = inputs / it.name
            cache_student_video(it.name, it.source, contract, by_name[it.name].maps, folders[it.name], it.truth)
    train_set = SequenceDataset([folders[it.name] for it in train_items], settings.sequence, settings.hop,
                                settings.truth_weight)  # fmt: skip
    val_set = SequenceDataset([folders[it.name] for it in held], settings.sequence, settings.sequence) if held else None
    log(f"{len(train_set)} training sequences of {settings.sequence} frames, {len(val_set or [])} validation sequences")
    opts = TrainOptions(
        model="student", config=settings.student_config, output=str(out / "train"), epochs=settings.epochs,
        batch=settings.batch, lr=settings.lr, device=settings.device, workers=settings.workers, seed=settings.seed,
        checkpoint_every=settings.checkpoint_every, resume=settings.resume, max_steps=settings.max_steps,
        quiet=settings.quiet,
    )  # fmt: skip
    result = run_training(opts, train_set, val_set if val_set is not None and len(val_set) else None, log=log)
    best = out / "train" / ("best" if (out / "train" / "best").is_dir() else "last")
    student_dir = out / "student"
    shutil.rmtree(student_dir, ignore_errors=True)
    shutil.copytree(best, student_dir)

    model = salrt.load_model("student", checkpoint=str(student_dir)).eval()
    has_truth = any(it.truth is not None for it in held)
    scores = report(model, [folders[it.name] for it in held], by_name, has_truth) if held else {}
    rep = {
        "teacher": teacher.to_dict(),
        "student": {
            "config": settings.student_config,
            "parameters": sum(p.numel() for p in model.parameters()),
            "gflops_per_map": round(student_gflops(model), 4),
            **measure_student_speed(model),
        },  # fmt: skip
        "teacher_cost": teacher_cost,
        "videos": {
            "train": [it.name for it in train_items],
            "held_out": [it.name for it in held],
            "unreadable": bad_train + bad_held,
            "silent": silent,
        },  # fmt: skip
        "training": {k: result.get(k) for k in ("step", "epochs", "best_cc")},
        "held_out": scores,
        "settings": dataclasses.asdict(settings),
    }
    path = out / "report.json"
    path.write_text(json.dumps(rep, indent=1, default=str))
    (out / "report.md").write_text(report_markdown(rep))
    return DistillResult(student_dir, rep, path)


def report_markdown(rep: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = ["# Distillation report", "", "| comparison (held-out) | CC | KLD | SIM |", "|---|---|---|---|"]
    for k, v in rep["held_out"].items():
        lines.append(f"| {k.replace('_', ' ')} | {v['cc']:.3f} | {v['kld']:.3f} | {v['sim']:.3f} |")
    s, t = rep["student"], rep["teacher_cost"]
    lines += [
        "",
        f"Student ({s['config']}): {s['parameters']:,} parameters, {s['gflops_per_map']} GFLOPs per map, "
        f"{s['maps_per_s_torch']} maps/s (torch eager, batch 1).",
        f"Teacher: {t['seconds_per_map']} s per map ({t['seconds_per_video']} s per video)." if t else "",
        f"Videos: {len(rep['videos']['train'])} train, {len(rep['videos']['held_out'])} held out, "
        f"{len(rep['videos']['unreadable'])} unreadable, {len(rep['videos']['silent'])} without audio.",
    ]
    return "\n".join(lines) + "\n"
