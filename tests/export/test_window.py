"""The frames-once serving model (``<model>_window`` in a Triton repository): the window prelude
gives the servable bit for bit the video a local backend gives it, the window state shifts as a
stream goes on, the config declares Triton's sequence batching with the window as implicit state,
and the client's helpers (pixels back from a normalised clip, the overlap with the server's
window) are exact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tritonclient.grpc")
import onnxruntime as ort  # noqa: E402
from google.protobuf import text_format  # noqa: E402
from tritonclient.grpc import model_config_pb2 as pb  # noqa: E402

from salrt.backends.triton_backend import overlap_frames  # noqa: E402
from salrt.errors import SalrtError  # noqa: E402
from salrt.export.triton import check_repository, write_repository  # noqa: E402
from salrt.export.window import normalisation, to_pixels, window_shape  # noqa: E402


@pytest.fixture(scope="module")
def repo(tiny_export: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    r = tmp_path_factory.mktemp("window") / "repo"
    write_repository(tiny_export, r, window_idle_s=30.0)
    return r


def _normalised(px: np.ndarray, man: dict) -> np.ndarray:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, H, W) float32, as salrt.io.imaging.normalise does."""
    mean, std = normalisation(man)
    return ((px.astype(np.float32) - mean) / std).transpose(0, 4, 1, 2, 3)


def test_the_window_model_gives_the_servable_the_local_video(tiny_export: Path, repo: Path) -> None:
    man = json.loads((tiny_export / "manifest.json").read_text())
    t, h, w = window_shape(man)
    sess = ort.InferenceSession(str(repo / "diffsal_window" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    local = ort.InferenceSession(
        str(tiny_export / man["graphs"]["sampler"]["file"]), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (1, 40, h, w, 3), dtype=np.uint8)
    audio = rng.standard_normal((1, *man["graphs"]["sampler"]["inputs"]["audio"]["shape"][1:])).astype(np.float32)
    noise = rng.standard_normal((1, 1, h, w)).astype(np.float32)
    state = np.zeros((1, t, h, w, 3), np.uint8)
    # a start (the whole window), then the stride's new frames, then a jump of 12
    for lo, new in ((0, t), (4, 4), (8, 4), (20, 12)):
        out = dict(zip(names, sess.run(None, {"frames": frames[:, lo + t - new : lo + t], "window_in": state,
                                               "audio": audio, "noise": noise})))  # fmt: skip
        want = frames[:, lo : lo + t]
        assert np.array_equal(out["window_out"], want), lo
        ref = local.run(None, {"video": _normalised(want, man), "audio": audio, "noise": noise})[0]
        assert np.array_equal(out["map"], ref), lo  # the same floats: same video, same graph
        state = out["window_out"]


def test_the_config_declares_the_window_as_implicit_state(repo: Path, tiny_export: Path) -> None:
    cfg = text_format.Parse((repo / "diffsal_window" / "config.pbtxt").read_text(), pb.ModelConfig())
    seq = cfg.sequence_batching
    assert cfg.platform == "onnxruntime_onnx" and cfg.max_batch_size == 4 and seq.HasField("direct")
    assert seq.max_sequence_idle_microseconds == 30_000_000
    (st,) = seq.state
    assert (st.input_name, st.output_name, st.data_type) == ("window_in", "window_out", pb.TYPE_UINT8)
    assert list(st.dims) == [16, 64, 128, 3] and st.initial_state[0].zero_data
    assert {t.name: t.data_type for t in cfg.input} == {"frames": pb.TYPE_UINT8, "audio": pb.TYPE_FP32,
                                                        "noise": pb.TYPE_FP32}  # fmt: skip
    assert list(next(t for t in cfg.input if t.name == "frames").dims) == [-1, 64, 128, 3]
    assert [t.name for t in cfg.output] == ["map"]
    index = check_repository(repo)  # the config agrees with its graph, state tensors aside
    assert index["models"]["diffsal_window"]["window"]["slots"] == 4
    carried = json.loads(
        text_format.Parse((repo / "diffsal" / "config.pbtxt").read_text(), pb.ModelConfig())
        .parameters["salrt_manifest"]
        .string_value
    )
    assert carried["window"]["model"] == "diffsal_window" and carried["window"]["frames"] == 16


def test_a_config_whose_state_disagrees_with_the_graph_is_refused(repo: Path, tmp_path: Path) -> None:
    import shutil

    r = tmp_path / "r"
    shutil.copytree(repo, r)
    cfg = r / "diffsal_window" / "config.pbtxt"
    cfg.write_text(
        cfg.read_text().replace('{ name: "frames" data_type: TYPE_UINT8', '{ name: "frames" data_type: TYPE_FP32')
    )
    with pytest.raises(SalrtError, match="diffsal_window"):
        check_repository(r)


def test_no_window_model_for_a_streaming_model(tmp_path: Path) -> None:
    from salrt.cli import main

    exp = tmp_path / "student"
    assert (
        main(["export", "--model", "student", "--config", "tiny", "--random-weights", "-o", str(exp), "--quiet"]) == 0
    )
    man = json.loads((exp / "manifest.json").read_text())
    assert window_shape(man) is None  # its server is stateless already: the client keeps the state
    index = write_repository(exp, tmp_path / "repo")
    assert not any(e.get("role") == "window" for e in index["models"].values())


def test_pixels_come_back_exactly_or_not_at_all(tiny_export: Path) -> None:
    man = json.loads((tiny_export / "manifest.json").read_text())
    mean, std = normalisation(man)
    every = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, None, :, None], (2, 3, 256, 3)).copy()
    video = _normalised(every[None], man)[0]
    assert np.array_equal(to_pixels(video, mean, std), every)  # all 256 levels in every channel
    assert to_pixels(video + 1e-3, mean, std) is None  # not from 8-bit pixels: the clip goes whole
    assert to_pixels(np.full_like(video, 50.0), mean, std) is None  # out of the 8-bit range


def test_overlap_with_the_servers_window() -> None:
    rng = np.random.default_rng(0)
    f = rng.integers(0, 256, (40, 4, 6, 3), dtype=np.uint8)
    assert overlap_frames(f[0:16], f[8:24]) == 8
    assert overlap_frames(f[0:16], f[1:17]) == 1
    assert overlap_frames(f[0:16], f[20:36]) is None  # a jump (dropped clips, a reconnect)
    assert overlap_frames(f[0:16], f[0:16]) is None  # the same clip again: sent whole, never empty
    end = np.concatenate([f[24:32], np.repeat(f[31:32], 8, 0)])  # the stream's last frame repeated
    assert overlap_frames(f[16:32], end) == 8
    still = np.repeat(f[:1], 16, 0)  # a still picture: one new frame is enough
    assert overlap_frames(still, still.copy()) == 1
    assert overlap_frames(f[0:16], f[8:16]) is None  # another window length
