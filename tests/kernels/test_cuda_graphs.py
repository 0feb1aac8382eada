"""CUDA graphs over whole clips (encoders + denoiser passes, or the one pass) for every model in
the registry, against eager (CUDA machines only: benchmarks/gpu/check.sh runs the suite there)."""

from __future__ import annotations

import pytest
import torch

import salrt
from salrt import kernels
from salrt.backends.torch_backend import TorchBackend
from salrt.models import MODELS
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU")


def _inputs(model: torch.nn.Module, batch: int, seed: int) -> tuple:
    c = model.config
    v, a, n = (x.cuda() for x in synthetic_inputs(c.video_shape, c.audio_shape, batch, seed=seed))
    cond = {}
    if "text" in model.conditions:
        ids = torch.zeros(batch, c.text.context, dtype=torch.long, device="cuda")
        ids[:, :3] = torch.tensor([49406, 320, 49407])
        cond["text"] = ids
    return v, a, n, cond


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("encoders", [True, False])
def test_graph_replay_equals_eager(name: str, encoders: bool) -> None:
    model = load_synthetic_weights(salrt.load_model(name, config="tiny", device="cuda"), 0)
    b = TorchBackend(model, graph_encoders=encoders)
    for seed in (1, 2):  # the second clip replays the captured graph with new inputs
        v, a, n, cond = _inputs(model, 2, seed)
        with torch.inference_mode():
            ref = model.sample(v, a, steps=4, noise=n, **cond)
        got = b.sample(v, a, steps=4, noise=n, **cond)
        assert torch.allclose(got, ref, atol=1e-5), (name, seed, float((got - ref).abs().max()))
    assert len(b._graphs) == 1


def test_lru_bound_on_captured_shapes() -> None:
    model = load_synthetic_weights(salrt.load_model("diffsal", config="tiny", device="cuda"), 0)
    b = TorchBackend(model)
    for batch in (1, 2, 3, 4, 5):
        v, a, n, _ = _inputs(model, batch, batch)
        b.sample(v, a, steps=2, noise=n)
    assert len(b._graphs) == b.max_graphs and (1, 2) not in b._graphs and (5, 2) in b._graphs


def test_eta_above_zero_on_cuda_with_kernels() -> None:
    model = load_synthetic_weights(salrt.load_model("diffsal", config="tiny", device="cuda"), 0)
    kernels.enable(model)
    v, a, n, _ = _inputs(model, 2, 3)
    g = torch.Generator(device="cuda").manual_seed(0)
    out = model.sample(v, a, steps=4, eta=0.5, noise=n, generator=g)
    assert out.shape == (2, 1, *model.config.video_shape[2:]) and torch.isfinite(out).all()
