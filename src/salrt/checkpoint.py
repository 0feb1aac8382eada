"""Weights I/O, the same for every model: reading PyTorch files safely (``weights_only``),
finding the state dict inside a checkpoint, strict loading, and salrt's own format
(``model.safetensors`` + ``config.json``). Every import is strict: a missing, unexpected or
wrongly shaped tensor is an error that names it. How a model maps its authors' names to salrt's
is the model's own (``load_authors_checkpoint`` in its file); so are its backbones' loaders.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from salrt.errors import CheckpointError, require

_CONFIG_FILE = "config.json"
_WEIGHTS_FILE = "model.safetensors"


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
        if "weights_only" in msg or "Weights only load failed" in msg:
            # torch's hint (re-run with weights_only=False) is unsafe advice and false for a damaged
            # file: say what the file is instead
            with open(p, "rb") as fh:
                head = fh.read(4)
            if head[:2] != b"PK" and head[:1] != b"\x80":
                raise CheckpointError(f"{p}: not a PyTorch checkpoint (neither a zip archive nor a pickle)") from None
            raise CheckpointError(
                f"{p}: holds objects other than tensors and plain containers, which salrt does not unpickle "
                "(it loads weights only, never code)"
            ) from None
        if (
            isinstance(exc, zipfile.BadZipFile)
            or "zip archive" in msg
            or "central directory" in msg
            or isinstance(exc, EOFError)
        ):
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
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def check_and_load(
    model: nn.Module, state: dict[str, torch.Tensor], source: str, allow_missing: set[str] = frozenset()
) -> None:  # type: ignore[assignment]
    """Strict load: every model tensor present with the right shape, nothing unexpected."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state and k not in allow_missing]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    problems = []
    if missing:
        problems.append(
            f"missing {len(missing)} tensor(s): {', '.join(missing[:8])}{' ...' if len(missing) > 8 else ''}"
        )
    if unexpected:
        problems.append(
            f"unexpected {len(unexpected)} tensor(s): {', '.join(unexpected[:8])}{' ...' if len(unexpected) > 8 else ''}"
        )
    if wrong:
        problems.append(f"wrong shape: {'; '.join(wrong[:8])}{' ...' if len(wrong) > 8 else ''}")
    if problems:
        raise CheckpointError(f"{source}: " + " | ".join(problems))
    model.load_state_dict(state, strict=not allow_missing)


def save_salrt(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Write ``model.safetensors`` + ``config.json`` into ``directory``."""
    save_file = require("safetensors.torch", "writing a salrt checkpoint").save_file

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / _WEIGHTS_FILE), metadata={"format": "pt", "model": getattr(model, "name", "")})
    cfg = {"model": getattr(model, "name", ""), "config": model.config.to_dict(), "format_version": 1}  # type: ignore[union-attr]
    (out / _CONFIG_FILE).write_text(json.dumps(cfg, indent=2) + "\n")
    return out


def is_salrt_checkpoint(path: str | os.PathLike[str]) -> bool:
    p = Path(path)
    return (p.is_dir() and (p / _CONFIG_FILE).exists()) or (
        p.suffix == ".safetensors" and (p.parent / _CONFIG_FILE).exists()
    )


def config_path(path: str | os.PathLike[str]) -> Path:
    """The ``config.json`` of a salrt checkpoint directory (or of its .safetensors file)."""
    p = Path(path)
    return (p if p.is_dir() else p.parent) / _CONFIG_FILE


def read_salrt(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(config JSON, tensors) of a salrt checkpoint directory (or its .safetensors file)."""
    SafetensorError = require("safetensors", "reading a salrt checkpoint").SafetensorError
    load_file = require("safetensors.torch", "reading a salrt checkpoint").load_file

    p = Path(path)
    root = p if p.is_dir() else p.parent
    weights = p if p.suffix == ".safetensors" else root / _WEIGHTS_FILE
    try:
        meta = json.loads((root / _CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{root / _CONFIG_FILE}: unreadable salrt config ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or not isinstance(meta.get("config"), dict):
        raise CheckpointError(
            f"{root / _CONFIG_FILE}: not a salrt config (a JSON object with a 'model' name and a 'config' object)"
        )
    if not weights.exists():
        raise CheckpointError(f"{weights}: no such file")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{weights}: truncated or corrupt safetensors file ({exc})") from None
    return meta, tensors
