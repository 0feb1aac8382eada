"""The export manifest (``manifest.json``), read without torch by every backend.

It records what a backend needs to run an export without knowing the model: the graphs and the
role each plays (``graph_roles``: ``encoders``, ``denoiser``, ``sampler`` or ``predictor``), their
inputs and outputs, the input contract, and for diffusion models the noise schedule
(``alphas_cumprod``), the unrolled plan (``timesteps``) and an adaptive step count's bound
(``adaptive_max_steps``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from salrt.errors import SalrtError

FORMAT = "salrt-onnx/1"


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``manifest.json`` of an export directory, with a clear error when absent or foreign."""
    p = Path(directory) / "manifest.json"
    if not p.is_file():
        raise SalrtError(f"{directory}: no manifest.json (not a salrt export directory)")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise SalrtError(f"{p}: invalid JSON ({exc})") from None
    if m.get("format") != FORMAT:
        raise SalrtError(f"{p}: unknown export format {m.get('format')!r}")
    if "graph_roles" not in m:
        raise SalrtError(f"{p}: an export from an older salrt (no graph roles): export it again")
    return m


def graph_order(roles: dict[str, Any]) -> tuple[str, ...]:
    """Graph names in export order: encoders, denoiser, sampler, predictor, step."""
    names: list[str] = list(roles.get("encoders", []))
    names += [roles[k] for k in ("denoiser", "sampler", "predictor", "step") if roles.get(k)]
    return tuple(names)


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks (graphs and engines are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
