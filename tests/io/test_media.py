"""Decoding real media files through PyAV and assembling clips."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from salrt.errors import MediaError
from salrt.io import audio as A
from salrt.io import make_clip, open_media
from salrt.io.imaging import VIDEO_MEAN, VIDEO_STD

REF = np.load(Path(__file__).resolve().parents[1] / "data" / "diffsal_reference_io.npz")
SMALL = dict(width=160, height=96, seconds=0.8)


def _clips(path: Path, **kw):
    m = open_media(str(path), **kw)
    return m, list(m)


@pytest.mark.parametrize(
    "suffix,vcodec,acodec",
    [
        (".mp4", "libx264", "aac"),
        (".mkv", "libx264", "flac"),
        (".webm", "libvpx-vp9", "libopus"),
        (".avi", "mpeg4", "pcm_s16le"),
        (".mov", "libx264", "aac"),
    ],
)
def test_containers_and_codecs(tmp_path: Path, suffix: str, vcodec: str, acodec: str) -> None:
    rate = 48000 if acodec == "libopus" else 44100
    clip = make_clip(tmp_path / f"c{suffix}", seed=2, video_codec=vcodec, audio_codec=acodec, sample_rate=rate, **SMALL)
    m, clips = _clips(clip.path)
    assert m.info.has_audio and m.info.sample_rate == rate
    assert [c.target_index for c in clips] == list(range(clip.n_frames))
    assert clips[0].video.shape == (3, 16, 224, 384) and clips[0].audio.shape == (1, 9, 112, 192)
    assert all(np.isfinite(c.audio).all() for c in clips)
    assert m.stats.video_frames == clip.n_frames and m.stats.corrupt_packets == 0


@pytest.mark.parametrize("rate,channels", [(8000, 1), (16000, 2), (44100, 2), (48000, 6), (96000, 2)])
def test_sample_rates_and_layouts(tmp_path: Path, rate: int, channels: int) -> None:
    clip = make_clip(tmp_path / "a.mkv", seed=3, sample_rate=rate, channels=channels, audio_codec="flac", **SMALL)
    m, clips = _clips(clip.path)
    assert m.info.sample_rate == rate and m.info.channels == channels
    assert len(clips) == clip.n_frames
    mid = clips[len(clips) // 2].audio
    if rate == 8000:
        # Reference quirk: the 35280-sample buffer lasts 4.4 s at 8 kHz and its first nine
        # examples (1.63 s) end before the centred excerpt starts, so the model hears silence.
        np.testing.assert_array_equal(mid, A.silent_audio())
    else:  # the sounding object makes the slices louder than silence
        assert mid.max() > A.silent_audio().max() + 1.0


def test_no_audio_stream_warns_once_and_uses_silence(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "v.mp4", seed=4, sample_rate=None, **SMALL)
    with pytest.warns(UserWarning, match="video-only") as rec:
        m, clips = _clips(clip.path)
    assert len([w for w in rec if "video-only" in str(w.message)]) == 1
    assert not m.info.has_audio and not clips[0].has_audio
    np.testing.assert_array_equal(clips[3].audio, A.silent_audio())


def test_variable_frame_rate_uses_timestamps(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "vfr.mkv", seed=5, vfr=True, audio_codec="flac", **SMALL)
    m, clips = _clips(clip.path)
    assert len(clips) == clip.n_frames
    assert clips[0].timing == "timestamps"
    got = np.array([c.target_time for c in clips])
    np.testing.assert_allclose(got, clip.timestamps, atol=2e-3)
    # audio window of each clip follows the actual timestamps, not index / fps
    fps = m.info.fps
    c = clips[10]
    s, e = A.window_bounds(c.timestamps[0], c.timestamps[-1], fps, clip.sample_rate)
    assert c.audio_window == (s, e)


def test_short_video_every_frame_gets_a_clip(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "s.mp4", seed=6, width=64, height=64, seconds=0.2)  # 5 frames
    m, clips = _clips(clip.path)
    assert [c.target_index for c in clips] == [0, 1, 2, 3, 4]
    assert clips[0].frame_indices == (0,) * 9 + (1, 2, 3, 4) + (4,) * 3
    assert clips[4].frame_indices == (0,) * 5 + (1, 2, 3) + (4,) * 8


def test_stride_keeps_last_frame_and_bounds_memory(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "st.mp4", seed=7, **SMALL)  # 20 frames
    m, clips = _clips(clip.path, stride=8)
    assert [c.target_index for c in clips] == [0, 8, 16, 19]
    assert m.stats.max_buffered_frames <= 16 + 8 + 1


def test_truncated_file_is_not_a_crash(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "t.mkv", seed=8, audio_codec="flac", width=160, height=96, seconds=2.0)
    data = clip.path.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    m, clips = _clips(cut)
    assert 0 < len(clips) < clip.n_frames
    assert [c.target_index for c in clips] == list(range(len(clips)))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="no such file"):
        open_media(str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(MediaError, match="cannot open"):
        open_media(str(junk))
    audio_only = tmp_path / "a.wav"
    with av.open(str(audio_only), "w") as c:
        s = c.add_stream("pcm_s16le", rate=16000, layout="mono")
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1600), np.int16), format="s16", layout="mono")
        fr.sample_rate = 16000
        for p in [*s.encode(fr), *s.encode(None)]:
            c.mux(p)
    with pytest.raises(MediaError, match="no video stream"):
        open_media(str(audio_only))
    clip = make_clip(tmp_path / "ok.mp4", seed=9, width=64, height=64, seconds=0.2)
    for bad in ({"stride": 0}, {"clip_len": 0}, {"resize": "lanczos"}, {"resampler": "sox"}, {"fps": -1.0}):
        with pytest.raises(MediaError):
            open_media(str(clip.path), **bad)


def _write_lossless(path: Path, frames: list[np.ndarray], pcm: np.ndarray, rate: int, fps: int) -> None:
    with av.open(str(path), "w") as c:
        vs = c.add_stream("ffv1", rate=fps)
        vs.width, vs.height, vs.pix_fmt = frames[0].shape[1], frames[0].shape[0], "bgr0"
        aus = c.add_stream("pcm_s16le", rate=rate, layout="mono")
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="bgr0")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in vs.encode(vf):
                c.mux(p)
        for p in vs.encode(None):
            c.mux(p)
        for s in range(0, len(pcm), 1024):
            fr = av.AudioFrame.from_ndarray(pcm[None, s : s + 1024].copy(), format="s16", layout="mono")
            fr.sample_rate, fr.pts, fr.time_base = rate, s, Fraction(1, rate)
            for p in aus.encode(fr):
                c.mux(p)
        for p in aus.encode(None):
            c.mux(p)


def test_decoded_clip_equals_reference_preprocessing(tmp_path: Path) -> None:
    """A lossless file holding the reference fixture's audio and frame: clips equal its numbers."""
    rate, fps = 16000, 25
    n = len(REF["r16000_starts"]) - 1
    frames = [REF["frame_rgb"]] * n
    path = tmp_path / "lossless.mkv"
    _write_lossless(path, frames, REF["r16000_pcm"], rate, fps)
    m, clips = _clips(path)
    assert m.info.fps == fps and clips[0].timing == "index"
    mean = np.asarray(VIDEO_MEAN, np.float32)[:, None, None]
    std = np.asarray(VIDEO_STD, np.float32)[:, None, None]
    ref_frame = (REF["frame_model_u8"].astype(np.float32) - mean) / std
    np.testing.assert_array_equal(clips[0].video[:, 0], ref_frame)
    for i, (s, e) in enumerate(REF["r16000_clips"][:3]):
        target = s + 7  # 1-based frames s..s+15 belong to 0-based target s+7
        clip = clips[target]
        assert clip.frame_indices[0] == s - 1 and clip.frame_indices[-1] == e - 1
        assert clip.audio_window == (REF["r16000_starts"][s], REF["r16000_ends"][e])
        expected = A.resize_slices(REF["r16000_slices"][i])[None]
        assert np.abs(clip.audio - expected).max() < 1e-4


def test_device_path_equals_cpu_path(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    clip = make_clip(tmp_path / "d.mp4", seed=10, width=96, height=64, seconds=0.4)
    _, cpu = _clips(clip.path)
    _, dev = _clips(clip.path, device="cpu")
    assert isinstance(dev[0].video, torch.Tensor)
    for a, b in zip(cpu, dev):
        np.testing.assert_array_equal(a.video, b.video.numpy())
        assert np.abs(a.audio - b.audio.numpy()).max() < 1e-3


def test_synthetic_clip_ground_truth(tmp_path: Path) -> None:
    a = make_clip(tmp_path / "x.mp4", seed=11, **SMALL)
    b = make_clip(tmp_path / "y.mp4", seed=11, **SMALL)
    np.testing.assert_array_equal(a.saliency, b.saliency)
    assert a.saliency.shape == (a.n_frames, 96, 160) and a.fixations.any(axis=(1, 2)).all()
    np.testing.assert_allclose(a.saliency.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    # the map peaks near the sounding object
    peak = np.array(np.unravel_index(a.saliency[5].argmax(), a.saliency[5].shape))
    assert np.linalg.norm(peak - a.centres[5]) < 3 * a.radius


def test_pipe_input(tmp_path: Path) -> None:
    import subprocess
    import sys

    clip = make_clip(tmp_path / "p.mkv", seed=12, audio_codec="flac", width=64, height=64, seconds=0.4)
    code = "from salrt.io import open_media; m = open_media('-'); print(sum(1 for _ in m), m.info.has_audio)"
    with open(clip.path, "rb") as f:
        out = subprocess.run([sys.executable, "-c", code], stdin=f, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(clip.n_frames), "True"]


def test_corrupted_stream_keeps_going(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "c.ts", seed=13, width=160, height=96, seconds=2.0)
    data = bytearray(clip.path.read_bytes())
    rng = np.random.default_rng(0)
    for pos in rng.integers(len(data) // 4, len(data) * 3 // 4, 40):
        data[pos : pos + 50] = rng.integers(0, 256, 50, dtype=np.uint8).tobytes()
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    m, clips = _clips(bad)
    assert len(clips) > clip.n_frames // 2
    assert [c.target_index for c in clips] == list(range(len(clips)))
    assert np.isfinite(clips[-1].video).all()


def test_last_frame_clip_when_the_grid_ends_exactly(tmp_path: Path) -> None:
    # 24 frames, stride 8: the clip for frame 16 is complete before the end of the input
    clip = make_clip(tmp_path / "g.mp4", seed=14, width=64, height=64, seconds=0.96)
    m, clips = _clips(clip.path, stride=8)
    assert [c.target_index for c in clips] == [0, 8, 16, 23]
    assert sum(len(c.new_frames) for c in clips) == 24
    assert clips[-1].frame_indices == tuple(range(15, 24)) + (23,) * 7


def test_audio_ring_stays_bounded() -> None:
    from salrt.io.media import AudioRing

    ring = AudioRing()
    for i in range(200):
        ring.append(np.full(1000, float(i)))
        ring.read(ring.total - 1500, ring.total - 1)
        ring.discard_before(ring.total - 3000)
    assert ring.total - ring.base <= 3000 and sum(c.shape[0] for c in ring.chunks) <= 3000
    np.testing.assert_array_equal(ring.read(ring.total - 1000, ring.total - 1), np.full(1000, 199.0))


def test_http_url_input(tmp_path: Path) -> None:
    """A network source through FFmpeg's http protocol (a local server)."""
    import functools
    import http.server
    import threading

    clip = make_clip(tmp_path / "net.mkv", seed=15, audio_codec="flac", width=64, height=64, seconds=0.4)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/net.mkv"
        m, clips = _clips(url, timeout=10.0)
        assert len(clips) == clip.n_frames and m.info.has_audio
        with pytest.raises(MediaError, match="cannot open"):
            open_media(f"http://127.0.0.1:{server.server_address[1]}/missing.mkv", timeout=10.0)
    finally:
        server.shutdown()
