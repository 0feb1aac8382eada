"""What one input of each use case writes, as a factory the runtime and Ray workers call per input:
``sinks(folder, stem, source, info) -> [Sink]`` and ``keep_frames`` (whether the sinks need the
source frames)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from salrt.sinks import PngSink, Sink, default_sinks
from salrt.sinks.roi import RoiEncoderSink


@dataclasses.dataclass(frozen=True)
class RunOutputs:
    """``salrt run``'s outputs (:func:`salrt.sinks.default_sinks`) for one input."""

    outputs: tuple[str, ...]
    settings: dict[str, Any]
    source_size: bool = False

    @property
    def keep_frames(self) -> bool:
        return "overlay" in self.outputs

    def sinks(self, folder: Path, stem: str, source: Any, info: Any) -> list[Sink]:
        settings = {**self.settings, "inputs": [source.path]}
        return default_sinks(folder, self.outputs, settings, self.source_size, [source], [stem])(0, info)


@dataclasses.dataclass(frozen=True)
class EncodeOutputs:
    """``salrt encode``'s output for one input: ``<stem>.mp4`` with saliency-driven ROI."""

    options: dict[str, Any]  # codec, crf, bitrate, roi (a RoiConfig)
    keep_frames: bool = True

    def sinks(self, folder: Path, stem: str, source: Any, info: Any) -> list[Sink]:
        return [RoiEncoderSink(folder / f"{stem}.mp4", info.fps if info else 25.0, source.path, **self.options)]


@dataclasses.dataclass(frozen=True)
class PngOutputs:
    """``salrt eval``'s predictions for one video: ``<stem>/<frame:05d>.png``."""

    keep_frames: bool = False

    def sinks(self, folder: Path, stem: str, source: Any, info: Any) -> list[Sink]:
        return [PngSink(folder / stem)]
