"""The encoding baselines: centre bias and spectral residual."""

from __future__ import annotations

import numpy as np

from salrt.rd.baselines import centre_bias, spectral_residual


def test_centre_bias_peaks_at_the_centre() -> None:
    m = centre_bias((90, 160))
    assert m.shape == (90, 160) and np.isclose(m.sum(), 1.0)
    assert np.unravel_index(m.argmax(), m.shape) in {(44, 79), (44, 80), (45, 79), (45, 80)}
    assert m[0, 0] < m[45, 80] / 10


def test_spectral_residual_finds_the_odd_one_out() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:180, 0:320]
    frame = 120 + 20 * np.sin(xx / 3.0) + rng.normal(0, 2, (180, 320))  # a regular texture
    frame[40:70, 220:250] = 230  # one distinct patch
    sal = spectral_residual(frame)
    assert np.isclose(sal.sum(), 1.0)
    h, w = sal.shape
    y, x = np.unravel_index(sal.argmax(), sal.shape)
    assert 40 / 180 * h - 3 <= y <= 70 / 180 * h + 3 and 220 / 320 * w - 3 <= x <= 250 / 320 * w + 3
