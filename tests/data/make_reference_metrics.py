"""Regenerates (or, with --check, verifies) the reference values of reference_metrics.npz: the DiffSal
reference's ``metrics/metrics.py`` (GitHub junwenxiong/diff_sal, commit c9b8070) run on the six cases'
stored inputs (``c<k>_pred``, ``c<k>_gt``, ``c<k>_fix``, ``c<k>_other``; random maps, described in
README.md). None of the reference's code is in this repository: give the path of a checkout::

    python tests/data/make_reference_metrics.py /path/to/diff_sal [--check]

Needs scikit-image (the reference resizes with it). numpy >= 2 has no ``np.trapz``; it is aliased to
``np.trapezoid`` (the same formula) for the reference's AUCs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILE = HERE / "reference_metrics.npz"
CASES = range(6)


def reference_values(diff_sal: Path, data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    if not hasattr(np, "trapz"):
        np.trapz = np.trapezoid  # type: ignore[attr-defined]
    sys.path.insert(0, str(diff_sal))
    from metrics import metrics as ref  # the reference's own module, from the given checkout

    out: dict[str, np.ndarray] = {}
    for c in CASES:
        pred, gt, fix, other = (data[f"c{c}_{k}"] for k in ("pred", "gt", "fix", "other"))
        out[f"c{c}_cc"] = np.float64(ref.CC(pred, gt))
        out[f"c{c}_nss"] = np.float64(ref.NSS(pred, fix))
        out[f"c{c}_sim"] = np.float64(ref.SIM(pred, gt))
        out[f"c{c}_auc_judd_nojitter"] = np.float64(ref.AUC_Judd(pred, fix, jitter=False))
        np.random.seed(100 + c)
        out[f"c{c}_auc_judd_jitter"] = np.float64(ref.AUC_Judd(pred, fix, jitter=True))
        np.random.seed(200 + c)
        out[f"c{c}_auc_borji"] = np.float64(ref.AUC_Borji(pred, fix))
        np.random.seed(300 + c)
        out[f"c{c}_auc_shuffled"] = np.float64(ref.AUC_shuffled(pred, fix, other))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("diff_sal", type=Path, help="a checkout of github.com/junwenxiong/diff_sal")
    ap.add_argument("--check", action="store_true", help="compare with the stored values instead of writing")
    args = ap.parse_args()
    data = dict(np.load(FILE))
    values = reference_values(args.diff_sal, data)
    if args.check:
        worst = max(abs(float(values[k]) - float(data[k])) for k in values)
        print(f"{len(values)} values, largest difference from the stored ones: {worst:.3g}")
        sys.exit(0 if worst == 0 else 1)
    np.savez(FILE, **{**data, **values})
    print("wrote", FILE)


if __name__ == "__main__":
    main()
