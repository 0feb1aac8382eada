"""salrt: a deployment engine for diffusion-based audio-visual saliency prediction.

Names are imported lazily so that the torch-free parts (``salrt.io``, ``salrt.metrics`` and the
onnxruntime path) work in an install without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from salrt.errors import CheckpointError, MediaError, SalrtError

__version__ = "0.1.0"

_LAZY = {
    "DDIMScheduler": "salrt.sampling",
    "DiffSal": "salrt.models",
    "DiffSalConfig": "salrt.models",
    "DiffSalFeatures": "salrt.models",
    **{
        n: "salrt.models"
        for n in ("MUBiC", "MUBiCConfig", "TAVDiff", "TAVDiffConfig", "AVRSP", "AVRSPConfig", "DTFSal", "DTFSalConfig")
    },
    "load_model": "salrt.models",
    "save_checkpoint": ("salrt.checkpoint", "save_salrt"),
    "open_media": "salrt.io",
    "RunSpec": "salrt.spec",
}
_SUBMODULES = ("pipeline", "backends", "app", "spec", "models", "io", "runtime", "sinks", "export", "kernels")

__all__ = ["CheckpointError", "MediaError", "SalrtError", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"salrt.{name}")
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'salrt' has no attribute {name!r}")
    module, attr = target if isinstance(target, tuple) else (target, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value
