"""salrt.msu against the MSU group's bench.py (AIM 2024 AViMoS / NTIRE 2026 scoring): golden
per-frame values recorded from the script (tests/data/make_msu_bench_reference.py) on the cases of
tests/support/msu_cases.py, the layout reader, saliency videos, `salrt eval --dataset msu` and its
refusals."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from support.msu_cases import CASES, make_case

from salrt import msu
from salrt.cli import main
from salrt.errors import EvalError

REF = json.loads((Path(__file__).parent / "data" / "msu_bench_reference.json").read_text())


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("msu")
    make_case(root)
    return root


def test_scores_equal_bench_py(case: Path) -> None:
    """Same-size predictions: equal to 1e-12. Resized float32 (one-channel) maps: OpenCV's SIMD
    rounding is not reproduced, so CC, SIM and NSS differ by < 1e-7 and AUC-Judd, whose thresholds
    are the map's own (tied, 8-bit) values, by < 5e-4 per frame (measured at most 2.3e-4)."""
    r = msu.score(msu.msu_dataset(case, "public_test"), case / "pred")
    assert r["n_videos"] == len(CASES) and r["n_frames"] == sum(len(v["cc"]) for v in REF["videos"].values())
    same_size = {name for name, gs, _, ps, _ in CASES if gs == ps}
    for row in r["frames"]:
        want = {m: REF["videos"][row["video"]][m][row["frame"] - 1] for m in msu.METRICS}
        if row["video"] in same_size:
            for m in msu.METRICS:
                assert row[m] == pytest.approx(want[m], abs=1e-12), (row, m)
        else:
            for m in ("cc", "sim", "nss"):
                assert row[m] == pytest.approx(want[m], abs=1e-7), (row, m)
            assert row["auc_judd"] == pytest.approx(want["auc_judd"], abs=5e-4), row
    # the challenge's number: the mean over frames per video, then over videos
    for m in msu.METRICS:
        expected = np.mean([np.mean(v[m]) for v in REF["videos"].values()])
        assert r["mean"][m] == pytest.approx(expected, abs=1e-4)


def test_metric_quirks_are_the_scripts() -> None:
    """The 1e-7 terms, duplicates counted, and AUC-Judd's pixel total with unique *columns*."""
    s = np.arange(12, dtype=np.float64).reshape(3, 4)
    fix = np.array([[2, 3], [2, 3], [0, 0]])
    z = (s - s.mean()) / (s.std() + 1e-7)
    assert msu.nss(s, fix) == pytest.approx((2 * z[2, 3] + z[0, 0]) / 3, abs=1e-15)
    # thresholds 11, 11, 0: pixels >= 11: 1, >= 0: 12; pixel total 12 + (3 - 2 unique columns)
    tp = np.array([0, 1 / 3, 2 / 3, 1, 1])
    fp = np.array([0, (1 - 1) / (13 - 3), (1 - 2) / (13 - 3), (12 - 3) / (13 - 3), 1])
    assert msu.auc_judd(s, fix) == pytest.approx(float(np.sum(np.diff(fp) * (tp[1:] + tp[:-1]) / 2)), abs=1e-15)
    assert msu.cc(s, s) == pytest.approx(1.0, abs=1e-6) and msu.sim(s, s) == pytest.approx(1.0, abs=1e-6)


def test_resize_is_opencvs_bilinear() -> None:
    """Half-pixel centres, clamped edges, no antialiasing; exact 2x and 1D values checked by hand."""
    x = np.zeros((1, 40))
    x[0, 10] = 1.0
    row = msu.resize_linear(np.repeat(x, 2, axis=0), (2, 64))[0]
    assert np.flatnonzero(row).tolist() == [15, 16, 17]
    assert row[[15, 16, 17]].tolist() == [0.1875, 0.8125, 0.5625]  # what cv2.resize gives
    y = np.arange(16, dtype=np.float64).reshape(4, 4)
    assert np.array_equal(msu.resize_linear(y, (2, 2)), np.array([[2.5, 4.5], [10.5, 12.5]]))
    assert msu.resize_linear(y.astype(np.float32), (3, 5)).dtype == np.float32


def test_saliency_video_equals_its_frames(case: Path, tmp_path: Path) -> None:
    """Ground truth given as a video (as the challenge ships it) scores as its extracted frames."""
    ffmpeg = pytest.importorskip("imageio_ffmpeg").get_ffmpeg_exe()
    import subprocess

    root = tmp_path / "r"
    make_case(root)
    frames = root / "SaliencyTest" / "Test" / "v2"
    video = root / "SaliencyTest" / "Test" / "v2.mp4"
    subprocess.run(
        [ffmpeg, "-v", "error", "-framerate", "25", "-i", str(frames / "%03d.png"), "-c:v", "libx264rgb",
         "-qp", "0", str(video)],
        check=True,
    )  # fmt: skip
    from_video = list(msu.MsuVideo("v2", None, video, frames).maps())
    from_frames = list(msu.MsuVideo("v2", None, frames, frames).maps())
    assert [n for n, _ in from_video] == [n for n, _ in from_frames] == [1, 2, 3, 4, 5]
    for (_, a), (_, b) in zip(from_video, from_frames):
        assert np.abs(a - b).max() < 1e-6
    # a submitted saliency video (8-bit, lossless) as the prediction: read as RGB, so in float64
    # where bench.py read the grey PNGs in float32 (AUC-Judd's ties resolve slightly differently)
    pred = tmp_path / "pred"
    pred.mkdir()
    subprocess.run(
        [ffmpeg, "-v", "error", "-framerate", "25", "-i", str(root / "pred" / "v0" / "%03d.png"), "-c:v",
         "libx264rgb", "-qp", "0", str(pred / "v0.mp4")],
        check=True,
    )  # fmt: skip
    vids = [v for v in msu.msu_dataset(root) if v.name == "v0"]
    r = msu.score(vids, pred)
    for m in msu.METRICS:
        assert r["videos"][0][m] == pytest.approx(np.mean(REF["videos"]["v0"][m]), abs=5e-4)


def test_cli_eval_msu(case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "res"
    rc = main(["eval", "--dataset", "msu", "--root", str(case), "--predictions", str(case / "pred"), "-o", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"] == ["cc", "sim", "nss", "auc_judd"] and res["n_videos"] == 4
    assert "mean over videos" in cap.out
    # refusals: one line each, exit 2 for usage, 1 for a bad dataset
    rc = main(["eval", "--dataset", "msu", "--root", str(case), "--predictions", str(case / "pred"),
               "--metrics", "kld", "-o", str(out)])  # fmt: skip
    assert rc == 2 and "msu protocol scores" in capsys.readouterr().err
    rc = main(
        ["eval", "--dataset", "msu", "--root", str(tmp_path), "--predictions", str(case / "pred"), "-o", str(out)]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "TrainTestSplit.json" in err and "Traceback" not in err


def test_bad_inputs_are_named(case: Path, tmp_path: Path) -> None:
    root = tmp_path / "r"
    make_case(root)
    (root / "pred" / "v0" / "003.png").unlink()
    with pytest.raises(EvalError, match="no prediction for frame 3"):
        msu.score([v for v in msu.msu_dataset(root) if v.name == "v0"], root / "pred")
    fx = root / "FixationsTest" / "Test" / "v3" / "fixations.json"
    data = json.loads(fx.read_text())
    data[1].append([999, 0])
    fx.write_text(json.dumps(data))
    with pytest.raises(EvalError, match="frame 2: a fixation outside"):
        msu.score([v for v in msu.msu_dataset(root) if v.name == "v3"], root / "pred")
    data[1] = []  # a frame without fixations: NaN for NSS and AUC-Judd, counted (bench.py raises)
    fx.write_text(json.dumps(data))
    r = msu.score([v for v in msu.msu_dataset(root) if v.name == "v3"], root / "pred")
    assert r["videos"][0]["nss_nan_frames"] == 1 and np.isfinite(r["videos"][0]["nss"])
    with pytest.raises(EvalError, match="subset must be"):
        msu.msu_dataset(root, "test")


def test_salrt_run_outputs_are_read(case: Path, tmp_path: Path) -> None:
    """`salrt run` writes <video>_maps/00001.png: those folders are predictions too."""
    pred = tmp_path / "p"
    for name, *_ in CASES:
        src = case / "pred" / name
        dst = pred / f"{name}_maps"
        dst.mkdir(parents=True)
        for f in sorted(src.iterdir()):
            (dst / f"{int(f.stem):05d}.png").write_bytes(f.read_bytes())
    a = msu.score(msu.msu_dataset(case), pred)
    b = msu.score(msu.msu_dataset(case), case / "pred")
    assert a["mean"] == b["mean"]
    with av.open(str(next((pred / "v0_maps").iterdir()))) as c:  # still PNG
        assert c.streams.video[0].codec_context.name == "png"


def test_a_model_predicts_then_is_scored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--model`: the inputs in Videos/ run through the same runtime as `salrt run`, one map per
    ground-truth frame, then bench.py's scoring; a missing input video is named."""
    from salrt.io import make_clip

    root = tmp_path / "r"
    make_case(root)
    (root / "Videos").mkdir()
    for name, *_ in CASES:
        make_clip(root / "Videos" / f"{name}.mp4", seed=3, seconds=0.2, width=96, height=64)  # 5 frames
    out, keep = tmp_path / "res", tmp_path / "maps"
    args = ["eval", "--dataset", "msu", "--root", str(root), "--model", "diffsal", "--config", "tiny",
            "--random-weights", "--steps", "1", "--save-predictions", str(keep), "-o", str(out), "--quiet"]  # fmt: skip
    rc = main(args)
    assert rc == 0, capsys.readouterr().err
    res = json.loads((out / "results.json").read_text())
    assert res["n_frames"] == 4 * 5 and all(np.isfinite(res["mean"][m]) for m in msu.METRICS)
    assert sorted(p.name for p in (keep / "v0").iterdir()) == [f"{n:05d}.png" for n in range(1, 6)]
    (root / "Videos" / "v2.mp4").unlink()
    assert main(args) == 1 and "no input video for v2" in capsys.readouterr().err
