"""The lowest supported versions of the core and onnxruntime dependencies, in their own venv.

pyproject.toml declares numpy>=1.24, av>=16.1, rich>=13, pillow>=9.4, onnxruntime>=1.17; this
installs exactly those floors (from PyPI) next to salrt and runs the torch-free path end to end:
``salrt run --backend onnxruntime`` with every output, a ROI encode with its QP read-back (the
PyAV 16.1 APIs salrt needs), and ``salrt demo`` (the package's main job from a plain install: the
bundled model's ONNX export, no torch). It needs the package index, so it runs in CI (``CI`` set) or with
``SALRT_TEST_FLOORS=1``; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

from salrt.cli import main
from salrt.io import make_clip

FLOORS = ["numpy==1.24.4", "av==16.1.0", "rich==13.0.0", "pillow==9.4.0", "onnxruntime==1.17.3"]
ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not (os.environ.get("CI") or os.environ.get("SALRT_TEST_FLOORS")),
    reason="installs the dependency floors from the package index (CI only)",
)


def test_lowest_supported_versions(tmp_path: Path) -> None:
    env_dir = tmp_path / "floors"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = str(env_dir / "bin" / "python")
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, *FLOORS, "setuptools>=68", "wheel"], check=True, timeout=900)
    subprocess.run(
        [*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True, timeout=600, capture_output=True
    )
    versions = subprocess.run(
        [
            py,
            "-c",
            "import numpy, av, onnxruntime, rich, PIL, importlib.metadata as m; "
            "print(numpy.__version__, av.__version__, m.version('rich'), PIL.__version__, "
            "onnxruntime.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert versions.stdout.split() == [f.split("==")[1] for f in FLOORS]

    clip = make_clip(tmp_path / "a.mkv", seed=1, seconds=0.6, width=96, height=64)
    assert (
        main(["export", "--config", "tiny", "--random-weights", "-o", str(tmp_path / "exp"), "--steps", "2", "--quiet"])
        == 0
    )
    out = tmp_path / "o"
    r = subprocess.run(
        [
            py,
            "-m",
            "salrt.cli",
            "run",
            str(clip.path),
            "-o",
            str(out),
            "--backend",
            "onnxruntime",
            "--export-dir",
            str(tmp_path / "exp"),
            "--steps",
            "2",
            "--outputs",
            "overlay,png,npy,npz",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert np.load(out / "a_maps.npy").shape == (clip.n_frames, 64, 128)
    code = (
        "import numpy as np; from salrt.app.encode import encode_with_maps, block_qps; "
        f"encode_with_maps({str(clip.path)!r}, {str(tmp_path / 'roi.mp4')!r}, "
        f"np.random.default_rng(0).random(({clip.n_frames}, 64, 96)).astype('float32'), crf=28); "
        f"q = block_qps({str(tmp_path / 'roi.mp4')!r}); print(len(q))"
    )
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.strip() == str(clip.n_frames), r.stderr
    r = subprocess.run(
        [py, "-m", "salrt.cli", "demo", "-o", str(tmp_path / "demo"), "--seconds", "0.8"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "mean CC against the synthetic ground truth" in r.stdout + r.stderr
    r = subprocess.run(
        [py, "-m", "salrt.cli", "demo", "-o", str(tmp_path / "demo2"), "--backend", "torch"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert r.returncode == 1 and "pip install 'salrt[torch]'" in r.stderr and "internal error" not in r.stderr
    assert sys.version_info >= (3, 10)
