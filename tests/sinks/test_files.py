"""Outputs of one run never mix with another's: a second run into the same folder, for an input of
the same name but shorter, leaves only its own PNG maps (and says it replaced the earlier ones)."""

from __future__ import annotations

from pathlib import Path

import pytest

from salrt.cli import main
from salrt.io import make_clip


def test_a_second_shorter_run_replaces_the_png_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    args = ["-o", str(out), "--config", "tiny", "--random-weights", "--backend", "torch", "--steps", "1"]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    long_clip = make_clip(tmp_path / "a" / "clip.mp4", seed=1, seconds=1.2, width=96, height=64)
    short_clip = make_clip(tmp_path / "b" / "clip.mp4", seed=2, seconds=0.4, width=96, height=64)
    assert main(["run", str(long_clip.path), *args, "--outputs", "png", "--quiet"]) == 0
    assert len(list((out / "clip_maps").glob("*.png"))) == long_clip.n_frames
    (out / "clip_maps" / "notes.txt").write_text("mine")  # a user's own file stays
    capsys.readouterr()
    assert main(["run", str(short_clip.path), *args, "--outputs", "png", "--quiet"]) == 0
    err = capsys.readouterr().err
    pngs = sorted(p.name for p in (out / "clip_maps").glob("*.png"))
    assert pngs == [f"{i:05d}.png" for i in range(1, short_clip.n_frames + 1)]
    assert (out / "clip_maps" / "notes.txt").read_text() == "mine"
    assert f"replaced the {long_clip.n_frames} PNG maps of an earlier run" in err


def test_long_input_names_fit_the_file_system(tmp_path: Path) -> None:
    """A legal 246-character name (and an 80-character CJK one, 240 bytes) gets every output, with a
    stem cut to fit 255-byte file names and marked by a hash (two such names stay distinct)."""
    import json

    import numpy as np

    from salrt.cli import main
    from salrt.io import make_clip
    from salrt.sinks import fit_stem

    names = ["b" * 246, "b" * 245 + "c", "视" * 80]
    for n in names:
        make_clip(tmp_path / f"{n}.mp4", seed=1, seconds=0.4, width=96, height=64)
    out = tmp_path / "o"
    args = ["run", *[str(tmp_path / f"{n}.mp4") for n in names], "-o", str(out), "--model", "student",
            "--config", "tiny", "--random-weights", "--backend", "torch", "--outputs", "overlay,png,npy,npz", "--quiet"]  # fmt: skip
    assert main(args) == 0
    stems = [fit_stem(n) for n in names]
    assert len(set(stems)) == 3 and all(len(s.encode()) <= 220 for s in stems)
    for s in stems:
        n_npy = np.load(out / f"{s}_maps.npy").shape[0]
        side = json.loads((out / f"{s}.json").read_text())
        assert n_npy == 10 == len(side["frames"]) == len(list((out / f"{s}_maps").glob("*.png")))
        assert (out / f"{s}_overlay.mp4").is_file() and (out / f"{s}_maps.npz").is_file()
