"""Nothing lost, nothing confusing: each defect of the newcomer audit, reproduced and fixed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
from support.faults import salrt_command

from salrt.cli import main
from salrt.io import make_clip
from salrt.io.contract import InputContract
from salrt.runtime import RunOptions, Runtime, Source
from salrt.sinks import NpyWriter, default_sinks, output_stems

SMALL = dict(width=96, height=64)
TINY = ["--config", "tiny", "--random-weights", "--steps", "1"]


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main(args)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _n_video(path: Path) -> int:
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_unknown_length_inputs_run_with_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """MKV/WebM have no frame count: the progress display is a spinner, not a crash (no --quiet)."""
    a = make_clip(tmp_path / "a.mkv", seed=1, seconds=0.4, **SMALL)
    b = make_clip(tmp_path / "b.webm", seed=2, seconds=0.32, video_codec="libvpx-vp9", sample_rate=48000, **SMALL)
    rc, out, err = _run(["run", str(a.path), str(b.path), "-o", str(tmp_path / "o"), *TINY], capsys)
    assert rc == 0, err
    assert "Traceback" not in err and "TypeError" not in err
    assert np.load(tmp_path / "o" / "a_maps.npz")["maps"].shape[0] == a.n_frames
    assert np.load(tmp_path / "o" / "b_maps.npz")["maps"].shape[0] == b.n_frames


def test_same_file_name_in_two_folders_gets_two_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "y").mkdir()
    a = make_clip(tmp_path / "x" / "v.mp4", seed=3, seconds=0.4, **SMALL)
    b = make_clip(tmp_path / "y" / "v.mp4", seed=4, seconds=0.24, **SMALL)
    rc, _, err = _run(["run", str(a.path), str(b.path), "-o", str(tmp_path / "o"), "--outputs", "npy", *TINY], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "o" / "v_maps.npy").shape[0] == a.n_frames
    assert np.load(tmp_path / "o" / "v-2_maps.npy").shape[0] == b.n_frames
    assert output_stems(["-", "rtsp://h/1", "d/img_%05d.png", "a.mp4", "b/a.mkv"]) == [
        "stdin",
        "stream1",
        "img",
        "a",
        "a-2",
    ]


def test_npy_and_npz_are_both_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = make_clip(tmp_path / "a.mp4", seed=5, seconds=0.4, **SMALL)
    rc, _, err = _run(["run", str(a.path), "-o", str(tmp_path / "o"), "--outputs", "npy,npz", *TINY], capsys)
    assert rc == 0, err
    npy = np.load(tmp_path / "o" / "a_maps.npy")
    npz = np.load(tmp_path / "o" / "a_maps.npz")["maps"]
    np.testing.assert_array_equal(npy, npz)
    assert not list((tmp_path / "o").glob("*.partial.npy")) and not list((tmp_path / "o").glob(".*.tmp"))


def test_npy_is_readable_after_every_frame(tmp_path: Path) -> None:
    w = NpyWriter(tmp_path / "m.npy")
    frames = [np.full((4, 6), i, np.uint8) for i in range(5)]
    for i, f in enumerate(frames):
        w.append(f)
        # another reader while the file is open for writing, as after a hard kill
        got = np.load(tmp_path / "m.npy", mmap_mode="r")
        assert got.shape == (i + 1, 4, 6)
        np.testing.assert_array_equal(got[-1], f)
    w.close()
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), np.stack(frames))


def _kill_run(tmp_path: Path, clip: Path, out: Path, sig: int, after_frames: int) -> tuple[int, str]:
    cmd = salrt_command([str(clip)], out)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    deadline = time.time() + 120
    npy = out / f"{clip.stem}_maps.npy"
    while time.time() < deadline and p.poll() is None:
        if npy.exists() and npy.stat().st_size > 128 + after_frames * 64 * 128:
            break
        time.sleep(0.05)
    p.send_signal(sig)
    rc = p.wait(timeout=60)
    return rc, p.stderr.read()


def test_outputs_survive_sigkill(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "k.mp4", seed=6, seconds=6.0, **SMALL)
    out = tmp_path / "o"
    rc, err = _kill_run(tmp_path, clip.path, out, signal.SIGKILL, after_frames=40)
    assert rc == -signal.SIGKILL, err
    n = np.load(out / "k_maps.npy", mmap_mode="r").shape[0]
    assert n >= 40
    assert np.load(out / "k_maps.partial.npy", mmap_mode="r").shape[0] >= 40  # the npz's data so far
    pngs = sorted((out / "k_maps").glob("*.png"))
    assert len(pngs) >= 40 and not list((out / "k_maps").glob(".*"))
    # fragmented every 0.25 s, zero-latency encoder: the overlay lags the maps by <= 0.5 s of video
    assert n - 0.5 * 25 <= _n_video(out / "k_overlay.mp4") <= n
    side = json.loads((out / "k.json").read_text())  # rewritten atomically while running
    assert isinstance(side["frames"], list)


def test_sigterm_cuts_overlay_audio_to_the_video(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "t.mp4", seed=7, seconds=8.0, **SMALL)
    out = tmp_path / "o"
    rc, err = _kill_run(tmp_path, clip.path, out, signal.SIGTERM, after_frames=30)
    assert rc == 130, err
    assert "interrupted" in err and "Traceback" not in err
    with av.open(str(out / "t_overlay.mp4")) as c:
        v = [f.time for f in c.decode(video=0)]
    with av.open(str(out / "t_overlay.mp4")) as c:
        a = [f.time + f.samples / f.sample_rate for f in c.decode(audio=0)]
    assert 0 < len(v) < clip.n_frames
    assert abs(max(a) - (max(v) + 1 / 25)) < 0.1, (max(a), max(v))
    stats = json.loads((out / "run_stats.json").read_text())
    assert stats["interrupted"] and stats["frames_out"][0] == len(v)


def test_nothing_decoded_from_stdin_is_an_error(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "s.mp4", seed=8, seconds=2.0)  # moov at the end, larger than a pipe's probe
    cmd = [sys.executable, "-m", "salrt.cli", "run", "-", "-o", str(tmp_path / "o"), *TINY]
    r = subprocess.run(cmd, input=clip.path.read_bytes(), capture_output=True, timeout=120)  # a pipe
    r.stderr = r.stderr.decode()
    assert r.returncode == 1, r.stderr
    assert "no video frame could be decoded" in r.stderr and "faststart" in r.stderr
    assert "Traceback" not in r.stderr


def test_stdin_outputs_are_named_stdin_and_say_no_audio(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "s.ts", seed=9, seconds=0.4, **SMALL)
    cmd = [sys.executable, "-m", "salrt.cli", "run", "-", "-o", str(tmp_path / "o"), "--outputs", "overlay,npy", *TINY]
    r = subprocess.run(cmd, input=clip.path.read_bytes(), capture_output=True, timeout=120)  # a pipe
    r.stderr = r.stderr.decode()
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "stdin_overlay.mp4").is_file() and (tmp_path / "o" / "stdin.json").is_file()
    assert np.load(tmp_path / "o" / "stdin_maps.npy").shape[0] == clip.n_frames
    assert "no audio track" in r.stderr


def test_truncated_file_warns_with_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "f.ts", seed=10, seconds=2.0, **SMALL)
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.ts"
    cut.write_bytes(data[: len(data) // 2])
    # MPEG-TS declares no duration; an MKV with a declared duration, cut short:
    mkv = make_clip(tmp_path / "f.mkv", seed=10, seconds=2.0, **SMALL)
    d = mkv.path.read_bytes()
    (tmp_path / "cut.mkv").write_bytes(d[: int(len(d) * 0.6)])
    rc, _, err = _run(["run", str(tmp_path / "cut.mkv"), "-o", str(tmp_path / "o"), "--outputs", "npy", *TINY], capsys)
    assert rc == 0, err
    assert "ended early" in err and "frames decoded" in err


def test_encode_map_count_and_plain_encode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "e.mp4", seed=11, seconds=0.8, **SMALL)
    maps = np.zeros((clip.n_frames - 5, 64, 96), np.float32)
    np.save(tmp_path / "few.npy", maps)
    rc, _, err = _run(
        ["encode", str(clip.path), "-o", str(tmp_path / "x.mp4"), "--maps", str(tmp_path / "few.npy")], capsys
    )
    assert rc == 1 and "one map per frame" in err and err.count("\n") == 1
    rc, out, err = _run(["encode", str(clip.path), "-o", str(tmp_path / "plain.mp4"), "--no-roi", "--quiet"], capsys)
    assert rc == 0, err  # no checkpoint, no model
    assert _n_video(tmp_path / "plain.mp4") == clip.n_frames
    rc, _, err = _run(
        ["encode", str(clip.path), "-o", str(tmp_path / "b.mp4"), "--no-roi", "--bitrate", "200k", "--quiet"], capsys
    )
    assert rc == 0, err


def test_weights_of_another_config_are_named(tmp_path: Path) -> None:
    import torch

    import salrt

    tiny = salrt.load_model("diffsal", config="tiny")
    torch.save(tiny.state_dict(), tmp_path / "tiny.pth")
    with pytest.raises(salrt.CheckpointError, match="pass --config tiny"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "tiny.pth")


def test_option_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=12, seconds=0.2, **SMALL)
    base = ["run", str(clip.path), "-o", str(tmp_path / "o"), *TINY]
    for extra, needle in (
        (["--max-wait-ms", "-5"], "--max-wait-ms"),
        (["--retries", "-1"], "--retries"),
        (["--stride", "0"], "--stride"),
        (["--timeout", "0"], "--timeout"),
    ):
        with pytest.raises(SystemExit) as e:
            main([*base, *extra])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    rc, _, err = _run([*base, "--device", "banana"], capsys)
    assert rc == 2 and "unknown device 'banana'" in err and err.strip().count("\n") == 0
    with pytest.raises(SystemExit) as e:
        main(["demo", "--seconds", "-1"])
    assert e.value.code == 2
    for args in (["bench", "--config", "tiny", "--reps", "0"], ["bench", "--config", "tiny", "--warmup", "0"]):
        with pytest.raises(SystemExit) as e:
            main(args)
        assert e.value.code == 2
    capsys.readouterr()
    import torch

    if not torch.cuda.is_available():
        rc, _, err = _run([*base, "--device", "cuda"], capsys)
        assert rc == 1 and "CUDA" in err and "AssertionError" not in err and err.strip().count("\n") == 0


def test_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "a.mp4", seed=13, seconds=0.2, **SMALL)
    for args, code, needle in (
        ([str(clip.path), "-o", str(tmp_path / "o"), "--config", "tiny"], 2, "meaningless"),
        ([str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "o"), *TINY], 1, "no such file"),
        ([str(tmp_path), "-o", str(tmp_path / "o"), *TINY], 1, "is a directory"),
        ([str(clip.path), "-o", str(tmp_path / "o"), "--outputs", "gif", *TINY], 2, "unknown output"),
    ):
        rc, _, err = _run(["run", *args], capsys)
        assert rc == code and needle in err and err.strip().count("\n") == 0, (args, rc, err)


def test_zero_frames_run_prints_no_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "text.mp4"
    bad.write_text("not a video")
    rc, out, err = _run(["run", str(bad), "-o", str(tmp_path / "o"), *TINY], capsys)
    assert rc == 1 and "nan" not in out + err and "RuntimeWarning" not in err
    assert "cannot open" in err


def test_warnings_are_one_clean_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "mute.mp4", seed=14, seconds=0.2, sample_rate=None, **SMALL)
    rc, _, err = _run(["run", str(clip.path), "-o", str(tmp_path / "o"), *TINY], capsys)
    assert rc == 0
    lines = [ln for ln in err.splitlines() if "no audio stream" in ln]
    assert lines and lines[0].startswith("salrt: warning:") and "media.py" not in err and "warnings.warn" not in err


def test_broken_pipe_is_not_an_error(tmp_path: Path) -> None:
    code = "import sys; sys.argv=['salrt','info','diffsal','--config','tiny','--json']; from salrt.cli import main; sys.exit(main())"
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(10)
    p.stdout.close()
    err = p.stderr.read().decode()
    p.wait(timeout=120)
    assert "Broken pipe" not in err and "error" not in err


def test_odd_sized_overlay_keeps_every_pixel(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "odd.avi", seed=15, seconds=0.2, width=97, height=65, video_codec="mpeg4")
    rc, _, err = _run(["run", str(clip.path), "-o", str(tmp_path / "o"), "--outputs", "overlay", *TINY], capsys)
    assert rc == 0, err
    with av.open(str(tmp_path / "o" / "odd_overlay.mp4")) as c:
        vs = c.streams.video[0]
        assert (vs.width, vs.height) == (98, 66)
    assert "padded to 98x66" in err


def test_image_sequence_and_separate_audio(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "src.mp4", seed=16, seconds=0.4, **SMALL)
    seq = tmp_path / "seq"
    seq.mkdir()
    with av.open(str(clip.path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            f.to_image().save(seq / f"img_{i + 1:05d}.png")
    with av.open(str(clip.path)) as c, av.open(str(tmp_path / "a.wav"), "w") as o:
        s = o.add_stream("pcm_s16le", rate=44100, layout="stereo")
        for f in c.decode(audio=0):
            f.pts = None
            for p in s.encode(f):
                o.mux(p)
        for p in s.encode(None):
            o.mux(p)
    rc, _, err = _run(
        [
            "run",
            str(seq / "img_%05d.png"),
            "--audio",
            str(tmp_path / "a.wav"),
            "--fps",
            "25",
            "-o",
            str(tmp_path / "o"),
            "--outputs",
            "overlay,npy",
            *TINY,
        ],
        capsys,
    )
    assert rc == 0, err
    assert np.load(tmp_path / "o" / "img_maps.npy").shape[0] == clip.n_frames
    with av.open(str(tmp_path / "o" / "img_overlay.mp4")) as c:
        assert len(c.streams.audio) == 1  # the separate audio file is copied in


def test_missing_optional_packages_name_the_extra(tmp_path: Path) -> None:
    block = (
        "import sys, importlib.abc\n"
        "class B(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'scipy'): raise ImportError(name)\n"
        "sys.meta_path.insert(0, B())\n"
        "from salrt.cli import main\n"
    )
    clip = make_clip(tmp_path / "a.mp4", seed=17, seconds=0.2, **SMALL)
    np.save(tmp_path / "m.npy", np.zeros((clip.n_frames, 8, 8), np.float32))
    for args, needle in (
        (["info", "diffsal"], "salrt[torch]"),
        (["bench", "--config", "tiny"], "salrt[torch]"),
        (
            [
                "encode",
                str(clip.path),
                "-o",
                str(tmp_path / "e.mp4"),
                "--maps",
                str(tmp_path / "m.npy"),
                "--dilation",
                "2",
            ],
            "salrt[eval]",
        ),
    ):
        r = subprocess.run(
            [sys.executable, "-c", block + f"sys.exit(main({args!r}))"], capture_output=True, text=True, timeout=120
        )
        assert r.returncode == 1 and needle in r.stderr and "ModuleNotFoundError" not in r.stderr, (args, r.stderr)


def test_stop_discards_unsampled_clips_and_finalises(tmp_path: Path) -> None:
    """A stop does not wait for queued clips to be sampled: they are discarded and counted."""
    clip = make_clip(tmp_path / "a.mp4", seed=18, seconds=2.0, **SMALL)

    class Slow:
        name, steps = "slow", None

        def sample(self, video, audio, steps=4, noise=None, seed=None):
            time.sleep(0.05)
            return np.zeros((video.shape[0], 1, 64, 128), np.float32)

    settings = {"inputs": [str(clip.path)]}
    rt = Runtime(
        Slow(),
        [str(clip.path)],
        RunOptions(contract=InputContract(size=(64, 128), audio_size=(32, 64))),
        sinks_for=default_sinks(tmp_path, ["npy"], settings),
        on_map=lambda *a: rt.interrupt() if a[1] == 5 else None,
    )
    stats = rt.run(handle_signals=False)
    assert stats["interrupted"] and sum(stats["discarded_on_stop"]) > 0
    assert np.load(tmp_path / "a_maps.npy").shape[0] == stats["frames_out"][0] < clip.n_frames


def test_frame_budget_bounds_kept_frames(tmp_path: Path) -> None:
    """Kept source frames (overlay) in flight never exceed the budget (one frame always passes)."""
    clip = make_clip(tmp_path / "big.mp4", seed=19, seconds=1.0, width=320, height=192)
    frame_bytes = 320 * 192 * 3
    peak = []

    class Watch:
        name, steps = "watch", None

        def sample(self, video, audio, steps=4, noise=None, seed=None):
            peak.append(rt.budget.used)
            time.sleep(0.01)
            return np.zeros((video.shape[0], 1, 64, 128), np.float32)

    opts = RunOptions(
        contract=InputContract(size=(64, 128), audio_size=(32, 64)), frame_budget_mb=3 * frame_bytes / 2**20
    )
    rt = Runtime(Watch(), [str(clip.path)], opts, keep_frames=True, on_map=lambda *a: None)
    stats = rt.run(handle_signals=False)
    assert stats["frames_out"] == [clip.n_frames]
    assert max(peak) <= 3 * frame_bytes + 16 * frame_bytes  # budget + the first clip's frames (let through alone)
    assert rt.budget.used == 0


def test_source_of_detects_sequences() -> None:
    assert Source.of("a/img_%05d.png").format == "image2"
    assert Source.of("http://x/a_%d.ts").format is None
    assert Source.of("a.mp4").is_file and not Source.of("-").is_file


def test_overlay_is_fragmented(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "f.mp4", seed=20, seconds=0.4, **SMALL)
    rc, _, _ = _run(["run", str(clip.path), "-o", str(tmp_path / "o"), "--outputs", "overlay", *TINY], capsys)
    assert rc == 0
    data = (tmp_path / "o" / "f_overlay.mp4").read_bytes()
    assert b"moof" in data and b"mvex" in data


def test_overlay_audio_from_mpegts_and_pcm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """ADTS AAC (MPEG-TS) and PCM (AVI) cannot be stream-copied into MP4: re-encoded to AAC."""
    for name, kw in (("t.ts", {}), ("p.avi", {"video_codec": "mpeg4"})):
        clip = make_clip(tmp_path / name, seed=21, seconds=0.4, **SMALL, **kw)
        rc, _, err = _run(["run", str(clip.path), "-o", str(tmp_path / "o"), "--outputs", "overlay", *TINY], capsys)
        assert rc == 0 and "error" not in err, err
        with av.open(str(tmp_path / "o" / f"{clip.path.stem}_overlay.mp4")) as c:
            assert c.streams.audio[0].codec_context.name == "aac"
            assert sum(f.samples for f in c.decode(audio=0)) > 0
