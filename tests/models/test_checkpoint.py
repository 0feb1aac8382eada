"""Checkpoint import (authors' layout, backbones) and salrt's own format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

import salrt
from salrt.errors import CheckpointError
from salrt.models.diffsal import REFERENCE_IGNORED, reference_to_salrt, salrt_to_reference
from salrt.models.mvit import load_mvit_pretrained
from salrt.models.vggish import load_vggish_pretrained

SPEC = Path(__file__).resolve().parents[1] / "data" / "diffsal_reference_state_dict.json"  # copy of shared/spec


def reference_layout(model: salrt.DiffSal) -> dict[str, torch.Tensor]:
    """The model's weights under the reference's names, with its ignored extras, as the authors save."""
    sd = {"module." + salrt_to_reference(k): v.clone() for k, v in model.state_dict().items()}
    sd["module.fc.0.weight"] = torch.zeros(4, 4)
    sd["module.spatiotemp_net.pos_embedding"] = torch.zeros(1, 1, 9, 1, 1)
    return {"state_dict": sd, "epoch": 3, "step": 10}


def test_name_mapping_covers_the_reference_exactly():
    shapes = json.loads(SPEC.read_text())
    assert len(shapes) == 658
    with torch.device("meta"):
        own = salrt.DiffSal().state_dict()
    mapped = {}
    for name, shape in shapes.items():
        new = reference_to_salrt(name)
        if new is None:
            assert any(re.search(p, name) for p, _ in REFERENCE_IGNORED)
            continue
        assert tuple(own[new].shape) == tuple(shape), name
        assert salrt_to_reference(new) == name
        mapped[new] = name
    assert set(mapped) == set(own)


def test_authors_checkpoint_roundtrip(tmp_path, tiny, tiny_inputs):
    path = tmp_path / "best.pth"
    torch.save(reference_layout(tiny), path)
    loaded = salrt.load_model("diffsal", checkpoint=path, config="tiny")
    video, audio, noise = tiny_inputs
    assert torch.equal(loaded.sample(video, audio, noise=noise), tiny.sample(video, audio, noise=noise))
    # bare state dict, no prefix
    bare = {k[len("module.") :]: v for k, v in reference_layout(tiny)["state_dict"].items()}
    torch.save(bare, tmp_path / "bare.pth")
    salrt.load_model("diffsal", checkpoint=tmp_path / "bare.pth", config="tiny")


@pytest.mark.parametrize(
    "change,match",
    [
        ("drop", r"missing 1 tensor\(s\): denoiser\.head\.logits\.bias"),
        ("extra", r"unexpected tensor 'decoder_net\.bogus\.weight'"),
        ("shape", r"wrong shape: denoiser\.head\.logits\.bias: checkpoint \(2,\) vs model \(1,\)"),
    ],
)
def test_strict_accounting(tmp_path, tiny, change, match):
    ckpt = reference_layout(tiny)
    sd = ckpt["state_dict"]
    if change == "drop":
        del sd["module.decoder_net.logits.linear_pred.bias"]
    elif change == "extra":
        sd["module.decoder_net.bogus.weight"] = torch.zeros(1)
    else:
        sd["module.decoder_net.logits.linear_pred.bias"] = torch.zeros(2)
    torch.save(ckpt, tmp_path / "c.pth")
    with pytest.raises(CheckpointError, match=match):
        salrt.load_model("diffsal", checkpoint=tmp_path / "c.pth", config="tiny")


def test_unreadable_files(tmp_path, tiny):
    good = tmp_path / "good.pth"
    torch.save(reference_layout(tiny), good)
    data = good.read_bytes()
    cases = {
        "truncated.pth": data[: len(data) // 2],
        "text.pth": b"this is not a checkpoint\n",
        "empty.pth": b"",
    }
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "truncated.pth", config="tiny")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "text.pth", config="tiny")
    with pytest.raises(CheckpointError, match="empty"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "empty.pth", config="tiny")
    with pytest.raises(CheckpointError, match="no such file"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "missing.pth", config="tiny")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="not named tensors|no state dict"):
        salrt.load_model("diffsal", checkpoint=tmp_path / "list.pth", config="tiny")


def test_salrt_format_roundtrip_exact(tmp_path, tiny, tiny_inputs):
    out = salrt.save_checkpoint(tiny, tmp_path / "tiny")
    assert (out / "model.safetensors").exists() and (out / "config.json").exists()
    loaded = salrt.load_model("diffsal", checkpoint=out)  # config comes from the file
    assert loaded.config == tiny.config
    for k, v in tiny.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    video, audio, noise = tiny_inputs
    assert torch.equal(loaded.sample(video, audio, noise=noise), tiny.sample(video, audio, noise=noise))
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        salrt.load_model("diffsal", checkpoint=out)


def test_mvit_pretrained_loader(tmp_path, tiny):
    enc = tiny.video_encoder
    sd = {
        "backbone." + k: v.clone() for k, v in enc.state_dict().items() if not k.startswith(("norm0", "norm1", "norm2"))
    }
    sd["cls_head.fc_cls.weight"] = torch.zeros(400, 64)
    # a relative-position table of another length is resized linearly
    key = "backbone.blocks.0.attn.rel_pos_w"
    sd[key] = torch.randn(sd[key].shape[0] + 6, sd[key].shape[1])
    torch.save({"state_dict": sd, "meta": {"epoch": 1}}, tmp_path / "mvit.pth")
    fresh = salrt.load_model("diffsal", config="tiny").video_encoder
    defaulted = load_mvit_pretrained(fresh, tmp_path / "mvit.pth")
    assert defaulted == sorted(f"norm{i}.{p}" for i in range(3) for p in ("bias", "weight"))
    assert torch.equal(fresh.norm0.weight, torch.ones_like(fresh.norm0.weight))
    assert torch.equal(fresh.blocks[1].mlp.fc1.weight, enc.blocks[1].mlp.fc1.weight)
    assert fresh.blocks[0].attn.rel_pos_w.shape == enc.blocks[0].attn.rel_pos_w.shape
    torch.save({"state_dict": {"cls_head.x": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="not an mmaction2 MViT"):
        load_mvit_pretrained(fresh, tmp_path / "bad.pth")


def test_vggish_pretrained_loader(tmp_path, tiny):
    net = tiny.audio_encoder.audio_net
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    sd["embeddings.0.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "vggish.pth")
    fresh = salrt.load_model("diffsal", config="tiny").audio_encoder.audio_net
    assert load_vggish_pretrained(fresh, tmp_path / "vggish.pth") == ["embeddings.0.weight"]
    assert torch.equal(fresh.features[0].weight, net.features[0].weight)
    del sd["features.13.bias"]
    torch.save(sd, tmp_path / "vggish_bad.pth")
    with pytest.raises(CheckpointError, match=r"features\.13\.bias"):
        load_vggish_pretrained(fresh, tmp_path / "vggish_bad.pth")


@pytest.mark.parametrize(
    "change, needle",
    [
        (lambda meta: meta["config"].update(frames="sixteen"), "'frames'"),
        (lambda meta: meta["config"].update(frames=True), "'frames'"),
        (lambda meta: meta["config"].update(no_such_field=1), "no_such_field"),
        (lambda meta: meta["config"].update(frames=-16), "config.json"),
        (lambda meta: meta.pop("config"), "not a salrt config"),
        (lambda meta: None, "not a salrt config"),  # the whole file a JSON list (below)
    ],
)
def test_a_bad_config_json_is_a_bad_file(tmp_path, capsys, change, needle: str) -> None:
    """A checkpoint folder whose config.json is wrong ends in one line naming the file (and the
    field), exit 1: a bad file, not a usage mistake and never an internal error."""
    import json

    from conftest import tiny_model

    from salrt.checkpoint import save_salrt
    from salrt.cli import main

    d = save_salrt(tiny_model(), tmp_path / "ck")
    meta = json.loads((d / "config.json").read_text())
    change(meta)
    (d / "config.json").write_text(json.dumps([meta] if needle == "not a salrt config" and "config" in meta else meta))
    clip = tmp_path / "missing.mp4"
    from salrt.io import make_clip

    make_clip(clip, seed=1, seconds=0.2, width=96, height=64)
    rc = main(["run", str(clip), "-o", str(tmp_path / "o"), "--checkpoint", str(d), "--backend", "torch", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.count("\n") == 0 and "internal error" not in err, err
    assert needle in err and "config.json" in err, err


def test_random_bytes_are_named_without_torchs_unsafe_hint(tmp_path) -> None:
    import numpy as np

    from salrt.checkpoint import read_torch_file

    p = tmp_path / "random.pth"
    p.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as e:
        read_torch_file(p)
    assert "weights_only" not in str(e.value) and "not a PyTorch checkpoint" in str(e.value)
