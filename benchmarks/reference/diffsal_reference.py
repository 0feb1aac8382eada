"""The authors' DiffSal code, run as-is from a checkout, for benchmarks that compare against it.

Give a checkout of github.com/junwenxiong/diff_sal (tested at commit c9b8070; `git clone` it, or
`git archive` a mirror). Nothing of it is copied into salrt: its modules are imported from that
folder and its ``DiffusionTrainer`` methods (``__init__``, ``sample_image``, ``sample_ddim``,
``predict_noise_from_start``) are executed from its own source text. Three things are replaced,
because they are not needed to sample and would drag in GPUs, datasets or packages salrt does
not use: ``timm.models.layers`` and ``mmcv.utils`` (minimal stand-ins below: DropPath is an
identity at inference, the registry builds ``type(**kwargs)``), the dataset modules its config
file imports (never used by the model), and ``generate_av_model`` (the model is built from the
config file's ``config`` dict on CPU, wrapped so that ``.module`` works as under DataParallel).
Pretrained backbone files are not loaded (weights come from ``state_dict``). Needs ``einops`` and
``pyyaml`` (pip).

    ref = ReferenceDiffSal("/path/to/diff_sal", state_dict, steps=4)
    maps = ref.sample(video, audio, noise)   # encoders + the reference's DDIM loop, eta 0, clamp
"""

from __future__ import annotations

import ast
import contextlib
import copy
import io
import logging
import os
import runpy
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn


def _stand_ins() -> dict[str, types.ModuleType]:
    """Modules the reference imports for helpers, replaced by minimal equivalents."""

    class DropPath(nn.Module):  # stochastic depth: the identity at inference
        def __init__(self, drop_prob: float = 0.0) -> None:
            super().__init__()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    def to_2tuple(x: Any) -> tuple:
        return tuple(x) if isinstance(x, (list, tuple)) else (x, x)

    class Registry:
        def __init__(self, name: str, **_: Any) -> None:
            self.name, self.modules = name, {}

        def register_module(self, name: str | None = None, force: bool = False, module: Any = None) -> Any:
            def add(cls: Any) -> Any:
                self.modules[name or cls.__name__] = cls
                return cls

            return add(module) if module is not None else add

        def build(self, cfg: dict, **_: Any) -> Any:
            cfg = dict(cfg)
            kind = cfg.pop("type")
            return (self.modules[kind] if isinstance(kind, str) else kind)(**cfg)

    def build_from_cfg(cfg: dict, registry: Registry, default_args: Any = None) -> Any:
        return registry.build(cfg)

    def get_logger(name: str, log_file: Any = None, log_level: int = logging.INFO, **_: Any) -> logging.Logger:
        return logging.getLogger(name)

    mods: dict[str, types.ModuleType] = {}
    for name in ("timm", "timm.models", "timm.models.layers", "mmcv", "mmcv.utils", "mmcv.utils.registry"):
        mods[name] = types.ModuleType(name)
    layers = mods["timm.models.layers"]
    layers.DropPath, layers.trunc_normal_, layers.to_2tuple = DropPath, nn.init.trunc_normal_, to_2tuple
    for name in ("mmcv.utils", "mmcv.utils.registry"):
        mods[name].Registry, mods[name].build_from_cfg, mods[name].get_logger = Registry, build_from_cfg, get_logger
    mods["mmcv"].Config = None  # only generate_av_model reads config files through it (replaced)
    # the dataset modules the config file imports: never used to build or run the model
    pkg = types.ModuleType("datasets")
    pkg.__path__ = []
    mods["datasets"] = pkg
    for sub, cls in (("dhf1k_data", "DHF1KDatasetMultiFrames"), ("holly2wood_dataset", "HollyDataset"),
                     ("ucf_dataset", "UCFDataset")):  # fmt: skip
        m = types.ModuleType(f"datasets.{sub}")
        setattr(m, cls, type(cls, (), {}))
        mods[f"datasets.{sub}"] = m
    return mods


def _methods(source: str, cls: str, names: tuple[str, ...]) -> str:
    """The source text of some methods of a class, as a class of their own."""
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    keep = [f for f in node.body if isinstance(f, ast.FunctionDef) and f.name in names]
    missing = set(names) - {f.name for f in keep}
    if missing:
        raise RuntimeError(f"the reference's {cls} has no {', '.join(sorted(missing))}")
    return ast.unparse(ast.Module(body=[ast.ClassDef(cls, [], [], keep, [])], type_ignores=[]))


class ReferenceDiffSal:
    """The reference model and sampler on CPU, with ``state_dict`` (the reference's own names)."""

    def __init__(self, checkout: str | Path, state_dict: dict[str, torch.Tensor], steps: int = 4) -> None:
        root = Path(checkout).resolve()
        if not (root / "diffusion_trainer.py").is_file():
            raise FileNotFoundError(f"{root}: not a checkout of junwenxiong/diff_sal")
        saved = {k: sys.modules.get(k) for k in _stand_ins()}
        sys.modules.update(_stand_ins())
        sys.path.insert(0, str(root))
        cwd = os.getcwd()
        try:
            os.chdir(root)  # the config file reads cfgs/diffusion.yml relative to the checkout
            with contextlib.redirect_stdout(io.StringIO()):
                ns = runpy.run_path(str(root / "cfgs" / "audio_visual.py"))
                cfg = copy.deepcopy(ns["config"])
                cfg["visual_net"]["pretrained"] = None  # weights come from state_dict
                cfg["audio_net"]["pretrained"] = False
                model = cfg.pop("type")(**cfg)
            model.load_state_dict(state_dict, strict=True)
            self.model = model.eval()
            import yaml
            from models.diffusion_decoder.diffusion_utils import get_beta_schedule, to_torch
            from util.opts import dict2namespace

            diff_cfg = dict2namespace(yaml.safe_load((root / "cfgs" / "diffusion.yml").read_text()))
            diff_cfg.sampling.timesteps = steps
            diff_cfg.sampling.eta = 0.0
            diff_cfg.sampling.sample_type = "ddim"

            class Parallel(nn.Module):  # what DataParallel exposes: .module
                def __init__(self, m: nn.Module) -> None:
                    super().__init__()
                    self.module = m

            env = {"torch": torch, "copy": copy, "np": np, "get_beta_schedule": get_beta_schedule,
                   "to_torch": to_torch, "generate_av_model": lambda args: (Parallel(self.model), None)}  # fmt: skip
            src = (root / "diffusion_trainer.py").read_text()
            names = ("__init__", "predict_noise_from_start", "sample_ddim", "sample_image")
            exec(compile(_methods(src, "DiffusionTrainer", names), str(root / "diffusion_trainer.py"), "exec"), env)
            with contextlib.redirect_stdout(io.StringIO()):  # its __init__ prints the whole model
                self.trainer = env["DiffusionTrainer"](types.SimpleNamespace(), diff_cfg, torch.device("cpu"))
        finally:
            os.chdir(cwd)
            sys.path.remove(str(root))
            for k, v in saved.items():
                if v is None:
                    sys.modules.pop(k, None)
                else:
                    sys.modules[k] = v

    @torch.no_grad()
    def sample(self, video: torch.Tensor, audio: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """(B,3,16,224,384), (B,1,9,112,192), (B,1,224,384) -> maps in 0..1 (the reference clamps)."""
        return self.trainer.sample_image(noise.clone(), video, audio).clamp(0, 1)


def reference_weights(seed: int = 0) -> dict[str, torch.Tensor]:
    """Synthetic weights under the reference's 658 parameter names (``salrt.models.synthetic``)."""
    import json

    from salrt.models.synthetic import synthetic_state_dict

    spec = Path(__file__).resolve().parents[2] / "tests" / "data" / "diffsal_reference_state_dict.json"
    return synthetic_state_dict(json.loads(spec.read_text()), seed=seed)


def salrt_with(state_dict: dict[str, torch.Tensor], tmp: str | Path) -> Any:
    """salrt's DiffSal loaded from the same weights through the authors' checkpoint import path."""
    import salrt

    path = Path(tmp) / "reference_weights.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in state_dict.items()}}, path)
    try:
        return salrt.load_model("diffsal", checkpoint=path).eval()
    finally:
        path.unlink()
