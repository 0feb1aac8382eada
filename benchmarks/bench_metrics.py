"""Time per 224x384 frame of each metric: salrt.metrics vs a straightforward loop implementation.

Usage: python benchmarks/bench_metrics.py [--reps 5] [--out benchmarks/results]
The loop versions follow the textbook definitions (one pass over the image per threshold),
as the widely copied Python port of the MIT benchmark does for AUC-Judd and AUC-Borji.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from salrt import metrics as M


def loop_auc_judd(p: np.ndarray, f: np.ndarray) -> float:
    s = ((p - p.min()) / (p.max() - p.min())).ravel()
    th = sorted(s[f.ravel()], reverse=True)
    tp, fp = [0.0], [0.0]
    for k, t in enumerate(th):
        tp.append((k + 1) / len(th))
        fp.append((np.sum(s >= t) - k - 1) / (s.size - len(th)))
    tp.append(1.0)
    fp.append(1.0)
    return float(sum((fp[i + 1] - fp[i]) * (tp[i + 1] + tp[i]) / 2 for i in range(len(tp) - 1)))


def loop_auc_borji(p: np.ndarray, f: np.ndarray, rng: np.random.RandomState, n_rep: int = 100) -> float:
    s = ((p - p.min()) / (p.max() - p.min())).ravel()
    s_fix = s[f.ravel()]
    r = s[rng.randint(0, s.size, (s_fix.size, n_rep))]
    aucs = []
    for rep in range(n_rep):
        th = np.arange(0, max(s_fix.max(), r[:, rep].max()), 0.1)[::-1]
        tp = [0.0] + [np.sum(s_fix >= t) / s_fix.size for t in th] + [1.0]
        fp = [0.0] + [np.sum(r[:, rep] >= t) / s_fix.size for t in th] + [1.0]
        aucs.append(sum((fp[i + 1] - fp[i]) * (tp[i + 1] + tp[i]) / 2 for i in range(len(tp) - 1)))
    return float(np.mean(aucs))


def timeit(fn, reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--fixations", type=int, default=300)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    g = rng.random((224, 384)) ** 3
    p = 0.6 * g + 0.4 * rng.random((224, 384))
    f = np.zeros((224, 384), bool)
    f.flat[rng.choice(f.size, args.fixations, replace=False)] = True
    o = rng.random((224, 384)) > 0.99
    rows = {
        "cc": (lambda: M.cc(p, g), None),
        "nss": (lambda: M.nss(p, f), None),
        "sim": (lambda: M.sim(p, g), None),
        "kld": (lambda: M.kld(p, g), None),
        "auc_judd": (lambda: M.auc_judd(p, f, jitter=False), lambda: loop_auc_judd(p, f)),
        "auc_borji": (
            lambda: M.auc_borji(p, f, rng=np.random.RandomState(0)),
            lambda: loop_auc_borji(p, f, np.random.RandomState(0)),
        ),
        "auc_shuffled": (lambda: M.auc_shuffled(p, f, o, rng=np.random.RandomState(0)), None),
    }
    assert abs(M.auc_judd(p, f, jitter=False) - loop_auc_judd(p, f)) < 1e-9
    assert abs(M.auc_borji(p, f, rng=np.random.RandomState(0)) - loop_auc_borji(p, f, np.random.RandomState(0))) < 1e-9
    out = []
    for name, (fast, slow) in rows.items():
        t_fast = timeit(fast, args.reps)
        t_slow = timeit(slow, max(1, args.reps // 2)) if slow else None
        out.append(
            {
                "metric": name,
                "salrt_ms": t_fast * 1e3,
                "loop_ms": t_slow * 1e3 if t_slow else None,
                "speedup": t_slow / t_fast if t_slow else None,
            }
        )
        print(json.dumps(out[-1]))
    result = {
        "command": "python " + " ".join(sys.argv),
        "frame": [224, 384],
        "fixations": args.fixations,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": os.cpu_count(),
            "numpy": np.__version__,
        },
        "rows": out,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "metrics_cpu.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
