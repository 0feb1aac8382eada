"""What a run needs, in one typed value: :class:`RunSpec`.

Every use case (run, encode, evaluate, bench, Ray jobs, the C embedding) describes its model and
execution with a ``RunSpec`` and hands it to :func:`salrt.pipeline.build`. The spec is validated
once (:meth:`RunSpec.validated`); its errors name the spec's fields (``SpecError.field``), and the
CLI, which maps fields to flags, names the flag instead.

    spec = RunSpec(model="diffsal", checkpoint="best.pth", device="cpu")
    pipe = salrt.pipeline.build(spec)
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from typing import Any

from salrt.errors import SpecError, installed

__all__ = ["KERNELS", "PRECISIONS", "RunSpec", "SpecError"]

PRECISIONS = ("fp32", "bf16", "fp16")
KERNELS = ("torch", "triton")


@dataclasses.dataclass(frozen=True)
class RunSpec:
    """The model, its weights and how it executes.

    - ``model``/``config``: a registry name and a preset (a salrt checkpoint carries its own config);
    - ``checkpoint`` or ``random_weights`` (synthetic weights from ``seed``: smoke runs, benchmarks);
      ``backbones``: ``(name, file)`` pairs loaded over the weights;
    - ``backend``: a registered backend or ``"auto"`` (:func:`salrt.backends.resolve`);
      ``export_dir``: an export made by ``salrt export`` (else ``auto`` may make one in ``cache_dir``);
    - ``device`` (``cpu``, ``cuda``, ``cuda:N``), ``precision`` (None: fp32, or the export's),
      ``kernels`` (None: the model's Triton kernels on CUDA);
    - ``steps``: denoiser steps (None: the model's own count, e.g. MUBiC's adaptive one);
    - ``captions``/``bpe``: a text-conditioned model's captions and CLIP's BPE merges;
    - ``url``/``triton_model``/``timeout_s``/``retries``: a model server and its request policy;
      ``send``: ``"frames"`` (each frame once; the server keeps each stream's window, where its
      repository has the frames-once model) or ``"clips"`` (every clip whole);
    - ``seed``: the starting noise (and synthetic weights).
    """

    model: str = "diffsal"
    config: str = "paper"
    checkpoint: str | None = None
    random_weights: bool = False
    backbones: tuple[tuple[str, str], ...] = ()
    backend: str = "auto"
    export_dir: str | None = None
    device: str = "cpu"
    precision: str | None = None
    kernels: str | None = None
    steps: int | None = 4
    captions: str | None = None
    bpe: str | None = None
    url: str | None = None
    triton_model: str | None = None
    send: str = "frames"
    timeout_s: float = 10.0
    retries: int = 3
    seed: int = 0
    cache_dir: str | None = None

    def replace(self, **changes: Any) -> RunSpec:
        """A copy with ``changes`` (not validated: call :meth:`validated`)."""
        return dataclasses.replace(self, **changes)

    @property
    def backbone_files(self) -> dict[str, str]:
        return dict(self.backbones)

    def validated(self) -> RunSpec:
        """This spec after checking every field on its own (the model's name against the registry
        where torch is installed); a :class:`SpecError` names the first bad field. Backbones given as
        a mapping are normalised to sorted pairs."""
        from salrt.backends import names as backend_names

        spec = self
        if isinstance(self.backbones, Mapping):
            spec = dataclasses.replace(self, backbones=tuple(sorted(self.backbones.items())))
        for name, path in spec.backbones:
            if not name or not path:
                raise SpecError("backbones", f"each backbone is (name, file), got ({name!r}, {path!r})")
        if not isinstance(spec.model, str) or not spec.model:
            raise SpecError("model", f"a registry name, got {spec.model!r}")
        known = _model_names()
        if known is not None and spec.model.lower() not in known:
            raise SpecError("model", f"unknown model {spec.model!r}; available: {', '.join(known)}")
        if spec.backend != "auto" and spec.backend not in backend_names():
            raise SpecError("backend", f"unknown backend {spec.backend!r}: auto, {', '.join(backend_names())}")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", str(spec.device)):
            raise SpecError("device", f"unknown device {spec.device!r}: use cpu, cuda or cuda:N")
        if spec.precision is not None and spec.precision not in PRECISIONS:
            raise SpecError("precision", f"unknown precision {spec.precision!r}: {', '.join(PRECISIONS)}")
        if spec.kernels is not None and spec.kernels not in KERNELS:
            raise SpecError("kernels", f"unknown kernels {spec.kernels!r}: {' or '.join(KERNELS)}")
        if spec.steps is not None and (
            isinstance(spec.steps, bool) or not isinstance(spec.steps, int) or spec.steps < 1
        ):
            raise SpecError("steps", f"a positive integer or None (the model's own count), got {spec.steps!r}")
        if not (isinstance(spec.timeout_s, (int, float)) and math.isfinite(spec.timeout_s) and spec.timeout_s > 0):
            raise SpecError("timeout_s", f"seconds > 0, got {spec.timeout_s!r}")
        if spec.send not in ("frames", "clips"):
            raise SpecError("send", f"'frames' or 'clips', got {spec.send!r}")
        if not isinstance(spec.retries, int) or spec.retries < 0:
            raise SpecError("retries", f"an integer >= 0, got {spec.retries!r}")
        if spec.bpe and not spec.captions:
            raise SpecError("bpe", "goes with captions")
        if spec.checkpoint is not None and spec.random_weights:
            raise SpecError("random_weights", "give {checkpoint} or {field}, not both")
        return spec

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (for sidecars and Ray workers)."""
        d = dataclasses.asdict(self)
        d["backbones"] = [list(p) for p in self.backbones]
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise SpecError(extra[0], "not a RunSpec field")
        d = dict(data)
        if "backbones" in d:
            d["backbones"] = tuple(tuple(p) for p in d["backbones"])
        return cls(**d)


def _model_names() -> list[str] | None:
    """The registry's model names (None without torch: the name is then checked when loading)."""
    if not installed("torch"):
        return None
    from salrt.models import MODELS

    return sorted(MODELS)
