"""Checkpoint import and salrt's own weight format.

Reads the authors' DiffSal checkpoints (``{"state_dict": ...}`` saved from DataParallel, keys
prefixed ``module.``; bare state dicts and unprefixed keys too), the two pretrained backbone
files the reference starts from (mmaction2 MViTv2-S K400, the torch port of ``vggish.pth``), and
salrt's format (``model.safetensors`` + ``config.json``). Every import is strict: a missing,
unexpected or wrongly shaped tensor is an error that names it.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import CheckpointError

# Reference parameter names -> salrt names (first matching rule wins).
_REFERENCE_RULES: list[tuple[str, str]] = [
    (r"^visual_net\.", "video_encoder."),
    (r"^audio_net\.features\.", "audio_encoder.audio_net.features."),
    (r"^spatiotemp_net\.transformer\.", "audio_encoder.spatiotemp_net."),
    (r"^decoder_net\.temb\.dense\.", "denoiser.time_embed."),
    (r"^decoder_net\.conv_in\.", "denoiser.noise_encoder.conv_in."),
    (r"^decoder_net\.down1\.", "denoiser.noise_encoder.down."),
    (r"^decoder_net\.res_encoder\.(\d+)\.0\.", r"denoiser.noise_encoder.blocks.\1."),
    (r"^decoder_net\.res_encoder\.(\d+)\.1\.", r"denoiser.noise_encoder.downs.\1."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.1\.", r"denoiser.stages.\1.upsample.conv1."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.2\.", r"denoiser.stages.\1.upsample.bn1."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.4\.", r"denoiser.stages.\1.upsample.conv2."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.patch_embed\.0\.proj\.5\.", r"denoiser.stages.\1.upsample.bn2."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.align_conv\.", r"denoiser.stages.\1.align_conv."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.attn\.conv_proj_(q|k|v)\.conv\.", r"denoiser.stages.\1.block.attn.\2_conv."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.attn\.conv_proj_(q|k|v)\.bn\.", r"denoiser.stages.\1.block.attn.\2_norm."),
    (r"^decoder_net\.invpt_decoder\.mid_stages\.(\d+)\.blocks\.0\.", r"denoiser.stages.\1.block."),
    (r"^decoder_net\.invpt_decoder\.norm_mts\.(\d+)\.", r"denoiser.stages.\1.out_norm."),
    (r"^decoder_net\.invpt_decoder\.redu_chan_up\.(\d+)\.proj\.0\.", r"denoiser.stages.\1.temporal_reduce."),
    (r"^decoder_net\.invpt_decoder\.mt_proj\.0\.", "denoiser.head.conv."),
    (r"^decoder_net\.invpt_decoder\.mt_proj\.1\.", "denoiser.head.bn."),
    (r"^decoder_net\.logits\.linear_pred\.", "denoiser.head.logits."),
]

# Reference tensors that never influence its outputs; accepted and dropped on import.
REFERENCE_IGNORED: list[tuple[str, str]] = [
    (r"^fc\.", "the reference defines `fc` (128->512->768) but never calls it"),
    (r"^audio_net\.embeddings\.", "VGGish embedding MLP: DiffSal uses only the conv features"),
    (r"^spatiotemp_net\.to_patch_embedding\.", "audio patch embedding: computed, then discarded by the reference"),
    (r"^spatiotemp_net\.pos_embedding$", "audio position embedding: added to the discarded branch only"),
]

_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"


def reference_to_salrt(name: str) -> str | None:
    """Map one reference parameter name to salrt's, or None when the reference never uses it."""
    for pattern, _ in REFERENCE_IGNORED:
        if re.search(pattern, name):
            return None
    for pattern, repl in _REFERENCE_RULES:
        if re.search(pattern, name):
            return re.sub(pattern, repl, name)
    raise CheckpointError(f"unknown reference parameter {name!r}")


def _invert_rule(pattern: str, repl: str) -> tuple[str, str]:
    """Turn a (source regex, replacement) rule around; groups are (\\d+) or (a|b|...) only."""
    groups = re.findall(r"\([^)]*\)", pattern)
    parts = re.split(r"\\(\d)", repl)  # literal, group number, literal, ...
    inv_pattern = "^" + "".join(re.escape(p) if i % 2 == 0 else groups[int(p) - 1] for i, p in enumerate(parts))
    counter = iter(range(1, len(groups) + 1))
    inv_repl = re.sub(r"\([^)]*\)", lambda _: f"\\{next(counter)}", pattern.lstrip("^")).replace("\\.", ".")
    return inv_pattern, inv_repl


def salrt_to_reference(name: str) -> str:
    """Inverse of :func:`reference_to_salrt` (to write reference-layout state dicts)."""
    for pattern, repl in _REFERENCE_RULES:
        inv_pattern, inv_repl = _invert_rule(pattern, repl)
        if re.search(inv_pattern, name):
            return re.sub(inv_pattern, inv_repl, name)
    raise CheckpointError(f"no reference name for {name!r}")


def read_torch_file(path: str | os.PathLike[str]) -> Any:
    """``torch.load`` with weights_only and errors that say what is wrong with the file."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such file")
    if p.is_dir():
        raise CheckpointError(f"{p}: is a directory, not a PyTorch checkpoint file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: file is empty")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any failure to unpickle user data is reported as such
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, zipfile.BadZipFile) or "zip archive" in msg or "central directory" in msg or isinstance(exc, EOFError):
            raise CheckpointError(f"{p}: truncated or corrupt PyTorch checkpoint ({msg})") from None
        raise CheckpointError(f"{p}: not a readable PyTorch checkpoint ({msg})") from None


def extract_state_dict(obj: Any, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor mapping inside a loaded checkpoint (``state_dict`` / ``model`` entry or bare)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{source}: no state dict found (expected a mapping of parameter names to tensors)")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not named tensors: {bad[:5]}")
    sd = dict(obj)
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def check_and_load(model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_missing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """Strict load: every model tensor present with the right shape, nothing unexpected."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in allow_missing]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
             for k in state if k in expected and state[k].shape != expected[k].shape]  # fmt: skip
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}")
    if wrong:
        problems.append(f"wrong shape: {'; '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{source}: " + " | ".join(problems))
    model.load_state_dict(state, strict=not allow_missing)


def import_reference_state_dict(model: nn.Module, sd: dict[str, torch.Tensor], source: str = "checkpoint") -> list[str]:
    """Load a reference-named (or salrt-named) DiffSal state dict. Returns the ignored keys."""
    own = set(model.state_dict())
    if all(k in own for k in sd):
        check_and_load(model, sd, source)
        return []
    converted: dict[str, torch.Tensor] = {}
    ignored: list[str] = []
    for name, tensor in sd.items():
        try:
            new = reference_to_salrt(name)
        except CheckpointError:
            raise CheckpointError(f"{source}: unexpected tensor {name!r} (not part of the DiffSal reference model)") from None
        if new is None:
            ignored.append(name)
        else:
            converted[new] = tensor
    check_and_load(model, converted, source)
    return ignored


def load_diffsal_checkpoint(model: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load an authors' DiffSal checkpoint (or a bare state dict) into ``model``."""
    sd = extract_state_dict(read_torch_file(path), str(path))
    return import_reference_state_dict(model, sd, str(path))


def load_mvit_pretrained(video_encoder: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load the mmaction2 MViTv2-S Kinetics-400 checkpoint into the video encoder.

    Keys under ``backbone.`` are used, the classifier head is ignored. Relative-position tables
    of another length are linearly resized (as the reference does). The checkpoint carries only
    the last stage norm (``norm3``); ``norm0..2`` keep their identity initialisation, as in the
    reference. Returns the names that were initialised that way.
    """
    raw = extract_state_dict(read_torch_file(path), str(path))
    sd = {k[len("backbone."):]: v for k, v in raw.items() if k.startswith("backbone.")}
    if not sd:
        raise CheckpointError(f"{path}: no 'backbone.' tensors: not an mmaction2 MViT checkpoint")
    own = video_encoder.state_dict()
    for k, v in list(sd.items()):
        if ".attn.rel_pos" in k and k in own and v.shape[1] == own[k].shape[1] and v.shape[0] != own[k].shape[0]:
            sd[k] = F.interpolate(v.t().unsqueeze(0), size=own[k].shape[0], mode="linear").reshape(v.shape[1], -1).t()
    allowed = {f"norm{i}.{p}" for i in range(3) for p in ("weight", "bias")}
    default_init = sorted(k for k in allowed if k in own and k not in sd)
    for k in default_init:
        sd[k] = torch.ones_like(own[k]) if k.endswith("weight") else torch.zeros_like(own[k])
    check_and_load(video_encoder, sd, str(path))
    return default_init


def load_vggish_pretrained(audio_net: nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Load ``vggish.pth`` (torch port) into the VGGish conv stack; its embeddings are ignored."""
    raw = extract_state_dict(read_torch_file(path), str(path))
    sd = {k: v for k, v in raw.items() if k.startswith("features.")}
    if not sd:
        raise CheckpointError(f"{path}: no 'features.' tensors: not a VGGish checkpoint")
    ignored = sorted(k for k in raw if not k.startswith("features."))
    unexpected = [k for k in ignored if not k.startswith(("embeddings.", "pproc."))]
    if unexpected:
        raise CheckpointError(f"{path}: unexpected tensor(s) {unexpected[:8]}")
    check_and_load(audio_net, sd, str(path))
    return ignored


def save_salrt(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``."""
    from safetensors.torch import save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / _WEIGHTS_FILE), metadata={"format": "pt", "model": getattr(model, "name", "")})
    cfg = {"model": getattr(model, "name", ""), "config": model.config.to_dict(), "format_version": 1}  # type: ignore[union-attr]
    (out / _CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def is_salrt_checkpoint(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / _CONFIG_FILE).exists()) or (p.suffix == ".safetensors" and (p.parent / _CONFIG_FILE).exists())


def read_salrt(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config JSON, tensors) of a salrt checkpoint directory (or its .safetensors file)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    root = p if p.is_dir() else p.parent
    weights = p if p.suffix == ".safetensors" else root / _WEIGHTS_FILE
    try:
        meta = json.loads((root / _CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{root / _CONFIG_FILE}: unreadable salrt config ({exc})") from None
    if not weights.exists():
        raise CheckpointError(f"{weights}: no such file")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({exc})") from None
    return meta, tensors
