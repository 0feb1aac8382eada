"""Records msu_bench_reference.json: the per-frame scores of the MSU group's bench.py (the AIM 2024
AViMoS / NTIRE 2026 video-saliency scorer) on tests/support/msu_cases.py's cases.

bench.py is not in this repository. Get it from GitHub msu-video-group/NTIRE26_Saliency_Prediction
(commit b67a008) and run, in an environment with its dependencies (numpy >= 2, opencv-python(-headless),
tqdm, Pillow)::

    python tests/data/make_msu_bench_reference.py /path/to/bench.py
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "support"))

from msu_cases import make_case  # noqa: E402


def main(bench_path: str) -> None:
    spec = importlib.util.spec_from_file_location("msu_bench", bench_path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["msu_bench"] = bench  # its Pool pickles functions by module name
    spec.loader.exec_module(bench)
    import cv2
    import numpy as np

    out = {
        "bench_py_sha256": hashlib.sha256(Path(bench_path).read_bytes()).hexdigest(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "videos": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        names = make_case(root)
        for name in names:
            r = bench.calculate_metrics(
                name,
                str(root / "pred" / name),
                str(root / "SaliencyTest" / "Test" / name),
                str(root / "FixationsTest" / "Test" / name / "fixations.json"),
                num_workers=1,
            )
            out["videos"][name] = {k: [float(x) for x in r[k]] for k in ("cc", "sim", "nss", "auc_judd")}
    (HERE / "msu_bench_reference.json").write_text(json.dumps(out, indent=1) + "\n")
    print("wrote", HERE / "msu_bench_reference.json")


if __name__ == "__main__":
    main(sys.argv[1])
