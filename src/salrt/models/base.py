"""What every salrt model shares: config (de)serialisation, input checks, the sampling API.

A model has ``name``, ``config`` (with ``frames``, ``height``, ``width``, ``video_shape``,
``audio_shape``, ``audio_format``, ``target``), ``kind`` ("diffusion" or "direct") and
``sample(video, audio, steps, eta, noise, generator, **conditions)`` returning maps (B,1,H,W)
in 0..1. Direct (one-pass) models ignore ``steps``/``noise``: the runtime, backends, export and
bench treat every model alike.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from salrt import constants as A
from salrt.errors import UsageError
from salrt.models.blocks import check_input
from salrt.models.mvit import MViTConfig
from salrt.sampling.loop import ddim_loop, select_rows


class ConfigMixin:
    """``to_dict`` / ``from_dict`` (nested dataclasses, lists -> tuples) / ``preset`` for frozen dataclasses."""

    PRESETS: typing.ClassVar[dict[str, dict[str, Any]]] = {}
    # config fields that choose between readings of an ambiguous paper: field -> allowed values
    # (the default is the reading most consistent with the paper's figures); `salrt info` costs each
    READINGS: typing.ClassVar[dict[str, tuple[str, ...]]] = {}
    # how the model's clips are made (salrt.io.contract.InputContract.of reads these)
    audio_format = "logmel"  # or "waveform"
    target = "centre"  # the frame each clip's map belongs to: "centre" (median) or "last"
    start = "repeat"  # early clips repeat the first frame ("reverse": AVRSP's reversed window)
    resize = "reference"  # frames resized as the reference code does (exact); "fast": FFmpeg's scaler

    def __post_init__(self) -> None:
        for name, allowed in self.READINGS.items():
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"{type(self).__name__}.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        hints = typing.get_type_hints(cls)
        fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - fields
        if unknown:
            raise UsageError(f"unknown {cls.__name__} keys: {sorted(unknown)}")
        check_field_types(cls, data)
        kw: dict[str, Any] = {}
        for k, v in data.items():
            sub = hints.get(k)
            if dataclasses.is_dataclass(sub) and isinstance(v, dict):
                v = sub(**{a: tuple(b) if isinstance(b, list) else b for a, b in v.items()})  # type: ignore[operator]
            elif isinstance(v, list):
                v = tuple(tuple(x) if isinstance(x, list) else x for x in v)
            kw[k] = v
        return cls(**kw)

    @property
    def video_shape(self) -> tuple[int, int, int, int]:
        """(3, T, H, W) of one clip."""
        return (3, self.frames, self.height, self.width)  # type: ignore[attr-defined]

    @property
    def audio_shape(self) -> tuple[int, ...]:
        """(1, S, h, w) log-mel slices, or (1, N) waveform samples, of one clip."""
        if getattr(self, "audio_format", "logmel") == "waveform":
            return (1, self.audio_samples)  # type: ignore[attr-defined]
        return (1, self.audio_slices, self.audio_height, self.audio_width)  # type: ignore[attr-defined]

    def with_video_shape(self, frames: int, height: int, width: int) -> Any:
        """This config for clips of another size (a model whose audio grid follows the video
        size adjusts it too)."""
        return dataclasses.replace(self, frames=frames, height=height, width=width)

    @classmethod
    def preset_names(cls) -> tuple[str, ...]:
        """The names :meth:`preset` accepts."""
        return ("paper", *cls.PRESETS)

    @classmethod
    def preset(cls, name: str) -> Any:
        if name == "paper":
            return cls()
        if name not in cls.PRESETS:
            raise UsageError(f"unknown {cls.__name__} preset {name!r} (choose from: paper, {', '.join(cls.PRESETS)})")
        return cls(**cls.PRESETS[name])


@dataclass(frozen=True)
class MViTVGGishConfig(ConfigMixin):
    """Input sizes and encoders shared by DiffSal and the models built on it (MUBiC, DTFSal):
    MViTv2-S on RGB clips and VGGish + one temporal transformer layer on log-mel slices."""

    frames: int = 16
    height: int = 224
    width: int = 384
    audio_slices: int = 9
    audio_height: int = 112
    audio_width: int = 192
    mvit: MViTConfig = field(default_factory=MViTConfig)
    vggish_channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    audio_heads: int = 2
    audio_dim_head: int = 64
    audio_mlp_dim: int = 256


@dataclass(frozen=True)
class S3DSoundNetConfig(ConfigMixin):
    """Input sizes and encoders shared by TAVDiff and AVRSP: S3D on RGB clips, SoundNet on a mono
    waveform at 22.05 kHz centred in ``audio_samples`` (STAViS' 1.6 s buffer by default)."""

    frames: int = 16
    height: int = 224
    width: int = 384
    audio_samples: int = A.REFERENCE_BUFFER
    s3d_width_div: int = 1
    soundnet_width_div: int = 1

    audio_format = "waveform"
    audio_rate = A.WAVEFORM_RATE


class SaliencyModel(nn.Module):
    """Base class of every salrt model (one-pass and diffusion)."""

    name = "model"
    kind = "direct"
    conditions: tuple[str, ...] = ()  # extra per-clip inputs beyond video and audio (e.g. "text")
    has_paper: typing.ClassVar[bool] = True  # False: salrt's own model (no published figures to quote)
    config: Any
    # what the model's paper reports per preset, in its own convention: rows (quantity, value, unit,
    # key) with key one of paper_params / paper_macs (thop convention), params, size_mb
    # (salrt.cost.paper_comparison); a preset the paper gives no cost for has no entry
    paper_figures: typing.ClassVar[dict[str, tuple[tuple[str, float, str, str], ...]]] = {}

    def cost_parts(self, count: Any, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor) -> None:
        """Run the model once as its cost is reported, each part under ``count(name, fn)``:
        ``forward`` for one-pass models (see the diffusion override)."""
        count("forward", lambda: self.predict(**inputs))

    def check(self, name: str, x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        return check_input(self, name, x, shape)

    def parts(self) -> dict[str, nn.Module]:
        """Sub-networks whose parameters :meth:`parameter_counts` reports."""
        raise NotImplementedError

    def training_recipe(self) -> Any:
        """How the model's paper trains it (:class:`salrt.models.recipe.TrainingRecipe`)."""
        raise NotImplementedError(f"{self.name} declares no training recipe")

    def parameter_counts(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.parts().items()}

    def condition_shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Per-clip shape and dtype of each extra input named in ``conditions``."""
        return {}

    def predict(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> torch.Tensor:
        raise NotImplementedError

    def validation_maps(self, batch: dict[str, Any], steps: int, generator: torch.Generator) -> torch.Tensor:
        """The maps validation scores against ``batch["map"]`` (flattened to (N,1,H,W)): one pass."""
        from salrt.models.recipe import conditions

        return self.predict(batch["video"], batch["audio"], **conditions(self, batch))

    def load_authors_checkpoint(self, path: str) -> None:
        """Load a checkpoint file of this model (the default: a state dict in salrt's names, as
        no authors' release exists; a model with one overrides this with its name mapping)."""
        from salrt import checkpoint as ckpt

        ckpt.check_and_load(self, ckpt.extract_state_dict(ckpt.read_torch_file(path), path), path)

    def triton_kernels(self) -> tuple[str, ...]:
        """The Triton kernels that apply to this model (:mod:`salrt.kernels`): the ``triton_kernel``
        of its modules, and ``"ddim"`` for diffusion models."""
        names = {m.triton_kernel for m in self.modules() if getattr(m, "triton_kernel", None)}
        return tuple(sorted(names | ({"ddim"} if self.kind == "diffusion" else set())))

    def example_inputs(self, batch: int) -> dict[str, torch.Tensor]:
        """Inputs of the configured sizes (empty; zeros for conditions), on the current default
        device: call under ``torch.device("meta")`` to count or trace without memory."""
        cfg = self.config
        inputs = {"video": torch.empty(batch, *cfg.video_shape), "audio": torch.empty(batch, *cfg.audio_shape)}
        for name, (shape, dtype) in self.condition_shapes().items():
            inputs[name] = torch.zeros(batch, *shape, dtype=dtype)
        return inputs

    # -- export: the graphs this model declares (salrt.models.graphs), their roles and shapes ---
    def graph_roles(self) -> dict[str, Any]:
        """Which graph does what: ``predictor`` for one-pass models (see the diffusion override)."""
        return {"predictor": "predictor"}

    def export_graphs(self, steps: int) -> dict[str, nn.Module]:
        """name -> module with flat tensor inputs and outputs (``steps``: the sampler's unrolled plan)."""
        from salrt.models.graphs import PredictorGraph

        return {"predictor": PredictorGraph(self)}

    def graph_io(self, batch: int) -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
        """Input and output shapes of every graph at ``batch`` (traced on meta tensors)."""
        cfg = self.config
        with torch.device("meta"):
            ins = {k: tuple(v.shape) for k, v in self.example_inputs(batch).items()}
        return {"predictor": {"inputs": ins, "outputs": {"map": (batch, 1, cfg.height, cfg.width)}}}

    def meta_features(self, batch: int) -> Any:
        """Per-clip features of meta inputs, from a meta copy (the model itself is not moved)."""
        import copy

        meta = copy.deepcopy(self).to("meta")
        with torch.no_grad(), torch.device("meta"):
            return meta.encode(**meta.example_inputs(batch))

    def forward(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> torch.Tensor:
        return self.predict(video, audio, **conditions)

    @torch.no_grad()
    def sample(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        steps: int = 4,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **conditions: Any,
    ) -> torch.Tensor:
        """Maps (B,1,H,W) in 0..1. One-pass models: a single forward; ``steps``/``noise`` unused."""
        return self.predict(video, audio, **conditions)


class DiffusionModel(SaliencyModel):
    """A conditional x0-predicting diffusion model: ``encode`` once per clip, ``denoise`` per step,
    sampled with the shared DDIM scheduler (``self.scheduler``)."""

    kind = "diffusion"
    scheduler: Any

    def encode(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> Any:
        raise NotImplementedError

    def denoise(self, x_t: torch.Tensor, t: torch.Tensor, features: Any) -> torch.Tensor:
        raise NotImplementedError

    def step_counts(self, features: Any, steps: int | None) -> list[int]:
        """DDIM steps per batch item: ``steps`` for all, or the model's own choice when None."""
        if steps is None:
            raise UsageError(f"{self.name} has no adaptive step count: pass steps")
        return [int(steps)] * self.batch_of(features)

    @staticmethod
    def batch_of(features: Any) -> int:
        first = features[0] if isinstance(features, (tuple, list)) else features
        while isinstance(first, (tuple, list)):
            first = first[0]
        return int(first.shape[0])

    @torch.no_grad()
    def sample(
        self,
        video: torch.Tensor,
        audio: torch.Tensor,
        steps: int | None = 4,
        eta: float = 0.0,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        **conditions: Any,
    ) -> torch.Tensor:
        """DDIM from x_T (``noise`` or drawn from ``generator``) -> maps (B,1,H,W) clamped to 0..1."""
        if eta < 0:
            raise UsageError(f"eta must be >= 0, got {eta}")
        feats = self.encode(video, audio, **conditions)
        b = self.batch_of(feats)
        p = next(self.parameters())
        shape = (b, 1, self.config.height, self.config.width)
        if noise is None:
            x_T = torch.randn(shape, generator=generator, device=p.device, dtype=p.dtype)
        else:
            x_T = self.check("noise", noise, shape[1:])
            if x_T.shape[0] != b:
                raise UsageError(f"noise batch {x_T.shape[0]} does not match the clip batch {b}")
            if generator is None and eta > 0:
                generator = torch.Generator(device=p.device).manual_seed(0)
        return ddim_loop(self, self.scheduler, feats, x_T, steps, eta=eta, generator=generator).clamp(0.0, 1.0)

    def validation_maps(self, batch: dict[str, Any], steps: int, generator: torch.Generator) -> torch.Tensor:
        """``steps`` DDIM steps from noise drawn from ``generator`` (the same every epoch)."""
        from salrt.models.recipe import conditions

        gt = batch["map"]
        noise = torch.randn((gt.shape[0], 1, *gt.shape[2:]), generator=generator, device=gt.device)
        return self.sample(batch["video"], batch["audio"], steps=steps, noise=noise, **conditions(self, batch))

    # -- the sampling loop's denoiser protocol (salrt.sampling.loop.Denoiser) ------------------
    def select(self, features: Any, idx: list[int]) -> Any:
        """The batch items ``idx`` of (nested tuples of) feature tensors."""
        return select_rows(features, idx)

    def timestep(self, t: int, n: int) -> torch.Tensor:
        """(n,) long timesteps ``t`` on the model's device."""
        return torch.full((n,), t, dtype=torch.long, device=next(self.parameters()).device)

    # -- the graph protocol: per-clip features as a flat tuple of tensors (export, CUDA graphs) --
    def feature_tensors(self, features: Any) -> tuple[torch.Tensor, ...]:
        """The per-clip features as tensors f0..fN (the ``encoder`` graph's outputs)."""
        raise NotImplementedError

    def features_from(self, tensors: tuple[torch.Tensor, ...]) -> Any:
        """The inverse of :meth:`feature_tensors`."""
        raise NotImplementedError

    def passes(self, steps: int | None) -> int | None:
        """Denoiser passes ``steps`` runs under the model's plan (None: chosen per clip)."""
        return None if steps is None else self.scheduler.passes(steps)

    def graph_roles(self) -> dict[str, Any]:
        return {"encoders": ["encoder"], "denoiser": "denoiser", "sampler": "sampler"}

    def cost_parts(self, count: Any, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor) -> None:
        """``encoders`` once per clip, ``denoiser_step`` per step."""
        feats = count("encoders", lambda: self.encode(**inputs))
        count("denoiser_step", lambda: self.denoise(x_t, t, feats))

    def export_graphs(self, steps: int) -> dict[str, nn.Module]:
        from salrt.models.graphs import DenoiserGraph, EncoderGraph, SamplerGraph

        return {"encoder": EncoderGraph(self), "denoiser": DenoiserGraph(self), "sampler": SamplerGraph(self, steps)}

    def graph_io(self, batch: int) -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
        cfg = self.config
        x = (batch, 1, cfg.height, cfg.width)
        with torch.device("meta"):
            ins = {k: tuple(v.shape) for k, v in self.example_inputs(batch).items()}
        fspec = {f"f{i}": tuple(f.shape) for i, f in enumerate(self.feature_tensors(self.meta_features(batch)))}
        enc_out = {**fspec, **({"steps_raw": (batch,)} if hasattr(self, "raw_step_count") else {})}
        return {
            "encoder": {"inputs": ins, "outputs": enc_out},
            "denoiser": {"inputs": {"x_t": x, "t": (batch,), **fspec}, "outputs": {"x0": x}},
            "sampler": {"inputs": {**ins, "noise": x}, "outputs": {"map": x}},
        }


def check_field_types(cls: type, data: dict[str, Any]) -> None:
    """Refuse a config dict (from JSON) whose values cannot be ``cls``'s field types, naming the field."""
    hints = typing.get_type_hints(cls)
    for k, v in data.items():
        problem = _type_problem(v, hints.get(k))
        if problem:
            raise UsageError(f"{cls.__name__} field {k!r}: {problem}")


def _type_problem(value: Any, hint: Any) -> str | None:
    """Why ``value`` (from JSON) cannot be a field typed ``hint`` (None: it can)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if any(_type_problem(value, a) is None for a in args):
            return None
        return f"expected {hint}, got {type(value).__name__} {value!r}"
    kinds = {int: (int,), float: (int, float), str: (str,), bool: (bool,), tuple: (list, tuple)}
    want = kinds.get(origin or hint)
    if hint is type(None):
        return None if value is None else f"expected null, got {value!r}"
    if want is None:  # a nested config or an unusual type: its constructor checks it
        return None
    if isinstance(value, bool) and hint in (int, float):
        return f"expected {hint.__name__}, got a boolean"
    return (
        None
        if isinstance(value, want)
        else f"expected {getattr(hint, '__name__', hint)}, got {type(value).__name__} {value!r}"
    )
