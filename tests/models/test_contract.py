"""The model contract over the whole registry (DiffSal included): shapes, determinism, batching,
inputs unmutated, input checks, declared graphs and kernels, cost vs the papers."""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

import salrt
from salrt.backends.torch_backend import TorchBackend
from salrt.cost import cost_report, paper_comparison
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs

ALL = tuple(sorted(salrt.models.MODELS))


def tiny(name: str, seed: int = 0) -> torch.nn.Module:
    return load_synthetic_weights(salrt.load_model(name, config="tiny"), seed)


def inputs(model: torch.nn.Module, batch: int, seed: int = 3) -> tuple[torch.Tensor, ...]:
    c = model.config
    return synthetic_inputs(c.video_shape, c.audio_shape, batch, seed=seed)


def caption_ids(model: torch.nn.Module, batch: int) -> dict[str, torch.Tensor]:
    if "text" not in model.conditions:
        return {}
    ids = torch.zeros(batch, model.config.text.context, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:5] = torch.arange(4 * batch).reshape(batch, 4) + 300
    ids[:, 5] = 49407
    return {"text": ids}


@pytest.fixture(scope="module", params=ALL)
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return tiny(request.param)


def test_maps_shape_range_and_determinism(model: torch.nn.Module) -> None:
    v, a, n = inputs(model, 2)
    cond = caption_ids(model, 2)
    out = model.sample(v, a, steps=3, noise=n, **cond)
    assert out.shape == (2, 1, model.config.height, model.config.width)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert float(out.std()) > 1e-4  # not constant
    again = model.sample(v, a, steps=3, noise=n, **cond)
    assert torch.equal(out, again)
    v2, a2, _ = inputs(model, 2, seed=9)
    other = model.sample(v2, a2, steps=3, noise=n, **cond)
    assert float((other - out).abs().max()) > 1e-6  # the inputs matter


def test_batch_equals_single_items(model: torch.nn.Module) -> None:
    v, a, n = inputs(model, 2)
    cond = caption_ids(model, 2)
    both = model.sample(v, a, steps=2, noise=n, **cond)
    for i in range(2):
        one = model.sample(
            v[i : i + 1], a[i : i + 1], steps=2, noise=n[i : i + 1], **{k: x[i : i + 1] for k, x in cond.items()}
        )
        assert torch.allclose(both[i : i + 1], one, atol=1e-5)


def test_audio_changes_the_map(model: torch.nn.Module) -> None:
    v, a, n = inputs(model, 1)
    cond = caption_ids(model, 1)
    base = model.sample(v, a, steps=2, noise=n, **cond)
    moved = model.sample(v, a * 0.0 + 1.0, steps=2, noise=n, **cond)
    assert float((base - moved).abs().max()) > 1e-5


def test_diffusion_models_use_the_noise_and_steps(model: torch.nn.Module) -> None:
    if model.kind != "diffusion":
        pytest.skip("one-pass model")
    v, a, n = inputs(model, 1)
    cond = caption_ids(model, 1)
    ref = model.sample(v, a, steps=4, noise=n, **cond)
    assert float((model.sample(v, a, steps=4, noise=-n, **cond) - ref).abs().max()) > 1e-5
    assert float((model.sample(v, a, steps=1, noise=n, **cond) - ref).abs().max()) > 1e-5


def test_bad_inputs_are_rejected_clearly(model: torch.nn.Module) -> None:
    v, a, _ = inputs(model, 1)
    with pytest.raises(ValueError, match="video must have shape"):
        model.sample(v[:, :, :-1], a, steps=1)
    with pytest.raises(ValueError, match="audio must have shape"):
        model.sample(v, a[..., :-1], steps=1)
    with pytest.raises(TypeError, match="floating-point"):
        model.sample(v.long(), a, steps=1)
    v2, _, _ = inputs(model, 2)
    with pytest.raises(ValueError, match="batch"):
        model.sample(v2, a, steps=1, **caption_ids(model, 2))


# ----------------------------------------------------------------------------- cost vs papers
def _within(rows: list[dict], pct: float = 2.0) -> None:
    assert rows
    for r in rows:
        assert abs(r["difference_pct"]) <= pct, r


def test_dtfsal_cost_matches_paper() -> None:
    r = cost_report(model="dtfsal")
    rows = paper_comparison("dtfsal", r)
    _within(rows)
    assert {x["quantity"] for x in rows} == {"params", "FLOPs (thop MACs)", "model size"}
    v = cost_report(dataclasses.replace(salrt.DTFSalConfig(), use_audio=False), model="dtfsal")
    assert sum(v.params.values()) / 1e6 == pytest.approx(40.73, rel=0.02)  # DTFSal(V)
    assert v.paper_macs / 1e9 == pytest.approx(259.57, rel=0.02)
    assert "audio_encoder" not in v.params


def test_mubic_cost_matches_thesis_and_ablation_switches_change_it() -> None:
    full = cost_report(model="mubic")
    _within(paper_comparison("mubic", full))
    skip = cost_report(dataclasses.replace(salrt.MUBiCConfig(), residual_skip=False), model="mubic")
    # thesis: -0.8 M params and -1.4 G without the residual skip connections (1x1x1 convs)
    assert (full.paper_params - skip.paper_params) / 1e6 == pytest.approx(0.8, abs=0.05)
    assert (full.paper_macs - skip.paper_macs) / 1e9 == pytest.approx(1.4, abs=0.3)
    uni = cost_report(dataclasses.replace(salrt.MUBiCConfig(), bidirectional=False), model="mubic")
    assert uni.paper_macs < full.paper_macs and uni.paper_params < full.paper_params
    concat = cost_report(dataclasses.replace(salrt.MUBiCConfig(), gated_fusion=False), model="mubic")
    assert concat.paper_macs < full.paper_macs and concat.paper_params < full.paper_params


def test_every_model_reports_cost_in_both_conventions() -> None:
    for name in ALL:
        r = cost_report(salrt.models.MODELS[name][1].preset("tiny"), model=name, steps=4)
        assert r.paper_macs > 0 and r.flops_per_clip > r.paper_macs  # full FLOPs = 2 x MACs + attention
        if salrt.models.MODELS[name][0].kind == "diffusion":
            assert r.flops_per_clip == pytest.approx(r.flops_encoders + 4 * r.flops["denoiser_step"])
        else:
            assert r.steps == 0 and set(r.flops) == {"forward"}


def test_inputs_are_not_mutated(model: torch.nn.Module) -> None:
    v, a, n = inputs(model, 2)
    cond = caption_ids(model, 2)
    copies = [x.clone() for x in (v, a, n, *cond.values())]
    model.sample(v, a, steps=2, noise=n, **cond)
    for before, after in zip(copies, (v, a, n, *cond.values())):
        assert torch.equal(before, after)


def test_declared_graphs_and_kernels(model: torch.nn.Module) -> None:
    from salrt import kernels
    from salrt.errors import UsageError
    from salrt.export.manifest import graph_order

    graphs = model.export_graphs(2)
    assert set(graphs) == set(graph_order(model.graph_roles())) == set(model.graph_io(1))
    if model.kind == "diffusion":
        assert "ddim" in model.triton_kernels()
        t = model.feature_tensors(model.encode(*inputs(model, 1)[:2], **caption_ids(model, 1)))
        assert all(isinstance(x, torch.Tensor) for x in t)
        assert len(model.feature_tensors(model.features_from(t))) == len(t)
    else:
        assert model.triton_kernels() == ()
        with pytest.raises(UsageError, match="no Triton kernels"):
            kernels.enable(model)


def test_runtime_runs_the_model(model: torch.nn.Module, tmp_path) -> None:
    from salrt.io import make_clip
    from salrt.io.contract import InputContract
    from salrt.pipeline import Pipeline
    from salrt.runtime import stream

    clip = make_clip(tmp_path / "a.mp4", seed=2, seconds=0.4, width=96, height=64)
    pipe = Pipeline(TorchBackend(model), InputContract.of(model.config))
    maps = list(stream(str(clip.path), pipeline=pipe, steps=1))
    assert len(maps) == clip.n_frames
    assert all(m.shape == (model.config.height, model.config.width) for _, m in maps)


# ----------------------------------------------------------------------------- MUBiC adaptive steps
def test_mubic_adaptive_steps_default_and_override() -> None:
    m = tiny("mubic")
    torch.nn.init.zeros_(m.step_selector.mlp[2].weight)
    torch.nn.init.constant_(m.step_selector.mlp[2].bias, 4.0)  # the untrained default: 4 steps
    v, a, n = inputs(m, 2)
    feats = m.encode(v, a)
    assert m.step_counts(feats, None) == [4, 4]
    assert m.step_counts(feats, 7) == [7, 7]
    assert torch.equal(m.sample(v, a, steps=None, noise=n), m.sample(v, a, steps=4, noise=n))


def test_mubic_items_with_different_step_counts_batch_correctly() -> None:
    m = tiny("mubic")
    v, a, n = inputs(m, 2)
    ent = m.step_selector.entropy(m.encode(v, a).fused[0])
    assert torch.all((ent > 0) & (ent <= 1))
    # a selector that maps the two items' entropies to 2 and 6 steps
    lin1, lin2 = m.step_selector.mlp[0], m.step_selector.mlp[2]
    with torch.no_grad():
        lin1.weight.zero_()
        lin1.bias.zero_()
        lin1.weight[0, 0] = 1.0
        lin2.weight.zero_()
        lo, hi = sorted(ent.tolist())
        slope = 4.0 / (hi - lo)
        lin2.weight[0, 0] = slope
        lin2.bias.fill_(2.0 - slope * lo)
    counts = m.step_counts(m.encode(v, a), None)
    assert sorted(counts) == [2, 6]
    both = m.sample(v, a, steps=None, noise=n)
    for i in range(2):
        one = m.sample(v[i : i + 1], a[i : i + 1], steps=counts[i], noise=n[i : i + 1])
        assert torch.allclose(both[i : i + 1], one, atol=1e-5)


# ----------------------------------------------------------------------------- TAVDiff text path
def test_tavdiff_sitr_selection_rules() -> None:
    m = tiny("tavdiff")
    sitr = m.sitr
    b, n, p = 1, 4, 6
    text = torch.randn(b, n, m.config.text.embed_dim)
    vis = torch.randn(b, p, m.video_encoder.out_channels[-1])
    valid = torch.tensor([[True, True, True, False]])
    maps = sitr.maps(text, valid, vis)
    assert torch.allclose(maps.sum(1), torch.ones(b, p), atol=1e-5)  # a softmax over tokens per position
    assert torch.all(maps[:, 3] == 0)  # padding never responds
    _, k = sitr(text, valid, vis)
    assert int(k) == int(maps.sum(-1)[0, :3].argmax())
    # with a ground truth, the token whose map best covers it wins
    target = int(maps.sum(-1)[0, :3].argmin())
    gt = (maps[0, target] == maps[0, :3].max(0).values).float()[None] + 1e-3
    best = int((maps * gt[:, None]).sum(-1)[0, :3].argmax())
    _, k_gt = sitr(text, valid, vis, gt)
    assert int(k_gt) == best


def test_tavdiff_captionless_clip_is_the_av_variant_and_text_matters() -> None:
    m = tiny("tavdiff")
    v, a, n = inputs(m, 2)
    ids = caption_ids(m, 2)["text"]
    ids[1] = 0  # second clip has no caption
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit all-zero row is not a missing argument
        mixed = m.sample(v, a, steps=2, noise=n, text=ids)
    with pytest.warns(UserWarning, match="audio-visual"):
        av = m.sample(v, a, steps=2, noise=n)
    assert torch.allclose(mixed[1], av[1], atol=1e-6)
    assert float((mixed[0] - av[0]).abs().max()) > 1e-5
    other = ids.clone()
    other[0, 1:5] += 7
    assert float((m.sample(v, a, steps=2, noise=n, text=other)[0] - mixed[0]).abs().max()) > 1e-6
    with pytest.raises(ValueError, match="token ids"):
        m.sample(v, a, steps=1, text=ids.float())


def test_tavdiff_training_time_selection_uses_the_ground_truth() -> None:
    m = tiny("tavdiff")
    v, a, _ = inputs(m, 1)
    ids = caption_ids(m, 1)["text"]
    f_inf = m.encode(v, a, text=ids)
    gts = [torch.zeros(1, 1, m.config.height, m.config.width) for _ in range(2)]
    gts[0][..., : m.config.height // 2, :] = 1
    gts[1][..., m.config.height // 2 :, :] = 1
    feats = [m.encode(v, a, text=ids, gt=g).cond for g in gts]
    assert all(f.shape == f_inf.cond.shape for f in feats)


def test_dltfb_group_shift_is_a_zero_filled_roll_per_channel_group() -> None:
    from salrt.models.dtfsal import group_shift

    x = torch.randn(2, 11, 3, 5, 7)
    for dim in (3, 4):
        expect = []
        for g, s in zip(torch.chunk(x, 5, dim=1), range(-2, 3)):
            r = torch.roll(g, s, dims=dim).clone()
            if s > 0:
                r.narrow(dim, 0, s).zero_()
            elif s < 0:
                r.narrow(dim, x.shape[dim] + s, -s).zero_()
            expect.append(r)
        assert torch.equal(group_shift(x, dim, 2), torch.cat(expect, dim=1))


@pytest.mark.parametrize("switch", ["bidirectional", "residual_skip", "gated_fusion"])
def test_mubic_ablation_variants_run(switch: str) -> None:
    cfg = dataclasses.replace(salrt.MUBiCConfig.preset("tiny"), **{switch: False})
    m = load_synthetic_weights(salrt.load_model("mubic", config=cfg))
    v, a, n = inputs(m, 1)
    out = m.sample(v, a, steps=2, noise=n)
    full = tiny("mubic").sample(v, a, steps=2, noise=n)
    assert out.shape == full.shape and float((out - full).abs().max()) > 0
