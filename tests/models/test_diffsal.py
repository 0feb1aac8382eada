"""API contracts of the DiffSal model on the tiny configuration (same code as the paper size)."""

from __future__ import annotations

import pytest
import torch

import salrt
from salrt.models.mvit import reference_attention
from salrt.models.synthetic import synthetic_inputs


def test_encode_shapes(tiny, tiny_inputs):
    video, audio, _ = tiny_inputs
    f = tiny.encode(video, audio)
    c = tiny.config
    assert [tuple(v.shape) for v in f.video] == [
        (2, 64, 8, 2, 4),
        (2, 32, 8, 4, 8),
        (2, 16, 8, 8, 16),
        (2, 8, 8, 16, 32),
    ]
    assert tuple(f.audio.shape) == (2, c.vggish_channels[-1], 9, 2, 4)
    assert [tuple(a.shape)[1:] for a in f.audio_aligned] == [
        (64, 9, 2, 4),
        (32, 9, 4, 8),
        (16, 9, 8, 16),
        (8, 9, 16, 32),
    ]


def test_denoise_and_sample_range(tiny, tiny_inputs):
    video, audio, noise = tiny_inputs
    f = tiny.encode(video, audio)
    x0 = tiny.denoise(noise, torch.tensor([999, 0]), f)
    assert x0.shape == (2, 1, 64, 128) and 0 <= x0.min() and x0.max() <= 1
    maps = tiny.sample(video, audio, noise=noise)
    assert maps.shape == (2, 1, 64, 128) and torch.isfinite(maps).all()
    assert 0 <= maps.min() and maps.max() <= 1


def test_inputs_not_mutated_and_repeatable(tiny, tiny_inputs):
    video, audio, noise = tiny_inputs
    copies = [x.clone() for x in (video, audio, noise)]
    a = tiny.sample(video, audio, noise=noise)
    f = tiny.encode(video, audio)
    fcopy = [v.clone() for v in f.video] + [f.audio.clone()] + [x.clone() for x in f.audio_aligned]
    tiny.denoise(noise, torch.tensor([500, 500]), f)
    b = tiny.sample(video, audio, noise=noise)
    for x, y in zip((video, audio, noise), copies):
        assert torch.equal(x, y)
    for x, y in zip(list(f.video) + [f.audio] + list(f.audio_aligned), fcopy):
        assert torch.equal(x, y)
    assert torch.equal(a, b)


def test_batch_equals_items_alone(tiny, tiny_inputs):
    video, audio, noise = tiny_inputs
    both = tiny.sample(video, audio, noise=noise)
    for i in range(2):
        alone = tiny.sample(video[i : i + 1], audio[i : i + 1], noise=noise[i : i + 1])
        torch.testing.assert_close(both[i : i + 1], alone, atol=1e-6, rtol=0)
    f = tiny.encode(video, audio)
    t = torch.tensor([750, 250])
    x0 = tiny.denoise(noise, t, f)
    for i in range(2):
        fi = tiny.encode(video[i : i + 1], audio[i : i + 1])
        torch.testing.assert_close(x0[i : i + 1], tiny.denoise(noise[i : i + 1], t[i : i + 1], fi), atol=1e-6, rtol=0)


def test_output_depends_on_every_input(tiny, tiny_inputs):
    """Each input moves the output far more than the parity tolerance (1e-4)."""
    video, audio, noise = tiny_inputs
    t = torch.tensor([500, 500])
    f = tiny.encode(video, audio)
    base = tiny.denoise(noise, t, f)
    changes = {
        "x_t": tiny.denoise(noise.flip(0), t, f),
        "t": tiny.denoise(noise, torch.tensor([50, 950]), f),
        "video": tiny.denoise(noise, t, tiny.encode(video.flip(0), audio)),
        "audio": tiny.denoise(noise, t, tiny.encode(video, audio.flip(0))),
    }
    for name, out in changes.items():
        assert (out - base).abs().max() > 1e-3, name


def test_sampling_determinism_and_eta(tiny, tiny_inputs):
    video, audio, noise = tiny_inputs
    a = tiny.sample(video, audio, noise=noise, eta=0.5)
    b = tiny.sample(video, audio, noise=noise, eta=0.5)
    assert torch.equal(a, b)  # noise given: deterministic even with eta > 0
    c = tiny.sample(video, audio, noise=noise, eta=0.0)
    assert not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(tiny.sample(video, audio, generator=g1), tiny.sample(video, audio, generator=g2))
    assert tiny.sample(video, audio, steps=1, noise=noise).shape == (2, 1, 64, 128)


def test_fused_attention_matches_reference_style(tiny, tiny_inputs):
    video, audio, _ = tiny_inputs
    fused = tiny.video_encoder(video)
    with reference_attention(tiny):
        plain = tiny.video_encoder(video)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, atol=2e-5, rtol=0)


@pytest.mark.parametrize(
    "video_shape,audio_shape,match",
    [
        ((2, 3, 16, 64, 64), (2, 1, 9, 32, 64), "video must have shape"),
        ((2, 3, 16, 64, 128), (2, 1, 8, 32, 64), "audio must have shape"),
        ((2, 3, 16, 64, 128), (1, 1, 9, 32, 64), "batch sizes differ"),
    ],
)
def test_bad_shapes_are_clear_errors(tiny, video_shape, audio_shape, match):
    with pytest.raises(ValueError, match=match):
        tiny.encode(torch.zeros(video_shape), torch.zeros(audio_shape))


def test_bad_arguments(tiny, tiny_inputs):
    video, audio, noise = tiny_inputs
    f = tiny.encode(video, audio)
    with pytest.raises(ValueError, match="integer tensor"):
        tiny.denoise(noise, torch.tensor([0.5, 0.5]), f)
    with pytest.raises(ValueError, match="steps"):
        tiny.sample(video, audio, steps=0)
    with pytest.raises(ValueError, match="eta"):
        tiny.sample(video, audio, eta=-1.0)
    with pytest.raises(ValueError, match="noise"):
        tiny.sample(video, audio, noise=noise[:1])
    with pytest.raises(TypeError, match="floating-point"):
        tiny.encode(video.long(), audio)
    with pytest.raises(salrt.SalrtError, match="unknown model"):
        salrt.load_model("nope")
    with pytest.raises(ValueError, match="preset"):
        salrt.load_model("diffsal", config="huge")


def test_bfloat16_runs(tiny_inputs):
    m = salrt.load_model("diffsal", config="tiny", dtype=torch.bfloat16)
    video, audio, noise = tiny_inputs
    out = m.sample(video, audio, noise=noise)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()


def test_config_validation():
    with pytest.raises(ValueError, match="multiple of 32"):
        salrt.DiffSalConfig(height=100)
    with pytest.raises(ValueError, match="audio feature grid"):
        salrt.DiffSalConfig(audio_height=64)
    cfg = salrt.DiffSalConfig.preset("tiny")
    assert salrt.DiffSalConfig.from_dict(cfg.to_dict()) == cfg


def test_synthetic_inputs_are_seeded():
    a = synthetic_inputs((3, 16, 64, 128), (1, 9, 32, 64), 1, seed=1)
    b = synthetic_inputs((3, 16, 64, 128), (1, 9, 32, 64), 1, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("channels,sizes", [(16, [(2, 3), (4, 6), (8, 12), (16, 24)]), (24, [(3, 5), (6, 10)])])
def test_head_conv_of_sum_equals_conv_of_fused_sum(channels, sizes):
    """The head's 3x3 convolution computed per side at the sides' resolutions equals the reference's
    convolution of the summed, resized sides (zero borders included), and the thop count keeps the
    reference's full-size convolution."""
    from torch.nn import functional as F

    from salrt.models.saliency_unet import SaliencyHead

    torch.manual_seed(0)
    head = SaliencyHead(channels, 8, (64, 96)).eval()
    torch.nn.init.normal_(head.conv.bias)
    size = (2 * sizes[-1][0], 2 * sizes[-1][1])
    sides = [torch.randn(2, channels, h, w) for h, w in sizes]
    fused = sum(F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in sides)
    want = head.conv(fused)
    got = head.conv_of_sum(sides, size)
    assert got.shape == want.shape == (2, 8, *size)
    assert (got - want).abs().max() <= 1e-5 * want.abs().max()
    macs, params = head.thop_macs((sides, size), head(sides, size))
    assert macs == 2 * 8 * size[0] * size[1] * channels * 9 and params == head.conv.weight.numel() + 8
