"""The maps a saliency model has to beat for encoding: a content-free centre bias and a classic
frame-level image saliency (spectral residual), both free of training.

Spectral residual (Hou & Zhang, CVPR 2007) is written out here: it is a dozen lines of FFTs and
the libraries that carry it (OpenCV's contrib saliency module) would be a large dependency for it.
"""

from __future__ import annotations

import numpy as np


def centre_bias(hw: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """(H, W) float32 isotropic Gaussian at the frame centre, ``sigma`` a fraction of each side
    (the eye-tracking datasets' centre prior), peak 1 (a saliency map's 0..1 scale)."""
    h, w = hw
    yy = (np.arange(h, dtype=np.float64) + 0.5) / h - 0.5
    xx = (np.arange(w, dtype=np.float64) + 0.5) / w - 0.5
    m = np.exp(-(yy[:, None] ** 2 + xx[None, :] ** 2) / (2 * sigma**2))
    return (m / m.max()).astype(np.float32)


def spectral_residual(luma: np.ndarray, width: int = 64, blur: float = 2.5) -> np.ndarray:
    """(h, w) float32 spectral-residual saliency of a frame's luma (H, W), computed at ``width``
    pixels wide as the method prescribes (64), peak 1 (a saliency map's 0..1 scale: summing to 1,
    its values fell below 1/255 and vanished in 8-bit resizing); resize it to the frame to use it.

    log-amplitude spectrum minus its 3x3 local mean, recombined with the phase, squared magnitude
    of the inverse FFT, Gaussian blur (``blur`` pixels at the small size)."""
    from scipy.ndimage import gaussian_filter, uniform_filter, zoom

    y = np.asarray(luma, np.float64)
    h, w = y.shape
    small = zoom(y, (max(1, round(h * width / w)) / h, width / w), order=1)
    spec = np.fft.fft2(small)
    log_amp = np.log(np.abs(spec) + 1e-9)
    residual = log_amp - uniform_filter(log_amp, size=3, mode="nearest")
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spec)))) ** 2
    sal = gaussian_filter(sal, blur)
    return (sal / max(sal.max(), 1e-12)).astype(np.float32)
