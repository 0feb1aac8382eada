"""``salrt export``: ONNX graphs validated in onnxruntime, TensorRT engines over them, or a Triton
Inference Server model repository."""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salrt.errors import SalrtError, UsageError, installed
from salrt.spec import RunSpec

FORMATS = ("onnx", "tensorrt", "triton")


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    """``format`` (:data:`FORMATS`), the graphs' ``precision``, a fixed ``batch`` or a
    ``dynamic_batch`` range ``MIN:OPT:MAX``, ``opset``, ``steps`` unrolled in the sampler,
    ``simplify`` (None: onnxsim when installed), TensorRT's ``workspace_gib``, and the Triton
    repository's ``version``, ``instances``, ``instance_kind``, ``queue_delay_us`` and
    ``window_idle_s`` (how long the server keeps a silent stream's frame window)."""

    format: str = "onnx"
    precision: str = "fp32"
    batch: int | None = None
    dynamic_batch: str | None = None
    opset: int = 17
    steps: int = 4
    simplify: bool | None = None
    workspace_gib: float = 4.0
    version: int | None = None
    instances: int = 1
    instance_kind: str = "auto"
    queue_delay_us: int = 2000
    window_idle_s: float = 60.0

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UsageError(f"unknown export format {self.format!r}: {', '.join(FORMATS)}")
        if self.batch is not None and self.dynamic_batch is not None:
            raise UsageError("give a fixed batch or a dynamic batch range, not both")


def export(
    spec: RunSpec, output: str, settings: ExportSettings = ExportSettings(), *, log: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Export ``spec``'s model into ``output``; the manifest (``format`` triton: the repository index)."""
    needed = ("torch", "onnx", "onnxruntime")  # onnxsim: used when installed (a warning otherwise)
    missing = [m for m in needed if not installed(m)]
    if missing:
        raise SalrtError(f"salrt export needs {', '.join(missing)}: pip install 'salrt[export]'")
    import warnings

    import torch

    from salrt import backends, pipeline
    from salrt.export.onnx import BatchSpec, ExportError, check_opset, export_onnx

    try:
        batch = BatchSpec.parse(settings.dynamic_batch or str(settings.batch or 1))
        check_opset(settings.opset)
    except ExportError as exc:  # a bad option value
        raise UsageError(str(exc)) from None
    graphs = settings.precision
    engines = backends.for_format(settings.format)
    if engines is not None:  # the graphs' precision follows what the engine builder builds from
        graphs = engines.graph_precision(settings.precision)
    elif settings.precision == "bf16":
        raise UsageError("bf16 is a TensorRT build precision; ONNX export supports fp32 and fp16")
    spec = spec.validated()
    pipeline.check_device(spec.device, torch_needed=True)
    model = pipeline.load_weights(spec)
    with warnings.catch_warnings():  # the tracer's warnings about constant shapes are expected here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        manifest = export_onnx(
            model, output, precision=graphs, batch=batch, opset=settings.opset, steps=settings.steps, log=log,
            simplify=settings.simplify,
        )  # fmt: skip
    if settings.format == "triton":
        return triton_repository(output, output, settings, onnx_done=True)
    if engines is not None:
        engines.export_extra(output, settings.precision, log=log, workspace_gib=settings.workspace_gib)
        from salrt.export.manifest import read_manifest

        manifest = read_manifest(output)
    return manifest


def triton_repository(
    export_dir: str, output: str, settings: ExportSettings, onnx_done: bool = False
) -> dict[str, Any]:
    """A Triton model repository in ``output`` from ``export_dir`` (the ONNX graphs just exported
    into the output folder are moved into the repository's model folders); the repository index."""
    from salrt.export.triton import write_repository

    src = Path(export_dir)
    staged = None
    if onnx_done:  # the export went to the output folder itself: stage it beside, then lay out
        staged = Path(tempfile.mkdtemp(prefix=".salrt-export-", dir=src.parent))
        for f in [*src.glob("*.onnx"), src / "manifest.json"]:
            shutil.move(str(f), staged / f.name)
        src = staged
    try:
        return write_repository(
            src,
            output,
            version=settings.version,
            instances=settings.instances,
            kind=settings.instance_kind,
            queue_delay_us=settings.queue_delay_us,
            window_idle_s=settings.window_idle_s,
        )
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
