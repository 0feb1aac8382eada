"""salrt.export.flops: an exported graph's FLOPs equal torch's count of the module it was traced from."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from salrt.errors import SalrtError  # noqa: E402
from salrt.export.flops import onnx_flops  # noqa: E402


class Mixed(nn.Module):
    """Every node kind the counter knows: Conv (grouped, 3-D), ConvTranspose, Gemm, MatMul
    (batched, broadcast), Einsum; shapes that only symbolic inference resolves (a Pad whose
    amounts are computed from a Shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, (1, 3, 3), padding=(0, 1, 1))
        self.group = nn.Conv2d(8, 8, 3, padding=1, groups=4)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = nn.Linear(4, 6)
        self.rel = nn.Parameter(torch.randn(5, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)[:, :, 0]  # (B, 8, H, W)
        y = self.up(self.group(y))  # (B, 4, 2H, 2W)
        t = y.flatten(2).transpose(1, 2)  # (B, N, 4)
        pad = t.shape[1] // 4 + 1  # an amount computed from a shape at run time
        t = nn.functional.pad(self.fc(t), (0, 0, 0, pad))  # (B, N + pad, 6)
        att = (t @ t.transpose(1, 2)).softmax(-1) @ t  # (B, M, 6)
        return torch.einsum("bmc,kc->bmk", att, self.rel)


@pytest.mark.parametrize("batch", [1, 3])
def test_graph_flops_equal_torch_count(tmp_path: Path, batch: int) -> None:
    m = Mixed().eval()
    x = torch.randn(batch, 3, 2, 6, 10)
    path = tmp_path / "m.onnx"
    torch.onnx.export(
        m, (x,), str(path), input_names=["x"], dynamic_axes={"x": {0: "b"}}, opset_version=17, dynamo=False
    )
    with FlopCounterMode(display=False) as fc:
        m(x)
    assert onnx_flops(path, {"x": tuple(x.shape)}) == pytest.approx(fc.get_total_flops(), rel=1e-12)


def test_unknown_shapes_are_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, ["n", 4])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [4, "k"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["y"])], "g", [a, b], [y])
    path = tmp_path / "g.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert onnx_flops(path, {"a": (2, 4), "b": (4, 5)}) == 2 * 2 * 4 * 5
    with pytest.raises(SalrtError, match="MatMul"):
        onnx_flops(path, {"a": (2, 4)})  # b's second dimension left unknown
