"""``salrt eval``: score predicted maps (a folder, or a model run now) on a saliency dataset with
the field's metrics, and show the paper's own figures for the same model and dataset."""

from __future__ import annotations

import dataclasses
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salrt import evaluation
from salrt.errors import EvalError, UsageError
from salrt.spec import RunSpec

Progress = Callable[[Any, str, int | None], Any]  # (items, description, total) -> the items, shown


@dataclasses.dataclass(frozen=True)
class EvalSettings:
    """What to score: ``dataset`` layout (:data:`salrt.evaluation.DATASETS`, ``plain`` with
    ``video``/``maps``/``fixations``, or ``msu``: the AIM 2024 / NTIRE 2026 challenges' layout and
    scoring, :mod:`salrt.msu`, list ``subset`` of its split file) under ``root`` (``split``), a
    ``videos`` subset, ``metrics``;
    ``allow_missing`` scores what exists; ``workers`` scoring processes (0: all cores); for a
    model: ``batch`` and ``save_predictions`` (a folder that keeps the maps)."""

    dataset: str
    root: str | None = None
    split: int = 1
    video: str | None = None
    maps: str | None = None
    fixations: str | None = None
    videos: tuple[str, ...] = ()
    metrics: tuple[str, ...] = evaluation.DEFAULT_METRICS
    allow_missing: bool = False
    workers: int = 0
    batch: int = 1
    save_predictions: str | None = None
    subset: str = "public_test"

    def __post_init__(self) -> None:
        from salrt import metrics, msu

        unknown = [n for n in self.metrics if n not in metrics.METRICS]
        if unknown or not self.metrics:
            raise UsageError(f"unknown metric {unknown[0] if unknown else ''!r}; known: {', '.join(metrics.METRICS)}")
        if self.dataset == "msu" and set(self.metrics) - set(msu.METRICS):
            raise UsageError(f"the msu protocol scores {', '.join(msu.METRICS)}; not {', '.join(self.metrics)}")
        if self.dataset == "msu" and self.allow_missing:
            raise UsageError(
                "the msu protocol scores every frame (bench.py requires equal frame sets): no --allow-missing"
            )
        if self.dataset == "msu" and self.subset not in msu.SUBSETS:
            raise UsageError(f"subset must be one of {', '.join(msu.SUBSETS)}, got {self.subset!r}")


def videos(s: EvalSettings) -> list[evaluation.Video]:
    """The dataset's videos, narrowed to ``s.videos``."""
    if s.dataset == "plain":
        if not (s.video and s.maps and s.fixations):
            raise UsageError("the plain layout needs a video, a maps folder and a fixations folder")
        found = evaluation.plain_dataset(s.video, s.maps, s.fixations)
    else:
        if s.root is None:
            raise UsageError(f"dataset {s.dataset} needs its root folder")
        found = evaluation.dataset(s.dataset, s.root, s.split)
    return _narrowed(found, s.videos, "the dataset")


def _narrowed(found: Sequence[Any], names: Sequence[str], where: str) -> list[Any]:
    """``found`` narrowed to the videos ``names`` (all when empty); a name not there is a usage error."""
    if not names:
        return list(found)
    unknown = set(names) - {v.name for v in found}
    if unknown:
        raise UsageError(f"videos not in {where}: {', '.join(sorted(unknown))}")
    return [v for v in found if v.name in names]


def predict_video(
    pipe: Any, video: evaluation.Video, out_dir: str | Path, steps: int | None = 4, batch: int = 1, seed: int = 0
) -> int:
    """Run a :class:`salrt.pipeline.Pipeline` over one dataset video through the same
    :class:`~salrt.runtime.Runtime` as ``salrt run``, writing ``out_dir/<video>/<frame:05d>.png``
    (1-based, what :func:`salrt.evaluation.match` reads). Text-conditioned models run their AV
    variant (the saliency datasets have no captions)."""
    from salrt.runtime import RunOptions, Runtime
    from salrt.sinks import PngSink

    sink = PngSink(Path(out_dir) / video.name)
    rt = Runtime(
        pipe.backend,
        [evaluation.video_source(video)],
        RunOptions(steps=steps, batch=batch, contract=pipe.contract, seed=seed),
        sinks_for=lambda i, info: [sink],
    )
    stats = rt.run(handle_signals=False)
    if stats["errors"]:
        raise EvalError(f"{video.name}: {stats['errors'][0]}")
    return stats["frames_out"][0]


def evaluate(
    settings: EvalSettings,
    *,
    predictions: str | None = None,
    spec: RunSpec | None = None,
    ray: Any = None,
    paper: tuple[str, str] | None = None,
    progress: Progress = lambda items, desc, total: items,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Score ``predictions`` (a folder ``<video>/<frame>.png``) or ``spec``'s model run now (on Ray
    with ``ray``: :class:`salrt.app.jobs.RayOptions`); ``paper``: (model, preset) whose published
    figures for this dataset join the result. Returns the result dict (``mean``, ``videos``,
    ``report``, ``paper``) that :func:`salrt.evaluation.write_results` writes."""
    if (predictions is None) == (spec is None):
        raise UsageError("give exactly one of predictions (a folder) or a model to run")
    if settings.dataset == "msu":
        return _evaluate_msu(settings, predictions, spec, ray, progress, log)
    vids = videos(settings)
    pred_dir, tmp = _predictions(predictions, spec, vids, settings, ray, progress, log)
    try:
        items, report = evaluation.match(vids, str(pred_dir), allow_missing=settings.allow_missing)
        workers = settings.workers or max(1, os.cpu_count() or 1)
        result = evaluation.evaluate(
            items, tuple(settings.metrics), workers=workers, progress=lambda it, n: progress(it, "scoring", n)
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["report"] = report
    if paper is not None:
        from salrt.models.paper_results import paper_results

        result["paper"] = paper_results(paper[0], paper[1], settings.dataset)
    return result


def _evaluate_msu(
    s: EvalSettings,
    predictions: str | None,
    spec: RunSpec | None,
    ray: Any,
    progress: Progress,
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The MSU challenges' layout and scoring (:mod:`salrt.msu`); a model predicts from ``Videos/``."""
    from salrt import msu

    if s.root is None:
        raise UsageError("dataset msu needs its root folder")
    vids = _narrowed(msu.msu_dataset(s.root, s.subset), s.videos, f"the {s.subset} list")
    if spec is not None:
        missing = [v.name for v in vids if v.source is None]
        if missing:
            raise EvalError(
                f"no input video for {missing[0]}: expected {Path(s.root) / 'Videos' / (missing[0] + '.mp4')}"
            )
    inputs = [evaluation.Video(v.name, None, None, str(v.source), None, None, {}, {}) for v in vids]
    predictions, tmp = _predictions(predictions, spec, inputs, s, ray, progress, log)
    try:
        result = msu.score(vids, str(predictions), progress=lambda it, n: progress(it, "scoring", n))
    finally:
        if tmp is not None:
            tmp.cleanup()
    result["report"] = {"missing_predictions": [], "videos_without_maps": []}  # msu refuses gaps
    return result


def _predictions(
    predictions: str | None,
    spec: RunSpec | None,
    vids: Sequence[evaluation.Video],
    s: EvalSettings,
    ray: Any,
    progress: Progress,
    log: Callable[[str], None],
) -> tuple[str, tempfile.TemporaryDirectory | None]:
    """The folder of predictions to score: ``predictions``, or ``spec``'s model run now into
    ``s.save_predictions`` or a temporary folder (returned too, for the caller to clean up)."""
    if spec is None:
        return str(predictions), None
    tmp = None if s.save_predictions else tempfile.TemporaryDirectory()
    folder = s.save_predictions or tmp.name
    _predict(spec, vids, folder, s, ray, progress, log)
    return folder, tmp


def _predict(
    spec: RunSpec,
    vids: Sequence[evaluation.Video],
    pred_dir: str,
    s: EvalSettings,
    ray: Any,
    progress: Progress,
    log: Callable[[str], None],
) -> None:
    if ray is not None:
        from salrt.app.jobs import run_job
        from salrt.cluster import Item
        from salrt.errors import SalrtError
        from salrt.sinks.sets import PngOutputs

        if "://" in pred_dir:
            raise UsageError("predictions from a Ray job go to a local folder (the scores are computed here)")
        items = [Item(i, evaluation.video_source(v), v.name) for i, v in enumerate(vids)]
        report = run_job(spec, items, PngOutputs(), pred_dir, {"steps": spec.steps, "batch": s.batch}, ray, log=log)
        if report.errors:
            raise SalrtError(f"{len(report.errors)} video(s) could not be predicted: {report.errors[0]}")
        return
    from salrt import pipeline

    pipe = pipeline.build(spec, progress=log)
    for v in progress(vids, "predicting", len(vids)):
        predict_video(pipe, v, pred_dir, steps=spec.steps, batch=s.batch, seed=spec.seed)


def paper_reference(paper: str | None, spec: RunSpec | None) -> tuple[str, str] | None:
    """The model and preset whose paper figures to show: ``paper`` (``MODEL[:PRESET]``) when scoring
    a folder, else the spec's own model and config."""
    if paper:
        from salrt.models import MODELS

        model, _, preset = paper.partition(":")
        if model.lower() not in MODELS:
            raise UsageError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
        return model.lower(), preset or "paper"
    return (spec.model.lower(), spec.config) if spec is not None else None
