"""BD-rate: the package's PCHIP against closed forms and an independent integration; the
report's handling of unusable points and curves that do not overlap."""

from __future__ import annotations

import numpy as np
import pytest

from salrt.rd.bdrate import Curve, bd_rate, usable

RATES = [9487.76, 4593.60, 2486.44, 1358.24]  # the bjontegaard package's example data (libx265 presets)
PSNR = [40.037, 38.615, 36.845, 34.851]
RATES_T = [9787.80, 4469.00, 2451.52, 1356.24]
PSNR_T = [40.121, 38.651, 36.970, 34.987]


def _curve(r, q):
    return Curve(r, q, [f"p{i}" for i in range(len(r))])


@pytest.mark.parametrize("factor", [0.8, 1.25, 0.5])
def test_scaled_rates_give_the_scale(factor: float) -> None:
    res = bd_rate(_curve(RATES, PSNR), _curve([r * factor for r in RATES], PSNR))
    assert res.value == pytest.approx((factor - 1) * 100, abs=1e-9)
    assert res.overlap == pytest.approx(1.0) and res.reason == ""


def test_equals_an_independent_pchip_integration() -> None:
    """The standard method by hand (scipy's PCHIP of log10 rate over quality, integrated over the
    overlap): the value the JVET sheet's method gives."""
    from scipy.interpolate import PchipInterpolator

    def integral(r, q, lo, hi):
        order = np.argsort(q)
        f = PchipInterpolator(np.asarray(q)[order], np.log10(np.asarray(r))[order])
        return f.integrate(lo, hi)

    lo, hi = max(min(PSNR), min(PSNR_T)), min(max(PSNR), max(PSNR_T))
    diff = (integral(RATES_T, PSNR_T, lo, hi) - integral(RATES, PSNR, lo, hi)) / (hi - lo)
    expected = (10**diff - 1) * 100
    res = bd_rate(_curve(RATES, PSNR), _curve(RATES_T, PSNR_T))
    assert res.value == pytest.approx(expected, abs=1e-6)
    assert res.value == pytest.approx(-4.4175, abs=1e-3)  # recorded from bjontegaard 1.3.0 (pchip)


def test_unusable_points_are_dropped_and_named() -> None:
    curve = _curve([100, 200, 200, 400, 300], [30, 32, 33, 31, 34])  # a repeated rate, a quality dip
    kept, dropped = usable(curve)
    assert list(kept.rates) == [100, 200, 300] and len(dropped) == 2
    assert all("does not rise" in d for d in dropped)
    res = bd_rate(_curve(RATES, PSNR), _curve([100, 200, np.nan], [30, 31, 32]))
    assert res.value is None and "usable rate points" in res.reason and any("not measurable" in d for d in res.dropped)


def test_disjoint_quality_ranges_are_refused() -> None:
    res = bd_rate(_curve(RATES, PSNR), _curve(RATES, [p + 10 for p in PSNR]))
    assert res.value is None and "do not overlap" in res.reason
    low = bd_rate(_curve(RATES, PSNR), _curve(RATES, [p + 4.5 for p in PSNR]))
    assert low.value is not None and low.reason.startswith("low overlap")
