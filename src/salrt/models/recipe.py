"""What a model declares about its training (:meth:`salrt.models.base.SaliencyModel.training_recipe`):
the objective its paper (or, for DiffSal, its reference code) defines, the optimiser, the learning
rate schedule, gradient clipping and the paper's batch size and epochs. The trainer
(:mod:`salrt.train.trainer`) is the same for every model.

A batch is a dict: ``video`` (B,3,T,H,W), ``audio`` (B,...), ``map`` (B,1,H,W) ground-truth
density in 0..1, ``fixations`` (B,1,H,W) 0/1, optional conditions (``text``), and ``source``
(the clips' files, for error messages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from salrt import losses as L

LossFn = Callable[[Any, dict[str, Any], torch.Generator], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class TrainingRecipe:
    """``loss(model, batch, generator)`` -> ``{"total": ..., <terms>}``; ``optimizer(params)``;
    ``scheduler(optimizer, epochs)`` or None; ``schedule_on``: ``"epoch"`` (stepped after each
    epoch) or ``"plateau"`` (stepped with the validation CC, ReduceLROnPlateau in mode max);
    ``source``: where the recipe comes from."""

    loss: LossFn
    optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer]
    scheduler: Callable[[torch.optim.Optimizer, int], Any] | None
    schedule_on: str = "epoch"
    grad_clip: float | None = None
    batch_size: int = 8
    epochs: int = 10
    source: str = ""


def conditions(model: Any, batch: dict[str, Any]) -> dict[str, Any]:
    """The batch's extra model inputs (``model.conditions``); one the batch lacks is all zeros (for
    captions: no caption, TAVDiff's AV variant, as for a dataset without captions at inference)."""
    out = {}
    b, dev = batch["map"].shape[0], batch["map"].device
    for k, (shape, dtype) in model.condition_shapes().items():
        out[k] = batch[k] if k in batch else torch.zeros((b, *shape), dtype=dtype, device=dev)
    return out


def diffusion_x0_loss(
    model: Any,
    batch: dict[str, Any],
    gen: torch.Generator,
    *,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = L.mse_sum,
    t_range: tuple[int, int] | None = None,
    one_t_per_batch: bool = False,
    dequantize: float = 0.0,
    encode_kwargs: dict[str, Any] | None = None,
) -> dict[str, torch.Tensor]:
    """Forward-noise the ground truth at random timesteps and regress x0 from the denoiser.

    ``t_range``: [lo, hi) of the uniform timestep draw (default the whole schedule);
    ``one_t_per_batch``: one t for the whole batch (DiffSal's reference) instead of one per clip;
    ``dequantize``: Gaussian noise of this std added to the target first (DiffSal's reference,
    ``gaussian_dequantization``: the noised map is then the target too)."""
    gt = batch["map"]
    b = gt.shape[0]
    dev = gt.device
    x0 = gt + dequantize * torch.randn(gt.shape, generator=gen, device=dev, dtype=gt.dtype) if dequantize else gt
    lo, hi = t_range or (0, model.scheduler.num_timesteps)
    t = torch.randint(lo, hi, (1,) if one_t_per_batch else (b,), generator=gen, device=dev).expand(b)
    noise = torch.randn(x0.shape, generator=gen, device=dev, dtype=x0.dtype)
    x_t = L.q_sample(x0, t, model.scheduler.alphas_cumprod, noise)
    feats = model.encode(batch["video"], batch["audio"], **conditions(model, batch), **(encode_kwargs or {}))
    pred = model.denoise(x_t, t, feats)
    value = loss(pred, x0)
    return {"total": value, "x0_loss": value.detach()}


def saliency_terms(pred: torch.Tensor, batch: dict[str, Any], weights: dict[str, float]) -> dict[str, torch.Tensor]:
    """``sum_k w_k * term_k(pred, gt)`` over ``kld``, ``cc``, ``sim``, ``nss`` (NSS against the
    fixations), with each term reported."""
    fns = {"kld": L.kld, "cc": L.cc, "sim": L.sim, "nss": L.nss}
    out: dict[str, torch.Tensor] = {}
    total = pred.new_zeros((), dtype=torch.float32)
    for name, w in weights.items():
        v = fns[name](pred, batch["fixations"] if name == "nss" else batch["map"])
        out[name] = v.detach()
        total = total + w * v
    out["total"] = total
    return out
