"""The streaming runtime and `salrt run` / `salrt demo` on small synthetic inputs."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from salrt.backends.torch_backend import TorchBackend
from salrt.cli import main
from salrt.io import make_clip
from salrt.io.contract import InputContract
from salrt.runtime import RunOptions, Runtime, stream
from salrt.sinks import default_sinks

SMALL = dict(width=96, height=64)


class CountingBackend:
    """Map value = stride * (number of clips seen before): equals each clip's target index."""

    name, steps = "fake", None

    def __init__(self, stride: int, delay: float = 0.0) -> None:
        self.stride, self.delay, self.calls = stride, delay, 0

    def sample(self, video, audio, steps=4, noise=None, seed=None):
        time.sleep(self.delay)
        out = []
        for _ in range(video.shape[0]):
            out.append(np.full((1, 64, 128), self.calls * self.stride, np.float32))
            self.calls += 1
        return np.stack(out)


def _opts(**kw) -> RunOptions:
    return RunOptions(contract=InputContract(size=(64, 128), audio_size=(32, 64)), **kw)


def test_stride_interpolates_every_frame(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=1, seconds=0.68, **SMALL)  # 17 frames: targets 0,4,...,16
    got: dict[int, float] = {}
    rt = Runtime(
        CountingBackend(4),
        [str(clip.path)],
        _opts(stride=4),
        on_map=lambda i, idx, ts, m: got.__setitem__(idx, float(m.mean())),
    )
    stats = rt.run(handle_signals=False)
    assert sorted(got) == list(range(17))
    np.testing.assert_allclose([got[i] for i in range(17)], np.arange(17), atol=1e-5)
    assert stats["frames_out"] == [17] and stats["stages"]["model"]["items"] == 5 and not stats["errors"]


def test_several_inputs_share_the_model_and_outputs_are_valid(tmp_path: Path, tiny) -> None:
    a = make_clip(tmp_path / "a.mp4", seed=2, seconds=0.4, **SMALL)
    b = make_clip(tmp_path / "b.mkv", seed=3, seconds=0.32, audio_codec="flac", **SMALL)
    out = tmp_path / "out"
    out.mkdir()
    settings = {"inputs": [str(a.path), str(b.path)]}
    backend = TorchBackend(tiny)
    rt = Runtime(
        backend,
        settings["inputs"],
        _opts(batch=3, steps=2),
        sinks_for=default_sinks(out, ["overlay", "png", "npz"], settings),
        keep_frames=True,
    )
    stats = rt.run(handle_signals=False)
    assert stats["frames_out"] == [10, 8] and not stats["errors"]
    for stem, n in (("a", 10), ("b", 8)):
        with av.open(str(out / f"{stem}_overlay.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == n
            assert len(c.streams.audio) == 1  # audio passed through
        assert len(list((out / f"{stem}_maps").glob("*.png"))) == n
        z = np.load(out / f"{stem}_maps.npz")
        assert z["maps"].shape == (n, 64, 128) and z["maps"].dtype == np.uint8 and len(z["times"]) == n
        side = json.loads((out / f"{stem}.json").read_text())
        assert len(side["frames"]) == n
    assert stats["latency_ms"]["p50"] > 0


def test_live_mode_drops_and_counts(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=4, seconds=1.2, **SMALL)
    rt = Runtime(CountingBackend(1, delay=0.05), [str(clip.path)], _opts(live=True, queue_clips=2))
    stats = rt.run(handle_signals=False)
    assert stats["dropped_clips"][0] > 0
    assert stats["stages"]["model"]["items"] + stats["dropped_clips"][0] == clip.n_frames
    rt2 = Runtime(CountingBackend(1, delay=0.01), [str(clip.path)], _opts(queue_clips=2))
    assert rt2.run(handle_signals=False)["frames_out"] == [clip.n_frames]  # file mode never drops


def test_iterator_api(tmp_path: Path, tiny) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=5, seconds=0.28, **SMALL)
    items = list(stream(str(clip.path), model=tiny, steps=1))
    assert len(items) == clip.n_frames
    ts, m = items[3]
    assert ts == pytest.approx(3 / 25) and m.shape == (64, 128) and 0 <= m.min() <= m.max() <= 1


def test_unreachable_stream_is_reported_without_stopping_others(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=6, seconds=0.2, **SMALL)
    srcs = ["rtsp://127.0.0.1:9/none", str(clip.path)]
    rt = Runtime(CountingBackend(1), srcs, _opts(retries=1, backoff_s=0.05))
    stats = rt.run(handle_signals=False)
    assert stats["frames_out"][1] == clip.n_frames
    assert len(stats["errors"]) == 1 and "127.0.0.1" in stats["errors"][0]


def test_cli_run_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=7, seconds=0.2, **SMALL)
    for args, code, needle in (
        ([str(clip.path), "-o", str(tmp_path / "o"), "--config", "tiny"], 2, "meaningless"),
        ([str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o")], 1, "no such file"),
        ([str(clip.path), "-o", str(tmp_path / "o"), "--outputs", "gif"], 2, "unknown output"),
        ([str(clip.path), "-o", str(tmp_path / "o"), "--backend", "onnxruntime"], 2, "--export-dir"),
    ):
        assert main(["run", *args, "--quiet"]) == code
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0


def test_cli_run_with_onnxruntime_backend(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=8, seconds=0.2, **SMALL)
    assert (
        main(["export", "--config", "tiny", "--random-weights", "-o", str(tmp_path / "exp"), "--quiet", "--steps", "2"])
        == 0
    )
    assert (
        main(
            [
                "run",
                str(clip.path),
                "-o",
                str(tmp_path / "o"),
                "--backend",
                "onnxruntime",
                "--export-dir",
                str(tmp_path / "exp"),
                "--steps",
                "2",
                "--outputs",
                "npy",
                "--quiet",
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "o" / "a_maps.npy").shape == (clip.n_frames, 64, 128)


def test_sigint_finalises_outputs(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "long.mp4", seed=9, seconds=40.0, ground_truth=False, **SMALL)  # never done in time
    out = tmp_path / "o"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "salrt.cli",
            "run",
            str(clip.path),
            "-o",
            str(out),
            "--config",
            "tiny",
            "--random-weights",
            "--steps",
            "4",
            "--outputs",
            "overlay,npy",
            "--quiet",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    npy = out / "long_maps.npy"
    while time.time() < deadline and not (npy.exists() and npy.stat().st_size > 128 + 10 * 64 * 128):
        time.sleep(0.1)  # ten maps written: the run is under way
    p.send_signal(signal.SIGINT)
    rc = p.wait(timeout=120)
    assert rc == 130, p.stderr.read()
    maps = np.load(out / "long_maps.npy")
    with av.open(str(out / "long_overlay.mp4")) as c:
        n_video = sum(1 for _ in c.decode(video=0))
    assert 10 <= maps.shape[0] < clip.n_frames and n_video == maps.shape[0]
    stats = json.loads((out / "run_stats.json").read_text())
    assert stats["interrupted"]


def test_demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "-o", str(tmp_path / "d"), "--seconds", "0.4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "mean CC against the synthetic ground truth" in out and "no better than chance" in out
    assert "centre-bias map" in out and "with another clip's soundtrack the CC falls from" in out
    from salrt.app.demo import bundled_checkpoint

    if bundled_checkpoint() is not None:  # the demo runs the bundled trained model by default
        assert "the bundled demo model" in out
    assert (tmp_path / "d" / "demo_input_overlay.mp4").is_file()
    with av.open(str(tmp_path / "d" / "demo_comparison.mp4")) as c:  # input | predicted | ground truth
        frames = [f for f in c.decode(video=0)]
        assert len(frames) == 10 and frames[0].width > 3 * frames[0].height


def test_failing_output_is_reported_not_hung(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=10, seconds=0.8, **SMALL)

    class Broken:
        def write(self, *a) -> None:
            raise OSError("disk full")

        def close(self) -> None:
            pass

    rt = Runtime(CountingBackend(1), [str(clip.path)], _opts(queue_clips=2), sinks_for=lambda i, info: [Broken()])
    stats = rt.run(handle_signals=False)
    assert any("disk full" in e for e in stats["errors"])


def test_png_output_needs_no_pillow(tmp_path: Path) -> None:
    from salrt.sinks import write_png

    a = (np.arange(120) % 256).astype(np.uint8).reshape(10, 12)
    write_png(tmp_path / "m.png", a)
    with av.open(str(tmp_path / "m.png")) as c:
        np.testing.assert_array_equal(next(c.decode(video=0)).to_ndarray(format="gray"), a)
