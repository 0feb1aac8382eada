"""Hardware video decoding (``hwaccel``, e.g. NVDEC through FFmpeg's ``cuda``): an unknown kind is a
usage error; a device that cannot be opened (this CPU machine) gives one warning and software
decoding with the same clips; where a GPU is lent, hardware-decoded clips equal software ones."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from salrt.cli import main
from salrt.errors import UsageError
from salrt.io import make_clip, open_media
from salrt.io.media import hwaccel_problem, hwaccels

OPTS = dict(clip_len=2, size=(64, 96), resize="fast")
TINY = ["--config", "tiny", "--random-weights", "--steps", "1"]
HAS_CUDA = "cuda" in hwaccels() and hwaccel_problem("cuda") is None


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    return make_clip(tmp_path_factory.mktemp("hw") / "c.mkv", seed=4, seconds=0.4, width=96, height=64)


def test_unknown_decoder_is_a_usage_error(clip) -> None:
    with pytest.raises(UsageError, match=r"unknown hardware decoder 'nvdec'; this FFmpeg has: .*cuda"):
        open_media(str(clip.path), hwaccel="nvdec", **OPTS)


def test_hardware_clips_equal_software_clips(clip) -> None:
    soft = list(open_media(str(clip.path), **OPTS))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        hard = list(open_media(str(clip.path), hwaccel="cuda", **OPTS))
    said = [str(w.message) for w in seen if "hardware decoding" in str(w.message)]
    if HAS_CUDA:
        assert said == []
    else:  # no device here: one warning naming the input and the kind, then software decoding
        assert len(said) == 1 and said[0].startswith(f"{clip.path}: cuda hardware decoding unavailable")
    assert len(hard) == len(soft) == clip.n_frames
    for h, s in zip(hard, soft):
        np.testing.assert_allclose(h.video, s.video, atol=1e-6)


def test_cli_run_with_hwaccel_on_a_file_and_stdin(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["run", str(clip.path), "-o", str(tmp_path / "hw"), "--outputs", "npy", "--hwaccel", "cuda", *TINY])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert HAS_CUDA or err.count("hardware decoding unavailable") == 1
    rc = main(["run", str(clip.path), "-o", str(tmp_path / "sw"), "--outputs", "npy", *TINY])
    assert rc == 0
    assert np.array_equal(np.load(tmp_path / "hw" / "c_maps.npy"), np.load(tmp_path / "sw" / "c_maps.npy"))
    # stdin: the device probe spends none of the input's bytes
    r = subprocess.run(
        [sys.executable, "-m", "salrt.cli", "run", "-", "-o", str(tmp_path / "stdin"), "--outputs", "npy",
         "--hwaccel", "cuda", "--quiet", *TINY],
        stdin=clip.path.open("rb"), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "stdin" / "stdin_maps.npy"), np.load(tmp_path / "sw" / "c_maps.npy"))
    assert main(["run", str(clip.path), "-o", str(tmp_path / "x"), "--hwaccel", "bogus", *TINY]) == 2
    err = capsys.readouterr().err
    assert "unknown hardware decoder 'bogus'" in err and "Traceback" not in err
