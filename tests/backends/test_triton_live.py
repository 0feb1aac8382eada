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
