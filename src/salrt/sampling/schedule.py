"""DiffSal's noise schedule and DDIM timestep plan in numpy (no torch), shared by all backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from salrt.errors import UsageError


def diffsal_cosine_betas(num_timesteps: int = 1000, s: float = 0.008) -> np.ndarray:
    """The reference's variant of the cosine schedule, in float64.

    With n = T + 1 points x = linspace(0, n, n): abar(x) = cos(((x/n) + s)/(1 + s) * pi/2)^2 / abar(0),
    beta_i = 1 - abar(i+1)/abar(i) clipped to [0, 0.999]. Not the textbook cosine schedule
    (which uses linspace(0, T, T+1)); released checkpoints were trained with this one.
    """
    n = num_timesteps + 1
    x = np.linspace(0, n, n)
    abar = np.cos(((x / n) + s) / (1 + s) * np.pi * 0.5) ** 2
    abar = abar / abar[0]
    return np.clip(1 - abar[1:] / abar[:-1], 0, 0.999)


@dataclass(frozen=True)
class DDIMStep:
    """One step of the sampling loop: the model is called at ``t``; ``t_next < 0`` ends it."""

    t: int
    t_next: int


SPACINGS = ("reference", "even")


def ddim_plan(steps: int, num_timesteps: int = 1000, spacing: str = "reference") -> list[DDIMStep]:
    """Visited timesteps, largest first.

    ``"reference"`` (DiffSal's code): skip = T // steps, ``range(0, T, skip)`` reversed; it visits
    more than ``steps`` timesteps when ``steps`` does not divide T (3: 999, 666, 333, 0) and one
    call at t = 0 for ``steps = 1``. ``"even"``: exactly ``steps`` timesteps, evenly spaced from the
    top of the schedule (T - 1) down to 0, rounded to the nearest integer (4: 999, 666, 333, 0;
    1: 999 alone, the only plan of one pass that starts from noise).
    """
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1 or steps > num_timesteps:
        raise UsageError(f"steps must be an integer in 1..{num_timesteps}, got {steps!r}")
    if spacing == "reference":
        seq = list(range(0, num_timesteps, num_timesteps // steps))
    elif spacing == "even":
        top = num_timesteps - 1
        seq = sorted({int(round(top * i / (steps - 1))) for i in range(steps)}) if steps > 1 else [top]
    else:
        raise UsageError(f"unknown timestep spacing {spacing!r}: use one of {', '.join(SPACINGS)}")
    nxt = [-1] + seq[:-1]
    return [DDIMStep(t, tn) for t, tn in zip(reversed(seq), reversed(nxt))]


def adaptive_step_count(raw: float, max_steps: int) -> int:
    """A step-selector output (MUBiC's MLP) as a DDIM step count: rounded, clamped to 1..max_steps."""
    return int(min(max(round(float(raw)), 1), max_steps))


def alphas_cumprod_f32(betas: np.ndarray) -> np.ndarray:
    """float32 cumulative product of float32 (1 - beta), accumulated in float64 as torch's CPU
    ``cumprod`` does (bit-identical to :class:`DDIMScheduler`'s table)."""
    one_minus = (np.float32(1.0) - betas.astype(np.float32)).astype(np.float64)
    return np.cumprod(one_minus).astype(np.float32)


def ddim_coefficients(abar: Any, step: DDIMStep, eta: float = 0.0, sqrt: Any = np.sqrt) -> dict[str, float]:
    """Scalar coefficients of one update in float32 (the only copy of the formula):
    x_next = a_next_sqrt * x0 + c1 * z + c2 * eps, eps = (recip_sqrt * x_t - x0) / recipm1_sqrt.

    ``abar``: the float32 cumulative alphas as a numpy array, or a torch tensor with
    ``sqrt=torch.sqrt`` (torch's float32 sqrt differs from numpy's by an ulp at some values; the
    torch scheduler keeps torch's, bit-exact to the reference code)."""
    f = abar.dtype.type if isinstance(abar, np.ndarray) else float  # constants in float32 under numpy
    a = abar[step.t]
    coef = {
        "recip_sqrt": float(sqrt(f(1.0) / a)),
        "recipm1_sqrt": float(sqrt(f(1.0) / a - f(1.0))),
        "final": float(step.t_next < 0),
    }
    if step.t_next < 0:
        coef.update(a_next_sqrt=0.0, c1=0.0, c2=0.0)
        return coef
    an = abar[step.t_next]
    c1 = f(eta) * sqrt((f(1.0) - a / an) * (f(1.0) - an) / (f(1.0) - a))
    c2 = sqrt((f(1.0) - an) - c1 * c1)
    coef.update(a_next_sqrt=float(sqrt(an)), c1=float(c1), c2=float(c2))
    return coef


def apply_ddim(x0: Any, x_t: Any, coef: dict[str, float], noise: Any = None) -> Any:
    """The DDIM update with :func:`ddim_coefficients` on numpy arrays or torch tensors alike;
    the final step returns ``x0``. ``noise`` is needed only when ``coef["c1"] != 0``."""
    if coef["final"]:
        return x0
    eps = (coef["recip_sqrt"] * x_t - x0) / coef["recipm1_sqrt"]
    out = coef["a_next_sqrt"] * x0
    if coef["c1"] != 0.0:
        out = out + coef["c1"] * noise
    return out + coef["c2"] * eps


class NumpyDDIMScheduler:
    """The DDIM scheduler without torch (onnxruntime, TensorRT): the same plan, the same float32
    coefficients and update as :class:`salrt.sampling.DDIMScheduler`, on numpy arrays (or any
    array type :func:`apply_ddim` takes). ``alphas_cumprod`` may come from an export manifest."""

    def __init__(
        self, num_timesteps: int = 1000, alphas_cumprod: Any = None, dtype: Any = np.float32, spacing: str = "reference"
    ) -> None:
        self.num_timesteps = num_timesteps
        self.spacing = spacing
        self.alphas_cumprod = (
            alphas_cumprod_f32(diffsal_cosine_betas(num_timesteps))
            if alphas_cumprod is None
            else np.asarray(alphas_cumprod, np.float32)
        )
        self.dtype = dtype

    def timesteps(self, steps: int) -> list[DDIMStep]:
        return ddim_plan(steps, self.num_timesteps, self.spacing)

    def coefficients(self, step: DDIMStep, eta: float = 0.0) -> dict[str, float]:
        return ddim_coefficients(self.alphas_cumprod, step, eta)

    def step(
        self, x0: Any, x_t: Any, step: DDIMStep, eta: float = 0.0, noise: Any = None, generator: Any = None
    ) -> Any:
        c = self.coefficients(step, eta)
        if c["c1"] != 0.0 and noise is None:
            noise = (generator or np.random.default_rng()).standard_normal(np.shape(x_t))
        out = apply_ddim(x0, x_t, c, noise)
        return out.astype(self.dtype) if isinstance(out, np.ndarray) else out
