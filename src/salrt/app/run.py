"""``salrt run``: saliency maps for files, image sequences, URLs and stdin, written by the sinks
(overlay video, PNG, npy, npz, a JSON sidecar per input, ``run_stats.json``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from salrt.errors import SalrtError, UsageError
from salrt.io.sources import Source
from salrt.spec import RunSpec


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """How a run treats its inputs and what it writes: ``outputs`` (of :data:`salrt.sinks.SINKS`;
    the JSON sidecar always), ``stride`` (a clip every N frames, maps between interpolated),
    ``batch`` (clips per model call across inputs) within ``max_wait_ms``, ``live`` (drop the
    oldest clips when behind), ``source_size`` (maps at the source resolution); ``audio`` (a
    separate audio file for the single input), ``fps`` and ``input_format`` (FFmpeg's);
    ``hwaccel``: hardware video decoding (e.g. ``"cuda"``: NVDEC), software when unavailable;
    ``release_memory_s``: how often freed heap memory goes back to the OS (:mod:`salrt.memory`)."""

    outputs: tuple[str, ...] = ("overlay", "npz")
    stride: int = 1
    batch: int = 1
    max_wait_ms: float = 20.0
    live: bool = False
    source_size: bool = False
    audio: str | None = None
    fps: float | None = None
    input_format: str | None = None
    hwaccel: str | None = None
    release_memory_s: float = 30.0

    def __post_init__(self) -> None:
        from salrt.sinks import SINKS

        bad = [o for o in self.outputs if o not in SINKS]
        if bad or not self.outputs:
            raise UsageError(f"unknown output {bad[0] if bad else ''!r}; choose from {', '.join(SINKS)}")
        if self.stride < 1 or self.batch < 1:
            raise UsageError("stride and batch must be >= 1")
        if self.hwaccel is not None:
            from salrt.io.media import check_hwaccel

            check_hwaccel(self.hwaccel)


def sources(inputs: Sequence[str | Source], settings: RunSettings) -> list[Source]:
    """The inputs as :class:`Source` values, checked: files exist, one stdin, ``audio`` with one input."""
    if settings.audio and len(inputs) != 1:
        raise UsageError("a separate audio file goes with exactly one input")
    if [str(getattr(s, "path", s)) for s in inputs].count("-") > 1:
        raise UsageError("stdin ('-') can be read by one input only")
    out = []
    for text in inputs:
        src = Source.of(text)  # a Source stays as it is
        if settings.audio or settings.fps or settings.input_format:
            src = dataclasses.replace(
                src, audio=settings.audio, fps=settings.fps, format=settings.input_format or src.format
            )
        if src.is_file and not Path(src.path).exists():
            raise SalrtError(f"{src.path}: no such file")
        if src.is_file and Path(src.path).is_dir():
            raise SalrtError(f"{src.path}: is a directory (for an image sequence give a pattern: dir/img_%05d.png)")
        if src.audio and not Path(src.audio).is_file():
            raise SalrtError(f"{src.audio}: no such file")
        out.append(src)
    return out


def say_passes(backend: Any, steps: int | None) -> str | None:
    """A note when ``steps`` runs another number of denoiser passes under the model's plan."""
    passes = backend.passes(steps) if steps is not None and hasattr(backend, "passes") else None
    if passes is not None and passes != steps:
        return (
            f"{steps} steps run {passes} denoiser passes: the model's timestep plan (kept for its checkpoints) "
            f"visits {passes} timesteps when {steps} does not divide its 1000 training steps"
        )
    return None


def run(
    spec: RunSpec | Any,
    inputs: Sequence[str | Source],
    output: str | Path,
    settings: RunSettings = RunSettings(),
    *,
    record: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    notes: Callable[[str], None] | None = None,
) -> Any:
    """Run ``spec``'s model (or an already built :class:`salrt.pipeline.Pipeline`) over ``inputs``
    into the folder ``output``; the run's
    :class:`salrt.runtime.RunStats`. ``record``: settings written into each JSON sidecar;
    ``progress(n)``: frames written; ``notes``: one-time work and warnings about the settings."""
    from salrt import pipeline
    from salrt.runtime import RunOptions, Runtime
    from salrt.sinks import default_sinks

    srcs = sources(inputs, settings)
    if "://" in str(output):
        raise UsageError(f"{output}: output URLs are for Ray jobs; give a local folder")
    pipe = pipeline.build(spec, progress=notes) if isinstance(spec, RunSpec) else spec
    spec = pipe.spec
    note = say_passes(pipe.backend, spec.steps)
    if note and notes:
        notes(note)
    files = [s.path for s in srcs if s.is_file]
    if settings.live and files and notes:
        notes(
            f"live mode on a file ({files[0]}{' and more' if len(files) > 1 else ''}): clips are dropped whenever the "
            "model is slower than the video's frame rate, as for a live source; leave live off to map every frame"
        )
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    opts = RunOptions(
        steps=spec.steps,
        stride=settings.stride,
        batch=settings.batch,
        live=settings.live,
        contract=pipe.contract,
        captions=pipe.captions,
        retries=spec.retries,
        seed=spec.seed,
        max_wait_ms=settings.max_wait_ms,
        release_memory_s=settings.release_memory_s,
        timeout_s=spec.timeout_s,
        hwaccel=settings.hwaccel,
    )
    meta = {**(record or {}), "inputs": [s.path for s in srcs]}
    rt = Runtime(
        pipe.backend,
        srcs,
        opts,
        sinks_for=default_sinks(out, settings.outputs, meta, settings.source_size, srcs),
        keep_frames="overlay" in settings.outputs,
        progress=progress,
        stats_path=out / "run_stats.json",
    )
    return rt.run()


def run_ray(
    spec: RunSpec,
    inputs: Sequence[str | Source],
    output: str,
    settings: RunSettings,
    ray: Any,
    *,
    record: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    log: Callable[[str], None] = lambda s: None,
    started: bool = False,
) -> Any:
    """``run`` over many files as a Ray job (:mod:`salrt.app.jobs`); the job's report."""
    from salrt.app.jobs import run_job
    from salrt.cluster import Item
    from salrt.sinks import output_stems
    from salrt.sinks.sets import RunOutputs

    srcs = sources(inputs, settings)
    items = [Item(i, src, stem) for i, (src, stem) in enumerate(zip(srcs, output_stems(srcs)))]
    options = {
        "steps": spec.steps, "stride": settings.stride, "batch": settings.batch, "retries": spec.retries,
        "seed": spec.seed, "max_wait_ms": settings.max_wait_ms, "timeout_s": spec.timeout_s,
    }  # fmt: skip
    outputs = RunOutputs(tuple(settings.outputs), dict(record or {}), settings.source_size)
    return run_job(spec, items, outputs, output, options, ray, progress=progress, log=log, started=started)
