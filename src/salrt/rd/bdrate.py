"""Bjøntegaard-delta rate between two rate-distortion curves, by the standard piecewise cubic
(PCHIP) interpolation of the JCT-VC / JVET common-test-conditions sheets, through the
``bjontegaard`` package (which reproduces that sheet to 10 decimals). salrt adds what a report
needs around it: unusable points dropped and named, the quality ranges' overlap measured, and a
refusal with its reason where no BD-rate can be computed.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence

import numpy as np

from salrt.errors import require

MIN_POINTS = 3  # fewer usable points on a curve: no BD-rate (the method wants 4; 3 is its floor)
LOW_OVERLAP = 0.5  # below this share of the joint quality range a BD-rate is flagged


@dataclasses.dataclass(frozen=True)
class Curve:
    """A method's rate points: ``rates`` (kbit/s), ``quality`` (the metric), ``labels`` naming
    each point (e.g. its CRF) for the report."""

    rates: Sequence[float]
    quality: Sequence[float]
    labels: Sequence[str]


def usable(curve: Curve) -> tuple[Curve, list[str]]:
    """The points a BD computation can use: finite, sorted by rate, quality rising with rate
    (a point that does not, e.g. a saturated CRF giving the same bytes, is dropped). Returns the
    cleaned curve and one reason per dropped point."""
    pts = sorted(zip(curve.rates, curve.quality, curve.labels), key=lambda p: p[0])
    kept: list[tuple[float, float, str]] = []
    dropped = []
    for r, q, lab in pts:
        if not (np.isfinite(r) and np.isfinite(q) and r > 0):
            dropped.append(f"{lab}: not measurable (rate {r}, quality {q})")
        elif kept and (r <= kept[-1][0] or q <= kept[-1][1]):
            dropped.append(f"{lab}: quality {q:.4g} at {r:.4g} kbit/s does not rise above {kept[-1][2]}'s")
        else:
            kept.append((r, q, lab))
    return Curve([p[0] for p in kept], [p[1] for p in kept], [p[2] for p in kept]), dropped


@dataclasses.dataclass(frozen=True)
class BdRate:
    """A BD-rate (percent; negative = the test saves bits at equal quality) or the reason there is
    none; ``overlap``: the share of the joint quality range both curves cover (0..1)."""

    value: float | None
    overlap: float
    reason: str = ""
    dropped: tuple[str, ...] = ()

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def bd_rate(anchor: Curve, test: Curve) -> BdRate:
    """The BD-rate of ``test`` against ``anchor`` over their overlapping quality range."""
    require("bjontegaard", "BD-rate")
    import bjontegaard

    a, da = usable(anchor)
    t, dt = usable(test)
    dropped = tuple([f"anchor {d}" for d in da] + [f"test {d}" for d in dt])
    if min(len(a.rates), len(t.rates)) < MIN_POINTS:
        n = min(len(a.rates), len(t.rates))
        return BdRate(None, 0.0, f"only {n} usable rate points (need {MIN_POINTS})", dropped)
    lo, hi = max(min(a.quality), min(t.quality)), min(max(a.quality), max(t.quality))
    span = max(max(a.quality), max(t.quality)) - min(min(a.quality), min(t.quality))
    overlap = max(hi - lo, 0.0) / span if span > 0 else 0.0
    if overlap <= 0:
        return BdRate(None, 0.0, "the curves' quality ranges do not overlap", dropped)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(
            np.asarray(a.rates), np.asarray(a.quality), np.asarray(t.rates), np.asarray(t.quality),
            method="pchip", require_matching_points=False, min_overlap=0,
        )  # fmt: skip
    reason = f"low overlap: {overlap:.0%} of the quality range" if overlap < LOW_OVERLAP else ""
    return BdRate(float(value), overlap, reason, dropped)
