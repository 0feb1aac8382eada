"""Triton kernels for the torch backend: fused ECA compression + attention, fused DDIM update.

``enable(model)`` switches a loaded DiffSal to them (per instance, nothing global): on CUDA
tensors the kernels run, on CPU the eager path stays unless ``force=True`` (tests run the kernels
on CPU under ``TRITON_INTERPRET=1``). ``disable(model)`` restores the eager path.
"""

from __future__ import annotations

import types
from typing import Any

from salrt.errors import SalrtError


def _require_triton() -> None:
    try:
        import triton  # noqa: F401
    except ImportError:
        raise SalrtError("--kernels triton needs the triton package: pip install triton") from None


def _attn_forward(self: Any, x: Any, kv_source: Any, h: int, w: int) -> Any:
    from salrt.kernels.eca import attention, compress_tokens

    if not (x.is_cuda or self._salrt_force):
        return type(self).forward(self, x, kv_source, h, w)
    n, length, c = x.shape
    x_img = x.transpose(1, 2).reshape(n, c, h, w)
    q = self._tokens(self.q_conv, self.q_norm, self.proj_q, x_img)
    k = self.k_conv.weight.shape[-1]

    def kv(conv: Any, norm: Any, proj: Any, src: Any) -> Any:
        wgt = conv.weight[:, 0, conv.weight.shape[2] // 2]
        t = proj(compress_tokens(src, wgt, norm.weight, norm.bias, k, norm.eps, hw=(h, w)))
        return t.reshape(n, t.shape[1], self.num_heads, -1).transpose(1, 2)

    keys = kv(self.k_conv, self.k_norm, self.proj_k, kv_source)
    values = kv(self.v_conv, self.v_norm, self.proj_v, x)
    return self.proj(attention(q, keys, values, self.scale))


def enable(model: Any, force: bool = False) -> Any:
    """Route ``model``'s compressed cross-attention and DDIM updates through the Triton kernels."""
    _require_triton()
    from salrt.kernels.sampler import TritonDDIMScheduler
    from salrt.models.saliency_unet import CompressedCrossAttention

    for m in model.modules():
        if isinstance(m, CompressedCrossAttention):
            m._salrt_force = force
            m.forward = types.MethodType(_attn_forward, m)
    model.scheduler = TritonDDIMScheduler.from_scheduler(model.scheduler, force=force)
    return model


def disable(model: Any) -> Any:
    """Back to the eager path."""
    from salrt.models.saliency_unet import CompressedCrossAttention
    from salrt.sampling import DDIMScheduler

    for m in model.modules():
        if isinstance(m, CompressedCrossAttention) and "forward" in m.__dict__:
            del m.forward
    model.scheduler = DDIMScheduler(model.scheduler.num_timesteps)
    return model
