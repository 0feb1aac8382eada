"""The real-time student: a causal, streaming audio-visual saliency model that ``salrt distill``
trains from any teacher in the registry, one frame at a time.

Every frame is processed once. A depthwise-separable (inverted-residual) frame encoder takes the
frame to 1/16 of its size; a small audio branch reads the frame's own log-mel window (the middle
VGGish example of the contract's slices: the frame's audio is centred there); a convolutional GRU
carries temporal context as explicit state ``h`` instead of re-encoding a window; a decoder with
skips from 1/8 and 1/4 gives the map at the input size. No look-ahead: the map of frame ``k``
depends on frames ``<= k`` and their audio.

Shapes (``cfg.height = H``, ``cfg.width = W``; H and W multiples of 16)::

    step(video (B,3,1,H,W), audio (B,1,S,h,w), h (B,C,H/16,W/16)) -> map (B,1,H,W) in 0..1, h_next

Inputs arrive as the runtime makes them (``frames=1`` clips, target "last"); the state is the
caller's (the runtime keeps one per input and resets it at a discontinuity). Presets ``s`` and
``m``; ``paper`` is ``m`` (there is no paper: the student is salrt's own model).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from salrt.errors import UsageError
from salrt.models.base import ConfigMixin, SaliencyModel


@dataclass(frozen=True)
class StudentConfig(ConfigMixin):
    """``widths``: channels at 1/2, 1/4, 1/8, 1/16; ``expand``: inverted-residual expansion;
    ``hidden``: the GRU's channels; ``audio_dim``: the audio embedding."""

    frames: int = 1
    height: int = 192
    width: int = 320
    audio_slices: int = 9
    audio_height: int = 32
    audio_width: int = 64
    widths: tuple[int, int, int, int] = (16, 24, 40, 80)
    expand: int = 4
    hidden: int = 64
    audio_dim: int = 32
    decoder: int = 32

    target = "last"  # the map belongs to the newest frame: causal
    resize = "fast"  # no reference to match: FFmpeg scales each decoded frame straight to the input size

    PRESETS: typing.ClassVar[dict[str, dict[str, Any]]] = {
        "m": {},
        "s": {"height": 128, "width": 224, "widths": (12, 16, 32, 64), "expand": 3, "hidden": 48, "decoder": 24},
        # tests: the smallest that exercises every part
        "tiny": {
            "height": 64,
            "width": 128,
            "widths": (8, 8, 16, 16),
            "expand": 2,
            "hidden": 16,
            "audio_dim": 8,
            "decoder": 8,
        },
    }

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frames != 1:
            raise UsageError(f"StudentConfig.frames must be 1 (one frame per step), got {self.frames}")
        if self.height % 16 or self.width % 16 or self.height < 32 or self.width < 32:
            raise UsageError(
                f"StudentConfig height and width must be multiples of 16 (>= 32), got {self.height}x{self.width}"
            )


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise (stride 1 or 2) -> 1x1 project, batch norm after each, a
    residual when the shape is kept. (B,cin,H,W) -> (B,cout,H/s,W/s)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.block = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class FrameEncoder(nn.Module):
    """(B,3,H,W) -> features at 1/4, 1/8, 1/16 of the frame: (B,w1,H/4,W/4), (B,w2,H/8,W/8),
    (B,w3,H/16,W/16)."""

    def __init__(self, widths: tuple[int, int, int, int], expand: int) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(3, w0, 3, 2, 1, bias=False), nn.BatchNorm2d(w0), nn.ReLU6(inplace=True))
        self.s4 = nn.Sequential(InvertedResidual(w0, w1, 2, expand), InvertedResidual(w1, w1, 1, expand))
        self.s8 = nn.Sequential(InvertedResidual(w1, w2, 2, expand), InvertedResidual(w2, w2, 1, expand))
        self.s16 = nn.Sequential(
            InvertedResidual(w2, w3, 2, expand),
            InvertedResidual(w3, w3, 1, expand),
            InvertedResidual(w3, w3, 1, expand),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.s4(self.stem(x))
        f8 = self.s8(f4)
        return f4, f8, self.s16(f8)


class AudioBranch(nn.Module):
    """The frame's log-mel example (B,1,T,F) (time rows, mel columns) -> an embedding (B,D): three
    strided convs, a mean over time only, then a linear layer over (channels x frequency). Pooling
    the frequency axis too would make the embedding blind to pitch (a tone looks the same to a conv
    at any frequency), and pitch is where a sound's source often shows."""

    def __init__(self, dim: int, bands: int) -> None:
        super().__init__()
        # log-mel values sit around log(0.01) = -4.6 in silence: normalised first (batch norm), and
        # every conv batch-normed, so no ReLU starts (or ends up) dead and the embedding keeps a signal
        self.net = nn.Sequential(
            nn.BatchNorm2d(1),
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.Conv2d(16, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, dim, 3, 2, 1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
        )  # fmt: skip
        f = bands
        for _ in range(3):
            f = (f - 1) // 2 + 1  # each stride-2 conv (kernel 3, padding 1)
        self.proj = nn.Linear(dim * f, dim)  # linear: the embedding may be negative

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.net(x).mean(dim=2)  # (B, D, F'): over time only
        return self.proj(y.flatten(1))


class ConvGRU(nn.Module):
    """A convolutional GRU cell: x (B,cin,h,w), h (B,C,h,w) -> h_next (B,C,h,w)."""

    def __init__(self, cin: int, hidden: int) -> None:
        super().__init__()
        self.gates = nn.Conv2d(cin + hidden, 2 * hidden, 3, 1, 1)
        self.cand = nn.Conv2d(cin + hidden, hidden, 3, 1, 1)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        z, r = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, 1)
        c = torch.tanh(self.cand(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * c


def _coords(h: int, w: int) -> torch.Tensor:
    """(1,2,h,w) normalised y and x in -1..1 (lets the audio embedding pick a place)."""
    ys = torch.linspace(-1.0, 1.0, h, dtype=torch.float32)
    xs = torch.linspace(-1.0, 1.0, w, dtype=torch.float32)
    return torch.stack([ys[:, None].expand(h, w), xs[None, :].expand(h, w)])[None].contiguous()


class Student(SaliencyModel):
    """See the module docstring."""

    name = "student"
    kind = "streaming"
    has_paper = False
    state_names = ("h",)

    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or StudentConfig()
        w0, w1, w2, w3 = cfg.widths
        self.video_encoder = FrameEncoder(cfg.widths, cfg.expand)
        self.audio_branch = AudioBranch(cfg.audio_dim, cfg.audio_width)
        h16, w16 = cfg.height // 16, cfg.width // 16
        # where the sound points: an audio-conditioned map over the 1/16 grid (a learned prior)
        self.where = nn.Linear(cfg.audio_dim, h16 * w16)
        fuse = w3 + cfg.audio_dim + 2 + 1
        self.fuse = nn.Sequential(nn.Conv2d(fuse, cfg.hidden, 1), nn.ReLU(inplace=True))
        self.film = nn.Linear(cfg.audio_dim, 2 * cfg.hidden)
        self.temporal = ConvGRU(cfg.hidden, cfg.hidden)
        d = cfg.decoder
        self.up8 = nn.Sequential(nn.Conv2d(cfg.hidden + w2 + 2, d, 3, 1, 1), nn.ReLU(inplace=True))
        self.up4 = nn.Sequential(nn.Conv2d(d + w1, d, 3, 1, 1), nn.ReLU(inplace=True))
        self.head = nn.Conv2d(d, 1, 1)
        # constant coordinate grids (buffers, not in the state dict: traced as constants)
        self.register_buffer("coords16", _coords(cfg.height // 16, cfg.width // 16), persistent=False)
        self.register_buffer("coords8", _coords(cfg.height // 8, cfg.width // 8), persistent=False)

    # -- the step ------------------------------------------------------------------------------
    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Shape of each state tensor for ``batch`` streams."""
        c = self.config
        return {"h": (batch, c.hidden, c.height // 16, c.width // 16)}

    def init_state(self, batch: int) -> dict[str, torch.Tensor]:
        """Zeros: the state at a stream's start (or after a discontinuity)."""
        p = next(self.parameters())
        return {k: torch.zeros(s, device=p.device, dtype=p.dtype) for k, s in self.state_shapes(batch).items()}

    def audio_example(self, audio: torch.Tensor) -> torch.Tensor:
        """(B,1,S,h,w) log-mel slices -> the middle one (B,1,h,w): the frame's own audio is centred
        in the contract's buffer, so the middle example holds it."""
        s = audio.shape[2]
        return audio[:, :, s // 2]

    def step(self, video: torch.Tensor, audio: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame of each stream: video (B,3,1,H,W), audio (B,1,S,h,w), h (B,C,H/16,W/16) ->
        (map (B,1,H,W) in 0..1, h_next)."""
        cfg = self.config
        self.check("video", video, cfg.video_shape)
        self.check("audio", audio, cfg.audio_shape)
        if not video.shape[0] == audio.shape[0] == h.shape[0]:
            raise ValueError(f"batch of video {video.shape[0]}, audio {audio.shape[0]} and state {h.shape[0]} differ")
        self.check("h", h, self.state_shapes(1)["h"][1:])
        f4, f8, f16 = self.video_encoder(video[:, :, 0])
        a = self.audio_branch(self.audio_example(audio))
        b, _, hh, ww = f16.shape
        c16 = self.coords16.to(f16.dtype).expand(b, 2, hh, ww)
        where = torch.softmax(self.where(a), dim=1).view(b, 1, hh, ww) * (hh * ww)  # mean 1
        x = self.fuse(torch.cat([f16, a[:, :, None, None].expand(b, a.shape[1], hh, ww), c16, where], 1))
        scale, shift = self.film(a).chunk(2, 1)
        x = x * (1 + scale[:, :, None, None]) + shift[:, :, None, None]
        h_next = self.temporal(x, h)
        y = F.interpolate(h_next, size=f8.shape[-2:], mode="bilinear", align_corners=False)
        y = self.up8(torch.cat([y, f8, self.coords8.to(f8.dtype).expand(b, 2, *f8.shape[-2:])], 1))
        y = F.interpolate(y, size=f4.shape[-2:], mode="bilinear", align_corners=False)
        y = self.up4(torch.cat([y, f4], 1))
        m = torch.sigmoid(self.head(y))
        m = F.interpolate(m, size=(cfg.height, cfg.width), mode="bilinear", align_corners=False)
        return m, h_next

    def predict(self, video: torch.Tensor, audio: torch.Tensor, **conditions: Any) -> torch.Tensor:
        """One step from the start state: the map of a frame seen without history (B,1,H,W).
        Streams go through :meth:`step` (``salrt run`` does)."""
        return self.step(video, audio, self.init_state(video.shape[0])["h"])[0]

    def sequence(self, video: torch.Tensor, audio: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """Maps of consecutive frames: video (B,3,L,H,W), audio (B,L,1,S,h,w) -> (B,L,1,H,W),
        from the start state (or ``h``)."""
        h = self.init_state(video.shape[0])["h"] if h is None else h
        maps = []
        for k in range(video.shape[2]):
            m, h = self.step(video[:, :, k : k + 1], audio[:, k], h)
            maps.append(m)
        return torch.stack(maps, 1)

    # -- what the engine asks of a model -------------------------------------------------------
    def parts(self) -> dict[str, nn.Module]:
        return {
            "video_encoder": self.video_encoder,
            "audio_branch": self.audio_branch,
            "temporal": nn.ModuleList([self.where, self.fuse, self.film, self.temporal]),
            "decoder": nn.ModuleList([self.up8, self.up4, self.head]),
        }

    def cost_parts(self, count: Any, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor) -> None:
        """One step per frame (its cost is the cost of a map)."""
        h = self.init_state(inputs["video"].shape[0])["h"]
        count("forward", lambda: self.step(inputs["video"], inputs["audio"], h))

    def graph_roles(self) -> dict[str, Any]:
        return {"step": "step", "state": list(self.state_names)}

    def export_graphs(self, steps: int) -> dict[str, nn.Module]:
        return {"step": StepGraph(self)}

    def graph_io(self, batch: int) -> dict[str, dict[str, dict[str, tuple[int, ...]]]]:
        cfg = self.config
        with torch.device("meta"):
            ins = {k: tuple(v.shape) for k, v in self.example_inputs(batch).items()}
        state = self.state_shapes(batch)
        return {
            "step": {
                "inputs": {**ins, **state},
                "outputs": {"map": (batch, 1, cfg.height, cfg.width), **{f"{k}_next": s for k, s in state.items()}},
            }
        }

    def training_recipe(self) -> Any:
        """Distillation: KL + CC of each frame's map against the teacher's (``map``), NSS where
        fixations exist; AdamW, cosine schedule (salrt's own choice: there is no paper)."""
        from salrt.models.recipe import TrainingRecipe

        return TrainingRecipe(
            loss=distillation_loss,
            optimizer=lambda params: torch.optim.AdamW(params, lr=2e-3, weight_decay=1e-4),
            scheduler=lambda opt, epochs: torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(epochs, 1)),
            grad_clip=1.0,
            batch_size=8,
            epochs=10,
            source="salrt (distillation of a registry teacher)",
        )

    def validation_maps(self, batch: dict[str, Any], steps: int, generator: torch.Generator) -> torch.Tensor:
        """Every frame of the batch's sequences, unrolled from the start state: (B*L,1,H,W)."""
        b = as_sequences(batch)
        return self.sequence(b["video"], b["audio"]).flatten(0, 1)


class StepGraph(nn.Module):
    """The exported step: (video, audio, h) -> (map, h_next), state as explicit inputs/outputs."""

    def __init__(self, model: Student) -> None:
        super().__init__()
        self.model = model

    def forward(self, video: torch.Tensor, audio: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.step(video, audio, h)


def as_sequences(batch: dict[str, Any]) -> dict[str, Any]:
    """A batch of single-frame clips (``salrt train``'s: audio (B,1,S,h,w), maps (B,1,H,W)) as
    sequences of length 1; a batch of sequences as it is."""
    if batch["audio"].dim() == 6:
        return batch
    out = dict(batch)
    for k in ("audio", "map", "fixations"):
        out[k] = batch[k][:, None]
    return out


def distillation_loss(model: Student, batch: dict[str, Any], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Sequences: video (B,3,L,H,W), audio (B,L,1,S,h,w), ``map`` (B,L,1,H,W) the teacher's maps
    (or a mix with ground truth), ``fixations`` (B,L,1,H,W). KL - 0.5 CC per frame, and - 0.1 NSS
    when every frame has fixations."""
    from salrt.models.recipe import saliency_terms

    batch = as_sequences(batch)
    pred = model.sequence(batch["video"], batch["audio"]).flatten(0, 1)
    flat = {"map": batch["map"].flatten(0, 1), "fixations": batch["fixations"].flatten(0, 1)}
    if "has" in batch:  # only frames with a teacher map (a teacher stride > 1 leaves gaps)
        keep = batch["has"].flatten()
        pred, flat = pred[keep], {k: v[keep] for k, v in flat.items()}
    weights = {"kld": 1.0, "cc": -0.5}
    if bool(flat["fixations"].flatten(1).amax(1).gt(0).all()):
        weights["nss"] = -0.1
    return saliency_terms(pred, flat, weights)
