"""The real-time student against its teacher, in one run on this machine (issue: a real-time student).

Quality, on held-out synthetic sounding-object clips (seeds never used to train the teacher or to
distil the student; both audio formats): CC against the ground truth of the teacher (the bundled
demo DiffSal, 4 DDIM steps) and of the student (streamed from its start state, every frame), the
student's CC against the teacher, and the student's CC with each clip's soundtrack swapped for
another clip's (does it still listen?). All on the teacher's frames (every 4th).

Speed: ``salrt run --model student`` end to end (decode, audio, student, npz out) on a 1080p30
H.264 + AAC file at stride 1; the student alone (maps/s, batch 1) on OpenVINO, onnxruntime and
torch; and the paper-size DiffSal's clip on the default path (OpenVINO, synthetic weights) measured
in the same run, per map at stride 8, beside its FLOPs. FLOPs per map of every registry teacher at
its paper size (stride 8) against the student's.

    python benchmarks/bench_student.py [-o benchmarks/results/student] [--clips 16] [--skip-paper]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import salrt
from salrt import metrics
from salrt.app.demo import bundled_checkpoint, bundled_export
from salrt.app.distill import stream_maps
from salrt.backends.base import to_numpy
from salrt.cost import cost_report
from salrt.hardware import cpu_name
from salrt.io import make_clip, open_media
from salrt.io.contract import InputContract
from salrt.models import MODELS

STRIDE_TEACHER = 8  # the teacher's map cost is quoted per frame at stride 8 (maps between interpolated)


def quality(student: torch.nn.Module, teacher: torch.nn.Module, clips: int, seed: int) -> dict:
    from salrt.backends.torch_backend import TorchBackend

    tb = TorchBackend(teacher)
    tc, sc = InputContract.of(teacher.config), InputContract.of(student.config)
    rows = {"teacher_vs_truth": [], "student_vs_truth": [], "student_vs_teacher": [], "student_swapped_vs_truth": []}
    with tempfile.TemporaryDirectory() as tmp:
        formats = ((22050, 1), (44100, 2))
        made = [
            make_clip(Path(tmp) / f"h{k}.mp4", seed=seed + k, sample_rate=formats[k % 2][0], channels=formats[k % 2][1])
            for k in range(clips)
        ]
        frames = []
        for c in made:
            d = list(open_media(str(c.path), stride=1, **sc.media_options()))
            frames.append((np.stack([x.video[:, 0] for x in d]), np.stack([x.audio for x in d])))
        for k, c in enumerate(made):
            t_clips = list(open_media(str(c.path), stride=4, **tc.media_options()))
            idx = [x.target_index for x in t_clips]
            noise = np.random.default_rng(k).standard_normal((len(idx), 1, *tc.size)).astype(np.float32)
            tm = to_numpy(
                tb.sample(np.stack([x.video for x in t_clips]), np.stack([x.audio for x in t_clips]), 4, noise)
            )[:, 0]
            video, audio = frames[k]
            other = frames[(k + 1) % clips][1]
            n = min(len(audio), len(other))
            sm = stream_maps(student, video, audio)
            sw = stream_maps(student, video[:n], other[:n])
            from salrt.io.imaging import resize_map

            gt = c.saliency
            for j, i in enumerate(idx):
                g = gt[i]
                t = resize_map(np.clip(tm[j], 0, 1), g.shape)
                s = resize_map(sm[i], g.shape)
                rows["teacher_vs_truth"].append(metrics.cc(t, g))
                rows["student_vs_truth"].append(metrics.cc(s, g))
                rows["student_vs_teacher"].append(metrics.cc(s, t))
                if i < n:
                    rows["student_swapped_vs_truth"].append(metrics.cc(resize_map(sw[i], g.shape), g))
    return {k: round(float(np.nanmean(v)), 4) for k, v in rows.items()} | {"frames": len(rows["teacher_vs_truth"])}


def model_alone(student_dir: Path, export: Path, frames: int = 200) -> dict:
    from salrt.backends.onnxruntime_backend import OnnxRuntimeBackend
    from salrt.backends.openvino_backend import OpenVinoBackend
    from salrt.backends.torch_backend import TorchBackend

    model = salrt.load_model("student", checkpoint=str(student_dir)).eval()
    c = model.config
    v = np.zeros((1, 3, 1, c.height, c.width), np.float32)
    a = np.zeros((1, *c.audio_shape), np.float32)
    out = {}
    for name, b in (
        ("openvino", OpenVinoBackend(str(export))),
        ("onnxruntime", OnnxRuntimeBackend(str(export))),
        ("torch", TorchBackend(model)),
    ):
        st = {k: np.zeros(s, np.float32) for k, s in b.state_shapes(1).items()}
        for _ in range(10):
            _, st = b.step(v, a, st)
            st = {k: np.asarray(to_numpy(x), np.float32) for k, x in st.items()}
        t = time.perf_counter()
        for _ in range(frames):
            _, st = b.step(v, a, st)
            st = {k: np.asarray(to_numpy(x), np.float32) for k, x in st.items()}
        dt = time.perf_counter() - t
        out[name] = {"maps_per_s": round(frames / dt, 1), "ms_per_map": round(dt / frames * 1e3, 3)}
    return out


def end_to_end(student_dir: Path, tmp: Path, seconds: float) -> dict:
    clip = make_clip(tmp / "hd.mp4", seed=3, width=1920, height=1080, fps=30.0, seconds=seconds,
                     audio_codec="aac", ground_truth=False)  # fmt: skip
    cmd = [sys.executable, "-m", "salrt.cli", "run", str(clip.path), "--model", "student", "--checkpoint",
           str(student_dir), "--outputs", "npz", "-o", str(tmp / "run"), "--quiet"]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)  # first use: the export is cached
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t
    stats = json.loads((tmp / "run" / "run_stats.json").read_text())
    return {
        "input": f"1920x1080 30 fps H.264 + AAC, {seconds:g} s ({clip.n_frames} frames)",
        "command": "salrt run hd.mp4 --model student --checkpoint STUDENT --outputs npz",
        "frames_out": stats["frames_out"][0],
        "fps_in_run": stats["fps_out"],
        "fps_whole_command": round(stats["frames_out"][0] / wall, 2),
        "dropped": stats["dropped_clips"][0],
        "latency_ms": stats["latency_ms"],
        "stages": stats["stages"],
        "stderr_tail": r.stderr[-300:],
    }


def paper_diffsal_clip(tmp: Path, clips: int = 3) -> dict:
    """Seconds per paper-size DiffSal clip on the default path (auto: OpenVINO over its cached export)."""
    from salrt import pipeline
    from salrt.spec import RunSpec

    spec = RunSpec(model="diffsal", config="paper", random_weights=True, cache_dir=str(tmp / "cache"))
    t = time.perf_counter()
    pipe = pipeline.build(spec)
    first = time.perf_counter() - t
    cfg = pipe.contract
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1, 3, cfg.clip_len, *cfg.size)).astype(np.float32)
    a = rng.standard_normal((1, 1, 9, *cfg.audio_size)).astype(np.float32)
    n = rng.standard_normal((1, 1, *cfg.size)).astype(np.float32)
    pipe.backend.sample(v, a, steps=4, noise=n)
    t = time.perf_counter()
    for _ in range(clips):
        pipe.backend.sample(v, a, steps=4, noise=n)
    per = (time.perf_counter() - t) / clips
    return {"backend": pipe.spec.backend, "seconds_per_clip": round(per, 3), "first_use_s": round(first, 1),
            "clips_timed": clips}  # fmt: skip


def flops_table(student_gflops: float) -> list[dict]:
    rows = []
    for name in MODELS:
        if name == "student":
            continue
        r = cost_report(model=name, steps=4)
        per_map = r.flops_per_clip / STRIDE_TEACHER / 1e9
        rows.append({"teacher": name, "gflops_per_clip": round(r.flops_per_clip / 1e9, 1),
                     f"gflops_per_map_stride{STRIDE_TEACHER}": round(per_map, 2),
                     "times_the_student": round(per_map / student_gflops, 1)})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--output", default=None)
    ap.add_argument("--clips", type=int, default=16)
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0, help="length of the 1080p30 file")
    ap.add_argument("--skip-paper", action="store_true", help="no paper-size DiffSal timing (its export: ~90 s)")
    args = ap.parse_args()
    student_dir, export = bundled_checkpoint("student"), bundled_export("student")
    teacher_dir = bundled_checkpoint("diffsal")
    if student_dir is None or export is None or teacher_dir is None:
        raise SystemExit("the bundled student (with its export) and demo model are needed")
    t0 = time.perf_counter()
    student = salrt.load_model("student", checkpoint=str(student_dir)).eval()
    teacher = salrt.load_model("diffsal", checkpoint=str(teacher_dir)).eval()
    r_s = cost_report(student.config, model="student")
    s_gflops = r_s.flops_per_clip / 1e9
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        res = {
            "command": "python benchmarks/bench_student.py" + (" --skip-paper" if args.skip_paper else ""),
            "machine": f"{cpu_name()} ({torch.get_num_threads()} threads), {platform.platform()}",
            "student": {"checkpoint": "salrt/demo_model/student", "config": student.config.to_dict(),
                        "parameters": sum(p.numel() for p in student.parameters()), "gflops_per_map": round(s_gflops, 4)},
            "quality": quality(student, teacher, args.clips, args.seed),
            "model_alone": model_alone(student_dir, export),
            "end_to_end_1080p30": end_to_end(student_dir, tmp, args.seconds),
            "teachers_flops": flops_table(s_gflops),
        }  # fmt: skip
        if not args.skip_paper:
            p = paper_diffsal_clip(tmp)
            d = next(r for r in res["teachers_flops"] if r["teacher"] == "diffsal")
            best = max(v["maps_per_s"] for v in res["model_alone"].values())
            p["seconds_per_map_stride8"] = round(p["seconds_per_clip"] / STRIDE_TEACHER, 4)
            p["student_seconds_per_map"] = round(1 / best, 5)
            p["times_the_student_seconds"] = round(p["seconds_per_map_stride8"] * best, 1)
            p["times_the_student_flops"] = d["times_the_student"]
            p["teacher_map_cost_per_video_s"] = {  # distillation at paper size: a map every frame
                "2 s at 25 fps, teacher stride 1": round(p["seconds_per_clip"] * 50, 1),
                "2 s at 25 fps, teacher stride 4": round(p["seconds_per_clip"] * 13, 1),
            }
            res["paper_diffsal"] = p
    q = res["quality"]
    e2e = res["end_to_end_1080p30"]
    res["goals"] = {
        "student CC vs truth within 0.03 of the teacher's": q["student_vs_truth"] >= q["teacher_vs_truth"] - 0.03,
        "student CC vs teacher >= 0.9": q["student_vs_teacher"] >= 0.9,
        "swapped soundtrack costs >= 0.15 CC": q["student_vs_truth"] - q["student_swapped_vs_truth"] >= 0.15,
        "1080p30 end to end >= 30 frames/s": e2e["fps_in_run"] >= 30,
        "model alone >= 60 maps/s": max(v["maps_per_s"] for v in res["model_alone"].values()) >= 60,
        "per map >= 100x cheaper than DiffSal at stride 8 (FLOPs)": next(
            r for r in res["teachers_flops"] if r["teacher"] == "diffsal"
        )["times_the_student"]
        >= 100,  # fmt: skip
    }
    if "paper_diffsal" in res:
        res["goals"]["per map >= 100x cheaper than DiffSal at stride 8 (seconds)"] = (
            res["paper_diffsal"]["times_the_student_seconds"] >= 100
        )
    res["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=1))
    if args.output:
        out = Path(args.output)
        out.mkdir(parents=True, exist_ok=True)
        (out / "student.json").write_text(json.dumps(res, indent=1) + "\n")
        (out / "student.md").write_text(markdown(res))


def markdown(res: dict) -> str:
    q, e, m = res["quality"], res["end_to_end_1080p30"], res["model_alone"]
    lines = [
        f"Student vs teacher, {res['machine']} (`{res['command']}`)",
        "",
        f"Quality on {q['frames']} frames of held-out synthetic clips (CC):",
        "",
        "| | vs ground truth | vs teacher | soundtrack swapped |",
        "|---|---|---|---|",
        f"| teacher (demo DiffSal, 4 steps) | {q['teacher_vs_truth']:.3f} | - | - |",
        f"| student ({res['student']['config']['height']}x{res['student']['config']['width']}) | "
        f"{q['student_vs_truth']:.3f} | {q['student_vs_teacher']:.3f} | {q['student_swapped_vs_truth']:.3f} |",
        "",
        f"Speed: {e['input']}, stride 1, npz only: {e['fps_in_run']} frames/s in the run "
        f"({e['fps_whole_command']} counting start-up), dropped {e['dropped']}.",
        "",
        "| student alone (batch 1) | maps/s | ms/map |",
        "|---|---|---|",
        *[f"| {k} | {v['maps_per_s']} | {v['ms_per_map']} |" for k, v in m.items()],
        "",
        f"| teacher (paper size, 4 steps) | GFLOPs/clip | GFLOPs/map at stride {STRIDE_TEACHER} | x student "
        f"({res['student']['gflops_per_map']} GFLOPs/map) |",
        "|---|---|---|---|",
        *[
            f"| {r['teacher']} | {r['gflops_per_clip']} | {r[f'gflops_per_map_stride{STRIDE_TEACHER}']} | "
            f"{r['times_the_student']} |"
            for r in res["teachers_flops"]
        ],  # fmt: skip
    ]
    if "paper_diffsal" in res:
        p = res["paper_diffsal"]
        lines += [
            "",
            f"Paper-size DiffSal on {p['backend']} (synthetic weights): {p['seconds_per_clip']} s per clip, "
            f"{p['seconds_per_map_stride8']} s per map at stride 8 = {p['times_the_student_seconds']}x the student's "
            f"{p['student_seconds_per_map']} s. Teacher maps for a 2-s video: "
            + ", ".join(f"{k}: {v} s" for k, v in p["teacher_map_cost_per_video_s"].items()) + ".",
        ]  # fmt: skip
    lines += ["", "Goals: " + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in res["goals"].items())]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
