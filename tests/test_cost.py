"""salrt.cost.flop_counter: attention counted where PyTorch runs it on CPU."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from salrt.cost import flop_counter  # noqa: E402


def test_cpu_attention_is_counted() -> None:
    q, k = torch.randn(1, 2, 64, 32), torch.randn(1, 2, 16, 32)
    explicit = 2 * (2 * 2 * 64 * 16 * 32)  # q k^T and the weighted sum of v, 2 FLOPs per multiply-add
    with torch.inference_mode():
        with FlopCounterMode(display=False) as plain:
            torch.nn.functional.scaled_dot_product_attention(q, k, k)
        with flop_counter() as ours:
            torch.nn.functional.scaled_dot_product_attention(q, k, k)
        with flop_counter() as manual:
            (q @ k.transpose(-1, -2) / 32**0.5).softmax(-1) @ k
    assert plain.get_total_flops() in (0, explicit)  # 0 where torch's registry lacks the CPU kernel
    assert ours.get_total_flops() == explicit == manual.get_total_flops()
