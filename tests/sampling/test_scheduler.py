"""DDIM scheduler: the reference's schedule, timestep sequence and update rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from salrt.sampling import DDIMScheduler, DDIMStep, diffsal_cosine_betas


def test_schedule_formula():
    n = 1001
    x = np.linspace(0, n, n)
    abar = np.cos(((x / n) + 0.008) / 1.008 * math.pi / 2) ** 2
    abar /= abar[0]
    betas = np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)
    np.testing.assert_allclose(diffsal_cosine_betas(1000), betas, rtol=0, atol=0)
    s = DDIMScheduler()
    assert s.alphas_cumprod.dtype == torch.float32
    np.testing.assert_allclose(s.alphas_cumprod.numpy(), np.cumprod(1 - betas), rtol=2e-5, atol=1e-7)
    # float32 cumulative product, as the reference (differs from the float64 product in late steps)
    ref32 = torch.cumprod(1 - torch.tensor(betas, dtype=torch.float32), 0)
    assert torch.equal(s.alphas_cumprod, ref32)


def test_timesteps():
    s = DDIMScheduler()
    assert s.timesteps(4) == [DDIMStep(750, 500), DDIMStep(500, 250), DDIMStep(250, 0), DDIMStep(0, -1)]
    assert s.timesteps(1) == [DDIMStep(0, -1)]
    assert [st.t for st in s.timesteps(3)] == [999, 666, 333, 0]
    for bad in (0, -1, 1001, 2.5):
        with pytest.raises(ValueError):
            s.timesteps(bad)  # type: ignore[arg-type]


def test_even_timesteps_run_exactly_n_passes():
    s = DDIMScheduler(spacing="even")
    assert [st.t for st in s.timesteps(4)] == [999, 666, 333, 0]
    assert [st.t for st in s.timesteps(1)] == [999]  # one pass from the top of the schedule, not at t = 0
    assert [st.t for st in s.timesteps(2)] == [999, 0]
    for n in range(1, 13):
        plan = s.timesteps(n)
        assert s.passes(n) == len(plan) == n
        assert plan[0].t == 999 and plan[-1].t_next == -1 and (n == 1 or plan[-1].t == 0)
        assert all(a.t_next == b.t for a, b in zip(plan, plan[1:]))
        gaps = [a.t - b.t for a, b in zip(plan, plan[1:])]
        assert not gaps or max(gaps) - min(gaps) <= 1  # evenly spaced, up to rounding
    assert DDIMScheduler().passes(3) == 4  # the reference plan keeps its quirk
    with pytest.raises(ValueError, match="spacing"):
        DDIMScheduler(spacing="trailing")


def test_step_eta0_matches_formula():
    s = DDIMScheduler()
    g = torch.Generator().manual_seed(0)
    x_t, x0 = torch.randn(2, 1, 8, 8, generator=g), torch.rand(2, 1, 8, 8, generator=g)
    a, an = s.alphas_cumprod[750].double(), s.alphas_cumprod[500].double()
    eps = ((1 / a).sqrt() * x_t.double() - x0.double()) / (1 / a - 1).sqrt()
    expected = an.sqrt() * x0.double() + (1 - an).sqrt() * eps
    out = s.step(x0, x_t, DDIMStep(750, 500))
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(s.step(x0, x_t, DDIMStep(0, -1)), x0)  # final step returns x0


def test_step_eta_uses_noise():
    s = DDIMScheduler()
    x_t, x0 = torch.randn(1, 1, 4, 4), torch.rand(1, 1, 4, 4)
    z = torch.randn(1, 1, 4, 4)
    c = s.coefficients(DDIMStep(750, 500), eta=1.0)
    assert c["c1"] > 0 and c["c2"] >= 0
    out = s.step(x0, x_t, DDIMStep(750, 500), eta=1.0, noise=z)
    eps = (c["recip_sqrt"] * x_t - x0) / c["recipm1_sqrt"]
    torch.testing.assert_close(out, c["a_next_sqrt"] * x0 + c["c1"] * z + c["c2"] * eps)
    assert not torch.equal(out, s.step(x0, x_t, DDIMStep(750, 500), eta=0.0))


def test_betas_shape_checked():
    with pytest.raises(ValueError, match="betas"):
        DDIMScheduler(10, betas=np.zeros(5))
