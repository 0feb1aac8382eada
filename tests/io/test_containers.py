"""The same content gives the same clips in every container, from files and from stdin. (A 20-s
MPEG-TS file from ``make_clip`` gave 388 of 500 clips with short audio: ``make_clip`` muxed all
audio after the video, so MPEG-TS and MKV carried it ~10 s behind the picture, past the 5 s the
decoder waits for audio; it now interleaves by time, as real muxers do, and a file whose audio
still comes late says so in a warning.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from salrt.io import make_clip, open_media
from salrt.io.contract import InputContract

CONTRACT = InputContract(clip_len=4, size=(48, 80))


def windows(path: str | Path) -> tuple[np.ndarray, int, int]:
    """(every clip's audio, clips with short audio, most frames buffered) of one input."""
    m = open_media(str(path), **CONTRACT.media_options())
    clips = list(m)
    return np.stack([c.audio for c in clips]), m.stats.clips_short_audio, m.stats.max_buffered_frames


@pytest.mark.parametrize(
    ("codec", "sample_rate", "containers"),
    [
        ("aac", 44100, (("mp4", "libx264"), ("mkv", "libx264"), ("ts", "libx264"))),
        # (Opus in MPEG-TS is left out: FFmpeg does not trim Opus's 312-sample pre-skip there, so
        # its audio starts 6.5 ms later than in WebM/MKV, which signal the pre-skip)
        ("libopus", 48000, (("webm", "libvpx-vp9"), ("mkv", "libvpx-vp9"))),
    ],
)
def test_same_audio_windows_in_every_container(
    tmp_path: Path, codec: str, sample_rate: int, containers: tuple[tuple[str, str], ...]
) -> None:
    """One synthetic clip written into each container (same encoders, same seed): every clip's
    audio equal, no clip short of audio but the last (the track ends with the picture), the
    decoder never waiting for audio (frames buffered stay a few)."""
    ref = None
    for ext, video_codec in containers:
        src = make_clip(tmp_path / f"a.{ext}", seed=3, seconds=4.0, width=96, height=64, audio_codec=codec,
                        sample_rate=sample_rate, video_codec=video_codec, ground_truth=False)  # fmt: skip
        got, short, buffered = windows(src.path)
        assert short <= 1 and buffered <= 8 and len(got) == src.n_frames, ext
        if ref is None:
            ref = got
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-5, ext


def test_mpegts_from_stdin_equals_the_file(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "a.ts", seed=4, seconds=3.0, width=96, height=64, ground_truth=False)
    ref, short, _ = windows(src.path)
    code = (
        "import sys, numpy as np; from salrt.io import open_media; from salrt.io.contract import InputContract; "
        "m = open_media('-', **InputContract(clip_len=4, size=(48, 80)).media_options()); "
        f"np.save({str(tmp_path / 'stdin.npy')!r}, np.stack([c.audio for c in m])); print(m.stats.clips_short_audio)"
    )
    with open(src.path, "rb") as fh:
        r = subprocess.run([sys.executable, "-c", code], stdin=fh, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = np.load(tmp_path / "stdin.npy")
    assert short <= 1 and r.stdout.strip() == str(short)
    assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
