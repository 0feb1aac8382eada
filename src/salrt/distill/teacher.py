"""The teacher's maps, made once per video by salrt's own runtime (any backend the teacher's
:class:`~salrt.spec.RunSpec` names) and cached on disk: ``<cache>/teacher.json`` says which teacher
made them (model, config, checkpoint content, steps, stride), ``<cache>/<video>.npz`` holds one
video's maps (uint8 at the teacher's map size, one per frame the teacher ran on), written
atomically, so an interrupted pass resumes at the first video without a file."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError, UsageError

FORMAT = 1


class TeacherCacheError(UsageError):
    """A teacher-map cache made by another teacher (refused by name)."""


def teacher_identity(spec: Any, stride: int) -> dict[str, Any]:
    """What the cached maps depend on: model, config, the checkpoint's content (or the synthetic
    weights' seed), backbones, DDIM steps and the teacher's frame stride."""
    from salrt.export.cache import content_digest

    return {
        "format": FORMAT,
        "model": spec.model,
        "config": spec.config,
        "checkpoint": None if spec.checkpoint is None else Path(str(spec.checkpoint)).name,
        "checkpoint_sha256": None if spec.checkpoint is None else content_digest(spec.checkpoint),
        "random_weights_seed": spec.seed if spec.random_weights else None,
        "backbones": [[n, content_digest(p)] for n, p in spec.backbones],
        "steps": spec.steps,
        "stride": stride,
    }


def _describe(identity: dict[str, Any]) -> str:
    weights = (
        f"checkpoint {identity['checkpoint']} (sha256 {str(identity['checkpoint_sha256'])[:12]})"
        if identity.get("checkpoint_sha256")
        else f"random weights (seed {identity.get('random_weights_seed')})"
    )
    return (
        f"{identity.get('model')} ({identity.get('config')} config, {weights}, steps {identity.get('steps')}, "
        f"stride {identity.get('stride')})"
    )


@dataclass
class TeacherVideo:
    """One video's teacher pass: its maps file, and what the run said about its audio."""

    name: str
    maps: Path
    silent: bool  # the video has no audio stream: teacher and student got silence
    seconds: float  # wall time of the teacher's pass (0 when cached)
    frames: int


class TeacherMaps:
    """The cache folder ``root`` for the teacher ``spec`` (its identity checked on open)."""

    def __init__(self, root: str | Path, spec: Any, stride: int = 1) -> None:
        self.root, self.spec, self.stride = Path(root), spec, stride
        self.identity = teacher_identity(spec, stride)
        self.root.mkdir(parents=True, exist_ok=True)
        key = self.root / "teacher.json"
        if key.is_file():
            try:
                have = json.loads(key.read_text())
            except (OSError, ValueError) as exc:
                raise TeacherCacheError(f"{key}: unreadable teacher record ({exc}); delete the folder") from None
            if have != self.identity:
                raise TeacherCacheError(
                    f"{self.root}: teacher maps made by {_describe(have)}, not by {_describe(self.identity)}; "
                    "use another output folder or delete this cache"
                )
        else:
            key.write_text(json.dumps(self.identity, indent=1))

    def path(self, name: str) -> Path:
        return self.root / f"{name}.npz"

    def make(
        self,
        sources: list[tuple[str, Any]],
        pipe: Any,
        *,
        batch: int = 4,
        progress: Callable[[str, int, int], None] | None = None,
        warn: Callable[[str], None] | None = None,
    ) -> list[TeacherVideo]:
        """Maps for every ``(name, Source)`` not cached yet, by ``pipe`` (a built
        :class:`salrt.pipeline.Pipeline` of the teacher); every video's record, in order."""
        from salrt.app.run import RunSettings, run

        out: list[TeacherVideo] = []
        settings = RunSettings(outputs=("npz",), stride=self.stride, batch=batch)
        for k, (name, src) in enumerate(sources):
            final = self.path(name)
            if progress:
                progress(name, k, len(sources))
            if final.is_file():
                with np.load(final) as z:
                    out.append(TeacherVideo(name, final, bool(z["silent"]), 0.0, int(z["maps"].shape[0])))
                continue
            with tempfile.TemporaryDirectory(dir=self.root) as tmp:
                stats = run(pipe, [src], tmp, settings)
                if stats.errors:
                    raise SalrtError(f"teacher on {name}: {stats.errors[0]}")
                (made,) = Path(tmp).glob("*_maps.npz")
                silent = not (stats.media[0] or {}).get("audio_samples", 0)
                if silent and warn:
                    warn(f"{name}: no audio stream: the teacher and the student get silence")
                with np.load(made) as z:
                    maps, times = z["maps"], z["times"]
                part = final.with_name(f".{final.name}.{os.getpid()}.partial")
                with open(part, "wb") as fh:
                    np.savez(fh, maps=maps, times=times, silent=np.array(silent), seconds=np.array(stats.wall_s))
                os.replace(part, final)
            out.append(TeacherVideo(name, final, silent, float(stats.wall_s), int(maps.shape[0])))
        return out

    def clear(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
