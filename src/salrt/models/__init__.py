"""Model registry: ``load_model(name, ...)`` builds a model and loads its weights."""

from __future__ import annotations

import os

import torch

from salrt.errors import CheckpointError, SalrtError
from salrt.models.avrsp import AVRSP, AVRSPConfig
from salrt.models.diffsal import DiffSal, DiffSalConfig, DiffSalFeatures
from salrt.models.dtfsal import DTFSal, DTFSalConfig
from salrt.models.mubic import MUBiC, MUBiCConfig
from salrt.models.student import Student, StudentConfig
from salrt.models.tavdiff import TAVDiff, TAVDiffConfig

MODELS: dict[str, tuple[type, type]] = {
    "diffsal": (DiffSal, DiffSalConfig),
    "dtfsal": (DTFSal, DTFSalConfig),
    "mubic": (MUBiC, MUBiCConfig),
    "avrsp": (AVRSP, AVRSPConfig),
    "tavdiff": (TAVDiff, TAVDiffConfig),
    "student": (Student, StudentConfig),
}


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
        try:  # the file's config is data: a bad one is a bad file (exit 1), named with the field
            cfg = cfg_cls.from_dict(meta["config"])
        except (SalrtError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{ckpt.config_path(checkpoint)}: {exc}") from None
    model = model_cls(cfg)
    try:
        if state is not None:
            ckpt.check_and_load(model, state, str(checkpoint))
        elif checkpoint is not None:
            model.load_authors_checkpoint(str(checkpoint))
    except ckpt.CheckpointError:
        if state is None and checkpoint is not None and isinstance(config, str | None):
            _suggest_preset(key, cfg_cls, config or "paper", checkpoint)
        raise
    for backbone, path in (pretrained or {}).items():
        load_backbone(model, backbone, path)
    model.eval().requires_grad_(False)
    return model.to(device=device, dtype=dtype)


def _suggest_preset(key: str, cfg_cls: type, preset: str, checkpoint: str | os.PathLike[str]) -> None:
    """Raise a CheckpointError naming the preset whose tensors (names and shapes) the weights fit,
    when the requested ``preset`` does not fit them but another does."""
    from salrt import checkpoint as ckpt

    sd = ckpt.extract_state_dict(ckpt.read_torch_file(checkpoint), str(checkpoint))
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    for name in cfg_cls.preset_names():
        if name == preset:
            continue
        with torch.device("meta"):
            other = MODELS[key][0](cfg_cls.preset(name))
        if {k: tuple(v.shape) for k, v in other.state_dict().items()} == shapes:
            raise ckpt.CheckpointError(
                f"{checkpoint}: these are weights of the {name!r} config of {key}, not "
                f"{preset!r}: pass --config {name} (config={name!r})"
            )


def load_backbone(model: torch.nn.Module, backbone: str, path: str | os.PathLike[str]) -> list[str]:
    """Load one pretrained backbone file into ``model``; returns the file's ignored keys."""
    from salrt.models.clip_text import CLIPTextEncoder, load_clip_text_pretrained
    from salrt.models.mvit import MViT, load_mvit_pretrained
    from salrt.models.s3d import S3D, load_s3d_pretrained
    from salrt.models.soundnet import SoundNet, load_soundnet_pretrained
    from salrt.models.vggish import AudioEncoder, load_vggish_pretrained

    video = getattr(model, "video_encoder", None)
    audio = getattr(model, "audio_encoder", None)
    targets = {
        "mvit": (video, MViT, load_mvit_pretrained),
        "s3d": (video, S3D, load_s3d_pretrained),
        "vggish": (
            getattr(audio, "audio_net", None) if isinstance(audio, AudioEncoder) else None,
            torch.nn.Module,
            load_vggish_pretrained,
        ),
        "soundnet": (audio, SoundNet, load_soundnet_pretrained),
        "clip": (getattr(model, "text_encoder", None), CLIPTextEncoder, load_clip_text_pretrained),
    }
    if backbone not in targets:
        raise SalrtError(f"unknown backbone {backbone!r}; choose from {', '.join(targets)}")
    module, kind, loader = targets[backbone]
    if module is None or not isinstance(module, kind):
        raise SalrtError(f"model {model.name!r} has no {backbone} backbone")
    return loader(module, path)


__all__ = [
    "AVRSP",
    "AVRSPConfig",
    "DTFSal",
    "DTFSalConfig",
    "DiffSal",
    "DiffSalConfig",
    "DiffSalFeatures",
    "MODELS",
    "MUBiC",
    "MUBiCConfig",
    "Student",
    "StudentConfig",
    "TAVDiff",
    "TAVDiffConfig",
    "load_model",
]
