"""The wheel carries the package data and what CMake needs to build the C embedding."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_carries_package_data_and_c_sources(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0 and "wheel" in r.stderr and "No module named" in r.stderr:
        pytest.skip("the 'wheel' package is not installed")
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = tmp_path.glob("salrt-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    for f in ("salrt/cli/__init__.py", "salrt/app/run.py", "salrt/demo_model/model.safetensors",
              "salrt/demo_model/onnx/manifest.json", "salrt/demo_model/onnx/sampler.onnx",
              "salrt/models/paper_results.csv", "salrt/export/tensorrt_onnx_ops.json"):  # fmt: skip
        assert f in names, f
    shared = {n.split("/data/share/salrt/", 1)[1] for n in names if "/data/share/salrt/" in n}
    assert {"CMakeLists.txt", "csrc/salrt_embed.c", "include/salrt.h", "examples/roi_x264.c"} <= shared
    assert not any(n.startswith("salrt/") and ("faults" in n or "testing" in n) for n in names)  # no test harness
