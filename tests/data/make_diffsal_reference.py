"""Regenerates (or, with --check, verifies) diffsal_reference_seed0.npz: outputs of the DiffSal reference
implementation (GitHub junwenxiong/diff_sal, commit c9b8070) on synthetic weights and inputs, the
golden values of tests/models/test_diffsal_reference.py. None of the reference's code is in this
repository: give the path of a checkout::

    python tests/data/make_diffsal_reference.py /path/to/diff_sal [--check]

What runs (README.md in this folder says the same):
- the model of the reference's ``cfgs/audio_visual.py`` (MViT small, VGGish, AudioAttnNet, SalUNet), built
  by its own classes with no pretrained files; ``timm`` and ``mmcv`` are not needed: minimal stand-ins
  (DropPath is the identity at inference, trunc_normal_, to_2tuple, a registry, a logger) are installed
  first, and the dataset classes the config file imports are left out;
- weights ``salrt.models.synthetic.synthetic_state_dict`` over the reference's 658 names (seed 0),
  loaded with ``strict=True``; inputs ``synthetic_inputs(video, audio, batch=2, seed=100)``;
- encoders ``visual_net(video)`` and ``forward_vggish(audio)``; one denoiser pass ``decoder_net(x_T,
  t=(750, 250), features, audio)``; the 4-step DDIM sample is the reference's own
  ``DiffusionTrainer.sample_ddim`` (its source, taken from diffusion_trainer.py) with 4 timesteps,
  eta 0 and the cosine betas of its ``get_beta_schedule``, then clamped to [0, 1];
- the sensitivity figures: the largest change of one denoiser pass (batch 2) when only x_T, only t
  (to (250, 750)) or only the audio is swapped between the two items.
"""

from __future__ import annotations

import argparse
import ast
import collections.abc
import contextlib
import copy
import io
import json
import logging
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
FILE = HERE / "diffsal_reference_seed0.npz"
SHAPES = HERE / "diffsal_reference_state_dict.json"
VIDEO, AUDIO = (3, 16, 224, 384), (1, 9, 112, 192)


# ----------------------------------------------------------------------------- stand-ins
def _install_stand_ins() -> None:
    """timm's and mmcv's few names the reference model imports."""

    class DropPath(nn.Module):  # identity at inference (eval mode)
        def __init__(self, drop_prob: float = 0.0, *args, **kwargs) -> None:
            super().__init__()

        def forward(self, x):
            return x

    def to_2tuple(x):
        return tuple(x) if isinstance(x, collections.abc.Iterable) else (x, x)

    layers = types.ModuleType("timm.models.layers")
    layers.DropPath, layers.trunc_normal_, layers.to_2tuple = DropPath, nn.init.trunc_normal_, to_2tuple
    timm, timm_models = types.ModuleType("timm"), types.ModuleType("timm.models")
    timm.models, timm_models.layers = timm_models, layers

    def build_from_cfg(cfg, registry, default_args=None):
        args = dict(cfg)
        kind = args.pop("type")
        cls = registry.get(kind) if isinstance(kind, str) else kind
        return cls(**args)

    class Registry:
        def __init__(self, name: str) -> None:
            self.name, self._modules = name, {}

        def register_module(self, name=None, force=False, module=None):
            def add(cls):
                self._modules[name or cls.__name__] = cls
                return cls

            return add(module) if module is not None else add

        def get(self, key):
            return self._modules[key]

        def build(self, cfg, *args, **kwargs):
            return build_from_cfg(cfg, self)

    mmcv, utils, registry = (types.ModuleType(n) for n in ("mmcv", "mmcv.utils", "mmcv.utils.registry"))
    utils.Registry, utils.get_logger = (
        Registry,
        lambda name, log_file=None, log_level=logging.INFO: logging.getLogger(name),
    )
    registry.build_from_cfg, utils.registry, mmcv.utils = build_from_cfg, registry, utils
    datasets = {
        "datasets.dhf1k_data": "DHF1KDatasetMultiFrames",
        "datasets.holly2wood_dataset": "HollyDataset",
        "datasets.ucf_dataset": "UCFDataset",
    }
    stubs = {"timm": timm, "timm.models": timm_models, "timm.models.layers": layers, "mmcv": mmcv,
             "mmcv.utils": utils, "mmcv.utils.registry": registry}  # fmt: skip
    for mod, cls in datasets.items():  # the config file imports them; the model does not use them
        m = types.ModuleType(mod)
        setattr(m, cls, None)
        stubs[mod] = m
    stubs.setdefault("datasets", types.ModuleType("datasets"))
    stubs["datasets"].__path__ = []
    sys.modules.update(stubs)


def _reference_model(root: Path) -> nn.Module:
    sys.path.insert(0, str(root))
    _install_stand_ins()
    import runpy

    cwd = os.getcwd()
    os.chdir(root)  # the config file opens cfgs/diffusion.yml relative to the checkout
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            cfg = runpy.run_path(str(root / "cfgs" / "audio_visual.py"))["config"]
    finally:
        os.chdir(cwd)
    cfg = copy.deepcopy(cfg)
    cfg["visual_net"]["pretrained"] = None  # no pretrained files
    cfg["audio_net"]["pretrained"] = False
    kind = cfg.pop("type")
    with contextlib.redirect_stdout(io.StringIO()):
        return kind(**cfg)


def _sampler(root: Path, model: nn.Module, steps: int) -> object:
    """The reference's DiffusionTrainer.sample_ddim (its source) on an object carrying what its
    __init__ computes from cfgs/diffusion.yml."""
    import yaml
    from models.diffusion_decoder.diffusion_utils import get_beta_schedule

    src = (root / "diffusion_trainer.py").read_text()
    cls = next(n for n in ast.parse(src).body if isinstance(n, ast.ClassDef) and n.name == "DiffusionTrainer")
    fn = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "sample_ddim")
    fn.decorator_list = []
    ns: dict = {"torch": torch, "copy": copy}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "diffusion_trainer.py", "exec"), ns)
    conf = yaml.safe_load((root / "cfgs" / "diffusion.yml").read_text())
    d = conf["diffusion"]
    with contextlib.redirect_stdout(io.StringIO()):
        betas = get_beta_schedule(d["beta_schedule"], beta_start=d["beta_start"], beta_end=d["beta_end"],
                                  num_diffusion_timesteps=d["num_diffusion_timesteps"])  # fmt: skip
    betas = torch.from_numpy(betas).float()
    alphas_hat = (1.0 - betas).cumprod(dim=0)
    cfg = types.SimpleNamespace(sampling=types.SimpleNamespace(timesteps=steps, eta=0.0))
    trainer = types.SimpleNamespace(
        config=cfg, device=torch.device("cpu"), num_timesteps=betas.shape[0], alphas_hat=alphas_hat,
        sqrt_alphas_hat=torch.sqrt(alphas_hat), sqrt_recip_alphas_hat=torch.sqrt(1.0 / alphas_hat),
        sqrt_recipm1_alphas_hat=torch.sqrt(1.0 / alphas_hat - 1), training_target=conf["training"]["training_target"],
        model=types.SimpleNamespace(module=model),
    )  # fmt: skip
    trainer.predict_noise_from_start = lambda x_t, t, x0: (
        (trainer.sqrt_recip_alphas_hat[t] * x_t - x0) / trainer.sqrt_recipm1_alphas_hat[t]
    )
    return lambda x, img, audio: ns["sample_ddim"](trainer, x, img=img, audio_cond=audio)


# ----------------------------------------------------------------------------- records
def _points(x: torch.Tensor, n: int = 2048) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    idx = np.linspace(0, flat.shape[1] - 1, n).round().astype(np.int64)
    return flat[:, idx].numpy()


def _record(out: dict, key: str, x: torch.Tensor, grid: bool = False) -> None:
    if grid:
        out[f"{key}_grid"] = x[:, :, ::4, ::4].numpy()
    else:
        out[f"{key}_points"] = _points(x)
    dims = tuple(range(1, x.dim()))
    xd = x.double()
    out[f"{key}_sum"], out[f"{key}_sumsq"] = xd.sum(dims).numpy(), (xd**2).sum(dims).numpy()


def reference_outputs(root: Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(HERE.parents[1] / "src"))
    from salrt.models.synthetic import synthetic_inputs, synthetic_state_dict

    torch.manual_seed(0)
    model = _reference_model(root)
    shapes = json.loads(SHAPES.read_text())
    model.load_state_dict(synthetic_state_dict(shapes, seed=0), strict=True)
    model.eval()
    sample = _sampler(root, model, steps=4)
    video, audio, noise = synthetic_inputs(VIDEO, AUDIO, 2, seed=100)
    out: dict[str, np.ndarray] = {"seed": np.int64(0), "input_seed": np.int64(100)}
    with torch.no_grad():
        for b in (1, 2):
            v, a, x = video[:b], audio[:b], noise[:b]
            key = f"b{b}"
            feats = model.visual_net(v)
            for i in range(4):
                _record(out, f"{key}_video{i}", feats[i])
            aud, _ = model.forward_vggish(a)
            _record(out, f"{key}_audio", aud)
            t = torch.tensor([750, 250][:b])
            out[f"{key}_denoise_t"] = t.numpy()
            _record(out, f"{key}_denoise", model.decoder_net(x, t, copy.deepcopy(feats), aud), grid=True)
            _record(out, f"{key}_sample", sample(x, feats, aud).clamp(0, 1), grid=True)
        feats, (aud, _) = model.visual_net(video), model.forward_vggish(audio)
        t = torch.tensor([750, 250])
        base = model.decoder_net(noise, t, copy.deepcopy(feats), aud)
        other_a = model.forward_vggish(audio.flip(0))[0]
        for name, y in (  # each input of the two items swapped, the rest kept
            ("x_t", model.decoder_net(noise.flip(0), t, copy.deepcopy(feats), aud)),
            ("t", model.decoder_net(noise, t.flip(0), copy.deepcopy(feats), aud)),
            ("audio", model.decoder_net(noise, t, copy.deepcopy(feats), other_a)),
        ):
            out[f"sensitivity_{name}"] = np.float64((y - base).abs().max())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("diff_sal", type=Path, help="a checkout of github.com/junwenxiong/diff_sal")
    ap.add_argument("--check", action="store_true", help="compare with the stored values instead of writing")
    args = ap.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    values = reference_outputs(args.diff_sal.resolve())
    if not args.check:
        np.savez(FILE, **values)
        print("wrote", FILE)
        return
    stored = dict(np.load(FILE))
    worst = 0.0
    for k in sorted(stored):
        d = float(np.max(np.abs(np.asarray(values[k], np.float64) - stored[k]))) if k in values else float("inf")
        worst = max(worst, d)
        if d > 0:
            print(f"{k}: largest difference {d:.3g}")
    print(f"{len(stored)} arrays, largest difference from the stored ones: {worst:.3g}")
    sys.exit(0 if worst <= 1e-5 else 1)


if __name__ == "__main__":
    main()
