"""Inputs of a run: what to open (:class:`Source`) and how many frames the files hold."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from typing import Any

SEQUENCE = re.compile(r"%0?\d*d")  # printf-style frame number of an image sequence (img_%05d.png)


@dataclasses.dataclass(frozen=True)
class Source:
    """One input and how to open it (the options of :func:`salrt.io.open_media`).

    ``path``: a file, URL, ``"-"`` (stdin) or an image-sequence pattern (``img_%05d.png``, opened
    with FFmpeg's ``image2`` demuxer); ``audio``: a separate audio file; ``fps``: the frame rate of
    an image sequence (or an override); ``format``/``options``: passed to FFmpeg.
    """

    path: str
    format: str | None = None
    options: dict[str, str] | None = None
    fps: float | None = None
    audio: str | None = None

    @classmethod
    def of(cls, source: str | Source) -> Source:
        if isinstance(source, Source):
            return source
        src = str(source)
        # a file that exists is a file, even with "%d" in its name (50%discount.mp4)
        if not is_stream(src) and SEQUENCE.search(src) and not os.path.isfile(src):
            return cls(src, format="image2")
        return cls(src)

    @property
    def is_stream(self) -> bool:
        return is_stream(self.path)

    @property
    def is_file(self) -> bool:
        """A regular file that can be read again (for audio passthrough) and has a known length
        (not stdin, a stream URL, a capture device or a named pipe)."""
        if self.is_stream or self.path == "-" or self.format is not None:
            return False
        import stat

        try:
            return not stat.S_ISFIFO(os.stat(self.path).st_mode)
        except OSError:  # missing: reported as unreadable when opened
            return True

    def open_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"format": self.format, "options": self.options, "audio": self.audio}
        if self.fps is not None:
            kw["fps"] = self.fps
        return kw


def is_stream(source: str) -> bool:
    """A network URL (not a local file)."""
    return "://" in source and not source.startswith("file://")


def expected_frames(sources: Sequence[str | Source]) -> int | None:
    """Total frame count of file inputs when the containers say (for progress ETAs); None otherwise."""
    import av

    total = 0
    for src in map(Source.of, sources):
        if not src.is_file:
            return None
        try:
            with av.open(src.path) as c:
                vs = c.streams.video[0]
                n = vs.frames or (
                    int(float(vs.duration * vs.time_base) * float(vs.average_rate))
                    if vs.duration and vs.average_rate
                    else 0
                )
        except (av.FFmpegError, IndexError, OSError):
            return None
        if not n:
            return None
        total += n
    return total


def open_source(spec: Source, options: Any, keep_frames: bool) -> Any:
    """The media of one input as the runtime decodes it (``options``: a
    :class:`salrt.runtime.RunOptions`; clips in its contract)."""
    from salrt.io.media import open_media

    return open_media(
        spec.path,
        stride=options.stride,
        keep_frames=keep_frames,
        timeout=options.timeout_s if spec.is_stream else None,
        hwaccel=options.hwaccel,
        **spec.open_kwargs(),
        **options.contract.media_options(),
    )
