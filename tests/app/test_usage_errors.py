"""Usage mistakes end as usage errors (exit 2, one line) before anything opens, and never lose data:
an encode onto its own input, CRFs outside an encoder's range, ROI options out of range, ROI with an
encoder that ignores it, unknown metrics; a file named like an image-sequence pattern is a file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from salrt.cli import main
from salrt.io import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    return make_clip(tmp_path_factory.mktemp("clip") / "in.mp4", seed=3, seconds=0.6, width=96, height=64)


def _one_line_exit(args: list[str], code: int, needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == code, args
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err and "Traceback" not in err, err


def test_encode_onto_its_own_input_is_refused(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "v.mp4"
    src.write_bytes(clip.path.read_bytes())
    before = src.read_bytes()
    (tmp_path / "link.mp4").symlink_to(src)
    os.link(src, tmp_path / "hard.mp4")
    for out in (src, tmp_path / "link.mp4", tmp_path / "hard.mp4", tmp_path / "." / "v.mp4"):
        for extra in (["--no-roi"], ["--config", "tiny", "--random-weights", "--backend", "torch"]):
            _one_line_exit(
                ["encode", str(src), "-o", str(out), *extra, "--quiet"], 2, "the output is the input", capsys
            )
    assert src.read_bytes() == before  # the input is untouched


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--codec", "libx264", "--crf", "60", "--no-roi"], "CRF from 0 to 51"),
        (["--codec", "libx265", "--crf", "52", "--no-roi"], "CRF from 0 to 51"),
        (["--smoothing", "1.5"], "smoothing"),
        (["--codec", "libsvtav1"], "ignores regions of interest"),
    ],
)
def test_encoder_options_are_usage_errors(clip, tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    out = tmp_path / "o.mp4"
    _one_line_exit(
        ["encode", str(clip.path), "-o", str(out), "--config", "tiny", "--random-weights", *args], 2, needle, capsys
    )
    assert not out.exists()


def test_unknown_metric_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p").mkdir()
    args = ["eval", "--dataset", "synthetic", "--root", str(tmp_path), "--predictions", str(tmp_path / "p")]
    _one_line_exit([*args, "--metrics", "cc,bogus", "--quiet"], 2, "unknown metric 'bogus'", capsys)


def test_a_file_named_like_a_pattern_is_a_file(clip, tmp_path: Path) -> None:
    src = tmp_path / "50%discount.mp4"
    src.write_bytes(clip.path.read_bytes())
    out = tmp_path / "o"
    args = ["run", str(src), "-o", str(out), "--config", "tiny", "--random-weights", "--backend", "torch"]
    assert main([*args, "--outputs", "npy", "--steps", "1", "--quiet"]) == 0
    import numpy as np

    assert np.load(next(out.glob("*_maps.npy"))).shape[0] == clip.n_frames


def test_encode_output_paths(clip, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing folder is made (as salrt run -o does), with no false warning about the audio; a
    folder or a name FFmpeg has no container for is refused before the model loads."""
    common = ["--model", "student", "--config", "tiny", "--random-weights", "--quiet"]
    deep = tmp_path / "new" / "dir" / "out.mp4"
    assert main(["encode", str(clip.path), "-o", str(deep), *common]) == 0
    assert deep.is_file() and "audio" not in capsys.readouterr().err
    (tmp_path / "folder").mkdir()
    _one_line_exit(["encode", str(clip.path), "-o", str(tmp_path / "folder"), *common], 2, "a folder", capsys)
    _one_line_exit(["encode", str(clip.path), "-o", str(tmp_path / "noext"), *common], 2, "knows no container", capsys)
    assert not list(tmp_path.glob(".*probe*"))
