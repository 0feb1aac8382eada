"""What a model expects from the input pipeline, from its name and config (no torch needed).

The runtime and the onnxruntime backend read this from a loaded model or an export manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from salrt.io import audio as A

# audio front end and the clip frame each model's map belongs to
_MODEL_INPUT = {
    "diffsal": ("logmel", "centre"), "mubic": ("logmel", "centre"), "dtfsal": ("logmel", "last"),
    "avrsp": ("waveform", "last"), "tavdiff": ("waveform", "centre"),
}  # fmt: skip


@dataclass(frozen=True)
class InputContract:
    clip_len: int
    size: tuple[int, int]
    target: str
    audio_format: str
    audio_size: tuple[int, int] = A.SLICE_SIZE
    audio_samples: int = A.REFERENCE_BUFFER
    audio_rate: int = A.WAVEFORM_RATE
    text_context: int | None = None  # caption token ids per clip (TAVDiff)
    start: str = "repeat"  # early clips: repeat the first frame, or AVRSP's reversed window

    def media_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`salrt.io.open_media`."""
        return {"clip_len": self.clip_len, "size": self.size, "audio_size": self.audio_size, "target": self.target,
                "audio_format": self.audio_format, "audio_samples": self.audio_samples, "audio_rate": self.audio_rate,
                "start": self.start}  # fmt: skip


def contract_for(model: str, config: dict[str, Any]) -> InputContract:
    """The contract of model ``model`` with ``config`` (a config's ``to_dict()`` or a manifest's)."""
    fmt, target = _MODEL_INPUT[model]
    c = config
    text = c.get("text", {}).get("context") if isinstance(c.get("text"), dict) else None
    return InputContract(clip_len=c["frames"], size=(c["height"], c["width"]), target=target, audio_format=fmt,
                         audio_size=(c.get("audio_height", A.SLICE_SIZE[0]), c.get("audio_width", A.SLICE_SIZE[1])),
                         audio_samples=c.get("audio_samples", A.REFERENCE_BUFFER), text_context=text,
                         start="reverse" if model == "avrsp" else "repeat")  # fmt: skip
