"""Model registry: ``load_model(name, ...)`` builds a model and loads its weights."""

from __future__ import annotations

import os

import torch

from salrt.errors import SalrtError
from salrt.models.avrsp import AVRSP, AVRSPConfig
from salrt.models.diffsal import DiffSal, DiffSalConfig, DiffSalFeatures
from salrt.models.dtfsal import DTFSal, DTFSalConfig
from salrt.models.mubic import MUBiC, MUBiCConfig
from salrt.models.tavdiff import TAVDiff, TAVDiffConfig

MODELS: dict[str, tuple[type, type]] = {"diffsal": (DiffSal, DiffSalConfig), "dtfsal": (DTFSal, DTFSalConfig),
                                       "mubic": (MUBiC, MUBiCConfig),
                                       "avrsp": (AVRSP, AVRSPConfig),
                                       "tavdiff": (TAVDiff, TAVDiffConfig)}


def load_model(
    name: str,
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    config: object | str | None = None,
) -> torch.nn.Module:
    """Build model ``name`` in eval mode, with weights from ``checkpoint`` when given.

    ``checkpoint`` may be an authors' checkpoint (``.pth``), a bare state dict, or a salrt
    directory (``model.safetensors`` + ``config.json``, whose config then wins). Without a
    checkpoint the weights are randomly initialised (useful for benchmarks and tests only).
    ``config`` is a preset name (``paper``, ``tiny``) or a config object.
    """
    from salrt import checkpoint as ckpt

    key = name.lower()
    if key not in MODELS:
        raise SalrtError(f"unknown model {name!r}; available: {', '.join(sorted(MODELS))}")
    model_cls, cfg_cls = MODELS[key]
    cfg = cfg_cls.preset(config) if isinstance(config, str) else (config or cfg_cls())
    state = None
    if checkpoint is not None and ckpt.is_salrt_checkpoint(checkpoint):
        meta, state = ckpt.read_salrt(checkpoint)
        if meta.get("model") != key:
            raise SalrtError(f"{checkpoint}: holds a {meta.get('model')!r} model, not {key!r}")
        cfg = cfg_cls.from_dict(meta["config"])
    model = model_cls(cfg)
    if state is not None:
        ckpt.check_and_load(model, state, str(checkpoint))
    elif checkpoint is not None and key == "diffsal":
        ckpt.load_diffsal_checkpoint(model, checkpoint)
    elif checkpoint is not None:  # no authors' release exists: a state dict in salrt's names
        ckpt.check_and_load(model, ckpt.extract_state_dict(ckpt.read_torch_file(checkpoint), str(checkpoint)), str(checkpoint))
    model.eval().requires_grad_(False)
    return model.to(device=device, dtype=dtype)


__all__ = ["AVRSP", "AVRSPConfig", "DTFSal", "DTFSalConfig", "DiffSal", "DiffSalConfig", "DiffSalFeatures", "MODELS",
           "MUBiC", "MUBiCConfig", "TAVDiff", "TAVDiffConfig", "load_model"]
