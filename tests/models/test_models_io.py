"""The four newer models through checkpoints, backbone loaders, export, the runtime, captions and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import salrt
from salrt.captions import Captions
from salrt.cli import main
from salrt.errors import CheckpointError, SalrtError
from salrt.io import audio as A
from salrt.io import open_media
from salrt.io.synthetic import make_clip
from salrt.models.clip_text import CLIPTextConfig, CLIPTextEncoder, CLIPTokenizer, load_clip_text_pretrained
from salrt.models.s3d import S3D, load_s3d_pretrained
from salrt.models.soundnet import SoundNet, load_soundnet_pretrained
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs

ALL = tuple(sorted(salrt.models.MODELS))


def tiny(name: str, **overrides: object) -> torch.nn.Module:
    cfg = salrt.models.MODELS[name][1].preset("tiny")
    return load_synthetic_weights(salrt.load_model(name, config=dataclasses.replace(cfg, **overrides)), 0)


def _variants() -> list[tuple[str, dict[str, object]]]:
    """Every model at tiny size, plus each paper variant (preset) and each alternative reading of an
    ambiguous paper (READINGS), over the whole registry."""
    out: list[tuple[str, dict[str, object]]] = [(n, {}) for n in ALL]
    for n in ALL:
        cfg_cls = salrt.models.MODELS[n][1]
        out += [(n, dict(cfg_cls.PRESETS[p])) for p in cfg_cls.PRESETS if p != "tiny"]
        default = cfg_cls()
        out += [(n, {f: v}) for f, vs in cfg_cls.READINGS.items() for v in vs if v != getattr(default, f)]
    return out


VARIANTS = _variants()


@pytest.fixture(scope="module")
def clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("media") / "clip.mp4"
    make_clip(p, seconds=1.2, width=160, height=96, fps=15)
    return p


@pytest.fixture(scope="module")
def bpe_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small merges file in CLIP's format (header line, then one merge per line)."""
    pytest.importorskip("regex")  # the tokenizer's extra (salrt[text]); a GPU image may lack ftfy
    pytest.importorskip("ftfy")
    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = [f"{a} {b}" for a in letters[:12] for b in letters[:12]]
    p = tmp_path_factory.mktemp("bpe") / "merges.txt"
    p.write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return p


@pytest.mark.parametrize("name", ALL)
def test_checkpoints_round_trip(tmp_path: Path, name: str) -> None:
    m = tiny(name)
    c = m.config
    v, a, n = synthetic_inputs(c.video_shape, c.audio_shape, 1, seed=4)
    ref = m.sample(v, a, steps=2, noise=n)
    salrt.save_checkpoint(m, tmp_path / "ck")
    again = salrt.load_model(name, checkpoint=tmp_path / "ck")
    assert again.config == c
    assert torch.equal(again.sample(v, a, steps=2, noise=n), ref)
    torch.save({"state_dict": m.state_dict()}, tmp_path / "sd.pth")
    third = salrt.load_model(name, checkpoint=tmp_path / "sd.pth", config="tiny")
    assert torch.equal(third.sample(v, a, steps=2, noise=n), ref)
    bad = {k: v for k, v in m.state_dict().items() if not k.startswith("video_encoder.")}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="missing"):
        salrt.load_model(name, checkpoint=tmp_path / "bad.pth", config="tiny")


def test_backbone_loaders_read_the_public_layouts(tmp_path: Path) -> None:
    s3d = load_synthetic_weights(S3D(16))
    torch.save(
        {"module." + k: v for k, v in s3d.state_dict().items()} | {"module.fc.0.weight": torch.zeros(4, 64)},
        tmp_path / "s3d.pt",
    )
    fresh = S3D(16)
    assert load_s3d_pretrained(fresh, tmp_path / "s3d.pt") == ["fc.0.weight"]
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), s3d.state_dict().values()))
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_s3d_pretrained(S3D(8), tmp_path / "s3d.pt")
    avrsp = salrt.load_model("avrsp", config="tiny", pretrained={"s3d": tmp_path / "s3d.pt"})  # tiny S3D is S3D(16)
    assert all(torch.equal(a, b) for a, b in zip(avrsp.video_encoder.state_dict().values(), s3d.state_dict().values()))
    with pytest.raises(SalrtError, match="no mvit backbone"):
        salrt.load_model("avrsp", config="tiny", pretrained={"mvit": tmp_path / "s3d.pt"})
    with pytest.raises(SalrtError, match="unknown backbone"):
        salrt.load_model("avrsp", config="tiny", pretrained={"resnet": tmp_path / "s3d.pt"})

    sn = load_synthetic_weights(SoundNet(16))
    torch.save(
        sn.state_dict() | {"conv8.0.weight": torch.zeros(3), "conv8_2.0.weight": torch.zeros(3)}, tmp_path / "sn.pth"
    )
    assert load_soundnet_pretrained(SoundNet(16), tmp_path / "sn.pth") == ["conv8.0.weight", "conv8_2.0.weight"]

    cfg = CLIPTextConfig(vocab_size=100, context=8, width=16, layers=1, heads=2, embed_dim=8)
    clip = load_synthetic_weights(CLIPTextEncoder(cfg))
    torch.save(
        clip.state_dict() | {"visual.proj": torch.zeros(2), "logit_scale": torch.zeros(())}, tmp_path / "clip.pt"
    )
    fresh_clip = CLIPTextEncoder(cfg)
    assert load_clip_text_pretrained(fresh_clip, tmp_path / "clip.pt") == ["logit_scale", "visual.proj"]
    ids = torch.randint(1, 100, (2, 8))
    assert torch.equal(fresh_clip(ids), clip(ids))


def test_tokenizer_and_caption_sources(tmp_path: Path, bpe_file: Path) -> None:
    tok = CLIPTokenizer(bpe_file, context=16)
    ids = tok(["A big cab", ""])
    assert ids.shape == (2, 16) and ids.dtype == np.int64
    assert ids[0, 0] == tok.sot and tok.eot in ids[0] and ids[1, 1] == tok.eot
    assert tok.encode("abc") == [tok.encoder["ab"], tok.encoder["c</w>"]]  # the rule "a b" merges; c ends the word
    assert tok.encode("Cab") == tok.encode("cab")  # lower-cased
    (tmp_path / "v.json").write_text(json.dumps({"0": "a cab", "10": "a big bag"}))
    cap = Captions(tmp_path / "v.json", tok, 16)
    assert cap.caption("x/v.mp4", 5, 0.2) == "a cab" and cap.caption("v.mp4", 12, 0.5) == "a big bag"
    assert np.array_equal(cap.tokens("v.mp4", 10, 0.4), tok(["a big bag"])[0])
    folder = tmp_path / "caps"
    folder.mkdir()
    (folder / "clip.txt").write_text("\nfirst\n\nthird\n")
    fc = Captions(folder, tok, 16)
    assert fc.caption("clip.mp4", 0, 0) is None and fc.caption("clip.mp4", 2, 0) == "first"
    assert not fc.tokens("clip.mp4", 0, 0).any() and fc.missing == 1
    assert fc.caption("other.mp4", 3, 0) is None  # no file for that video: no captions
    nested = tmp_path / "all.json"
    nested.write_text(json.dumps({"clip": {"0": "x"}, "other": {"0": "y"}}))
    assert Captions(nested, tok, 16).caption("clip.mp4", 4, 0) == "x"
    assert Captions(lambda v, i, t: f"{Path(v).stem} {i}", tok, 16).caption("a.mp4", 3, 0.1) == "a 3"
    with pytest.raises(SalrtError, match="no such captions"):
        Captions(tmp_path / "none.json", tok, 16)
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(SalrtError, match="invalid JSON|cannot read"):
        Captions(tmp_path / "broken.json", tok, 16).caption("v.mp4", 0, 0)
    with pytest.raises(SalrtError, match="merges"):
        CLIPTokenizer(tmp_path / "v.json")


def test_media_last_frame_target_and_waveform_audio(clip_file: Path) -> None:
    clips = list(
        open_media(
            str(clip_file), clip_len=8, size=(64, 128), target="last", audio_format="waveform", audio_samples=8192
        )
    )
    assert len(clips) == 18
    for c in clips:
        assert c.frame_indices[-1] == c.target_index
        assert c.audio.shape == (1, 8192) and c.audio.dtype == np.float32
    late = clips[-1]
    assert late.frame_indices == tuple(range(late.target_index - 7, late.target_index + 1))
    assert np.abs(late.audio).max() > 1e-3  # the synthetic clip has a soundtrack
    with pytest.raises(salrt.MediaError, match="target"):
        open_media(str(clip_file), target="middle")
    rev = list(
        open_media(
            str(clip_file),
            clip_len=8,
            size=(64, 128),
            target="last",
            start="reverse",
            audio_format="waveform",
            audio_samples=8192,
        )
    )
    assert [c.target_index for c in rev] == list(range(18))
    assert rev[0].frame_indices == tuple(range(7, -1, -1))  # AVRSP: frames 1..8 played backwards for frame 1
    assert rev[3].frame_indices == tuple(range(10, 2, -1))
    assert rev[7].frame_indices == tuple(range(0, 8)) and rev[-1].frame_indices == clips[-1].frame_indices
    assert np.array_equal(rev[7].video, clips[7].video)
    # a reversed clip plays its audio window backwards too (same window as the forward clip of frame 7)
    a, b = rev[0].audio[0], clips[7].audio[0]
    assert rev[0].audio_window == clips[7].audio_window
    assert np.corrcoef(a, b[::-1])[0, 1] > 0.9 > 0.5 > np.corrcoef(a, b)[0, 1]


def test_clip_waveform_segments_are_hann_windowed() -> None:
    x = np.ones(22050)
    w = A.clip_waveform(x, 22050, frames=4, samples=30000)
    assert w.shape == (1, 30000)
    body = w[0, 3975:26025]
    seg = body[: 22050 // 4 + 1]
    assert seg[0] == pytest.approx(0.0, abs=1e-6) and seg.max() == pytest.approx(1.0, abs=1e-3)
    assert np.count_nonzero(np.abs(body) < 1e-9) >= 8  # each of the 4 segments starts and ends at zero


@pytest.mark.parametrize(("name", "overrides"), VARIANTS, ids=[f"{n}-{o}" if o else n for n, o in VARIANTS])
def test_export_matches_torch_in_onnxruntime(tmp_path: Path, name: str, overrides: dict) -> None:
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.export.manifest import graph_order
    from salrt.export.onnx import export_onnx

    m = tiny(name, **overrides)
    man = export_onnx(m, tmp_path, batch="1:1:2", check_batches=(2,))
    graphs = list(graph_order(m.graph_roles()))
    assert list(man["graphs"]) == graphs and man["graph_roles"] == m.graph_roles()
    from salrt.export.tensorrt import check_tensorrt_ops

    for g in graphs:
        for check in man["graphs"][g]["validation"]:
            assert all(e["max_abs"] < 1e-4 for e in check["outputs"].values()), (g, check)
        assert check_tensorrt_ops(tmp_path / man["graphs"][g]["file"]) == []  # standard ops only
    c = m.config
    v, a, n = synthetic_inputs(c.video_shape, c.audio_shape, 2, seed=11)
    cond = {}
    if "text" in m.conditions:
        ids = torch.zeros(2, c.text.context, dtype=torch.long)
        ids[0, :4] = torch.tensor([49406, 320, 321, 49407])
        cond["text"] = ids
    assert man["timestep_spacing"] == (c.timestep_spacing if m.kind == "diffusion" else None)
    ref = m.sample(v, a, steps=4, noise=n, **cond).numpy()
    ort = OnnxRuntimeBackend(str(tmp_path))
    got = ort.sample(v.numpy(), a.numpy(), steps=4, noise=n.numpy(), **{k: x.numpy() for k, x in cond.items()})
    assert np.abs(got - ref).max() < 1e-4
    if m.kind == "diffusion":  # other step counts: encoder + denoiser graphs with the numpy DDIM update
        np_cond = {k: x.numpy() for k, x in cond.items()}
        two = ort.sample(v.numpy(), a.numpy(), steps=2, noise=n.numpy(), **np_cond)
        assert np.abs(two - m.sample(v, a, steps=2, noise=n, **cond).numpy()).max() < 1e-4
        if name == "mubic":  # the adaptive count comes out of the encoder graph
            auto = ort.sample(v.numpy(), a.numpy(), steps=None, noise=n.numpy())
            assert np.abs(auto - m.sample(v, a, steps=None, noise=n).numpy()).max() < 1e-4
        else:
            with pytest.raises(SalrtError, match="adaptive"):
                ort.sample(v.numpy(), a.numpy(), steps=None, noise=n.numpy(), **np_cond)


def test_run_cli_text_model_with_captions(
    tmp_path: Path, clip_file: Path, bpe_file: Path, capsys: pytest.CaptureFixture
) -> None:
    base = [
        "run",
        str(clip_file),
        "--model",
        "tavdiff",
        "--config",
        "tiny",
        "--random-weights",
        "--outputs",
        "npy",
        "--quiet",
    ]
    (tmp_path / "caps.json").write_text(json.dumps({"0": "a big cab", "9": "a bad egg"}))
    assert main([*base, "-o", str(tmp_path / "av")]) == 0
    assert "audio-visual (AV) variant" in capsys.readouterr().err
    assert (
        main([*base, "-o", str(tmp_path / "tav"), "--captions", str(tmp_path / "caps.json"), "--bpe", str(bpe_file)])
        == 0
    )
    av = np.load(tmp_path / "av" / "clip_maps.npy")
    tav = np.load(tmp_path / "tav" / "clip_maps.npy")
    assert av.shape == tav.shape == (18, 64, 128)
    assert np.abs(av.astype(int) - tav.astype(int)).max() > 0
    assert main([*base, "-o", str(tmp_path / "x"), "--captions", str(tmp_path / "caps.json")]) == 2
    assert "--bpe" in capsys.readouterr().err


def test_run_cli_one_pass_and_adaptive_models(tmp_path: Path, clip_file: Path, capsys: pytest.CaptureFixture) -> None:
    for name, extra in (("avrsp", []), ("dtfsal", []), ("mubic", ["--steps", "auto"])):
        out = tmp_path / name
        assert (
            main(
                [
                    "run",
                    str(clip_file),
                    "--model",
                    name,
                    "--config",
                    "tiny",
                    "--random-weights",
                    "--outputs",
                    "npy",
                    "--quiet",
                    "-o",
                    str(out),
                    *extra,
                ]
            )
            == 0
        )
        maps = np.load(out / "clip_maps.npy")
        assert maps.shape == (18, 64, 128) and maps.std() > 0
    assert (
        main(
            [
                "run",
                str(clip_file),
                "--model",
                "dtfsal",
                "--config",
                "tiny",
                "--random-weights",
                "-o",
                str(tmp_path / "e"),
                "--captions",
                "x.json",
            ]
        )
        == 2
    )
    assert "takes no text" in capsys.readouterr().err
    assert (
        main(
            [
                "run",
                str(clip_file),
                "--model",
                "mubic",
                "--config",
                "tiny",
                "--random-weights",
                "-o",
                str(tmp_path / "e"),
                "--steps",
                "two",
            ]
        )
        == 2
    )
    assert "'auto'" in capsys.readouterr().err


def test_info_cli_reports_paper_figures(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "dtfsal", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["steps"] == 0 and set(data["flops"]) == {"forward"}
    assert {r["quantity"] for r in data["paper_figures"]} == {"params", "FLOPs (thop MACs)", "model size"}
    assert all(abs(r["difference_pct"]) < 2 for r in data["paper_figures"])
    assert main(["info", "tavdiff", "--config", "tiny"]) == 0
    assert "denoiser step" in capsys.readouterr().out
    assert main(["info", "avrsp", "--audio-shape", "1x9x112x192"]) == 2
    assert "log-mel" in capsys.readouterr().err


def test_export_cli_then_run_with_onnxruntime(tmp_path: Path, clip_file: Path, bpe_file: Path) -> None:
    """salrt export --model tavdiff, then salrt run --backend onnxruntime: the runtime takes the
    model's input contract from the manifest and feeds caption ids to the exported graphs."""
    exp = tmp_path / "exp"
    assert (
        main(["export", "--model", "tavdiff", "--config", "tiny", "--random-weights", "-o", str(exp), "--quiet"]) == 0
    )
    man = json.loads((exp / "manifest.json").read_text())
    assert man["model"] == "tavdiff" and man["graphs"]["sampler"]["inputs"]["text"]["dtype"] == "int64"
    (tmp_path / "caps.json").write_text(json.dumps({"0": "a big cab"}))
    common = [
        "run",
        str(clip_file),
        "--model",
        "tavdiff",
        "--outputs",
        "npy",
        "--quiet",
        "--captions",
        str(tmp_path / "caps.json"),
        "--bpe",
        str(bpe_file),
    ]
    assert main([*common, "--backend", "onnxruntime", "--export-dir", str(exp), "-o", str(tmp_path / "ort")]) == 0
    assert main([*common, "--config", "tiny", "--random-weights", "-o", str(tmp_path / "torch")]) == 0
    ort_maps = np.load(tmp_path / "ort" / "clip_maps.npy").astype(int)
    torch_maps = np.load(tmp_path / "torch" / "clip_maps.npy").astype(int)
    assert ort_maps.shape == torch_maps.shape == (18, 64, 128)
    assert np.abs(ort_maps - torch_maps).max() <= 1  # uint8 maps: equal up to rounding


def test_input_contract_of_configs_and_manifests() -> None:
    from salrt.io.contract import InputContract

    avrsp = InputContract.of(salrt.AVRSPConfig())
    assert (avrsp.clip_len, avrsp.target, avrsp.start, avrsp.audio_format, avrsp.audio_samples) == (
        32,
        "last",
        "reverse",
        "waveform",
        70560,
    )
    tav = InputContract.of(salrt.TAVDiffConfig())
    assert (tav.target, tav.start, tav.text_context) == ("centre", "repeat", 77)
    assert InputContract.from_manifest({"contract": json.loads(json.dumps(avrsp.to_dict()))}) == avrsp
    # exports written before manifests carried the contract (and graph roles) are refused by name
    old = {
        "model": "diffsal",
        "config": {"frames": 16, "height": 64, "width": 128, "audio_height": 32, "audio_width": 64},
    }
    for m in (old, {"model": "mubic", "config": {}}):
        with pytest.raises(SalrtError, match="export it again"):
            InputContract.from_manifest(m)
