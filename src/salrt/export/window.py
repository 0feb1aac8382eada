"""The frames-once serving graph: a clip model's servable with its frame window kept as state.

A client streaming to a model server sends each frame once, as the uint8 RGB picture at the
model's input size (``frames``, (B, n, H, W, 3)), and the server keeps each stream's last ``T``
frames (``window_in`` -> ``window_out``, (B, T, H, W, 3) uint8): Triton's sequence batcher with
implicit state, or ``salrt serve``'s own per-stream store. The graph is the export's servable
(the unrolled sampler or the predictor) with a prelude in front of its ``video`` input::

    window_out = concat(window_in, frames, axis=1)[:, -T:]          # the stream's window, updated
    video      = transpose((float(window_out) - mean) / std, to B,3,T,H,W)   # the model's input

The prelude is the manifest's preprocessing (8-bit pixels, per-channel mean and std in float32),
so the video the servable sees is bit for bit the one a local backend gives it. A stream starts
(or restarts after a gap, a reconnect, a server restart) by sending a whole window (n = T); then
only the frames a clip adds (n = stride). Imports onnx only when a graph is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import ExportError

STATE_IN, STATE_OUT, FRAMES = "window_in", "window_out", "frames"


def window_shape(manifest: dict[str, Any]) -> tuple[int, int, int] | None:
    """(T, H, W) of the servable's clip when it takes a B,3,T,H,W RGB video of 8-bit pixels; None
    for a model without one (a streaming model: its server is already stateless per frame)."""
    from salrt.export.triton import servable_graph

    pre = manifest.get("preprocessing", {}).get("video", {})
    if "step" in manifest["graph_roles"] or not pre.get("layout", "").startswith("B,3,T,H,W") or "mean" not in pre:
        return None
    video = manifest["graphs"][servable_graph(manifest)]["inputs"].get("video")
    if video is None or len(video["shape"]) != 5:
        return None
    _, c, t, h, w = video["shape"]
    return int(t), int(h), int(w)


def normalisation(manifest: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel mean and std (float32, shape (3,)) the servable's video was made with."""
    pre = manifest["preprocessing"]["video"]
    return np.asarray(pre["mean"], np.float32), np.asarray(pre["std"], np.float32)


def to_pixels(video: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray | None:
    """A normalised clip (3, T, H, W) float32 back to its (T, H, W, 3) uint8 pixels, or None when
    it was not made from 8-bit pixels by ``(x - mean) / std`` (checked exactly: the pixels are
    normalised again and compared, so the server's window gives the model this very video)."""
    v = np.asarray(video, np.float32)
    m, s = mean[:, None, None, None], std[:, None, None, None]
    x = np.rint(v * s + m)
    if x.min(initial=0.0) < 0 or x.max(initial=0.0) > 255:
        return None
    px = x.astype(np.uint8)
    if not np.array_equal((px.astype(np.float32) - m) / s, v):
        return None
    return np.ascontiguousarray(px.transpose(1, 2, 3, 0))


def window_graph(servable: str | Path, manifest: dict[str, Any]) -> Any:
    """The servable ONNX graph at ``servable`` with the window prelude in front (see the module
    docstring): inputs ``frames`` (B, n, H, W, 3) uint8, ``window_in`` (B, T, H, W, 3) uint8 and
    the servable's other inputs; outputs its map and ``window_out``."""
    import onnx
    from onnx import TensorProto, compose, helper

    shape = window_shape(manifest)
    if shape is None:
        raise ExportError(f"{manifest['model']}: its servable takes no B,3,T,H,W clip of 8-bit pixels")
    t, h, w = shape
    model = onnx.load(str(servable))
    names = {i.name for i in model.graph.input}
    if "video" not in names:
        raise ExportError(f"{servable}: the servable graph has no 'video' input")
    video_type = next(i for i in model.graph.input if i.name == "video").type.tensor_type.elem_type
    mean, std = normalisation(manifest)
    pre = "salrt_window_"
    nodes = [
        helper.make_node("Concat", [STATE_IN, FRAMES], [pre + "all"], axis=1),
        helper.make_node("Slice", [pre + "all", pre + "start", pre + "end", pre + "axis"], [STATE_OUT]),
        helper.make_node("Cast", [STATE_OUT], [pre + "float"], to=TensorProto.FLOAT),
        helper.make_node("Sub", [pre + "float", pre + "mean"], [pre + "centred"]),
        helper.make_node("Div", [pre + "centred", pre + "std"], [pre + "normalised"]),
        helper.make_node("Transpose", [pre + "normalised"], [pre + "video"], perm=[0, 4, 1, 2, 3]),
    ]
    last = pre + "video"
    if video_type != TensorProto.FLOAT:  # an fp16 export: the local backends cast the float32 clip too
        nodes.append(helper.make_node("Cast", [last], [pre + "video_cast"], to=video_type))
        last = pre + "video_cast"
    nodes.append(helper.make_node("Identity", [last], ["video"]))
    inits = [
        helper.make_tensor(pre + "start", TensorProto.INT64, [1], [-t]),
        helper.make_tensor(pre + "end", TensorProto.INT64, [1], [np.iinfo(np.int64).max]),
        helper.make_tensor(pre + "axis", TensorProto.INT64, [1], [1]),
        helper.make_tensor(pre + "mean", TensorProto.FLOAT, [1, 1, 1, 1, 3], mean.tolist()),
        helper.make_tensor(pre + "std", TensorProto.FLOAT, [1, 1, 1, 1, 3], std.tolist()),
    ]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    b = batch.dim_value if batch.HasField("dim_value") else (batch.dim_param or "batch")
    graph = helper.make_graph(
        nodes,
        "salrt_window",
        [
            helper.make_tensor_value_info(FRAMES, TensorProto.UINT8, [b, "new_frames", h, w, 3]),
            helper.make_tensor_value_info(STATE_IN, TensorProto.UINT8, [b, t, h, w, 3]),
        ],
        [
            helper.make_tensor_value_info("video", video_type, [b, 3, t, h, w]),
            helper.make_tensor_value_info(STATE_OUT, TensorProto.UINT8, [b, t, h, w, 3]),
        ],
        initializer=inits,
    )
    prelude = helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)
    merged = compose.merge_models(
        prelude, model, io_map=[("video", "video")], outputs=[*[o.name for o in model.graph.output], STATE_OUT]
    )
    onnx.checker.check_model(merged)
    return merged
