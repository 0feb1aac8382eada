"""FLOPs of an exported ONNX graph as it is executed at given input shapes.

Counts what ``torch.utils.flop_counter.FlopCounterMode`` counts in eager PyTorch, so that the two
are comparable: 2 FLOPs per multiply-accumulate of every ``MatMul``, ``Gemm``, ``Einsum``,
``Conv`` and ``ConvTranspose`` node (normalisation, softmax, resampling and elementwise nodes are
not counted). Shapes come from symbolic shape inference after the graph's inputs are fixed to the
shapes given; the weights are not loaded.

The backends that run exported graphs (onnxruntime, OpenVINO, TensorRT) count each graph call with
this, so ``salrt bench`` credits a backend with the graph it executed (unrolled samplers, padded
batches and the export's own decomposition included), not with the eager model's count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from salrt.errors import SalrtError

_COUNTED = ("MatMul", "Gemm", "Einsum", "Conv", "ConvTranspose")


def _dims(value_info: object) -> tuple[int, ...] | None:
    """The static shape of a value, or None when any dimension is unknown."""
    t = value_info.type.tensor_type  # type: ignore[attr-defined]
    if not t.HasField("shape"):
        return None
    dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
    return None if any(d < 0 for d in dims) else dims


def _attr(node: object, name: str, default: object) -> object:
    import onnx

    for a in node.attribute:  # type: ignore[attr-defined]
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _einsum_flops(equation: str, shapes: Sequence[tuple[int, ...]]) -> float:
    """2 x the product of every index's size (one multiply-add per point of the joint index space)."""
    lhs = equation.replace(" ", "").split("->")[0].split(",")
    sizes: dict[str, int] = {}
    for term, shape in zip(lhs, shapes):
        pre, _, post = term.partition("...")
        k = len(shape) - len(pre) - len(post)  # dims under the ellipsis, aligned from the right
        names = [*pre, *(f"#{i}" for i in range(k)), *post]
        for n, s in zip(names, shape):
            sizes[n] = max(sizes.get(n, 1), s)
    return 2.0 * math.prod(sizes.values())


def node_flops(op: str, node: object, ins: Sequence[tuple[int, ...] | None], out: tuple[int, ...] | None) -> float:
    """FLOPs of one counted node from its input and output shapes.

    Raises ``SalrtError`` when a shape the count needs is unknown."""
    if op == "Einsum":
        if any(s is None for s in ins):
            raise SalrtError("Einsum with an unknown input shape")
        return _einsum_flops(str(_attr(node, "equation", b"").decode()), ins)  # type: ignore[union-attr, arg-type]
    if out is None or ins[0] is None or (op != "Conv" and op != "ConvTranspose" and ins[1] is None):
        raise SalrtError(f"{op} with an unknown shape")
    if op == "MatMul":  # every output element: one dot product over A's last dimension
        return 2.0 * math.prod(out) * ins[0][-1]  # type: ignore[index]
    if op == "Gemm":
        a = ins[0]
        k = a[0] if _attr(node, "transA", 0) else a[1]  # type: ignore[index]
        return 2.0 * math.prod(out) * k
    w = ins[1]
    if w is None:
        raise SalrtError(f"{op} with an unknown weight shape")
    if op == "Conv":  # each output element: (C_in / groups) x kernel MACs; w is (C_out, C_in/g, *k)
        return 2.0 * math.prod(out) * math.prod(w[1:])
    # ConvTranspose: each input element scatters into C_out/g x kernel outputs; w is (C_in, C_out/g, *k)
    return 2.0 * math.prod(ins[0]) * math.prod(w[1:])


def onnx_flops(path: str | Path, input_shapes: Mapping[str, Sequence[int]]) -> float:
    """FLOPs of one run of the ONNX graph at ``path`` with its inputs shaped ``input_shapes``.

    Raises ``SalrtError`` when shape inference leaves a counted node's shape unknown (the count
    would be wrong, not merely approximate)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for inp in model.graph.input:
        if inp.name in input_shapes:
            dims = inp.type.tensor_type.shape.dim
            for d, v in zip(dims, input_shapes[inp.name]):
                d.Clear()
                d.dim_value = int(v)
    try:
        # onnx's own inference leaves shapes computed at run time unknown (Pad and Reshape fed by
        # Shape arithmetic); the symbolic inference shipped with onnxruntime (a core dependency,
        # used here as ONNX tooling, not as a backend) resolves them
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        model = SymbolicShapeInference.infer_shapes(model, auto_merge=True)
    except Exception as exc:  # the tool raises bare Exceptions on graphs it cannot follow
        raise SalrtError(f"{Path(path).name}: shape inference failed: {exc}") from exc
    g = model.graph
    shapes: dict[str, tuple[int, ...] | None] = {}
    for v in [*g.input, *g.value_info, *g.output]:
        shapes[v.name] = _dims(v)
    for init in g.initializer:
        shapes[init.name] = tuple(init.dims)
    total = 0.0
    for node in g.node:
        if node.op_type not in _COUNTED:
            continue
        ins = [shapes.get(n) for n in node.input if n]
        try:
            total += node_flops(node.op_type, node, ins, shapes.get(node.output[0]))
        except SalrtError as exc:
            raise SalrtError(f"{Path(path).name}: node {node.name or node.op_type}: {exc}") from None
    return total
