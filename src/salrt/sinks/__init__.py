"""Where maps go: one :class:`Sink` protocol for every use case.

- :mod:`salrt.sinks.files`: overlay video, PNG maps, ``.npy``/``.npz``, the JSON sidecar (``salrt run``);
- :mod:`salrt.sinks.roi`: the saliency-driven ROI encoder (``salrt encode``);
- :mod:`salrt.sinks.sets`: what one input of a use case writes (run, encode, eval predictions), as
  the runtime and Ray jobs open them;
- :func:`default_sinks`: ``salrt run``'s outputs for a list of inputs.

Every sink receives ``write(index, time, frame, saliency)`` for each source frame in order
(``frame``: the :class:`salrt.io.media.SourceFrame` when the run keeps frames, else None;
saliency: (h, w) float32 in 0..1 at the model's resolution) and ``close()`` exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from salrt.io.sources import SEQUENCE, Source
from salrt.sinks.files import (
    JsonSidecar,
    NpySink,
    NpyWriter,
    OverlaySink,
    PngSink,
    VideoFileSink,
    atomic_write,
    write_png,
)

SINKS = ("overlay", "png", "npy", "npz")

__all__ = [
    "SINKS",
    "JsonSidecar",
    "NpySink",
    "NpyWriter",
    "OverlaySink",
    "PngSink",
    "Sink",
    "SinkFactory",
    "VideoFileSink",
    "atomic_write",
    "default_sinks",
    "output_stems",
    "write_png",
]


class Sink(Protocol):
    """What the runtime writes maps to."""

    def write(self, index: int, time: float, frame: Any, sal: np.ndarray) -> None: ...

    def close(self) -> None: ...


SinkFactory = Callable[[int, Any], list[Sink]]  # (input index, media info) -> that input's sinks


# file names are at most 255 bytes; the longest name made from a stem adds ~20 (".<stem>_maps.partial.npy",
# "<stem>-12_overlay.mp4", temporary names), so a stem keeps 220 bytes
MAX_STEM_BYTES = 220


def fit_stem(stem: str) -> str:
    """``stem`` as is when its outputs' names fit the file system's 255 bytes; else cut (at a
    character boundary) and marked with a short hash of the whole stem, so two long names that
    share their start stay distinct."""
    import hashlib

    raw = stem.encode("utf-8", "surrogateescape")
    if len(raw) <= MAX_STEM_BYTES:
        return stem
    tag = "~" + hashlib.sha1(raw).hexdigest()[:8]
    cut = raw[: MAX_STEM_BYTES - len(tag)].decode("utf-8", "ignore")
    return cut + tag


def output_stems(sources: Sequence[str | Source]) -> list[str]:
    """A distinct file-name stem per input: the file's stem, ``stdin`` for ``-``, ``stream<i>`` for
    URLs; repeated stems (same name in different folders) get ``-2``, ``-3``, ...; a stem too long
    for its outputs' names is shortened (:func:`fit_stem`)."""
    stems: list[str] = []
    seen: dict[str, int] = {}
    for i, src in enumerate(map(Source.of, sources)):
        if src.path == "-":
            stem = "stdin"
        elif src.is_stream:
            stem = f"stream{i}"
        else:
            stem = SEQUENCE.sub("", Path(src.path).stem).strip("_-.") or f"input{i}"
        stem = fit_stem(stem)
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        stems.append(stem if n == 1 else f"{stem}-{n}")
    return stems


def default_sinks(
    outdir: Path,
    outputs: Sequence[str],
    settings: dict[str, Any],
    source_size: bool = False,
    sources: Sequence[str | Source] | None = None,
    stems: Sequence[str] | None = None,
) -> SinkFactory:
    """The CLI's sinks: ``<outdir>/<stem>{_overlay.mp4, _maps/, _maps.npy, _maps.npz, .json}`` with a
    distinct stem per input (:func:`output_stems`, or ``stems``); ``sources`` default to
    ``settings["inputs"]``."""
    sources = [Source.of(s) for s in (settings["inputs"] if sources is None else sources)]
    stems = list(stems) if stems is not None else output_stems(sources)

    def make(i: int, info: Any) -> list[Sink]:
        src, stem = sources[i], stems[i]
        size = (info.height, info.width) if source_size and info else None
        out: list[Sink] = []
        if "overlay" in outputs:
            out.append(OverlaySink(outdir / f"{stem}_overlay.mp4", info.fps if info else 25.0, src.audio or src.path))
        if "png" in outputs:
            out.append(PngSink(outdir / f"{stem}_maps", size))
        for kind in ("npy", "npz"):
            if kind in outputs:
                out.append(NpySink(outdir / f"{stem}_maps.{kind}", size, compress=kind == "npz"))
        out.append(JsonSidecar(outdir / f"{stem}.json", {**settings, "input": src.path}))
        return out

    return make
