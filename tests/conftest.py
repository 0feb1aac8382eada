"""Shared fixtures: a tiny DiffSal with synthetic weights (most tests) and helpers."""

from __future__ import annotations

import os
import tempfile

import pytest
import torch

# one export cache for the whole session (and its subprocesses): `--backend auto` exports each tiny model once
os.environ.setdefault("SALRT_CACHE_DIR", tempfile.mkdtemp(prefix="salrt-test-cache-"))

if not torch.cuda.is_available():  # Triton kernels run in the interpreter on CPU (must precede their import)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import salrt
from salrt.models.synthetic import load_synthetic_weights, synthetic_inputs

torch.set_num_threads(2)

# Python source that makes every later `import torch` fail: the first lines of a subprocess that
# checks a path runs without torch
BLOCK_TORCH = """import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == 'torch' or name.startswith('torch.'):
            raise ImportError('torch blocked for this test')
sys.meta_path.insert(0, Block())
"""


def tiny_model(seed: int = 0) -> salrt.DiffSal:
    return load_synthetic_weights(salrt.load_model("diffsal", config="tiny"), seed)


@pytest.fixture(scope="session")
def tiny() -> salrt.DiffSal:
    return tiny_model()


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory: pytest.TempPathFactory):
    """A tiny DiffSal export made by the CLI (random weights, batches 1..4 with 2 preferred, the
    sampler unrolled for 2 steps). Shared by the session: tests copy it before changing it."""
    from salrt.cli import main

    d = tmp_path_factory.mktemp("tiny_export") / "exp"
    args = ["export", "--config", "tiny", "--random-weights", "-o", str(d), "--dynamic-batch", "1:2:4", "--steps", "2"]
    assert main([*args, "--quiet"]) == 0
    return d


@pytest.fixture()
def tiny_inputs(tiny: salrt.DiffSal) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    c = tiny.config
    return synthetic_inputs(c.video_shape, c.audio_shape, 2, seed=7)
