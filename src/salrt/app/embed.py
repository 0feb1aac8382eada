"""The Python side of ``libsalrt_embed`` (include/salrt.h): a push/pull session for encoders.

Frames and audio arrive one at a time and go into the same :class:`~salrt.io.clips.ClipAssembler`
as ``salrt run``'s decoder, so every model of the registry runs with the same preprocessing,
audio windows and clip rules. Every ``stride``-th frame the model runs on the clip of the newest
frame, without look-ahead (low latency): a median-frame model (DiffSal, MUBiC, TAVDiff) sees the
newest frame repeated for the frames after it, as at the end of a stream; a last-frame model
(AVRSP, DTFSal) gets exactly the clips of ``salrt run``. A streaming model (the student) steps on
every ``stride``-th frame with its state carried, as ``salrt run`` does.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.io.clips import ClipAssembler
from salrt.roi import QpMapper, RoiConfig
from salrt.spec import RunSpec


class Session:
    """One stream: push frames/audio, pull the newest map or its QP offsets."""

    def __init__(self, spec: RunSpec, stride: int = 1, fps: float = 25.0) -> None:
        from salrt import pipeline

        if stride < 1 or not fps > 0:
            raise SalrtError("stride must be >= 1 and fps > 0")
        self.pipe = pipeline.build(spec)
        steps, seed = self.pipe.spec.steps, spec.seed
        c = self.pipe.contract
        self.assembler = ClipAssembler(fps=fps, **c.media_options(), has_audio=True)
        self.assembler.audio_done()  # audio arrives with the frames: clips never wait for more
        self.size = c.size
        self.steps, self.stride, self.fps = steps, stride, float(fps)
        self.t0: float | None = None
        self.audio_rate: int | None = None
        self.map: np.ndarray | None = None
        self.map_pts = 0
        self.mappers: dict[tuple[int, int, int, float], QpMapper] = {}
        self.rng = np.random.default_rng(seed)
        # a streaming model (the student): its state, carried from map to map as salrt run does
        b = self.pipe.backend
        self.state = {k: np.zeros(v, np.float32) for k, v in b.state_shapes(1).items()} if b.streaming else None

    # -- input ---------------------------------------------------------------------------------
    def push_frame(self, data: bytes, width: int, height: int, fmt: str, pts_us: int) -> None:
        if fmt == "i420":
            import av

            yuv = np.frombuffer(data, np.uint8).reshape(height * 3 // 2, width)
            rgb = av.VideoFrame.from_ndarray(yuv, format="yuv420p").to_ndarray(format="rgb24")
        elif fmt == "rgb24":
            rgb = np.frombuffer(data, np.uint8).reshape(height, width, 3)
        else:
            raise SalrtError(f"unknown pixel format {fmt!r}")
        self.assembler.push_frame(pts_us / 1e6, rgb)
        if (self.assembler.n_frames - 1) % self.stride == 0:
            self._predict(pts_us)

    def push_audio(self, data: bytes, channels: int, rate: int) -> None:
        x = np.frombuffer(data, np.float32).reshape(-1, channels).mean(axis=1).astype(np.float64)
        if self.audio_rate not in (None, rate):
            raise SalrtError(f"audio rate changed from {self.audio_rate} to {rate}")
        self.audio_rate = rate
        self.assembler.push_audio(x, rate, align=False)  # contiguous from the first frame

    # -- model ---------------------------------------------------------------------------------
    def _predict(self, pts_us: int) -> None:
        from salrt.backends.base import to_numpy

        clip = self.assembler.newest_clip()
        if self.state is not None:
            m, state = self.pipe.backend.step(clip.video[None], clip.audio[None], self.state)
            self.state = {k: np.asarray(to_numpy(v), np.float32) for k, v in state.items()}
            self.map = np.asarray(to_numpy(m)[0, 0], np.float32)
            self.map_pts = pts_us
            return
        c = self.pipe.contract
        cond = {"text": np.zeros((1, c.text_context), np.int64)} if c.text_context else {}  # AV variant
        noise = self.rng.standard_normal((1, 1, *self.size)).astype(np.float32)
        m = self.pipe.backend.sample(clip.video[None], clip.audio[None], steps=self.steps, noise=noise, **cond)
        self.map = np.asarray(to_numpy(m)[0, 0], np.float32)
        self.map_pts = pts_us

    # -- output --------------------------------------------------------------------------------
    def pull_map(self, width: int, height: int) -> tuple[int, bytes, int, int] | None:
        if self.map is None:
            return None
        from salrt.io.imaging import resize_map

        m = resize_map(self.map, (height, width))
        return self.map_pts, np.ascontiguousarray(m, np.float32).tobytes(), width, height

    def pull_qp_offsets(
        self, width: int, height: int, block: int, strength: float
    ) -> tuple[int, bytes, int, int] | None:
        if self.map is None:
            return None
        key = (width, height, block, round(strength, 4))
        if key not in self.mappers:
            self.mappers[key] = QpMapper((height, width), block, RoiConfig(strength=strength))
        off = self.mappers[key](self.map)
        return self.map_pts, np.ascontiguousarray(off, np.float32).tobytes(), off.shape[1], off.shape[0]


def from_json(options: str) -> Session:
    """``Session(**json.loads(options))`` with a clear error for bad JSON or unknown keys."""
    try:
        opts: Any = json.loads(options or "{}")
    except json.JSONDecodeError as exc:
        raise SalrtError(f"options are not valid JSON: {exc}") from None
    if not isinstance(opts, dict):
        raise SalrtError("options must be a JSON object")
    session = {k: opts.pop(k) for k in ("stride", "fps") if k in opts}
    known = {f.name for f in dataclasses.fields(RunSpec)}
    unknown = set(opts) - known
    if unknown:
        raise SalrtError(f"unknown options {sorted(unknown)}; known: {sorted(known | {'stride', 'fps'})}")
    if "backbones" in opts and isinstance(opts["backbones"], dict):
        opts["backbones"] = tuple(sorted(opts["backbones"].items()))
    return Session(RunSpec(**opts), **session)
