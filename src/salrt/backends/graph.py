"""What the onnxruntime and TensorRT backends share: running an export's graphs by role and
sampling through salrt's one DDIM loop (:func:`salrt.sampling.loop.ddim_loop`), with the schedule
and plan read from the manifest. Imports no torch and no model code."""

from __future__ import annotations

from typing import Any

import numpy as np

from salrt.backends.base import Backend
from salrt.errors import SalrtError, UsageError
from salrt.sampling.loop import ddim_loop, select_rows
from salrt.sampling.schedule import NumpyDDIMScheduler, adaptive_step_count


class GraphBackend(Backend):
    """A backend over exported graphs. Subclasses provide ``_run(graph, feed) -> {output name:
    array}``, ``_int(values)``, ``_float(values)``, ``_noise(shape, seed)``, ``_clip`` and ``_cat``.
    A batch outside the export's batch range is padded (repeating its last item) or split, and
    the outputs sliced back, so fixed-batch exports take any batch.

    ``encode`` runs the encoder graphs and merges their named outputs; ``denoise`` feeds the
    denoiser graph by name; ``sample`` runs the unrolled ``sampler`` for its exported step count,
    the ``predictor`` of one-pass models, and the encoder + denoiser graphs through the DDIM loop
    for any other count (or the model's adaptive choice, ``steps=None``).
    """

    manifest: dict[str, Any]
    needs_export = True

    def _setup(self, available: set[str], dtype: Any = None) -> None:
        m = self.manifest
        self.roles = m["graph_roles"]
        self.graph_inputs = {k: list(g["inputs"]) for k, g in m["graphs"].items()}
        self.graph_outputs = {k: list(g["outputs"]) for k, g in m["graphs"].items()}
        self.available = available
        sampler = self.roles.get("sampler")
        self.steps = m["steps"] if sampler in available and not {"predictor", "step"} & set(self.roles) else None
        cfg = m["config"]
        self.map_shape = (1, cfg["height"], cfg["width"])
        self.scheduler = (
            NumpyDDIMScheduler(
                len(m["alphas_cumprod"]), m["alphas_cumprod"], dtype, m.get("timestep_spacing") or "reference"
            )
            if m.get("alphas_cumprod")
            else None
        )
        self.batch_range = (m["batch"]["min"], m["batch"]["max"])
        self._flops: float | None = None  # the FLOPs count of count_flops while it runs
        self._graph_flops: dict[tuple[Any, ...], float | None] = {}  # per graph and input shapes

    # -- the loop's denoiser protocol -----------------------------------------------------------
    def encode(self, video: Any, audio: Any, **conditions: Any) -> dict[str, Any]:
        feed = {"video": video, "audio": audio, **conditions}
        feats: dict[str, Any] = {}
        for g in self.roles.get("encoders", []):
            feats.update(self._call(g, self._feed(g, feed)))
        return feats

    def denoise(self, x_t: Any, t: Any, features: dict[str, Any]) -> Any:
        g = self.roles["denoiser"]
        return self._call(g, self._feed(g, {**features, "x_t": x_t, "t": t}))[self.graph_outputs[g][0]]

    def step_counts(self, features: dict[str, Any], steps: int | None) -> list[int]:
        b = len(next(iter(features.values())))
        if steps is not None:
            return [int(steps)] * b
        if "steps_raw" not in features or not self.manifest.get("adaptive_max_steps"):
            raise UsageError(f"{self.manifest['model']} has no adaptive step count: pass steps")
        return [adaptive_step_count(r, self.manifest["adaptive_max_steps"]) for r in features["steps_raw"]]

    def select(self, features: dict[str, Any], idx: list[int]) -> dict[str, Any]:
        return select_rows(features, idx)

    def timestep(self, t: int, n: int) -> Any:
        return self._int([t] * n)

    def passes(self, steps: int | None) -> int | None:
        return None if steps is None or self.scheduler is None else len(self.scheduler.timesteps(steps))

    @property
    def chooses_steps(self) -> bool:
        return bool({"predictor", "step"} & set(self.roles)) or bool(self.manifest.get("adaptive_max_steps"))

    # -- streaming models: the step graph, state as explicit inputs and outputs -----------------
    @property
    def streaming(self) -> bool:
        return "step" in self.roles

    def state_shapes(self, batch: int) -> dict[str, tuple[int, ...]]:
        if not self.streaming:
            return super().state_shapes(batch)
        ins = self.manifest["graphs"][self.roles["step"]]["inputs"]
        return {k: (batch, *ins[k]["shape"][1:]) for k in self.roles["state"]}

    def step(self, video: Any, audio: Any, state: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if not self.streaming:
            return super().step(video, audio, state)
        g = self.roles["step"]
        out = self._call(g, self._feed(g, {"video": video, "audio": audio, **state}))
        return out["map"], {k: out[f"{k}_next"] for k in self.roles["state"]}

    # -- sampling ------------------------------------------------------------------------------
    def sample(
        self,
        video: Any,
        audio: Any,
        steps: int | None = 4,
        noise: Any = None,
        seed: int | None = None,
        **conditions: Any,
    ) -> Any:
        cond = {k: self._int(v) for k, v in conditions.items()}
        if self.streaming:  # a frame without history: one step from the start state
            zeros = {k: self._float(np.zeros(s, np.float32)) for k, s in self.state_shapes(len(video)).items()}
            return self.step(video, audio, zeros)[0]
        if "predictor" in self.roles:  # one-pass model: steps and noise do not apply
            g = self.roles["predictor"]
            return self._call(g, self._feed(g, {"video": video, "audio": audio, **cond}))[self.graph_outputs[g][0]]
        b = len(video)
        x_T = self._noise((b, *self.map_shape), seed) if noise is None else noise
        sampler = self.roles.get("sampler")
        if steps is not None and steps == self.steps and sampler in self.available:
            feed = {"video": video, "audio": audio, **cond, "noise": x_T}
            return self._call(sampler, self._feed(sampler, feed))[self.graph_outputs[sampler][0]]
        if not all(g in self.available for g in [*self.roles.get("encoders", []), self.roles.get("denoiser")]):
            raise SalrtError(
                f"this export runs only its sampler's {self.steps} steps (no encoder/denoiser graphs); "
                f"export it again with --steps {steps}"
            )
        feats = self.encode(video, audio, **cond)
        return self._clip(ddim_loop(self, self.scheduler, feats, self._float(x_T), steps))

    def count_flops(self, fn: Any) -> tuple[Any, float | None]:
        """FLOPs of the exported graphs each call ran, at the shapes it ran them (padded batches
        and unrolled samplers included), counted from the ONNX graphs
        (:func:`salrt.export.flops.onnx_flops`); None when a graph's file is not at hand."""
        self._flops = 0.0
        try:
            out = fn()
            return out, self._flops
        finally:
            self._flops = None

    def _tally(self, graph: str, feed: dict[str, Any]) -> None:
        """Add one run of ``graph`` on ``feed`` to the count :meth:`count_flops` keeps."""
        if self._flops is None:
            return
        shapes = {k: tuple(v.shape) for k, v in feed.items()}
        key = (graph, tuple(sorted(shapes.items())))
        cache = self._graph_flops
        if key not in cache:
            directory = getattr(self, "dir", None)
            try:
                from salrt.export.flops import onnx_flops

                cache[key] = (
                    onnx_flops(directory / self.manifest["graphs"][graph]["file"], shapes) if directory else None
                )
            except (ImportError, SalrtError):  # onnx not installed, or a graph the inference cannot follow
                cache[key] = None
        self._flops = None if cache[key] is None else self._flops + cache[key]

    def _call(self, graph: str, feed: dict[str, Any]) -> dict[str, Any]:
        lo, hi = self.batch_range
        b = len(next(iter(feed.values())))
        if lo <= b <= hi:
            self._tally(graph, feed)
            return self._run(graph, feed)
        if b > hi:  # in chunks of the largest batch the export takes
            parts = [self._call(graph, {k: v[i : i + hi] for k, v in feed.items()}) for i in range(0, b, hi)]
            return {k: self._cat([p[k] for p in parts]) for k in parts[0]}
        rows = [*range(b)] + [b - 1] * (lo - b)  # padded to the smallest batch the export takes
        padded = {k: v[rows] for k, v in feed.items()}
        self._tally(graph, padded)
        out = self._run(graph, padded)
        return {k: v[:b] for k, v in out.items()}

    def _feed(self, graph: str, values: dict[str, Any]) -> dict[str, Any]:
        """The inputs ``graph`` takes, in its order: floats as the export's float type, ids and
        timesteps as int64."""
        feed = {}
        for name in self.graph_inputs[graph]:
            if name not in values:
                raise SalrtError(f"{graph}: missing input {name!r}")
            v = values[name]
            feed[name] = self._int(v) if name in ("t", "text") else self._float(v)
        return feed


class NumpyArrays:
    """The array helpers of a backend whose host-side arrays are numpy (onnxruntime, TensorRT
    without torch): ``self.float`` is the export's float type."""

    float: Any

    def _float(self, x: Any) -> Any:
        import numpy as np

        from salrt.backends.base import to_numpy

        return np.ascontiguousarray(to_numpy(x), dtype=self.float)

    def _int(self, x: Any) -> Any:
        import numpy as np

        from salrt.backends.base import to_numpy

        return np.ascontiguousarray(to_numpy(x) if not isinstance(x, list) else x, dtype=np.int64)

    def _noise(self, shape: tuple[int, ...], seed: int | None) -> Any:
        import numpy as np

        return np.random.default_rng(seed).standard_normal(shape).astype(self.float)

    def _clip(self, x: Any) -> Any:
        import numpy as np

        return np.clip(x, 0.0, 1.0)

    def _cat(self, parts: list[Any]) -> Any:
        import numpy as np

        return np.concatenate(parts)
