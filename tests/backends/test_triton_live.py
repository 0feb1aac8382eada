"""A live Triton Inference Server on loopback: ``salrt serve`` (PyTriton's bundled server) on a
salrt repository, ``salrt run --backend triton`` against it over HTTP and gRPC, maps equal to the
local onnxruntime backend's; a server killed mid-stream is reported, outputs kept.

The server runs from a Python with ``salrt[serve]`` (nvidia-pytriton pins numpy<2, so it lives
in its own venv): ``SALRT_TRITON_PYTHON=/path/to/venv/bin/python``, pytriton in this environment,
or, in CI (``CI`` set) or with ``SALRT_TEST_TRITON=1``, a venv this module builds from the
package index (~370 MB, about a minute). Skipped otherwise; ``benchmarks/bench_triton.py`` runs
the same path and its results are committed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from salrt.app.serve import spawn
from salrt.cli import main
from salrt.io import make_clip

pytest.importorskip("tritonclient.http")
ROOT = Path(__file__).resolve().parents[2]
SERVER_PYTHON = os.environ.get("SALRT_TRITON_PYTHON") or (
    sys.executable if importlib.util.find_spec("pytriton") else None
)
BUILD_VENV = SERVER_PYTHON is None and bool(os.environ.get("CI") or os.environ.get("SALRT_TEST_TRITON"))
pytestmark = pytest.mark.skipif(
    SERVER_PYTHON is None and not BUILD_VENV,
    reason="no PyTriton: set SALRT_TRITON_PYTHON to a Python with salrt[serve] (or SALRT_TEST_TRITON=1)",
)


def server_python(tmp: Path) -> str:
    """A Python that can run ``salrt serve``: the given one, or a fresh venv with salrt[serve]."""
    if SERVER_PYTHON is not None:
        return SERVER_PYTHON
    import venv

    env = tmp / "serve_venv"
    venv.EnvBuilder(with_pip=True).create(env)
    py = str(env / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "nvidia-pytriton>=0.7", "onnxruntime>=1.17", "av>=16.1", "rich>=13", "pillow>=9.4",
                    "setuptools>=68", "wheel"], check=True, timeout=900)  # fmt: skip
    subprocess.run([*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True, timeout=600)
    return py


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_export: Path):
    d = tmp_path_factory.mktemp("live")
    exp, repo = tiny_export, d / "repo"
    assert main(["export", "--format", "triton", "--export-dir", str(exp), "-o", str(repo), "--quiet"]) == 0
    server = spawn(repo, python=server_python(d), log=d / "server.log")
    yield d, exp, server
    server.stop()


def _run(args: list[str]) -> int:
    return main(["run", *args, "--outputs", "npy", "--quiet"])


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_maps_equal_the_local_backend(served, protocol: str) -> None:
    d, exp, server = served
    a = make_clip(d / f"a_{protocol}.mp4", seed=4, seconds=0.5, width=96, height=64)
    b = make_clip(d / f"b_{protocol}.mkv", seed=5, seconds=0.3, width=96, height=64)
    url = server.http_url if protocol == "http" else server.grpc_url
    inputs = [str(a.path), str(b.path)]
    # steps 2: the servable sampler; 1: the encoder and denoiser models with salrt's loop here.
    # One input per run: with several, the clips' noise follows their arrival order, which is
    # timing (the two-input run below checks the outputs, the floats are checked in test_float_maps).
    for steps in ("2", "1"):
        for stem, clip in (("a", a), ("b", b)):
            remote, local = d / f"r_{protocol}{steps}{stem}", d / f"l_{protocol}{steps}{stem}"
            common = [str(clip.path), "--steps", steps]
            assert _run([*common, "-o", str(remote), "--backend", "triton", "--url", url]) == 0
            assert _run([*common, "-o", str(local), "--backend", "onnxruntime", "--export-dir", str(exp)]) == 0
            r = np.load(remote / f"{stem}_{protocol}_maps.npy")
            assert r.shape == (clip.n_frames, 64, 128)
            assert np.array_equal(r, np.load(local / f"{stem}_{protocol}_maps.npy")), (protocol, steps, stem)
    both = d / f"both_{protocol}"
    assert _run([*inputs, "-o", str(both), "--backend", "triton", "--url", url, "--steps", "2", "--batch", "2"]) == 0
    for stem, clip in (("a", a), ("b", b)):
        assert np.load(both / f"{stem}_{protocol}_maps.npy").shape == (clip.n_frames, 64, 128)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_float_maps(served, protocol: str) -> None:
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.triton_backend import TritonBackend

    d, exp, server = served
    url = server.http_url if protocol == "http" else server.grpc_url
    remote, local = TritonBackend(url, "diffsal"), OnnxRuntimeBackend(exp)
    g = local.manifest["graphs"]
    rng = np.random.default_rng(0)
    for b in (1, 3, 6):  # 6: more than the server's max batch (4), split by the client
        video = rng.standard_normal((b, *g["video_encoder"]["inputs"]["video"]["shape"][1:])).astype(np.float32)
        audio = rng.standard_normal((b, *g["audio_encoder"]["inputs"]["audio"]["shape"][1:])).astype(np.float32)
        noise = rng.standard_normal((b, 1, 64, 128)).astype(np.float32)
        for steps in (2, 1):
            x = remote.sample(video, audio, steps=steps, noise=noise)
            y = local.sample(video, audio, steps=steps, noise=noise)
            assert x.shape == (b, 1, 64, 128) and np.abs(x - y).max() <= 1e-5, (b, steps)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_frames_once_equals_the_local_backend_with_fewer_bytes(served, protocol: str) -> None:
    """Each frame sent once (the server keeps the window): the maps are the local backend's, the
    bytes on the wire a fraction of the clip path's; both paths, one input per run (noise order)."""
    d, exp, server = served
    clip = make_clip(d / f"once_{protocol}.mp4", seed=7, seconds=2.0, width=96, height=64)
    url = server.http_url if protocol == "http" else server.grpc_url
    common = [str(clip.path), "--steps", "2", "--stride", "8", "--outputs", "npy", "--quiet"]
    local = d / f"once_local_{protocol}"
    assert main(["run", *common, "-o", str(local), "--backend", "onnxruntime", "--export-dir", str(exp)]) == 0
    want = np.load(local / f"once_{protocol}_maps.npy")
    sent = {}
    for send in ("frames", "clips"):
        out = d / f"once_{send}_{protocol}"
        assert main(["run", *common, "-o", str(out), "--backend", "triton", "--url", url, "--send", send]) == 0
        assert np.array_equal(np.load(out / f"once_{protocol}_maps.npy"), want), send
        stats = json.loads((out / "run_stats.json").read_text())
        sent[send] = stats["wire_bytes"]["sent"] / clip.n_frames
    # tiny config at stride 8: 8 uint8 frames (24.6 KB each) + audio and noise per clip vs 16 float32
    # frames + audio + noise: about 1/5.5 on a long stream, less on 50 frames (the start sends a whole window)
    assert sent["frames"] < sent["clips"] / 4, sent


def test_frames_once_recovers_a_lost_window_and_refuses_streams_beyond_the_slots(served) -> None:
    """A stream whose window the server no longer holds (restart, idle timeout) is sent whole
    again and goes on with the same maps; a stream beyond the server's slots is refused, saying so."""
    from salrt.backends.triton_backend import TritonBackend
    from salrt.errors import RemoteError

    _, _, server = served
    b = TritonBackend(server.http_url, "diffsal", retries=0)
    assert b.window is not None and b.window["slots"] == 4
    mean, std = b.window["mean"], b.window["std"]
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (40, 64, 128, 3), dtype=np.uint8)

    def clip(lo: int) -> np.ndarray:
        return ((frames[lo : lo + 16].astype(np.float32) - mean) / std).transpose(3, 0, 1, 2)[None]

    audio = rng.standard_normal((1, 1, 9, 32, 64)).astype(np.float32)
    noise = rng.standard_normal((1, 1, 64, 128)).astype(np.float32)
    for k, lo in enumerate((0, 8, 16, 24)):
        if k == 2:  # the server forgets the stream (as after a restart) while the client still holds it
            st, held = b.streams[0], b.streams[0].pixels.copy()
            b.end_stream(0)  # released on the server
            st.pixels, b.streams[0] = held, st
        got = b.sample_streams([0], clip(lo), audio, steps=2, noise=noise)
        assert np.array_equal(got, b.sample(clip(lo), audio, steps=2, noise=noise)), lo
    assert b.restarts == 1
    for s in range(1, 4):  # four streams now: every slot taken
        b.sample_streams([s], clip(0), audio, steps=2, noise=noise)
    with pytest.raises(RemoteError, match="no free stream slot"):
        b.sample_streams([4], clip(0), audio, steps=2, noise=noise)
    for s in range(4):  # ended streams free their slots
        b.end_stream(s)
    b.sample_streams([4], clip(0), audio, steps=2, noise=noise)
    b.end_stream(4)
    b.close()


def test_a_server_killed_mid_stream_is_reported_and_outputs_kept(served, tmp_path: Path) -> None:
    from salrt.backends.triton_backend import TritonBackend
    from salrt.io.contract import InputContract
    from salrt.runtime import RunOptions, Runtime
    from salrt.sinks import default_sinks

    _, _, server = served
    clip = make_clip(tmp_path / "long.mp4", seed=6, seconds=1.2, width=96, height=64)
    backend = TritonBackend(server.http_url, "diffsal", timeout_s=2, retries=1, backoff_s=0.1)
    out = tmp_path / "o"
    out.mkdir()
    seen = []

    def on_map(i, idx, ts, m) -> None:
        seen.append(idx)
        if len(seen) == 3:
            server.stop(kill=True)

    rt = Runtime(
        backend,
        [str(clip.path)],
        RunOptions(contract=InputContract.from_manifest(backend.manifest), steps=2, queue_clips=1),
        sinks_for=default_sinks(out, ["npy"], {"inputs": [str(clip.path)]}),
        on_map=on_map,
    )
    stats = rt.run(handle_signals=False)
    assert len(stats["errors"]) == 1 and "model server" in stats["errors"][0], stats["errors"]
    n = stats["frames_out"][0]
    assert 3 <= n < clip.n_frames
    assert np.load(out / "long_maps.npy").shape == (n, 64, 128)
