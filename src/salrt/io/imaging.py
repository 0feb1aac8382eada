"""DiffSal's frame preprocessing, bit-exact to the reference's Pillow transforms.

The reference loads every frame with ``Image.resize((320, 240))`` (Pillow's default filter,
bicubic), then its ``Scale`` transform resizes to 384x224 bilinearly, keeps 0..255 values and
normalises per channel. Pillow's resampler is a separable two-pass (horizontal, then vertical)
convolution with 22-bit fixed-point weights and rounding to uint8 after each pass; it is
reimplemented here in numpy (and in torch for device tensors) so that results are identical
to Pillow's without depending on it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

VIDEO_MEAN = (114.7748, 107.7354, 99.4750)
VIDEO_STD = (38.7568578, 37.88248729, 40.02898126)
# Reference quirk kept for fidelity: frames are first resized to 320x240 (bicubic) by its loader.
LOADER_SIZE = (240, 320)
_PRECISION = 22  # Pillow's PRECISION_BITS for 8-bit images


def _bicubic(x: np.ndarray) -> np.ndarray:
    a = -0.5
    x = np.abs(x)
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1
    far = (((x - 5) * x + 8) * x - 4) * a
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _bilinear(x: np.ndarray) -> np.ndarray:
    x = np.abs(x)
    return np.where(x < 1.0, 1.0 - x, 0.0)


_FILTERS = {"bicubic": (_bicubic, 2.0), "bilinear": (_bilinear, 1.0)}


@lru_cache(maxsize=64)
def resample_coefficients(n_in: int, n_out: int, filt: str) -> tuple[np.ndarray, np.ndarray]:
    """Pillow's fixed-point weights for one axis: (idx (n_out, K) int64, weights (n_out, K) int64).

    Padding taps point at index 0 with weight 0.
    """
    fn, support = _FILTERS[filt]
    scale = n_in / n_out
    fscale = max(scale, 1.0)
    support = support * fscale
    ksize = int(np.ceil(support)) * 2 + 1
    centre = (np.arange(n_out) + 0.5) * scale
    xmin = np.maximum((centre - support + 0.5).astype(np.int64), 0)  # C (int) truncation
    xmax = np.minimum((centre + support + 0.5).astype(np.int64), n_in) - xmin
    taps = np.arange(ksize)
    valid = taps[None, :] < xmax[:, None]
    w = np.where(valid, fn((taps[None, :] + xmin[:, None] - centre[:, None] + 0.5) / fscale), 0.0)
    total = w.sum(axis=1, keepdims=True)
    w = np.where(total != 0.0, w / np.where(total == 0.0, 1.0, total), w)
    fixed = np.where(w < 0, -0.5 + w * (1 << _PRECISION), 0.5 + w * (1 << _PRECISION)).astype(np.int64)
    idx = np.where(valid, xmin[:, None] + taps[None, :], 0)
    return idx, np.where(valid, fixed, 0)


def _pass_numpy(img: np.ndarray, axis: int, n_out: int, filt: str) -> np.ndarray:
    idx, w = resample_coefficients(img.shape[axis], n_out, filt)
    acc = np.full(img.shape[:axis] + (n_out,) + img.shape[axis + 1 :], 1 << (_PRECISION - 1), np.int64)
    shape = [1] * img.ndim
    shape[axis] = n_out
    for k in range(idx.shape[1]):
        acc += np.take(img, idx[:, k], axis=axis).astype(np.int64) * w[:, k].reshape(shape)
    return np.clip(acc >> _PRECISION, 0, 255).astype(np.uint8)


def pil_resize(img: np.ndarray, size: tuple[int, int], filt: str = "bicubic") -> np.ndarray:
    """Resize a (H, W, C) uint8 image to ``size = (h, w)`` exactly as Pillow's ``Image.resize``."""
    h, w = size
    out = np.asarray(img)
    if out.shape[1] != w:
        out = _pass_numpy(out, 1, w, filt)
    if out.shape[0] != h:
        out = _pass_numpy(out, 0, h, filt)
    return out


def reference_frame(rgb: np.ndarray, size: tuple[int, int] = (224, 384)) -> np.ndarray:
    """One decoded RGB frame (H, W, 3) uint8 -> the model's (3, h, w) float32 input."""
    small = pil_resize(pil_resize(rgb, LOADER_SIZE, "bicubic"), size, "bilinear")
    return normalise(small.transpose(2, 0, 1))


def normalise(chw: np.ndarray) -> np.ndarray:
    """(3, H, W) 0..255 -> float32 (x - mean) / std per channel (the reference's Normalize)."""
    x = chw.astype(np.float32)
    mean = np.asarray(VIDEO_MEAN, np.float32)[:, None, None]
    std = np.asarray(VIDEO_STD, np.float32)[:, None, None]
    return (x - mean) / std


def fast_frame(rgb: np.ndarray, size: tuple[int, int] = (224, 384)) -> np.ndarray:
    """Direct area-averaging resize to ``size`` in one step by FFmpeg's scaler (a 1080p frame in
    ~1 ms, against ~40 ms for a numpy antialiased pass): not the reference's transform."""
    import av

    h, w = size
    if rgb.shape[:2] != (h, w):
        rgb = (
            av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            .reformat(width=w, height=h, interpolation="AREA")
            .to_ndarray()
        )
    return normalise(rgb.transpose(2, 0, 1))


# ----------------------------------------------------------------------------- torch path
def _pass_torch(img: torch.Tensor, dim: int, n_out: int, filt: str) -> torch.Tensor:
    import torch

    idx, w = resample_coefficients(img.shape[dim], n_out, filt)
    idx_t = torch.as_tensor(idx, device=img.device)
    w_t = torch.as_tensor(w, device=img.device)
    shape = [1] * img.ndim
    shape[dim] = n_out
    acc = torch.full(
        [*img.shape[:dim], n_out, *img.shape[dim + 1 :]], 1 << (_PRECISION - 1), dtype=torch.int64, device=img.device
    )
    src = img.to(torch.int64)
    for k in range(idx.shape[1]):
        acc += src.index_select(dim, idx_t[:, k]) * w_t[:, k].reshape(shape)
    return (acc >> _PRECISION).clamp_(0, 255).to(torch.uint8)


def reference_frame_torch(rgb: torch.Tensor, size: tuple[int, int] = (224, 384)) -> torch.Tensor:
    """:func:`reference_frame` on a device: (H, W, 3) uint8 tensor -> (3, h, w) float32, same bits."""
    import torch

    x = rgb
    for target, filt in ((LOADER_SIZE, "bicubic"), (size, "bilinear")):
        if x.shape[1] != target[1]:
            x = _pass_torch(x, 1, target[1], filt)
        if x.shape[0] != target[0]:
            x = _pass_torch(x, 0, target[0], filt)
    chw = x.permute(2, 0, 1).to(torch.float32)
    mean = torch.tensor(VIDEO_MEAN, dtype=torch.float32, device=x.device)[:, None, None]
    std = torch.tensor(VIDEO_STD, dtype=torch.float32, device=x.device)[:, None, None]
    return (chw - mean) / std


def colormap_jet(x: np.ndarray) -> np.ndarray:
    """(H, W) in 0..1 -> (H, W, 3) uint8, the 'jet' colour map (piecewise linear)."""
    x = np.clip(x, 0.0, 1.0)
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    return (np.stack([r, g, b], -1) * 255).astype(np.uint8)


def resize_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map in 0..1 resized to ``size`` (bilinear, antialiased), float32."""
    if m.shape == tuple(size):
        return m.astype(np.float32)
    u8 = np.clip(np.rint(m * 255), 0, 255).astype(np.uint8)[..., None]
    return pil_resize(u8, size, "bilinear")[..., 0].astype(np.float32) / 255.0


def resize_any_map(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map on any non-negative scale (a density summing to 1, raw counts) resized as
    :func:`resize_map` does, after bringing it to peak 1, so its 8 bits of 0..1 do not flatten it;
    for weights, correlations and the ROI mapping, which ignore the scale."""
    m = np.asarray(m, np.float32)
    peak = float(m.max()) if m.size else 0.0
    return resize_map(m / peak if peak > 0 and np.isfinite(peak) else m, size)


def to_u8(m: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(m * 255.0), 0, 255).astype(np.uint8)


def luma_plane(vf: Any) -> np.ndarray:
    """The Y plane of an 8-bit planar YUV PyAV frame as an (H, W) uint8 view (no colour
    conversion, the row padding dropped)."""
    plane = vf.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(vf.height, plane.line_size)[:, : vf.width]
