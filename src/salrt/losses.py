"""Training objectives as differentiable torch functions on (B, 1, H, W) maps, each the mirror of
the metric of the same name in :mod:`salrt.metrics` (tested against it on random maps), plus the
diffusion models' x0 regression. Every function returns the mean over the batch.

Conventions follow the metrics (MIT benchmark): KLD and SIM treat the maps as distributions, CC
standardises both, NSS standardises the prediction and averages it over fixated pixels.
"""

from __future__ import annotations

import torch

EPS = 2.2204e-16  # the MIT benchmark's eps, as salrt.metrics.kld


def _flat(x: torch.Tensor) -> torch.Tensor:
    """(B, ...) -> (B, N) in float32 at least (losses are computed in fp32 under autocast)."""
    return x.reshape(x.shape[0], -1).float()


def kld(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """KL(gt || pred) of the maps as distributions: sum g log(eps + g / (p + eps))."""
    p, g = _flat(pred), _flat(gt)
    p = p / p.sum(1, keepdim=True).clamp_min(EPS)
    g = g / g.sum(1, keepdim=True).clamp_min(EPS)
    return (g * torch.log(EPS + g / (p + EPS))).sum(1).mean()


def cc(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of prediction and ground-truth map."""
    p, g = _flat(pred), _flat(gt)
    p = p - p.mean(1, keepdim=True)
    g = g - g.mean(1, keepdim=True)
    num = (p * g).sum(1)
    den = torch.sqrt((p * p).sum(1) * (g * g).sum(1)).clamp_min(EPS)
    return (num / den).mean()


def sim(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Histogram intersection of the range- then sum-normalised maps (the min has a subgradient)."""

    def norm(x: torch.Tensor) -> torch.Tensor:
        lo, hi = x.min(1, keepdim=True).values, x.max(1, keepdim=True).values
        x = (x - lo) / (hi - lo).clamp_min(EPS)
        return x / x.sum(1, keepdim=True).clamp_min(EPS)

    return torch.minimum(norm(_flat(pred)), norm(_flat(gt))).sum(1).mean()


def nss(pred: torch.Tensor, fixations: torch.Tensor) -> torch.Tensor:
    """Mean standardised prediction at the fixated pixels (``fixations`` > 0.5); frames without
    fixations are left out of the mean."""
    p, f = _flat(pred), _flat(fixations) > 0.5
    p = (p - p.mean(1, keepdim=True)) / p.std(1, unbiased=False, keepdim=True).clamp_min(EPS)
    n = f.sum(1)
    per = (p * f).sum(1) / n.clamp_min(1)
    keep = n > 0
    return per[keep].mean() if keep.any() else per.sum() * 0.0


def mse_sum(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the pixels of each map, averaged over the batch (DiffSal's and
    MUBiC's x0 loss, Eq. 3.53)."""
    return (_flat(pred) - _flat(gt)).square().sum(1).mean()


def mse_mean(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Per-pixel mean squared error (TAVDiff's Eq. 8)."""
    return (_flat(pred) - _flat(gt)).square().mean()


def q_sample(x0: torch.Tensor, t: torch.Tensor, alphas_cumprod: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward noising x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise, per sample's ``t`` (B,)."""
    a = alphas_cumprod.to(x0.device)[t].to(x0.dtype).view(-1, *([1] * (x0.dim() - 1)))
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
