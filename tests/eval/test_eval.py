"""`salrt eval` on small synthetic datasets written in each supported layout."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from salrt import evaluation as E
from salrt.cli import main
from salrt.io import make_clip


def _u8(m: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(m / m.max() * 255), 0, 255).astype(np.uint8)


def _av_dataset(root: Path, names: tuple[str, ...] = ("v1", "v2"), seconds: float = 0.6) -> dict[str, object]:
    ds = "AVAD"
    (root / "fold_lists").mkdir(parents=True)
    lines, truth = [], {}
    for i, name in enumerate(names):
        clip = make_clip(root / f"{name}.mp4", seed=20 + i, width=96, height=64, seconds=seconds, sample_rate=16000)
        frames = root / "video_frames" / ds / name
        ann = root / "annotations" / ds / name
        (ann / "maps").mkdir(parents=True)
        frames.mkdir(parents=True)
        with av.open(str(clip.path)) as c:
            for k, fr in enumerate(c.decode(video=0), 1):
                fr.to_image().save(frames / f"img_{k:05d}.jpg", quality=95)
        for k in range(clip.n_frames):
            Image.fromarray(_u8(clip.saliency[k])).save(ann / "maps" / f"eyeMap_{k + 1:05d}.jpg", quality=95)
            Image.fromarray(clip.fixations[k].astype(np.uint8) * 255).save(ann / f"fixMap_{k + 1:05d}.png")
        audio = root / "video_audio" / ds / name
        audio.mkdir(parents=True)
        with av.open(str(clip.path)) as c, av.open(str(audio / f"{name}.wav"), "w") as out:
            s = out.add_stream("pcm_s16le", rate=16000, layout="mono")
            res = av.AudioResampler(format="s16", layout="mono", rate=16000)
            for fr in c.decode(audio=0):
                for g in res.resample(fr):
                    g.pts = None
                    for p in s.encode(g):
                        out.mux(p)
            for p in s.encode(None):
                out.mux(p)
        lines.append(f"{name} {clip.n_frames} {clip.fps}")
        truth[name] = clip
    (root / "fold_lists" / f"{ds}_list_test_1_fps.txt").write_text("\n".join(lines) + "\n")
    return truth


def _write_predictions(pred: Path, truth: dict, noisy: bool = False) -> None:
    rng = np.random.default_rng(0)
    for name, clip in truth.items():
        (pred / name).mkdir(parents=True)
        for k in range(clip.n_frames):
            m = rng.random(clip.saliency[k].shape) if noisy else clip.saliency[k]
            Image.fromarray(_u8(m)).save(pred / name / f"{k + 1:05d}.png")


def test_av_layout_known_answers(tmp_path: Path) -> None:
    truth = _av_dataset(tmp_path / "data")
    _write_predictions(tmp_path / "perfect", truth)
    _write_predictions(tmp_path / "noise", truth, noisy=True)
    videos = E.av_dataset(tmp_path / "data", "avad", 1)
    assert [v.name for v in videos] == ["v1", "v2"] and len(videos[0].maps) == truth["v1"].n_frames
    good = E.evaluate(E.match(videos, tmp_path / "perfect")[0])
    bad = E.evaluate(E.match(videos, tmp_path / "noise")[0])
    assert good["mean"]["cc"] > 0.99 and good["mean"]["sim"] > 0.9 and good["mean"]["auc_judd"] > 0.85
    assert abs(bad["mean"]["cc"]) < 0.1 and good["mean"]["nss"] > bad["mean"]["nss"] + 1.0
    assert good["mean"]["kld"] < 0.05 < bad["mean"]["kld"]
    # per-video mean, then mean over videos (the reference's protocol)
    v = good["videos"]
    assert good["mean"]["cc"] == pytest.approx(np.mean([e["cc"] for e in v]))
    assert v[0]["cc"] == pytest.approx(np.mean([r["cc"] for r in good["frames"] if r["video"] == "v1"]))


def test_cli_eval_writes_table_csv_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _av_dataset(tmp_path / "data", names=("v1",))
    _write_predictions(tmp_path / "pred", truth)
    rc = main(
        [
            "eval",
            "--dataset",
            "avad",
            "--root",
            str(tmp_path / "data"),
            "--predictions",
            str(tmp_path / "pred"),
            "--out",
            str(tmp_path / "res"),
            "--workers",
            "2",
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "mean over videos" in out
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["n_frames"] == truth["v1"].n_frames and res["mean"]["cc"] > 0.99
    assert (tmp_path / "res" / "results.csv").read_text().splitlines()[-1].startswith("mean,")
    assert "paper" not in res  # no model named: no paper row


def test_cli_eval_prints_the_papers_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _av_dataset(tmp_path / "data", names=("v1",))
    _write_predictions(tmp_path / "pred", truth)
    common = ["eval", "--dataset", "avad", "--root", str(tmp_path / "data"), "--predictions", str(tmp_path / "pred")]
    assert main([*common, "--paper", "dtfsal", "-o", str(tmp_path / "r1"), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "salrt (this run, split 1)" in out and "DTFSal: dtfsal.txt:220 Table 1" in out and "0.746" in out
    assert "Table 14 gives CC 0.756" in out  # the paper's own inconsistency, as a note
    res = json.loads((tmp_path / "r1" / "results.json").read_text())
    assert [r["variant"] for r in res["paper"]] == ["DTFSal"] and res["paper"][0]["sim"] == 0.595
    assert main([*common, "--paper", "tavdiff:ta", "-o", str(tmp_path / "r2"), "--workers", "1", "--quiet"]) == 0
    assert "TAVDiff(TA): tavdiff.txt:226 Table I" in capsys.readouterr().out
    assert main([*common, "--paper", "mubic", "-o", str(tmp_path / "r3"), "--workers", "1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "MUBiC (5 epochs)" in out and "MUBiC (12 epochs)" in out  # no AUC-J reported: "-"
    assert main([*common, "--paper", "avrsp:tiny", "-o", str(tmp_path / "r4"), "--workers", "1", "--quiet"]) == 0
    assert "reports no figures for preset 'tiny' on avad" in capsys.readouterr().out
    assert main([*common, "--paper", "nosuch", "-o", str(tmp_path / "r5"), "--quiet"]) == 2
    assert "--paper: unknown model" in capsys.readouterr().err


def test_paper_results_table_rows() -> None:
    from salrt.models import MODELS
    from salrt.models.paper_results import paper_results

    for name, (model_cls, cfg_cls) in MODELS.items():
        rows = paper_results(name)
        assert bool(rows) == model_cls.has_paper, name  # salrt's own student has no paper
        for r in rows:  # every row names a real preset (or "-"), a known dataset and a cited line
            assert r["preset"] in (*cfg_cls.preset_names(), "-"), r
            assert r["dataset"] in ("avad", "diem", "coutrot1", "coutrot2", "etmd", "summe", "dhf1k"), r
            assert r["source"].split(":")[0] in (
                "diffsal.txt",
                "dtfsal.txt",
                "tavdiff.txt",
                "avrsp.txt",
                "mubic_thesis.txt",
            )
            assert all(v is None or 0 < v < 10 for v in (r["cc"], r["nss"], r["auc_judd"], r["sim"]))
    assert {r["preset"] for r in paper_results("avrsp")} == {"paper", "visual"}
    assert {r["variant"] for r in paper_results("tavdiff", "paper", "avad")} == {"TAVDiff(TAV)", "TAVDiff(AV)"}


def test_missing_predictions_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    truth = _av_dataset(tmp_path / "data", names=("v1",))
    _write_predictions(tmp_path / "pred", truth)
    (tmp_path / "pred" / "v1" / "00003.png").unlink()
    args = [
        "eval",
        "--dataset",
        "avad",
        "--root",
        str(tmp_path / "data"),
        "--predictions",
        str(tmp_path / "pred"),
        "--out",
        str(tmp_path / "res"),
        "--workers",
        "1",
        "--quiet",
    ]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "00003.png" in err and "--allow-missing" in err
    assert main([*args, "--allow-missing"]) == 0
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["n_frames"] == truth["v1"].n_frames - 1
    assert res["report"]["missing_predictions"][0].endswith("00003.png")


def test_dhf1k_and_plain_layouts(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4", seed=30, width=96, height=64, seconds=0.4, sample_rate=None)
    d = tmp_path / "dhf1k" / "0601"
    for sub in ("images", "maps", "fixation"):
        (d / sub).mkdir(parents=True)
    for k in range(clip.n_frames):
        Image.fromarray(np.zeros((64, 96), np.uint8)).save(d / "images" / f"{k + 1:04d}.png")
        Image.fromarray(_u8(clip.saliency[k])).save(d / "maps" / f"{k + 1:04d}.png")
        Image.fromarray(clip.fixations[k].astype(np.uint8) * 255).save(d / "fixation" / f"{k + 1:04d}.png")
    pred = tmp_path / "pred"
    _write_predictions(pred, {"0601": clip})
    res = E.evaluate(E.match(E.dhf1k_dataset(tmp_path / "dhf1k"), pred)[0])
    assert res["mean"]["cc"] > 0.99
    plain = E.plain_dataset(clip.path, d / "maps", d / "fixation")
    (pred / "clip").symlink_to(pred / "0601")
    assert E.evaluate(E.match(plain, pred)[0])["mean"]["cc"] > 0.99


def test_bad_input_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, code, needle in (
        (["--dataset", "avad", "--root", str(tmp_path), "--predictions", str(tmp_path)], 1, "fold list not found"),
        (["--dataset", "avad", "--root", str(tmp_path)], 2, "exactly one of --predictions"),
        (["--dataset", "plain", "--predictions", str(tmp_path)], 2, "--dataset plain needs"),
    ):
        assert main(["eval", *args, "--quiet"]) == code
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0
    with pytest.raises(SystemExit) as e:  # argparse: not a known layout
        main(["eval", "--dataset", "nope", "--root", str(tmp_path), "--predictions", str(tmp_path)])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("model", ["diffsal", "avrsp", "tavdiff"])
def test_eval_with_tiny_model(tmp_path: Path, model: str) -> None:
    _av_dataset(tmp_path / "data", names=("v1",), seconds=0.32)
    rc = main(
        [
            "eval",
            "--dataset",
            "avad",
            "--root",
            str(tmp_path / "data"),
            "--model",
            model,
            "--config",
            "tiny",
            "--random-weights",
            "--steps",
            "2",
            "--batch",
            "4",
            "--save-predictions",
            str(tmp_path / "pred"),
            "--out",
            str(tmp_path / "res"),
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert rc == 0
    assert len(list((tmp_path / "pred" / "v1").glob("*.png"))) == 8
    res = json.loads((tmp_path / "res" / "results.json").read_text())
    assert res["n_frames"] == 8 and np.isfinite(res["mean"]["cc"])


def test_shuffled_and_borji_auc_in_eval(tmp_path: Path) -> None:
    truth = _av_dataset(tmp_path / "data")
    _write_predictions(tmp_path / "perfect", truth)
    videos = E.av_dataset(tmp_path / "data", "avad", 1)
    items = E.match(videos, tmp_path / "perfect")[0]
    res = E.evaluate(items, ("auc_shuffled", "auc_borji"), workers=2)
    again = E.evaluate(items, ("auc_shuffled", "auc_borji"), workers=1)
    assert res["mean"] == again["mean"]  # seeded per frame: repeatable, independent of workers
    assert res["mean"]["auc_shuffled"] > 0.6 and res["mean"]["auc_borji"] > 0.8
    pooled = E.with_shuffle_pool(items)
    assert all(o.parent.name != i.video for i in pooled for o in i.others)  # negatives from other videos
