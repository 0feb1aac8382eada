"""One call builds what a run needs, for every use case: :func:`build` of a :class:`~salrt.spec.RunSpec`.

    pipe = salrt.pipeline.build(RunSpec(model="mubic", checkpoint="mubic/", device="cpu"))
    pipe.backend.sample(video, audio, steps=4)

``build`` validates the spec once, resolves ``backend="auto"`` once (:func:`salrt.backends.resolve`),
checks the precision once, and then opens the backend: over the model's weights, over an export
(the given one, or for ``auto`` one made once into the cache, :mod:`salrt.export.cache`), or on a
server. ``salrt run/encode/eval/bench``, Ray workers and the C embedding all build their runs here.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from typing import Any

from salrt.backends.base import Backend
from salrt.errors import SalrtError, UsageError, installed, require
from salrt.io.contract import InputContract
from salrt.spec import RunSpec, SpecError

log = logging.getLogger("salrt.pipeline")

EXPORT_STEPS = 4  # steps unrolled in a cached export's sampler (other counts run the DDIM loop)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A ready backend, the clips it takes, and the per-clip conditions."""

    backend: Any
    contract: InputContract
    captions: Any = None  # salrt.captions.Captions, or None (a text model then runs its AV variant)
    model: Any = None  # the torch model behind a torch backend (None for exports)
    spec: RunSpec | None = None  # the validated spec, its backend resolved


def load_weights(spec: RunSpec) -> Any:
    """The spec's model in eval mode with its weights (refused without a checkpoint unless
    ``random_weights``: maps from untrained weights are meaningless), backbones loaded over them."""
    require("torch", "the torch backend")
    from salrt.models import load_backbone, load_model

    if spec.checkpoint is None and not spec.random_weights:
        raise SpecError(
            "checkpoint",
            "no {field} given: maps from untrained weights are meaningless (pass {random_weights} for a smoke run)",
        )
    m = load_model(spec.model, checkpoint=spec.checkpoint, device=spec.device, config=spec.config)
    if spec.checkpoint is None:
        from salrt.models.synthetic import load_synthetic_weights

        load_synthetic_weights(m, spec.seed)
    for name, path in spec.backbones:
        load_backbone(m, name, path)
    return m.eval()  # parameters are frozen by load_model: no autograd graph is built (no global switch)


def can_export(spec: RunSpec) -> bool:
    """Whether an export of ``spec``'s model can be made here (weights given, exporter installed)."""
    has_weights = spec.checkpoint is not None or spec.random_weights
    return has_weights and all(installed(m) for m in ("torch", "onnx", "onnxruntime"))


def resolve(spec: RunSpec) -> type[Backend]:
    """The backend class ``spec`` runs on (``auto`` decided here, and only here)."""
    from salrt import backends

    try:
        cls = backends.resolve(spec.backend, spec.device, spec.export_dir, spec.url, can_export(spec))
    except UsageError as exc:
        raise SpecError("backend", str(exc)) from None
    if not cls.runs_on(spec.device):
        raise SpecError(
            "device", f"backend {cls.name} does not run on {spec.device} (it runs on {', '.join(cls.devices)})"
        )
    return cls


def prepare(spec: RunSpec, *, progress: Callable[[str], None] | None = None) -> RunSpec:
    """``spec`` validated, its backend made concrete and, where that backend runs an export and none
    was given, ``export_dir`` set to the cached one (made now if needed). Building from the result
    does no more one-time work: a Ray driver prepares once, its workers build."""
    spec = spec.validated()
    cls = resolve(spec)
    chosen = spec.backend == "auto"
    spec = spec.replace(backend=cls.name)
    problem = cls.precision_problem(spec.precision, spec.device) if spec.precision else None
    if problem:  # before loading weights: a refusal costs nothing
        raise SpecError("precision", f"{{field}} {spec.precision} with {{backend}} {cls.name}: {problem}")
    if spec.export_dir is not None:
        ignored = [f for f in ("checkpoint", "backbones") if getattr(spec, f)]
        if ignored and not cls.needs_weights and not _from_cache(spec):
            log.warning("%s is ignored by backend %s: the weights are those of the export", ignored[0], cls.name)
    elif cls.needs_export and chosen:  # auto picked an export backend because it can export into the cache
        spec = spec.replace(export_dir=str(cached_export(spec, cls, progress)))
    elif cls.needs_export:
        raise SpecError(
            "export_dir", f"{{backend}} {cls.name} needs {{field}} (made by salrt export), or use {{backend}} auto"
        )
    return spec


def _from_cache(spec: RunSpec) -> bool:
    """Whether ``spec.export_dir`` is a cached export (made from the spec's own weights)."""
    from pathlib import Path

    from salrt.export.cache import cache_root

    return Path(str(spec.export_dir)).resolve().parent == (cache_root(spec.cache_dir) / "exports").resolve()


def build(spec: RunSpec, *, progress: Callable[[str], None] | None = None) -> Pipeline:
    """A :class:`Pipeline` for ``spec`` (:func:`prepare` first); ``progress`` hears one-time work."""
    from salrt import backends

    spec = prepare(spec, progress=progress)
    cls = backends.get(spec.backend)
    check_device(spec.device, torch_needed=cls.needs_weights)
    net = None
    if cls.needs_weights:
        net = _prepared_model(spec)
        backend = cls.open(spec, model=net)
        contract = InputContract.of(net.config)
    else:
        backend = cls.open(spec, export_dir=spec.export_dir)
        backend.check_export(spec.precision)
        contract = InputContract.from_manifest(backend.manifest)
    if spec.steps is None and not backend.chooses_steps:
        raise SpecError("steps", f"auto: model {spec.model} has no adaptive step count; give a number of steps")
    return Pipeline(backend, contract, conditions_for(contract, spec), net, spec)


def _prepared_model(spec: RunSpec) -> Any:
    """The weights in the spec's precision with the spec's kernels."""
    net = load_weights(spec)
    if spec.precision and spec.precision != "fp32":
        import torch

        net = net.to({"bf16": torch.bfloat16, "fp16": torch.float16}[spec.precision])  # our own fresh copy
    on_cuda = str(spec.device).startswith("cuda")
    kernels = spec.kernels or ("triton" if on_cuda and net.triton_kernels() else "torch")
    if kernels == "triton":
        from salrt.kernels import enable

        if not on_cuda and os.environ.get("TRITON_INTERPRET") != "1":
            raise SpecError(
                "kernels", "triton needs a cuda device (or TRITON_INTERPRET=1 to run them interpreted on CPU)"
            )
        enable(net, force=not on_cuda)
    return net


def cached_export(
    spec: RunSpec,
    cls: type[Backend],
    progress: Callable[[str], None] | None = None,
    *,
    batch: int = 1,
    steps: int = EXPORT_STEPS,
    model: Any = None,
) -> Any:
    """The export ``cls`` runs for ``spec`` (``batch``, ``steps`` unrolled), made once into the cache
    (:mod:`salrt.export.cache`); ``model``: the spec's weights already loaded (else loaded to export)."""
    from salrt.export.cache import cached, export_key

    precision = spec.precision or "fp32"
    graphs = cls.graph_precision(precision)
    key = export_key(
        model=spec.model,
        config=spec.config,
        checkpoint=spec.checkpoint,
        seed=spec.seed if spec.random_weights else None,
        backbones=spec.backbones,
        precision=graphs,
        batch=str(batch),
        steps=steps,
        # a backend that builds on the graphs (TensorRT engines) keeps its own entry
        extra=f"{cls.name}:{precision}" if cls.export_extra.__func__ is not Backend.export_extra.__func__ else "",
    )

    def make(folder: Any) -> None:
        import warnings

        from salrt.export.onnx import export_onnx

        net = model if model is not None else load_weights(spec.replace(device="cpu"))
        with warnings.catch_warnings():  # the exporter's own notes (tracer, constant folding) are not the user's
            warnings.simplefilter("ignore")
            export_onnx(net, folder, precision=graphs, batch=str(batch), steps=steps, log=None)
        cls.export_extra(folder, precision)

    what = f"{spec.model} ({spec.config}) for the {cls.name} backend"
    folder, _ = cached(key, make, cache_dir=spec.cache_dir, what=what, log=progress)
    return folder


def check_device(device: str, torch_needed: bool) -> None:
    """A clear error for a device that is not usable here."""
    if not torch_needed or device == "cpu":
        return
    torch = require("torch", f"device {device}")
    if not torch.cuda.is_available():
        build = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SalrtError(f"device {device}: {build} (use cpu)")
    idx = int(device.split(":")[1]) if ":" in device else 0
    if idx >= torch.cuda.device_count():
        raise SalrtError(f"device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


def conditions_for(contract: InputContract, spec: RunSpec) -> Any:
    """The caption source of a text-conditioned model (None: its AV variant, with a warning)."""
    if not contract.text_context:
        if spec.captions:
            raise SpecError("captions", f"model {spec.model} takes no text")
        return None
    if not spec.captions:
        log.warning("%s got no captions; running its audio-visual (AV) variant", spec.model)
        return None
    if not spec.bpe:
        raise SpecError("bpe", "captions need CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz or merges.txt)")
    from salrt.captions import Captions
    from salrt.models.clip_text import CLIPTokenizer

    try:
        return Captions(spec.captions, CLIPTokenizer(spec.bpe, contract.text_context), contract.text_context)
    except OSError as exc:
        raise SalrtError(f"{spec.captions}: {exc}") from None
