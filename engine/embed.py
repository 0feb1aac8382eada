"""The Python side of ``libsalrt_embed`` (include/salrt.h): a push/pull session for encoders.

Frames arrive one at a time; every ``stride``-th frame the model runs on the newest 16-frame
window (the last nine frames, the newest repeated for the seven future ones, so the map belongs
to the newest frame without waiting for later frames) with the audio pushed so far.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import numpy as np

from salrt.errors import SalrtError
from salrt.io import audio as A
from salrt.io import imaging
from salrt.io.media import AudioRing
from salrt.roi import QpMapper, RoiConfig


class Session:
    """One stream: push frames/audio, pull the newest map or its QP offsets."""

    def __init__(self, model: str = "diffsal", config: str = "paper", checkpoint: str | None = None,
                 random_weights: bool = False, device: str = "cpu", steps: int = 4, stride: int = 1,
                 fps: float = 25.0, seed: int = 0) -> None:  # fmt: skip
        import torch

        import salrt

        if checkpoint is None and not random_weights:
            raise SalrtError("no checkpoint: maps from untrained weights are meaningless (set random_weights for smoke runs)")
        if steps < 1 or stride < 1 or not fps > 0:
            raise SalrtError("steps and stride must be >= 1 and fps > 0")
        self.model = salrt.load_model(model, checkpoint=checkpoint, config=config, device=device)
        if checkpoint is None:
            from salrt.testing import load_synthetic_weights

            load_synthetic_weights(self.model, seed)
        c = self.model.config
        if c.audio_format != "logmel" or c.target != "centre":
            raise SalrtError(f"the embedding session runs median-frame log-mel models (diffsal, mubic); {model} is not one")
        self.size, self.audio_size = (c.height, c.width), (c.audio_height, c.audio_width)
        self.steps, self.stride, self.fps, self.device = steps, stride, float(fps), device
        self.frames: collections.deque[tuple[float, np.ndarray]] = collections.deque(maxlen=c.frames // 2 + 1)
        self.n_frames = 0
        self.t0: float | None = None
        self.audio = AudioRing()  # mono samples at the pushed rate, from the first frame's time
        self.audio_rate: int | None = None
        self.map: np.ndarray | None = None
        self.map_pts = 0
        self.mappers: dict[tuple[int, int, int, float], QpMapper] = {}
        self.gen = torch.Generator().manual_seed(seed)

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
        t = pts_us / 1e6
        self.t0 = t if self.t0 is None else self.t0
        self.frames.append((t - self.t0, imaging.reference_frame(rgb, self.size)))
        self.n_frames += 1
        if (self.n_frames - 1) % self.stride == 0:
            self._predict(pts_us)

    def push_audio(self, data: bytes, channels: int, rate: int) -> None:
        x = np.frombuffer(data, np.float32).reshape(-1, channels).mean(axis=1).astype(np.float64)
        if self.audio_rate not in (None, rate):
            raise SalrtError(f"audio rate changed from {self.audio_rate} to {rate}")
        self.audio_rate = rate
        self.audio.append(x)
        self.audio.discard_before(self.audio.total - int(rate * 10))  # ten seconds cover any window

    # -- model ---------------------------------------------------------------------------------
    def _clip_audio(self, t_first: float, t_last: float) -> np.ndarray:
        if not self.audio_rate or not self.audio.total:
            return A.silent_audio(self.audio_size)
        s, e = A.window_bounds(t_first, t_last, self.fps, self.audio_rate)
        return A.clip_audio(self.audio.read(s, e), self.audio_rate, self.audio_size)

    def _predict(self, pts_us: int) -> None:
        import torch

        frames = list(self.frames)
        before = self.model.config.frames // 2
        past = [frames[0]] * (before + 1 - len(frames)) + frames  # repeat the first frame at the start
        clip = [f for _, f in past] + [past[-1][1]] * (self.model.config.frames - len(past))
        video = torch.from_numpy(np.stack(clip, axis=1))[None]
        t_last = past[-1][0]
        audio = torch.from_numpy(self._clip_audio(t_last - before / self.fps, t_last + (len(clip) - len(past)) / self.fps))[None]
        noise = torch.randn((1, 1, *self.size), generator=self.gen)
        p = next(self.model.parameters())
        with torch.inference_mode():
            m = self.model.sample(video.to(p.device, p.dtype), audio.to(p.device, p.dtype), steps=self.steps,
                                  noise=noise.to(p.device, p.dtype))  # fmt: skip
        self.map = m[0, 0].float().cpu().numpy()
        self.map_pts = pts_us

    # -- output --------------------------------------------------------------------------------
    def pull_map(self, width: int, height: int) -> tuple[int, bytes, int, int] | None:
        if self.map is None:
            return None
        from salrt.sinks import resize_map

        m = resize_map(self.map, (height, width))
        return self.map_pts, np.ascontiguousarray(m, np.float32).tobytes(), width, height

    def pull_qp_offsets(self, width: int, height: int, block: int, strength: float) -> tuple[int, bytes, int, int] | None:
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
    known = {"model", "config", "checkpoint", "random_weights", "device", "steps", "stride", "fps", "seed"}
    unknown = set(opts) - known
    if unknown:
        raise SalrtError(f"unknown options {sorted(unknown)}; known: {sorted(known)}")
    return Session(**opts)
