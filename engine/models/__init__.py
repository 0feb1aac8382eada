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
    pretrained: dict[str, str | os.PathLike[str]] | None = None,
) -> torch.nn.Module:
    """Build model ``name`` in eval mode, with weights from ``checkpoint`` when given.

    ``checkpoint`` may be an authors' checkpoint (``.pth``), a bare state dict, or a salrt
    directory (``model.safetensors`` + ``config.json``, whose config then wins). Without a
    checkpoint the weights are randomly initialised (useful for benchmarks and tests only).
    ``config`` is a preset name (``paper``, ``tiny``) or a config object. ``pretrained`` maps
    backbone names (``mvit``, ``vggish``, ``s3d``, ``soundnet``, ``clip``) to their public
    checkpoint files, loaded after ``checkpoint`` (the README lists the expected files).
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
    for backbone, path in (pretrained or {}).items():
        load_backbone(model, backbone, path)
    model.eval().requires_grad_(False)
    return model.to(device=device, dtype=dtype)


def load_backbone(model: torch.nn.Module, backbone: str, path: str | os.PathLike[str]) -> list[str]:
    """Load one pretrained backbone file into ``model``; returns the file's ignored keys."""
    from salrt import checkpoint as ckpt
    from salrt.models.clip_text import CLIPTextEncoder, load_clip_text_pretrained
    from salrt.models.mvit import MViT
    from salrt.models.s3d import S3D, load_s3d_pretrained
    from salrt.models.soundnet import SoundNet, load_soundnet_pretrained
    from salrt.models.vggish import AudioEncoder

    video = getattr(model, "video_encoder", None)
    audio = getattr(model, "audio_encoder", None)
    targets = {
        "mvit": (video, MViT, ckpt.load_mvit_pretrained),
        "s3d": (video, S3D, load_s3d_pretrained),
        "vggish": (getattr(audio, "audio_net", None) if isinstance(audio, AudioEncoder) else None, torch.nn.Module,
                   ckpt.load_vggish_pretrained),
        "soundnet": (audio, SoundNet, load_soundnet_pretrained),
        "clip": (getattr(model, "text_encoder", None), CLIPTextEncoder, load_clip_text_pretrained),
    }  # fmt: skip
    if backbone not in targets:
        raise SalrtError(f"unknown backbone {backbone!r}; choose from {', '.join(targets)}")
    module, kind, loader = targets[backbone]
    if module is None or not isinstance(module, kind):
        raise SalrtError(f"model {model.name!r} has no {backbone} backbone")
    return loader(module, path)


__all__ = ["AVRSP", "AVRSPConfig", "DTFSal", "DTFSalConfig", "DiffSal", "DiffSalConfig", "DiffSalFeatures", "MODELS",
           "MUBiC", "MUBiCConfig", "TAVDiff", "TAVDiffConfig", "load_model"]
