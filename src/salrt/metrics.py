"""Saliency metrics with the MIT saliency benchmark's definitions, vectorised.

Same values as the Python port of the MIT benchmark code used by the audio-visual saliency
papers (the DiffSal reference's ``metrics/metrics.py`` is one copy), including its quirks:

- a prediction of another size is resized to the ground truth's with scikit-image's
  ``resize`` (bicubic, ``mode="reflect"``; NSS uses its default, bilinear), as that code does;
- fixation maps are binarised with ``> 0.5``;
- AUC-Judd adds ``rand * 1e-7`` jitter by default (pass ``jitter=False`` for deterministic values);
- the random draws of AUC-Judd, AUC-Borji and shuffled AUC come from ``rng``: a
  ``numpy.random.RandomState`` reproduces the reference's draws for the same seed (it uses the
  global legacy generator), a ``numpy.random.Generator`` works too; default: a fresh Generator;
- KLD is the MIT benchmark's ``sum(g * log(eps + g / (p + eps)))`` on sum-normalised maps with
  ``eps = 2.2204e-16`` (MATLAB's ``eps``).

Degenerate inputs return NaN, never raise: an empty fixation map (AUC, NSS), a constant
prediction (AUC, CC, NSS, SIM, which divide by its range or standard deviation) or a constant
ground-truth map (CC). Shape errors (different sizes where no resize applies) raise ValueError.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from salrt.errors import UsageError, require

EPS = 2.220446049250313e-16
METRICS = ("cc", "nss", "sim", "auc_judd", "auc_borji", "auc_shuffled", "kld")

Rng = np.random.RandomState | np.random.Generator | None


def _resize(x: np.ndarray, shape: tuple[int, ...], order: int | None) -> np.ndarray:
    resize = require("skimage.transform", "resizing predictions to the ground truth's size").resize
    if order is None:
        return resize(x, shape)
    return resize(x, shape, order=order, mode="reflect")


def _match(pred: np.ndarray, shape: tuple[int, ...], order: int | None = 3) -> np.ndarray:
    if pred.ndim != 2 or len(shape) != 2:
        raise UsageError(f"maps must be 2-D, got {pred.shape} and {shape}")
    return pred if pred.shape == tuple(shape) else _resize(pred, tuple(shape), order)


def _quiet(fn: Any) -> Any:
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        with np.errstate(divide="ignore", invalid="ignore"):
            return fn(*args, **kwargs)

    wrapped.__doc__, wrapped.__name__ = fn.__doc__, fn.__name__
    return wrapped


def _range(x: np.ndarray) -> np.ndarray:
    return (x - np.min(x)) / (np.max(x) - np.min(x))


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - np.mean(x)) / np.std(x)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float((np.diff(x) * (y[1:] + y[:-1]) / 2.0).sum())


def _rand(rng: Rng, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(rng, np.random.RandomState):
        return rng.rand(*shape)
    return (rng or np.random.default_rng()).random(shape)


def _randint(rng: Rng, high: int, shape: tuple[int, ...]) -> np.ndarray:
    if isinstance(rng, np.random.RandomState):
        return rng.randint(0, high, shape)
    return (rng or np.random.default_rng()).integers(0, high, shape)


def _fixations(fixations: Any) -> np.ndarray:
    return np.asarray(fixations) > 0.5


def pearson(a: Any, b: Any) -> float:
    """Pearson correlation of two arrays of any shape, flattened (NaN when either is constant);
    used to compare model outputs across backends and precisions."""
    x, y = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def format_cc(value: float, places: int = 5) -> str:
    """A correlation for a table, truncated (never rounded up to a threshold it misses: 0.998998
    prints as 0.99899, not 0.99900)."""
    return f"{np.floor(value * 10**places) / 10**places:.{places}f}"


@_quiet
def cc(pred: Any, gt_map: Any) -> float:
    """Pearson correlation between the prediction and the ground-truth density map."""
    g = np.asarray(gt_map)
    p = _match(np.asarray(pred), g.shape)
    return float(np.corrcoef(_standard(p).ravel(), _standard(g).ravel())[0, 1])


@_quiet
def nss(pred: Any, fixations: Any) -> float:
    """Mean of the standardised prediction at fixated pixels."""
    f = _fixations(fixations)
    if not f.any():
        return float("nan")
    p = _match(np.asarray(pred), f.shape, order=None)
    return float(np.mean(_standard(p)[f]))


@_quiet
def sim(pred: Any, gt_map: Any) -> float:
    """Histogram intersection of the two maps as distributions (range- then sum-normalised)."""
    g = np.asarray(gt_map)
    p = _match(np.asarray(pred), g.shape)
    p, g = _range(p), _range(g)
    p, g = p / float(np.sum(p)), g / float(np.sum(g))
    return float(np.sum(np.minimum(p, g)))


@_quiet
def kld(pred: Any, gt_map: Any) -> float:
    """KL divergence of the prediction from the ground truth (MIT benchmark, eps = 2.2204e-16)."""
    g = np.asarray(gt_map, dtype=np.float64)
    p = _match(np.asarray(pred, dtype=np.float64), g.shape)
    p, g = p / p.sum(), g / g.sum()
    return float(np.sum(g * np.log(EPS + g / (p + EPS))))


@_quiet
def auc_judd(pred: Any, fixations: Any, jitter: bool = True, rng: Rng = None) -> float:
    """AUC with every fixated pixel's value as a threshold; O(n log n)."""
    f = _fixations(fixations)
    if not f.any():
        return float("nan")
    p = _match(np.asarray(pred), f.shape)
    if jitter:
        p = (p + _rand(rng, p.shape) * 1e-7).astype(p.dtype if p.dtype.kind == "f" else np.float64)
    s = _range(p).ravel()
    s_fix = np.sort(s[f.ravel()])[::-1]
    n_fix, n_pix = s_fix.shape[0], s.shape[0]
    above = n_pix - np.searchsorted(np.sort(s), s_fix, side="left")
    k = np.arange(1, n_fix + 1)
    tp = np.r_[0.0, k / float(n_fix), 1.0]
    fp = np.r_[0.0, (above - k) / float(n_pix - n_fix), 1.0]
    return _trapezoid(tp, fp)


def _auc_sampled(s: np.ndarray, s_fix: np.ndarray, s_rand: np.ndarray, step: float) -> float:
    n_fix = s_fix.shape[0]
    fix_sorted = np.sort(s_fix)
    aucs = np.empty(s_rand.shape[1])
    for rep in range(s_rand.shape[1]):
        r = s_rand[:, rep]
        th = np.arange(0, np.max(np.r_[s_fix, r]), step)[::-1]
        tp = np.r_[0.0, (n_fix - np.searchsorted(fix_sorted, th, side="left")) / float(n_fix), 1.0]
        fp = np.r_[0.0, (r.shape[0] - np.searchsorted(np.sort(r), th, side="left")) / float(n_fix), 1.0]
        aucs[rep] = _trapezoid(tp, fp)
    return float(np.mean(aucs))


@_quiet
def auc_borji(pred: Any, fixations: Any, n_rep: int = 100, step: float = 0.1, rng: Rng = None) -> float:
    """AUC against as many uniformly drawn pixels as fixations, averaged over ``n_rep`` draws."""
    f = _fixations(fixations)
    if not f.any():
        return float("nan")
    s = _range(_match(np.asarray(pred), f.shape)).ravel()
    s_fix = s[f.ravel()]
    s_rand = s[_randint(rng, s.shape[0], (s_fix.shape[0], n_rep))]
    return _auc_sampled(s, s_fix, s_rand, step)


@_quiet
def auc_shuffled(
    pred: Any, fixations: Any, other_fixations: Any, n_rep: int = 100, step: float = 0.1, rng: Rng = None
) -> float:
    """Shuffled AUC: negatives drawn from fixations of other frames (``other_fixations``, same size)."""
    f = _fixations(fixations)
    other = _fixations(other_fixations).ravel()
    if other.shape != f.ravel().shape:
        raise UsageError(f"other_fixations shape {np.shape(other_fixations)} != fixations shape {f.shape}")
    if not f.any() or not other.any():
        return float("nan")
    s = _range(_match(np.asarray(pred), f.shape)).ravel()
    s_fix = s[f.ravel()]
    n_fix = s_fix.shape[0]
    fixated = np.nonzero(other)[0]
    perm = rng.permutation if rng is not None else np.random.default_rng().permutation
    idx = np.asarray([perm(fixated.shape[0])[:n_fix] for _ in range(n_rep)])
    return _auc_sampled(s, s_fix, s[fixated[idx.T]], step)


def all_metrics(
    pred: Any,
    gt_map: Any,
    fixations: Any,
    other_fixations: Any | None = None,
    names: tuple[str, ...] = ("cc", "nss", "sim", "auc_judd", "kld"),
    rng: Rng = None,
    jitter: bool = True,
) -> dict[str, float]:
    """The named metrics of one frame (``auc_shuffled`` needs ``other_fixations``)."""
    out: dict[str, float] = {}
    for n in names:
        if n in ("cc", "sim", "kld"):
            out[n] = globals()[n](pred, gt_map)
        elif n == "nss":
            out[n] = nss(pred, fixations)
        elif n == "auc_judd":
            out[n] = auc_judd(pred, fixations, jitter=jitter, rng=rng)
        elif n == "auc_borji":
            out[n] = auc_borji(pred, fixations, rng=rng)
        elif n == "auc_shuffled":
            if other_fixations is None:
                raise UsageError("auc_shuffled needs other_fixations")
            out[n] = auc_shuffled(pred, fixations, other_fixations, rng=rng)
        else:
            raise UsageError(f"unknown metric {n!r}; known: {', '.join(METRICS)}")
    return out


# ----------------------------------------------------------------------------- torch batches
def batch_metrics_torch(pred: Any, gt_map: Any, fixations: Any) -> dict[str, Any]:
    """CC, NSS, SIM, KLD and AUC-Judd (no jitter) of a batch (B, H, W) of same-size maps on any
    torch device, in float64; each entry is a (B,) tensor (NaN where the numpy version gives NaN)."""
    import torch

    p = pred.to(torch.float64).flatten(1)
    g = gt_map.to(torch.float64).flatten(1)
    f = fixations.flatten(1) > 0.5

    def std(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(1, keepdim=True)) / x.std(1, unbiased=False, keepdim=True)

    def rng_(x: torch.Tensor) -> torch.Tensor:
        lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
        return (x - lo) / (hi - lo)

    ps, gs = std(p), std(g)
    out = {"cc": (ps * gs).mean(1) / (ps.std(1, unbiased=False) * gs.std(1, unbiased=False))}
    nf = f.sum(1)
    out["nss"] = torch.where(nf > 0, (ps * f).sum(1) / nf, torch.nan)
    pr, gr = rng_(p), rng_(g)
    pr, gr = pr / pr.sum(1, keepdim=True), gr / gr.sum(1, keepdim=True)
    out["sim"] = torch.minimum(pr, gr).sum(1)
    pk, gk = p / p.sum(1, keepdim=True), g / g.sum(1, keepdim=True)
    out["kld"] = (gk * torch.log(EPS + gk / (pk + EPS))).sum(1)
    s = rng_(p)
    sorted_s = s.sort(1).values
    aucs = []
    for b in range(s.shape[0]):
        s_fix = s[b][f[b]].sort(descending=True).values
        n_fix, n_pix = s_fix.shape[0], s.shape[1]
        if n_fix == 0:
            aucs.append(torch.tensor(float("nan"), dtype=torch.float64, device=s.device))
            continue
        above = n_pix - torch.searchsorted(sorted_s[b], s_fix, side="left")
        k = torch.arange(1, n_fix + 1, device=s.device, dtype=torch.float64)
        zero, one = s.new_zeros(1), s.new_ones(1)
        tp = torch.cat([zero, k / n_fix, one])
        fp = torch.cat([zero, (above - k) / (n_pix - n_fix), one])
        aucs.append(torch.trapezoid(tp, fp))
    out["auc_judd"] = torch.stack(aucs)
    return out
