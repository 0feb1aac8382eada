"""Caption sources for text-conditioned models (TAVDiff): a file per video, a folder, or a callable.

A clip takes the caption of its target frame, or of the nearest earlier frame that has one.
File formats: JSON ``{"0": "a man ...", "48": "..."}`` (0-based frame index -> caption; a top-level
``{"video name": {...}}`` holds several videos) or plain text with one caption per line (line k =
frame k; empty lines: no caption). A folder holds ``<video stem>.json`` or ``<video stem>.txt``.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError

CaptionFn = Callable[[str, int, float], "str | None"]


def _read(path: Path, stem: str) -> dict[int, str]:
    """Frame captions of video ``stem`` in one file (JSON, possibly keyed by video stem, or text lines)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SalrtError(f"{path}: cannot read captions ({exc})") from None
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SalrtError(f"{path}: invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise SalrtError(f"{path}: expected an object mapping frame index to caption")
        nested = {k: v for k, v in data.items() if isinstance(v, dict)}
        return _frames(nested.get(stem, {}) if nested else data, path)
    return {i: line.strip() for i, line in enumerate(text.splitlines()) if line.strip()}


def _frames(data: dict[str, Any], where: Path) -> dict[int, str]:
    out = {}
    for k, v in data.items():
        if not isinstance(v, str):
            raise SalrtError(f"{where}: caption for {k!r} is not a string")
        try:
            out[int(k)] = v
        except ValueError:
            raise SalrtError(f"{where}: key {k!r} is not a frame index") from None
    return out


class Captions:
    """``source``: a captions file, a folder of them, or ``fn(video_path, frame_index, time_s)``.

    ``tokenizer`` maps a list of captions to (B, context) int64 ids (:class:`CLIPTokenizer`). A clip
    without a caption gets an all-zero row, which TAVDiff runs as its audio-visual variant.
    """

    def __init__(
        self, source: str | Path | CaptionFn, tokenizer: Callable[[list[str]], np.ndarray], context: int
    ) -> None:
        self.tokenizer, self.context = tokenizer, context
        self.fn: CaptionFn | None = source if callable(source) else None
        self._cache: dict[str, tuple[list[int], list[str]]] = {}
        self.path = None if callable(source) else Path(source)
        if self.path is not None and not self.path.exists():
            raise SalrtError(f"{self.path}: no such captions file or folder")
        self.missing = 0

    def _table(self, video: str) -> tuple[list[int], list[str]]:
        if video not in self._cache:
            assert self.path is not None
            stem = Path(video).stem
            if self.path.is_dir():
                files = [self.path / f"{stem}{ext}" for ext in (".json", ".txt")]
                table = next((_read(f, stem) for f in files if f.is_file()), {})
            else:
                table = _read(self.path, stem)
            keys = sorted(table)
            self._cache[video] = (keys, [table[k] for k in keys])
        return self._cache[video]

    def caption(self, video: str, frame: int, time_s: float) -> str | None:
        if self.fn is not None:
            return self.fn(video, frame, time_s)
        keys, texts = self._table(video)
        i = bisect.bisect_right(keys, frame) - 1
        return texts[i] if i >= 0 else None

    def tokens(self, video: str, frame: int, time_s: float) -> np.ndarray:
        """(context,) int64 ids of the clip's caption, zeros when it has none."""
        text = self.caption(video, frame, time_s)
        if not text:
            self.missing += 1
            return np.zeros(self.context, np.int64)
        return self.tokenizer([text])[0]
