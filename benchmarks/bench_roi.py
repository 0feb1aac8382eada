"""Plain vs saliency-ROI encodes at equal file size on synthetic clips with known saliency.

For each codec: a plain encode at --crf; then the ROI encode (ground-truth maps of the sounding
object) with its CRF searched until the file is within 3% of the plain size. Reports PSNR/SSIM
inside and outside the salient region, saliency-weighted PSNR, and the per-block QPs read back
from the stream (H.264) in salient vs other blocks.

Usage: python benchmarks/bench_roi.py [--codecs libx264,libx265] [--crf 30] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from salrt.app.encode import block_qps, encode_with_maps, region_quality
from salrt.errors import SalrtError
from salrt.io import make_clip
from salrt.roi import RoiConfig


def size(p: Path) -> int:
    return p.stat().st_size


def matched_roi_encode(src: str, maps: np.ndarray, codec: str, target: int, crf0: float, d: Path, roi: RoiConfig):
    lo, hi = crf0, crf0 + 12.0
    best = None
    for i in range(10):
        crf = (lo + hi) / 2 if i else crf0 + 2.0
        out = d / f"{codec}_roi_{crf:.3f}.mp4"
        sink = encode_with_maps(src, out, maps, codec=codec, crf=round(crf, 3), roi=roi)
        ratio = size(out) / target
        if best is None or abs(ratio - 1) < abs(best[1] - 1):
            best = (out, ratio, crf, sink)
        if abs(ratio - 1) <= 0.03:
            break
        if ratio > 1:
            lo = crf
        else:
            hi = crf
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--codecs", default="libx264,libx265")
    ap.add_argument("--crf", type=float, default=30.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--strength", type=float, default=3.0)
    ap.add_argument("--out", default="benchmarks/results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as td:
        d = Path(td)
        clip = make_clip(d / "src.mp4", seed=11, width=640, height=352, seconds=args.seconds)
        src = str(clip.path)
        roi = RoiConfig(strength=args.strength)
        for codec in args.codecs.split(","):
            try:
                plain = d / f"{codec}_plain.mp4"
                encode_with_maps(src, plain, clip.saliency, codec=codec, crf=args.crf, roi=None)
                out, ratio, crf, sink = matched_roi_encode(src, clip.saliency, codec, size(plain), args.crf, d, roi)
            except SalrtError as exc:
                rows.append({"codec": codec, "skipped": str(exc)})
                continue
            qp = {"plain": region_quality(src, plain, clip.saliency), "roi": region_quality(src, out, clip.saliency)}
            row = {
                "codec": codec,
                "plain_crf": args.crf,
                "roi_crf": round(crf, 3),
                "plain_bytes": size(plain),
                "roi_bytes": size(out),
                "size_ratio": round(ratio, 4),
                "quality": qp,
                "delta_psnr_salient_db": qp["roi"]["psnr_salient"] - qp["plain"]["psnr_salient"],
                "delta_psnr_background_db": qp["roi"]["psnr_background"] - qp["plain"]["psnr_background"],
                "delta_psnr_weighted_db": qp["roi"]["psnr_weighted"] - qp["plain"]["psnr_weighted"],
            }
            try:
                q = np.stack(block_qps(out))
                off = np.stack(sink.offsets)[:, : q.shape[1], : q.shape[2]]
                row["mean_qp_blocks_negative_offset"] = float(q[off < -0.5].mean())
                row["mean_qp_blocks_positive_offset"] = float(q[off > 0.5].mean())
                qp_plain = np.stack(block_qps(plain))
                row["plain_mean_qp_same_blocks"] = [
                    float(qp_plain[off < -0.5].mean()),
                    float(qp_plain[off > 0.5].mean()),
                ]
            except SalrtError as exc:
                row["qp_readback"] = str(exc)
            rows.append(row)
            print(json.dumps({k: v for k, v in row.items() if k != "quality"}))
    res = {
        "command": "python " + " ".join(sys.argv),
        "clip": "synthetic 640x352, 25 fps, ground-truth saliency",
        "roi": vars(roi) if hasattr(roi, "__dict__") else str(roi),
        "rows": rows,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "roi_cpu.json").write_text(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
