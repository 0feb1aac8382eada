"""The encoding baselines: centre bias and spectral residual."""

from __future__ import annotations

import numpy as np

from salrt.rd.baselines import centre_bias, spectral_residual


def test_centre_bias_peaks_at_the_centre() -> None:
    m = centre_bias((90, 160))
    assert m.shape == (90, 160) and np.isclose(m.max(), 1.0)
    assert np.unravel_index(m.argmax(), m.shape) in {(44, 79), (44, 80), (45, 79), (45, 80)}
    assert m[0, 0] < m[45, 80] / 10


def test_spectral_residual_finds_the_odd_one_out() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:180, 0:320]
    frame = 120 + 20 * np.sin(xx / 3.0) + rng.normal(0, 2, (180, 320))  # a regular texture
    frame[40:70, 220:250] = 230  # one distinct patch
    sal = spectral_residual(frame)
    assert np.isclose(sal.max(), 1.0)
    h, w = sal.shape
    y, x = np.unravel_index(sal.argmax(), sal.shape)
    assert 40 / 180 * h - 3 <= y <= 70 / 180 * h + 3 and 220 / 320 * w - 3 <= x <= 250 / 320 * w + 3


def test_a_baseline_steers_the_offsets_at_720p() -> None:
    """Regression: maps summing to 1 fell below 1/255 and vanished in 8-bit resizing, so the
    spectral baseline at 720p gave flat offsets and no ROI at all (BD-rate exactly 0). Maps on any
    scale now steer the offsets as their peak-1 versions do."""
    from scipy.ndimage import gaussian_filter

    from salrt.roi import QpMapper, RoiConfig, block_saliency, ffmpeg_regions

    rng = np.random.default_rng(1)
    frame = 128 + 60 * gaussian_filter(rng.normal(0, 1, (720, 1280)), 6)  # natural-looking texture
    sal = spectral_residual(frame)
    assert (sal / sal.sum()).max() < 1 / 510  # as a density, every value rounds to 0 in 8 bits
    offsets = QpMapper((720, 1280), 16, RoiConfig(3, 8, 4, smoothing=0))(sal)
    assert offsets.std() > 0.5 and len(ffmpeg_regions(offsets, 16, (720, 1280), 51.0)) > 0
    density = sal / sal.sum()
    assert np.array_equal(block_saliency(density, (720, 1280), 16), block_saliency(sal, (720, 1280), 16))
