"""onnxruntime backend over a ``salrt export`` directory. Imports neither torch nor salrt.models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from salrt.backends.base import require, to_numpy
from salrt.errors import SalrtError
from salrt.sampling.schedule import (adaptive_step_count, alphas_cumprod_f32, apply_ddim, ddim_coefficients, ddim_plan,
                                     diffsal_cosine_betas)  # fmt: skip


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """``manifest.json`` of an export directory, with a clear error when absent or foreign."""
    p = Path(directory) / "manifest.json"
    if not p.is_file():
        raise SalrtError(f"{directory}: no manifest.json (not a salrt export directory)")
    try:
        m = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise SalrtError(f"{p}: invalid JSON ({exc})") from None
    if m.get("format") != "salrt-onnx/1":
        raise SalrtError(f"{p}: unknown export format {m.get('format')!r}")
    return m


class OnnxRuntimeBackend:
    """Runs the exported graphs: ``sample`` uses ``sampler.onnx`` for its exported step count
    and the encoder + denoiser graphs with the numpy DDIM update for any other."""

    name = "onnxruntime"

    def __init__(self, directory: str | Path, providers: list[str] | None = None, device: str = "cpu") -> None:
        ort = require("onnxruntime", "the onnxruntime backend")
        self.dir = Path(directory)
        self.manifest = read_manifest(self.dir)
        if providers is None:
            providers = ["CPUExecutionProvider"]
            if device.startswith("cuda"):
                if "CUDAExecutionProvider" not in ort.get_available_providers():
                    raise SalrtError("device cuda needs onnxruntime-gpu (CUDAExecutionProvider is not available)")
                providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.sessions = {}
        for name, g in self.manifest["graphs"].items():
            path = self.dir / g["file"]
            if not path.is_file():
                raise SalrtError(f"{path}: listed in the manifest but missing")
            self.sessions[name] = ort.InferenceSession(str(path), opts, providers=providers)
        self.steps = self.manifest["steps"] if "sampler" in self.sessions else None
        self.float = np.float16 if self.manifest["precision"] == "fp16" else np.float32
        self._abar = alphas_cumprod_f32(diffsal_cosine_betas())
        cfg = self.manifest["config"]
        self.map_shape = (1, cfg["height"], cfg["width"])

    def _f(self, x: Any) -> np.ndarray:
        return np.ascontiguousarray(to_numpy(x), dtype=self.float)

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        if graph not in self.sessions:
            raise SalrtError(f"{self.dir}: this export has no {graph}.onnx")
        return self.sessions[graph].run(None, feed)

    def encode(self, video: Any, audio: Any) -> dict[str, np.ndarray]:
        v = self._run("video_encoder", {"video": self._f(video)})
        a = self._run("audio_encoder", {"audio": self._f(audio)})
        return {**dict(zip(("v0", "v1", "v2", "v3"), v)), **dict(zip(("a0", "a1", "a2", "a3"), a))}

    def denoise(self, x_t: Any, t: Any, features: dict[str, np.ndarray]) -> np.ndarray:
        names = self.manifest["graphs"]["denoiser"]["inputs"]
        feed = {"x_t": self._f(x_t), "t": np.asarray(to_numpy(t), dtype=np.int64)}
        feed.update({k: features[k] for k in names if k not in feed})
        return self._run("denoiser", feed)[0]

    def sample(self, video: Any, audio: Any, steps: int | None = 4, noise: Any = None, seed: int | None = None,
               **conditions: Any) -> np.ndarray:  # fmt: skip
        if "predictor" in self.sessions:  # one-pass model: steps and noise do not apply
            return self._run("predictor", {"video": self._f(video), "audio": self._f(audio)})[0]
        b = np.shape(video)[0]
        cond = {k: np.asarray(to_numpy(v), dtype=np.int64) for k, v in conditions.items()}
        if self.manifest["model"] != "diffsal":
            return self._sample_conditional(video, audio, steps, noise, seed, cond)
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((b, *self.map_shape))
        x = self._f(noise)
        if steps == self.steps:
            return self._run("sampler", {"video": self._f(video), "audio": self._f(audio), "noise": x})[0]
        feats = self.encode(video, audio)
        return np.clip(self._ddim(x, steps, lambda x_t, t: self.denoise(x_t, t, feats)), 0.0, 1.0)

    def _ddim(self, x: np.ndarray, steps: int, denoise: Any) -> np.ndarray:
        """The numpy DDIM loop (eta = 0) from x_T over ``steps`` steps; ``denoise(x_t, t) -> x0``."""
        for st in ddim_plan(steps):
            x0 = denoise(x, np.full((x.shape[0],), st.t, np.int64))
            x = apply_ddim(x0, x, ddim_coefficients(self._abar, st)).astype(self.float)
        return x

    def _sample_conditional(self, video: Any, audio: Any, steps: int | None, noise: Any, seed: int | None,
                            cond: dict[str, np.ndarray]) -> np.ndarray:  # fmt: skip
        """MUBiC / TAVDiff exports: the unrolled sampler for its step count, else encoder + denoiser
        with the numpy DDIM update (any count, or the model's adaptive choice for ``steps=None``)."""
        b = np.shape(video)[0]
        if noise is None:
            noise = np.random.default_rng(seed).standard_normal((b, *self.map_shape))
        x_T = self._f(noise)
        ins = {"video": self._f(video), "audio": self._f(audio), **cond}
        if steps is not None and steps == self.steps and "sampler" in self.sessions:
            return self._run("sampler", {**self._only("sampler", ins), "noise": x_T})[0]
        out_names = list(self.manifest["graphs"]["encoder"]["outputs"]) if "encoder" in self.manifest["graphs"] else []
        if not out_names:
            raise SalrtError(f"{self.dir}: this export has no encoder.onnx, so only {self.steps} steps can run")
        outs = dict(zip(out_names, self._run("encoder", self._only("encoder", ins))))
        feats = {k: v for k, v in outs.items() if k != "steps_raw"}
        if steps is None:
            if "steps_raw" not in outs:
                raise SalrtError(f"{self.manifest['model']} has no adaptive step count: pass steps")
            top = int(self.manifest["config"]["max_steps"])
            counts = [adaptive_step_count(r, top) for r in outs["steps_raw"]]
        else:
            counts = [int(steps)] * b
        result = np.empty_like(x_T)
        for n in sorted(set(counts)):  # items that chose the same count run together
            idx = np.array([i for i, c in enumerate(counts) if c == n])
            f = {k: v[idx] for k, v in feats.items()}
            result[idx] = self._ddim(x_T[idx], n, lambda x_t, t, f=f: self._run("denoiser", {"x_t": x_t, "t": t, **f})[0])
        return np.clip(result, 0.0, 1.0)

    def _only(self, graph: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = self.manifest["graphs"][graph]["inputs"]
        return {k: v for k, v in feed.items() if k in names}
