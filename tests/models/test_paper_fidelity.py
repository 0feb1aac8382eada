"""Where the four newer models follow (or read) their papers: step plans, SITR's word tokens,
AVRSP's decoder inputs, MUBiC's audio refinement, the variants, and `salrt info` per preset."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

import salrt
from salrt.cli import main
from salrt.errors import UsageError
from salrt.models import MODELS
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs

DIFFUSION = [n for n, (cls, _) in MODELS.items() if cls.kind == "diffusion"]


def tiny(name: str, **overrides: object) -> torch.nn.Module:
    cfg = dataclasses.replace(MODELS[name][1].preset("tiny"), **overrides)
    return load_synthetic_weights(MODELS[name][0](cfg).eval(), 0)


@pytest.mark.parametrize("name", DIFFUSION)
def test_steps_mean_denoiser_passes(name: str) -> None:
    """steps=N runs the scheduler's plan: exactly N passes for the papers' "even" plan, DiffSal's
    reference plan (N + 1 passes for N = 3) where the config keeps it."""
    m = tiny(name)
    calls = []
    orig = m.denoise
    m.denoise = lambda x, t, f: calls.append(int(t[0])) or orig(x, t, f)  # type: ignore[method-assign]
    c = m.config
    v, a, n = synthetic_inputs(c.video_shape, c.audio_shape, 1, seed=0)
    cond = {"text": torch.zeros(1, c.text.context, dtype=torch.long)} if "text" in m.conditions else {}
    for steps in (1, 3, 4):
        calls.clear()
        m.sample(v, a, steps=steps, noise=n, **cond)
        assert calls == [s.t for s in m.scheduler.timesteps(steps)]
        if c.timestep_spacing == "even":
            assert len(calls) == steps and calls[0] == c.num_timesteps - 1 and (steps == 1 or calls[-1] == 0)
        else:
            assert c.timestep_spacing == "reference" and len(calls) == (4 if steps == 3 else steps)


def test_sitr_selects_only_word_tokens() -> None:
    m = tiny("tavdiff")
    c = m.config
    v, a, _ = synthetic_inputs(c.video_shape, c.audio_shape, 3, seed=1)
    ids = torch.zeros(3, c.text.context, dtype=torch.long)
    ids[0, :5] = torch.tensor([49406, 320, 1929, 530, 49407])  # a caption with three words
    ids[1, :2] = torch.tensor([49406, 49407])  # an empty caption: start and end only
    with torch.no_grad():
        ft = m.text_encoder(ids)
        vis = m.video_encoder(v)[-1].flatten(2).transpose(1, 2)
        words = (ids != 0) & (ids < c.text.vocab_size - 2)
        # make the start and end tokens the strongest responders: they must still not be chosen
        ft[:, 0] += 50.0
        ft[:, 4] += 50.0
        _, k = m.sitr(ft, words, vis)
        assert 1 <= int(k[0]) <= 3
        feats = m.encode(v, a, text=ids)
        av = m.encode(v, a, text=torch.zeros_like(ids))
    # no word token: the clip runs the AV variant, exactly as without a caption
    assert torch.equal(feats.cond[1], av.cond[1]) and torch.equal(feats.cond[2], av.cond[2])
    assert not torch.equal(feats.cond[0], av.cond[0])


def _local_change(m: torch.nn.Module, module: torch.nn.Module, cfg) -> float:
    """Ratio of the output change in the top-left quarter to the bottom-right quarter when a local
    patch of ``module``'s output (top-left) is perturbed."""
    v, a, _ = synthetic_inputs(cfg.video_shape, cfg.audio_shape, 1, seed=2)
    with torch.no_grad():
        base = m.predict(v, a)

        def bump(_mod, _inp, out):
            out = out.clone()
            out[..., :4, :4] += 5.0
            return out

        h = module.register_forward_hook(bump)
        try:
            moved = m.predict(v, a)
        finally:
            h.remove()
    d = (moved - base).abs()[0, 0]
    hh, ww = d.shape
    return float(d[: hh // 2, : ww // 2].mean() / d[hh // 2 :, ww // 2 :].mean().clamp_min(1e-12))


def test_avrsp_decoder_reads_fine_features_locally() -> None:
    """The prose reading feeds the finest MS-enhanced features to the decoder: a local change stays
    local. The literal Eqs. 13-15 pass them only through global gates: the change spreads."""
    ratios = {}
    for reading in ("features", "gates"):
        m = tiny("avrsp", decoder_inputs=reading)
        ratios[reading] = _local_change(m, m.ms[2], m.config)  # MS of the finest middle scale
    assert ratios["features"] > 3.0 * ratios["gates"], ratios


def test_mubic_audio_refinement_attends_along_time_only() -> None:
    """Eqs. 3.5-3.8: each spatial position of the VGGish grid attends over the slices only; DiffSal's
    layer mixes all positions."""
    for reading, local in (("thesis", True), ("diffsal", False)):
        enc = tiny("mubic", audio_refinement=reading).audio_encoder.spatiotemp_net
        f = torch.randn(
            1, enc.norm1.normalized_shape[0] if reading == "thesis" else enc.norm.normalized_shape[0], 9, 2, 4
        )
        g = f.clone()
        g[..., 0, 0] += 3.0 * torch.randn(g.shape[1], g.shape[2])  # not a constant: LayerNorm would remove it
        with torch.no_grad():
            d = (enc(g) - enc(f)).abs()
        here = d[..., 0, 0].amax()
        d[..., 0, 0] = 0.0
        others = d.amax()
        assert (others == 0) if local else (others > 1e-4), reading
        assert here > 1e-4


def test_variant_presets_build_and_sample() -> None:
    for name, overrides, absent in (
        ("avrsp", {"use_audio": False}, "audio_encoder"),
        ("tavdiff", {"modalities": "tv"}, "audio_encoder"),
        ("tavdiff", {"modalities": "ta"}, "video_encoder"),
    ):
        m = tiny(name, **overrides)
        assert absent not in m.parts()
        c = m.config
        v, a, n = synthetic_inputs(c.video_shape, c.audio_shape, 2, seed=3)
        cond = {}
        if "text" in m.conditions:
            ids = torch.zeros(2, c.text.context, dtype=torch.long)
            ids[:, :3] = torch.tensor([49406, 320, 49407])
            cond["text"] = ids
        out = m.sample(v, a, steps=2, noise=n, **cond)
        assert out.shape == (2, 1, c.height, c.width) and torch.isfinite(out).all()
    for name, preset in (("avrsp", "visual"), ("tavdiff", "tv"), ("tavdiff", "ta"), ("dtfsal", "visual")):
        assert preset in MODELS[name][1].preset_names()


def test_readings_are_validated() -> None:
    with pytest.raises(UsageError, match="decoder_inputs must be one of features, gates"):
        salrt.models.AVRSPConfig(decoder_inputs="both")
    with pytest.raises(UsageError, match="decoders must be one of"):
        salrt.models.DTFSalConfig(decoders="wide")
    with pytest.raises(UsageError, match="modalities"):
        salrt.models.TAVDiffConfig(modalities="av")


def test_info_compares_each_preset_with_its_own_paper_row(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "dtfsal", "--config", "visual", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    rows = {r["quantity"]: r for r in d["paper_figures"]}
    assert rows["params"]["paper"] == 40.73 and abs(rows["params"]["difference_pct"]) < 1
    assert rows["FLOPs (thop MACs)"]["paper"] == 259.57 and abs(rows["FLOPs (thop MACs)"]["difference_pct"]) < 2
    table5, fit = d["readings"]["decoders"]["table5"], d["readings"]["decoders"]["cost-fit"]
    assert table5["params"] < fit["params"] and table5["paper_macs"] > fit["paper_macs"]
    assert main(["info", "avrsp", "--config", "visual"]) == 0
    out = capsys.readouterr().out
    assert "reports no cost figures for preset 'visual'" in out and "decoder_inputs" in out
