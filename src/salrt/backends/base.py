"""The backend interface: what a backend runs (``encode``, ``denoise``, ``sample``) and what it says
about itself (class attributes and class methods), so that nothing outside a backend's own module
names it or branches on it.

A backend module defines one subclass of :class:`Backend` per backend name and registers it
(:func:`salrt.backends.register`); :func:`salrt.pipeline.build` asks the classes, never the names.
"""

from __future__ import annotations

from typing import Any, ClassVar

from salrt.errors import UsageError, installed


class Backend:
    """An execution backend.

    Self-description (class level):

    - ``name``; ``library``: the module it needs installed (None: none beyond salrt's own);
    - ``needs_weights``: runs a loaded torch model; ``needs_export``: runs an export (``salrt export``);
      ``needs_server``: runs on a model server (a URL);
    - ``devices``: device kinds it runs on (``cpu``, ``cuda``);
    - ``precision_at_load``: it chooses its precision when opened (torch casts, OpenVINO hints);
      otherwise it computes in its export's precision, which a requested precision must match;
    - ``auto_choice``: whether ``--backend auto`` may pick it (:meth:`auto_rank`).

    Running (instance level): ``encode(video, audio)``, ``denoise(x_t, t, features)``,
    ``sample(video, audio, steps, noise, seed, **conditions)``, ``passes(steps)``. Arrays are numpy
    arrays or torch tensors; shapes as :class:`salrt.DiffSal`: video (B,3,T,H,W), audio (B,1,S,h,w),
    maps (B,1,H,W).
    """

    name: ClassVar[str] = ""
    library: ClassVar[str | None] = None
    needs_weights: ClassVar[bool] = False
    needs_export: ClassVar[bool] = False
    needs_server: ClassVar[bool] = False
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    precision_at_load: ClassVar[bool] = False
    auto_choice: ClassVar[bool] = True
    export_format: ClassVar[str | None] = None  # the salrt export --format that builds what it runs on top of graphs
    steps: int | None = None  # a fixed step count (an exported sampler), or None when any count works

    # -- self-description ---------------------------------------------------------------------
    @classmethod
    def installed(cls) -> bool:
        """Whether this backend's library is importable here."""
        return cls.library is None or installed(cls.library)

    @classmethod
    def runs_on(cls, device: str) -> bool:
        return str(device).split(":")[0] in cls.devices

    @classmethod
    def precision_problem(cls, precision: str, device: str) -> str | None:
        """Why this backend cannot run ``precision`` at speed on ``device`` (None: it can). Backends
        that run their export's precision accept any here; :meth:`check_export` checks the match."""
        return None

    @classmethod
    def graph_precision(cls, precision: str) -> str:
        """The precision of the ONNX graphs an export for this backend at ``precision`` holds."""
        return precision

    @classmethod
    def export_extra(cls, directory: Any, precision: str, log: Any = None, **options: Any) -> None:
        """What this backend builds on top of exported graphs (TensorRT: engines); nothing by default."""

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        """How strongly ``--backend auto`` prefers this backend (higher wins; None: not a choice)
        for ``device`` with ``export`` (an export's manifest, or None), a server ``url`` and whether
        an export can be made into the cache (``can_export``). The ranks follow measured speed:
        server > TensorRT > OpenVINO > onnxruntime > torch eager."""
        return None

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> Backend:
        """An instance for ``spec`` (a validated :class:`salrt.spec.RunSpec`): over ``model`` when
        :attr:`needs_weights`, else over ``export_dir``; ``options``: the backend's own settings."""
        raise NotImplementedError

    def check_export(self, precision: str | None) -> None:
        """Refuse a requested ``precision`` this opened backend does not compute in."""
        have = getattr(self, "precision", None) or self.export_precision()
        if precision and not self.precision_at_load and have != precision:
            raise UsageError(
                f"precision {precision}: backend {self.name} runs its export's precision ({have}); export with "
                f"precision {precision}, or use a backend that chooses its precision at load time"
            )

    def export_precision(self) -> str | None:
        manifest = getattr(self, "manifest", None)
        return None if manifest is None else str(manifest["precision"])

    # -- running ------------------------------------------------------------------------------
    @property
    def chooses_steps(self) -> bool:
        """Whether ``sample(..., steps=None)`` works: the model picks its own count (MUBiC's adaptive
        one) or runs in one pass."""
        return False

    def passes(self, steps: int | None) -> int | None:
        """Denoiser passes that ``steps`` runs under the model's timestep plan (None: one-pass)."""
        return None

    # -- streaming models (one frame per call, state carried by the caller) --------------------
    @property
    def streaming(self) -> bool:
        """Whether the model runs one frame at a time with explicit state (:meth:`step`)."""
        return False

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        """Shape of each state tensor for ``batch`` streams (streaming models)."""
        raise UsageError(f"backend {self.name}: this model keeps no state")

    def step(self, video: Any, audio: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """One frame of ``B`` streams: video (B,3,1,H,W), audio (B,1,S,h,w), ``state`` {name: (B,...)}
        -> (maps (B,1,H,W), the next state). Streaming models only."""
        raise UsageError(f"backend {self.name} runs no streaming model")

    def step_through(self, video: Any, audio: Any) -> Any:
        """One stream's maps, frame after frame from the start state: video (N,3,1,H,W), audio
        (N,1,S,h,w) -> maps (N,H,W) float32 numpy."""
        import numpy as np

        state = {k: np.zeros(s, np.float32) for k, s in self.state_shapes(1).items()}
        out = []
        for k in range(len(video)):
            m, state = self.step(video[k : k + 1], audio[k : k + 1], state)
            state = {name: np.asarray(to_numpy(v), np.float32) for name, v in state.items()}
            out.append(np.asarray(to_numpy(m), np.float32)[0, 0])
        return np.stack(out)

    # -- clips of identified streams (a server that keeps each stream's frame window) ---------
    def sample_streams(self, streams: list[int], video: Any, audio: Any, **options: Any) -> Any:
        """:meth:`sample` for a batch whose row ``r`` belongs to stream ``streams[r]`` (an input of
        the run; its clips arrive in order). A backend that keeps windows per stream (the Triton
        client's frames-once path) sends each stream only the frames its window lacks."""
        return self.sample(video, audio, **options)

    def end_stream(self, stream: int) -> None:
        """Stream ``stream`` has ended (or restarts from a gap): free what is kept for it."""

    def count_flops(self, fn: Any) -> tuple[Any, float | None]:
        """``(fn(), FLOPs)``: the FLOPs this backend executed during ``fn`` (a call of its
        :meth:`sample`), counted as it executes them, or None where it cannot count them."""
        return fn(), None

    def wire_bytes(self) -> dict[str, int]:
        """Bytes sent to and received from a model server so far (empty for a local backend)."""
        return {}

    def close(self) -> None:
        """Free what the backend holds (device memory, sessions); idempotent."""


def to_numpy(x: Any) -> Any:
    """A numpy array from a numpy array or a torch tensor (any device)."""
    if hasattr(x, "detach"):
        return x.detach().float().cpu().numpy()
    return x
