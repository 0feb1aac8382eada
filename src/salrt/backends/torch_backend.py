"""PyTorch eager and ``torch.compile`` backends over a loaded model."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from salrt.backends import register
from salrt.backends.base import Backend
from salrt.errors import UsageError

# torch is imported on use: the registry describes this backend on installs without torch


def _inference_mode(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.inference_mode():
            return fn(*args, **kwargs)

    return run


@register
class TorchBackend(Backend):
    """``model.encode/denoise/sample`` with numpy or tensor inputs moved to the model's device/dtype."""

    name = "torch"
    library = "torch"
    needs_weights = True
    devices = ("cpu", "cuda")
    precision_at_load = True
    steps = None

    @classmethod
    def precision_problem(cls, precision: str, device: str) -> str | None:
        return cpu_precision_problem(precision) if str(device).startswith("cpu") else None

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        return 10  # always possible from weights; the slowest exact path where an export runs

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> TorchBackend:
        if model is None:
            raise UsageError(f"backend {cls.name} runs a loaded model: pass model=")
        backend = cls(model, **options)
        if spec.precision and backend.precision != spec.precision:
            raise UsageError(f"precision {spec.precision}: the model's weights are {backend.precision} (cast it first)")
        return backend

    max_graphs = 4  # captured (batch, steps) shapes kept (each holds its activations and its memory pool)

    def __init__(
        self, model: Any, compile: bool = False, cuda_graphs: bool = True, graph_encoders: bool = True
    ) -> None:
        self.model = model.eval()
        self.cuda_graphs = cuda_graphs  # on CUDA: each clip one graph replay (encoders included)
        self.graph_encoders = graph_encoders
        self.compiled = compile
        self._graphs: dict[tuple[int, int], Any] = {}
        import torch

        if compile:
            for part in ("video_encoder", "denoiser"):
                if hasattr(model, part):
                    getattr(model, part).forward = torch.compile(getattr(model, part).forward, dynamic=False)
        p = next(model.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.precision = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}.get(
            p.dtype, str(p.dtype)
        )

    def _t(self, x: Any, dtype: Any = None) -> Any:
        import torch

        t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
        if self.device.type == "cuda" and t.device.type == "cpu":
            t = t.pin_memory()  # pinned host buffer: the copy overlaps the previous clip's compute
        return t.to(self.device, dtype or self.dtype, non_blocking=True)

    @_inference_mode
    def encode(self, video: Any, audio: Any) -> Any:
        return self.model.encode(self._t(video), self._t(audio))

    @_inference_mode
    def denoise(self, x_t: Any, t: Any, features: Any) -> Any:
        import torch

        return self.model.denoise(self._t(x_t), self._t(t, torch.long), features)

    @_inference_mode
    def sample(
        self,
        video: Any,
        audio: Any,
        steps: int | None = 4,
        noise: Any = None,
        seed: int | None = None,
        **conditions: Any,
    ) -> Any:
        import torch

        cond = {k: self._t(v, torch.long) if not _is_float(v) else self._t(v) for k, v in conditions.items()}
        if self._graphs_apply(steps, noise):
            # CUDA: a whole clip (encoders + denoiser passes, or the one pass) is one graph replay
            v, a = self._t(video), self._t(audio)
            n = None if noise is None else self._t(noise)
            return self._graph_for(v.shape[0], steps or 0)(v, a, n, **cond)
        gen = torch.Generator(device=self.device).manual_seed(seed) if seed is not None else None
        return self.model.sample(
            self._t(video),
            self._t(audio),
            steps=steps,
            noise=None if noise is None else self._t(noise),
            generator=gen,
            **cond,
        )

    def count_flops(self, fn: Any) -> tuple[Any, float | None]:
        """FLOPs as torch dispatches them (:func:`salrt.cost.flop_counter`: matmuls, convolutions,
        attention). Compiled code and CUDA graph replays bypass the dispatcher: not counted (None)."""
        from salrt.cost import executed_flops

        return (fn(), None) if self.compiled else executed_flops(fn)

    @property
    def streaming(self) -> bool:
        return getattr(self.model, "kind", None) == "streaming"

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        if not self.streaming:
            return super().state_shapes(batch)
        return self.model.state_shapes(batch)

    def step(self, video: Any, audio: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        import torch

        if not self.streaming:
            return super().step(video, audio, state)
        names = self.model.state_names
        with torch.no_grad():
            m, *nxt = self.model.step(self._t(video), self._t(audio), *(self._t(state[k]) for k in names))
        return m, dict(zip(names, nxt))

    def _graphs_apply(self, steps: int | None, noise: Any) -> bool:
        """CUDA graphs on CUDA for one-pass models, and for diffusion models with a fixed step
        count and given noise (adaptive counts and seeded draws run eagerly)."""
        if not (self.cuda_graphs and self.device.type == "cuda"):
            return False
        return self.model.kind == "direct" or (steps is not None and noise is not None)

    def _graph_for(self, batch: int, steps: int) -> Any:
        """The captured clip of this (batch, steps), the least recently used dropped (with its
        memory pool) beyond ``max_graphs``."""
        from salrt.backends.cuda_graphs import GraphSampler

        key = (batch, steps)
        if key in self._graphs:
            self._graphs[key] = self._graphs.pop(key)  # most recently used last
            return self._graphs[key]
        if len(self._graphs) >= self.max_graphs:
            self._graphs.pop(next(iter(self._graphs)))
        self._graphs[key] = GraphSampler(self.model, batch, steps or 4, encoders=self.graph_encoders)
        return self._graphs[key]

    def passes(self, steps: int | None) -> int | None:
        return self.model.passes(steps) if self.model.kind == "diffusion" else None

    @property
    def chooses_steps(self) -> bool:
        return self.model.kind != "diffusion" or hasattr(self.model, "raw_step_count")


@register
class TorchCompileBackend(TorchBackend):
    """:class:`TorchBackend` with the video encoder and denoiser under ``torch.compile``."""

    name = "torch-compile"
    auto_choice = False

    def __init__(self, model: Any, cuda_graphs: bool = True, graph_encoders: bool = True) -> None:
        super().__init__(model, compile=True, cuda_graphs=cuda_graphs, graph_encoders=graph_encoders)


def cpu_precision_problem(precision: str) -> str | None:
    """Why ``precision`` cannot run at speed on this CPU (None: it can): bf16 needs native bf16
    (AVX-512 BF16 or AMX; emulated it runs ~100x slower than fp32), fp16 has no fast CPU kernels."""
    from salrt.hardware import cpu_isa, cpu_native_bf16

    if precision == "fp16":
        return "fp16 has no fast CPU kernels in torch or OpenVINO; use fp32 (exact) or bf16 on a CPU with native bf16"
    if precision == "bf16" and not cpu_native_bf16():
        return (
            f"this CPU ({cpu_isa()}) has no native bf16 (AVX-512 BF16 or AMX): bf16 would run emulated, far "
            "slower than fp32; use fp32"
        )
    return None


def _is_float(x: Any) -> bool:
    import torch

    return (
        bool(x.is_floating_point()) if isinstance(x, torch.Tensor) else np.issubdtype(np.asarray(x).dtype, np.floating)
    )
