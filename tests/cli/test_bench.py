"""`salrt bench` on the tiny config: rows, baseline, skipped reasons, outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from salrt.cli import main
from salrt.hardware import cpu_native_bf16
from salrt.io import make_clip


def test_bench_tiny(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = make_clip(tmp_path / "v.mp4", seed=0, width=96, height=64, seconds=0.4)
    rc = main(
        [
            "bench",
            "--config",
            "tiny",
            "--backends",
            "torch,onnxruntime,tensorrt",
            "--precision",
            "fp32,bf16",
            "--batch",
            "1",
            "--steps",
            "1,2",
            "--kernels",
            "torch,triton",
            "--reps",
            "2",
            "--stride",
            "4",
            "--video",
            str(clip.path),
            "--out",
            str(tmp_path / "b"),
            "--quiet",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| reference-style | fp32 |" in out and "baseline" in out
    res = json.loads((tmp_path / "b" / "bench.json").read_text())
    rows = res["rows"]
    base = [r for r in rows if r["backend"] == "reference-style"]
    assert len(base) == 2 and all("skipped" not in r for r in base)
    ran = [r for r in rows if "skipped" not in r and r["backend"] != "reference-style"]
    native = cpu_native_bf16()  # without it, bf16 is skipped with the reason (emulated: ~100x slower)
    want = {("torch", "fp32"), ("onnxruntime", "fp32")} | ({("torch", "bf16")} if native else set())
    assert {(r["backend"], r["precision"]) for r in ran} == want
    for r in ran:
        assert (
            len(r["samples_s"]) == 2
            and r["speedup_vs_baseline"] > 0
            and r["frames_per_s"] == pytest.approx(4 * r["clips_per_s"])
        )
        # FLOPs as each backend executed them: counted for torch and the exported graphs alike
        assert r["params"] > 0 and r["gflops_per_clip"] > 0 and 0 < r["fraction_of_matmul_peak"]
        assert r["peak_memory_scope"] == "row" and 0 < r["peak_memory_mb"]
        tol = 1e-4 if r["precision"] == "fp32" else 0.1
        assert r["max_abs_vs_fp32"] < tol and r["cc_vs_fp32"] > 0.99
    skipped = {r["skipped"] for r in rows if "skipped" in r}
    assert any("tensorrt" in s for s in skipped) and any("Triton" in s for s in skipped)
    assert native or any("no native bf16" in s for s in skipped)
    assert res["machine"]["torch"] and res["matmul_peak_tflops"]["fp32"] > 0
    assert res["end_to_end"]["frames"] == 10
    for png in ("throughput_vs_steps.png", "speedup.png"):
        assert (tmp_path / "b" / png).stat().st_size > 1000
    assert not (tmp_path / "b" / "latency_vs_batch.png").exists()  # one batch size: no sweep to draw


def test_bench_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    cases = [
        (["--backend", "tvm"], 2, "unknown backend"),
        (["--precision", "int8"], 2, "unknown precision"),
        (["--batch", "0"], 2, "must be >= 1"),
        (["--model", "nope"], 2, "unknown model"),
    ]
    if not torch.cuda.is_available():  # on a CUDA machine the bench runs there
        cases.append((["--device", "cuda"], 1, "no CUDA"))
    for args, code, needle in cases:
        assert main(["bench", "--config", "tiny", "-o", str(tmp_path), *args]) == code
        err = capsys.readouterr().err.strip()
        assert needle in err and err.count("\n") == 0
