"""Ahead-of-time compile of every kernel at every real shape for sm_90 and sm_80 (no GPU): no
spills, shared memory within the target's limit, each compile under 30 s (``salrt.app.aot``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salrt.app.aot import SHARED_LIMIT, check  # imports no Triton itself

pytest.importorskip("triton")


def _aot(tmp_path: Path, *args: str) -> tuple[int, dict]:
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}  # compile, do not interpret
    out = tmp_path / "aot.json"
    r = subprocess.run(
        [sys.executable, "-m", "salrt.app.aot", *args, "--json", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.exists(), r.stderr[-2000:]
    return r.returncode, json.loads(out.read_text())


@pytest.mark.parametrize(("arch", "dtypes"), [("sm_90", "bf16,fp16,fp32"), ("sm_80", "bf16")])
def test_every_kernel_compiles_within_budget(tmp_path: Path, arch: str, dtypes: str) -> None:
    rc, res = _aot(tmp_path, "--arch", arch, "--dtype", dtypes)
    assert rc == 0, res["failures"]
    rows = res["rows"]
    assert {r["kernel"] for r in rows} == {"eca_compress", "eca_attention", "ddim_update", "resize_tap_sum"}
    assert set(r["dtype"] for r in rows) == set(dtypes.split(","))
    # DiffSal's four stages: compression at k = 2..16, attention at head widths 384..48
    shapes = {r["shape"] for r in rows}
    assert {f"C={c},k={k}" for c, k in ((768, 2), (384, 4), (192, 8), (96, 16))} <= shapes
    assert any(s.startswith("LQ=84,LK=18,D=384") for s in shapes)
    # the head (four sides to 112x192) and the three UpEmbeds (x2, dilation 2)
    assert {"CO=96,H=112,W=192,N=4,DIL=1", "CO=384,H=14,W=24,N=1,DIL=2", "CO=96,H=56,W=96,N=1,DIL=2"} <= shapes
    assert {"diffsal", "mubic", "tavdiff"} <= {m for r in rows for m in r["models"]}
    for r in rows:
        assert r["spill_bytes"] == 0 and r["shared_bytes"] <= SHARED_LIMIT[int(arch[3:])], r
        assert r["compile_s"] < 30, r
        assert r["registers"] is not None and r["registers"] <= 255
    if "fp32" in dtypes:  # fp32 wide heads run the kernel only with TF32 (else SDPA): never IEEE at D >= 192
        wide = [r for r in rows if r["dtype"] == "fp32" and r["kernel"] == "eca_attention" and ",D=384," in r["shape"]]
        assert wide and all(r["shape"].endswith("tf32") for r in wide)


def test_budget_checks_name_what_is_over() -> None:
    row = {"spill_bytes": 96, "shared_bytes": 240000, "compile_s": 31.0}
    bad = check(row, 90, max_spill=0, max_seconds=30)
    assert len(bad) == 3 and "spills 96 B" in bad[0] and "232448" in bad[1] and "31.0 s" in bad[2]
    assert check({"spill_bytes": 0, "shared_bytes": 1024, "compile_s": 0.2}, 80, 0, 30) == []


def test_attention_tuning_space_is_small_and_pruned_by_width() -> None:
    from salrt.kernels.eca import attention_configs

    for d in (48, 96, 192, 384):
        for lq in (84, 5376):
            cfgs = attention_configs(d, lq, interpret=False)
            assert 1 <= len(cfgs) <= 4
            if d >= 192:
                assert all(c.constexprs["BLOCK_M"] <= 32 and c.num_stages == 1 for c in cfgs)
    assert all(c.constexprs["BLOCK_M"] <= 16 for c in attention_configs(384, 9, interpret=False))
