"""Cost accounting: parameters, the papers' MAC convention, and full FLOPs.

* Papers' convention: what the ``thop`` profiler reports for one forward of the reference model
  (both encoders and one denoiser pass): multiply-accumulates of hooked leaf modules (conv,
  linear, norm, softmax and upsample modules, thop's rules), functional ops such as attention
  matmuls not counted, and parameters of the leaf modules that ran. Counted here with forward
  hooks that apply thop's rules to the modules as the reference runs them (a module's own
  ``thop_macs`` where the reference runs it differently from salrt's implementation).
* Full FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (2 FLOPs per MAC, every matmul and
  attention included) for the video encoder, the audio encoder, the per-clip audio alignment and
  one denoiser pass.

Both run on the meta device: no weights are needed and nothing is computed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from salrt.models.mvit import reference_attention


def _conv_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
    # thop: output elements x (in_channels / groups) x kernel elements
    return out.numel() * (inputs[0].shape[1] // m.groups) * math.prod(m.weight.shape[2:]), _params(m)


def _params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters(recurse=False))


def _norm_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
    affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
    return 2 * inputs[0].numel() * (2 if affine else 1), _params(m)


def _linear_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
    return m.in_features * out.numel(), _params(m)


def _softmax_macs(m: nn.Module, inputs: tuple, out: torch.Tensor) -> tuple[int, int]:
    n = inputs[0].shape[m.dim]
    return (inputs[0].numel() // n) * (3 * n - 1), 0


_THOP_RULES: dict[type, Callable] = {
    nn.Conv1d: _conv_macs,
    nn.Conv2d: _conv_macs,
    nn.Conv3d: _conv_macs,
    # thop counts transposed convolutions with the convolution formula (output x in/groups x kernel)
    nn.ConvTranspose1d: _conv_macs,
    nn.ConvTranspose2d: _conv_macs,
    nn.ConvTranspose3d: _conv_macs,
    nn.BatchNorm1d: _norm_macs,
    nn.BatchNorm2d: _norm_macs,
    nn.BatchNorm3d: _norm_macs,
    nn.LayerNorm: _norm_macs,
    nn.Linear: _linear_macs,
    nn.Softmax: _softmax_macs,
}


@dataclass
class CostReport:
    """Parameters per sub-network and cost in both conventions, for one input size and step count.

    ``flops`` has one entry per part; ``denoiser_step`` (diffusion models) counts ``steps`` times.
    """

    params: dict[str, int]
    paper_macs: float
    paper_params: float
    flops: dict[str, float]
    steps: int

    @property
    def flops_encoders(self) -> float:
        return sum(v for k, v in self.flops.items() if k != "denoiser_step")

    @property
    def flops_per_clip(self) -> float:
        return self.flops_encoders + self.steps * self.flops.get("denoiser_step", 0.0)


def _one_pass(model: nn.Module, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor) -> None:
    """What the papers profile: one pass of each part the model names (:meth:`cost_parts`): one
    forward of a direct model, encoders + one denoiser pass of a diffusion model, one step of a
    streaming one."""
    model.cost_parts(lambda name, fn: fn(), inputs, x_t, t)


def paper_convention(
    model: nn.Module, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor
) -> tuple[float, float]:
    """(MACs, params) as thop reports them for one pass (see :func:`_one_pass`)."""
    macs = [0.0]
    counted: dict[nn.Module, int] = {}
    handles = []

    def hook(rule: Callable) -> Callable:
        def run(m: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            ops, params = rule(m, inputs, out)
            macs[0] += ops
            counted[m] = params

        return run

    for mod in model.modules():  # a module's own rule (how the reference runs it) before thop's
        rule = type(mod).thop_macs if hasattr(mod, "thop_macs") else _THOP_RULES.get(type(mod))
        if rule is not None:
            handles.append(mod.register_forward_hook(hook(rule)))
    try:
        with torch.no_grad():
            _one_pass(model, inputs, x_t, t)
    finally:
        for h in handles:
            h.remove()
    return macs[0], float(sum(counted.values()))


def flop_counter() -> FlopCounterMode:
    """torch's ``FlopCounterMode`` that also counts attention where PyTorch runs it on CPU:
    its registry has the CUDA kernels' ops but not ``_scaled_dot_product_flash_attention_for_cpu``,
    which ``scaled_dot_product_attention`` dispatches to under inference mode on CPU (torch 2.13), so
    a CPU run's attention would count 0 FLOPs."""
    from torch.utils import flop_counter as fc

    extra = {}
    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        extra[op] = lambda q, k, v, *args, out_shape=None, **kwargs: fc.sdpa_flop_count(q, k, v)
    return FlopCounterMode(display=False, custom_mapping=extra)


def executed_flops(fn: Callable[[], object]) -> tuple[object, float | None]:
    """``(fn(), FLOPs)`` torch dispatched during ``fn`` (:func:`flop_counter`); None when it
    dispatched none (compiled code, a replayed CUDA graph)."""
    with flop_counter() as fc:
        out = fn()
    return out, float(fc.get_total_flops()) or None


def _count(fn: Callable[[], object]) -> tuple[float, object]:
    out, flops = executed_flops(fn)
    return flops or 0.0, out


def full_flops(
    model: nn.Module, inputs: dict[str, torch.Tensor], x_t: torch.Tensor, t: torch.Tensor
) -> dict[str, float]:
    """FLOPs (torch's counter) of each part the model names (:meth:`cost_parts`): ``forward`` for
    direct models, ``encoders`` + ``denoiser_step`` for diffusion models unless they split further."""
    out: dict[str, float] = {}

    def count(name: str, fn: Callable[[], object]) -> object:
        out[name], result = _count(fn)
        return result

    # Count the model's attention, not the fused kernel's padding: use the unfused formulation.
    with torch.no_grad(), reference_attention(model):
        model.cost_parts(count, inputs, x_t, t)
    return out


def cost_report(config: object = None, batch: int = 1, steps: int = 4, model: str = "diffsal") -> CostReport:
    """Cost of model ``model`` (a registry name) at its configured input sizes, on meta tensors."""
    from salrt.models import MODELS

    model_cls, cfg_cls = MODELS[model]
    cfg = config or cfg_cls()
    with torch.device("meta"):
        net = model_cls(cfg).eval()
        inputs = net.example_inputs(batch)
        x_t = torch.empty(batch, 1, cfg.height, cfg.width)
        t = torch.zeros(batch, dtype=torch.long)
    macs, pparams = paper_convention(net, inputs, x_t, t)
    flops = full_flops(net, inputs, x_t, t)
    return CostReport(net.parameter_counts(), macs, pparams, flops, steps if "denoiser_step" in flops else 0)


def paper_comparison(model: str, report: CostReport, batch: int = 1, preset: str = "paper") -> list[dict[str, object]]:
    """Rows ``{quantity, paper, salrt, unit, difference_pct}`` for the figures the model's paper
    reports for ``preset`` (its own paper row: DTFSal(V) for ``visual``); [] when it reports none."""
    total = float(sum(report.params.values()))
    ours = {
        "paper_params": report.paper_params / 1e6,
        "paper_macs": report.paper_macs / batch / 1e9,
        "params": total / 1e6,
        "size_mb": total * 4 / 2**20,
    }
    from salrt.models import MODELS

    rows = []
    for quantity, value, unit, key in MODELS[model][0].paper_figures.get(preset, ()):
        rows.append(
            {
                "quantity": quantity,
                "paper": value,
                "salrt": ours[key],
                "unit": unit,
                "key": key,
                "difference_pct": 100.0 * (ours[key] - value) / value,
            }
        )
    return rows
