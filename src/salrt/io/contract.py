"""What a model expects from the input pipeline (no torch needed).

Built from a model's config (:meth:`InputContract.of`), whose class attributes ``audio_format``,
``target`` and ``start`` say how its clips are made, and written into every export manifest so the
onnxruntime/TensorRT path reads it back without torch (:meth:`InputContract.from_manifest`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from salrt.errors import SalrtError
from salrt.io import audio as A


@dataclass(frozen=True)
class InputContract:
    """Defaults: DiffSal's 16-frame 224x384 clips with 9 log-mel slices, map of the median frame."""

    clip_len: int = 16
    size: tuple[int, int] = (224, 384)
    target: str = "centre"  # the frame each clip's map belongs to: "centre" or "last"
    audio_format: str = "logmel"  # or "waveform"
    audio_size: tuple[int, int] = A.SLICE_SIZE
    audio_samples: int = A.REFERENCE_BUFFER
    audio_rate: int = A.WAVEFORM_RATE
    text_context: int | None = None  # caption token ids per clip (TAVDiff)
    start: str = "repeat"  # early clips: repeat the first frame, or AVRSP's reversed window
    resize: str = "reference"  # the reference's Pillow transforms (exact), or "fast": FFmpeg's scaler, one pass

    def media_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`salrt.io.open_media`."""
        return {
            "clip_len": self.clip_len,
            "size": self.size,
            "audio_size": self.audio_size,
            "target": self.target,
            "audio_format": self.audio_format,
            "audio_samples": self.audio_samples,
            "audio_rate": self.audio_rate,
            "start": self.start,
            "resize": self.resize,
        }

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, config: Any) -> InputContract:
        """The contract of a model config object."""
        c = config
        return cls(
            clip_len=c.frames,
            size=(c.height, c.width),
            target=c.target,
            audio_format=c.audio_format,
            audio_size=(getattr(c, "audio_height", A.SLICE_SIZE[0]), getattr(c, "audio_width", A.SLICE_SIZE[1])),
            audio_samples=getattr(c, "audio_samples", A.REFERENCE_BUFFER),
            audio_rate=getattr(c, "audio_rate", A.WAVEFORM_RATE),
            text_context=c.text.context if hasattr(c, "text") else None,
            start=c.start,
            resize=getattr(c, "resize", "reference"),
        )

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> InputContract:
        """The contract recorded in an export manifest."""
        if "contract" not in manifest:
            raise SalrtError(f"export of {manifest.get('model')!r} without an input contract: export it again")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in manifest["contract"].items()})
