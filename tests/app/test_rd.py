"""salrt rd end to end on a tiny synthetic clip: every point measured, BD-rates against the plain
encode, the report files; bad ladders, maps and encoders refused with the reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from salrt.app.rd import RdSettings, rd
from salrt.errors import SalrtError, UsageError
from salrt.io import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    d = tmp_path_factory.mktemp("rd")
    c = make_clip(d / "src.mp4", seed=11, width=320, height=192, seconds=0.8)
    np.save(d / "truth.npy", c.saliency)
    return c


@pytest.fixture(scope="module")
def report(clip, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("rd_out")
    maps = clip.saliency  # ground truth given as user maps: the best a model could do
    settings = RdSettings(codecs=("libx264",), methods=("aq", "centre", "spectral"))
    return rd(None, str(clip.path), out, settings, maps=maps, truth=clip.saliency), out


def test_every_point_measured_and_bd_rates_written(report) -> None:
    res, out = report
    data = json.loads((out / "rd.json").read_text())
    assert data["complete"] and data["frames"] == 20 and data["ew_psnr_gt"]
    c = data["codecs"]["libx264"]
    methods = {p["method"] for p in c["points"]}
    assert methods == {"plain", "aq2", "aq3", "centre", "spectral", "maps"}
    assert len(c["points"]) == 6 * 4
    for p in c["points"]:
        assert p["bytes"] > 0 and p["kbps"] > 0 and 0 < p["vmaf"] <= 100 and 0 < p["ssim"] <= 1
        assert p["psnr_y"] > 20 and p["ew_psnr_gt"] > 20 and (out / p["file"]).is_file()
    bd = c["bd_rate"]
    assert set(bd) == {"aq2", "aq3", "centre", "spectral", "maps"}
    assert set(bd["maps"]) == {"psnr_y", "ssim", "vmaf", "ew_psnr_gt"}
    # ROI from the ground truth itself saves bits at equal GT-weighted quality
    assert bd["maps"]["ew_psnr_gt"]["value"] < -10
    assert (out / "rd.md").read_text().count("| maps |") == 5  # the BD row and four points
    # how good each method's maps were: the ground truth given as maps is perfect, the baselines are not
    q = data["map_cc_vs_truth"]
    assert set(q) == {"centre", "spectral", "maps"} and q["maps"] == pytest.approx(1.0, abs=1e-6)
    assert q["centre"] < 0.9 and q["spectral"] < 0.9
    assert "Maps against the ground truth (mean CC per frame): " in (out / "rd.md").read_text()
    assert [p.name for p in res.plots] == ["rd_libx264.png"] and res.plots[0].stat().st_size > 1000


def test_bad_ladders_maps_and_encoders(clip, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=">= 4 distinct points"):
        RdSettings(crfs=(20, 30, 40))
    with pytest.raises(UsageError, match="libsvtav1: FFmpeg's libsvtav1 wrapper ignores.*libx264, libx265, libvpx-vp9"):
        RdSettings(codecs=("libsvtav1",))
    RdSettings(codecs=("libsvtav1",), methods=("aq",))  # its plain and AQ curves are fine
    with pytest.raises(UsageError, match="unknown method"):
        RdSettings(methods=("magic",))
    ladder, dropped = RdSettings(crfs=(20, 30, 40, 50, 60)).ladder("libx264")
    assert [p[0] for p in ladder] == ["crf20", "crf30", "crf40", "crf50"] and dropped == [
        "crf 60: outside libx264's 0-51"
    ]
    with pytest.raises(SalrtError, match="10 maps for 20 frames"):
        rd(None, str(clip.path), tmp_path, RdSettings(codecs=("libx264",), methods=()), maps=clip.saliency[:10])
    with pytest.raises(SalrtError, match="96x64 maps for 320x192 frames"):
        rd(None, str(clip.path), tmp_path, RdSettings(codecs=("libx264",), methods=()), maps=np.ones((20, 64, 96)))
    with pytest.raises(UsageError, match="needs a model"):
        rd(None, str(clip.path), tmp_path, RdSettings(codecs=("libx264",), methods=("model",)))


def test_unreached_bitrates_are_named_and_left_out(clip, tmp_path: Path) -> None:
    settings = RdSettings(codecs=("libx264",), bitrates=(2_000, 60_000, 120_000, 240_000), methods=("centre",))
    res = rd(None, str(clip.path), tmp_path, settings)
    c = res.data["codecs"]["libx264"]
    low = [p for p in c["points"] if p["target_bps"] == 2_000]
    assert low and all("not_reached" in p for p in low)  # x264 cannot make 2 kbit/s of this clip
    cell = c["bd_rate"]["centre"]["psnr_y"]
    assert any("target 2 kbit/s" in d for d in cell["dropped"])


def test_model_method_runs_the_bundled_model(clip, tmp_path: Path) -> None:
    from salrt.app.demo import bundled_spec
    from salrt.spec import RunSpec

    spec, weights = bundled_spec(RunSpec(model="diffsal", config=None))
    assert weights == "the bundled demo model"
    res = rd(spec, str(clip.path), tmp_path, RdSettings(codecs=("libx264",), methods=("model",)), truth=clip.saliency)
    bd = res.data["codecs"]["libx264"]["bd_rate"]["model"]
    assert {"ew_psnr_gt", "ew_psnr_model"} <= set(bd) and res.data["model"]["name"] == "diffsal"
    assert bd["ew_psnr_gt"]["value"] < 0  # the trained demo model's maps save bits where viewers look


def test_cli_one_line_errors(clip, tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "salrt.cli", "rd", *args], capture_output=True, text=True)

    r = run(str(clip.path), "-o", str(tmp_path), "--codecs", "libsvtav1")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "libsvtav1" in r.stderr and "--methods aq" in r.stderr
    r = run(str(tmp_path / "missing.mp4"), "-o", str(tmp_path), "--methods", "centre")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "no such file" in r.stderr
    r = run(str(clip.path), "-o", str(tmp_path), "--crfs", "20,30")
    assert r.returncode == 2 and ">= 4 distinct points" in r.stderr
