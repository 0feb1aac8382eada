"""The Triton client backend without a server: URLs, an unreachable server (one line, bounded
time), the retry policy, and the runtime ending only the inputs a failing server could not serve."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np
import pytest

from salrt.cli import main
from salrt.errors import RemoteError, UsageError
from salrt.io import make_clip
from salrt.io.contract import InputContract
from salrt.runtime import RunOptions, Runtime
from salrt.sinks import default_sinks

pytest.importorskip("tritonclient.http")
from salrt.backends.triton_backend import TritonBackend, parse_url  # noqa: E402


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: connections are refused


def test_urls() -> None:
    assert parse_url("http://127.0.0.1:8000") == ("http", "127.0.0.1:8000")
    assert parse_url("grpc://server") == ("grpc", "server:8001")
    assert parse_url("localhost:9000") == ("http", "localhost:9000")
    with pytest.raises(UsageError, match="http://HOST:PORT"):
        parse_url("ftp://x:1")


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_unreachable_server_is_one_line_after_a_bounded_timeout(scheme: str) -> None:
    url = f"{scheme}://127.0.0.1:{_closed_port()}"
    t = time.monotonic()
    with pytest.raises(RemoteError, match=f"cannot reach a Triton server at {url} within 1 s"):
        TritonBackend(url, "diffsal", timeout_s=1.0)
    assert time.monotonic() - t < 8


def test_cli_unreachable_url(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=3, seconds=0.2, width=96, height=64)
    url = f"http://127.0.0.1:{_closed_port()}"
    args = ["run", str(clip.path), "-o", str(tmp_path / "o"), "--backend", "triton", "--url", url, "--timeout", "1"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot reach a Triton server" in err and "Traceback" not in err
    assert main(["run", str(clip.path), "-o", str(tmp_path / "o"), "--backend", "triton"]) == 2
    assert "--url" in capsys.readouterr().err


def test_retry_policy() -> None:
    b = TritonBackend.__new__(TritonBackend)  # the policy alone, without a connection
    b.url, b.retries, b.backoff_s, b.retried = "http://x", 2, 0.01, 0
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionResetError("reset by peer")
        return "ok"

    assert b._call_server(flaky) == "ok" and len(calls) == 3 and b.retried == 1
    calls.clear()
    with pytest.raises(RemoteError, match="failed after 3 attempt"):
        b._call_server(lambda: (calls.append(1), (_ for _ in ()).throw(TimeoutError("timed out")))[1])
    assert len(calls) == 3


class _FailsForOneInput:
    """A backend that fails (after its own retries) for any batch holding a clip of input 1, as a
    server that errors on that input's requests."""

    name, steps = "fake-remote", None

    def __init__(self) -> None:
        self.bad_size = None

    def sample(self, video, audio, steps=4, noise=None, seed=None):
        if (video[:, 0, 0, 0, 0] > 1e3).any():  # input 1's clips are marked
            raise RemoteError("Triton server http://x failed after 4 attempt(s): [500] model crashed")
        return np.full((len(video), 1, 64, 128), 0.5, np.float32)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_failing_server_ends_only_the_inputs_it_cannot_serve(tmp_path: Path, batch: int) -> None:
    """At batch 2, clips of both inputs share requests: the failed batch is retried per input."""
    good = make_clip(tmp_path / "good.mp4", seed=1, seconds=0.4, width=96, height=64)
    bad = make_clip(tmp_path / "bad.mp4", seed=2, seconds=0.4, width=96, height=64)
    contract = InputContract(size=(64, 128), audio_size=(32, 64))
    (tmp_path / "o").mkdir()
    rt = Runtime(
        _FailsForOneInput(),
        [str(good.path), str(bad.path)],
        RunOptions(contract=contract, batch=batch, max_wait_ms=100),
        sinks_for=default_sinks(tmp_path / "o", ["npy"], {"inputs": [str(good.path), str(bad.path)]}),
    )
    real_put = rt._put_clip

    def mark(job):  # input 1's clips from its 4th frame on carry a marker the fake server rejects
        if job.source == 1 and job.clip.target_index >= 3:
            job.clip.video[0, 0, 0, 0] = 1e4
        real_put(job)

    rt._put_clip = mark
    stats = rt.run(handle_signals=False)
    assert stats["frames_out"][0] == good.n_frames  # the other input went on
    n_bad = stats["frames_out"][1]
    assert n_bad == 3 if batch == 1 else 1 <= n_bad <= 3  # what was sampled before the failure is kept
    assert len(stats["errors"]) == 1 and "bad.mp4: model server:" in stats["errors"][0]
    assert np.load(tmp_path / "o" / "good_maps.npy").shape == (good.n_frames, 64, 128)
    assert np.load(tmp_path / "o" / "bad_maps.npy").shape == (n_bad, 64, 128)  # finalised and readable
