"""Display orientation: a phone's portrait video is often coded as landscape with a display
matrix (rotation and flips) that players apply. salrt applies it at decode, so the model, the
maps, overlays and encodes all see and write the picture upright, as a player shows it.

The matrix is FFmpeg's ``AV_FRAME_DATA_DISPLAYMATRIX`` (3x3, 16.16 fixed point; a point ``(p, q)``
of the coded frame goes to ``(a p + c q, b p + d q)`` on display). For the eight rotations by
multiples of 90 degrees with or without flips it is a signed permutation, applied here as an
optional transpose followed by row and column flips; the result equals FFmpeg's own autorotate
(``ffmpeg -i``) for all eight (tested).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["Orientation"]


@dataclasses.dataclass(frozen=True)
class Orientation:
    """How a coded frame turns upright: transpose (rows <-> columns), then flip rows and columns."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False

    @classmethod
    def from_matrix(cls, m: Any) -> Orientation:
        """From the nine int32 entries of a display matrix; one that is not a rotation by a multiple
        of 90 degrees (with flips) is refused, since no pixel-exact upright picture exists for it."""
        m = np.asarray(m, np.int64).reshape(-1)
        if m.size != 9:
            raise ValueError(f"a display matrix has 9 entries, got {m.size}")
        a, b, c, d = (int(np.sign(v)) for v in (m[0], m[1], m[3], m[4]))
        if a != 0 and b == 0 and c == 0 and d != 0:
            return cls(False, flip_rows=d < 0, flip_cols=a < 0)
        if a == 0 and b != 0 and c != 0 and d == 0:
            # display column x' follows the coded row (c), display row y' the coded column (b)
            return cls(True, flip_rows=b < 0, flip_cols=c < 0)
        raise ValueError(f"display matrix {m.tolist()} is not a rotation by a multiple of 90 degrees")

    @classmethod
    def of(cls, frame: Any, source: str = "input") -> Orientation:
        """Of a decoded PyAV VideoFrame (identity when it carries no display matrix); a matrix with
        no pixel-exact upright picture is a MediaError naming ``source``."""
        from salrt.errors import MediaError

        for sd in frame.side_data:
            if str(sd.type).endswith("DISPLAYMATRIX"):
                try:
                    return cls.from_matrix(np.frombuffer(bytes(sd), np.int32))
                except ValueError as exc:
                    raise MediaError(f"{source}: {exc}") from None
        return cls()

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.flip_rows or self.flip_cols)

    def size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) on display of a coded ``width`` x ``height`` frame."""
        return (height, width) if self.transpose else (width, height)

    def describe(self) -> str:
        """A few words for messages, e.g. ``rotated 90 degrees`` or ``mirrored``."""
        if self.identity:
            return "upright"
        # turn the transform into a rotation (counter-clockwise, as FFmpeg reports it) + a mirror
        for k in range(4):
            for mirror in (False, True):
                if _as_orientation(k, mirror) == self:
                    rot = f"rotated {90 * k} degrees" if k else ""
                    return " and ".join(p for p in (rot, "mirrored" if mirror else "") if p)
        raise AssertionError(self)  # the eight cases cover every Orientation

    def apply(self, a: np.ndarray) -> np.ndarray:
        """(H, W, ...) array of the coded frame -> (H', W', ...) upright, contiguous (a new array
        unless the orientation is the identity)."""
        if self.identity:
            return a
        out = a.swapaxes(0, 1) if self.transpose else a
        if self.flip_rows:
            out = out[::-1]
        if self.flip_cols:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def apply_yuv420p(self, data: np.ndarray, width: int, height: int) -> np.ndarray:
        """A packed yuv420p array (H * 3 // 2, W) -> the upright one (H' * 3 // 2, W'); each plane
        turns on its own (even sizes only, as 4:2:0 needs)."""
        if self.identity:
            return data
        h, w = height, width
        y = self.apply(data[:h])
        uv = data[h:].reshape(2, h // 2, w // 2)
        u, v = self.apply(uv[0]), self.apply(uv[1])
        w2, h2 = self.size(w, h)
        return np.concatenate([y.ravel(), u.ravel(), v.ravel()]).reshape(h2 * 3 // 2, w2)

    def apply_frame(self, frame: Any) -> Any:
        """A PyAV VideoFrame upright (yuv420p when both sizes are even, else rgb24), keeping its
        pts and time base; the frame itself when the orientation is the identity."""
        if self.identity:
            return frame
        import av

        if frame.width % 2 == 0 and frame.height % 2 == 0:
            src = frame if frame.format.name == "yuv420p" else frame.reformat(format="yuv420p")
            out = av.VideoFrame.from_ndarray(
                self.apply_yuv420p(src.to_ndarray(), frame.width, frame.height), format="yuv420p"
            )
        else:
            out = av.VideoFrame.from_ndarray(self.apply(frame.to_ndarray(format="rgb24")), format="rgb24")
        out.pts, out.time_base = frame.pts, frame.time_base
        return out


def _as_orientation(k: int, mirror: bool) -> Orientation:
    """Counter-clockwise rotation by ``90 k`` degrees, then (``mirror``) a left-right flip."""
    # np.rot90(a, 1) == a.T[::-1]; each further quarter turn composes the same way
    o = Orientation()
    for _ in range(k):
        o = Orientation(not o.transpose, flip_rows=not o.flip_cols, flip_cols=o.flip_rows)
    return Orientation(o.transpose, o.flip_rows, o.flip_cols != mirror)
