"""``salrt run``: flags -> :func:`salrt.app.run.run` (or a Ray job) -> the summary line."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="saliency maps for videos or live streams (overlay video, PNG, npy, npz, JSON)")
    p.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, image sequences (img_%%05d.png), URLs (rtsp://, http://, ...) or - for stdin",
    )
    C.output_arg(p, None, "output directory")
    C.add_spec_args(p)
    p.add_argument("--audio", help="a separate audio file for the (single) input, e.g. with an image sequence")
    p.add_argument("--fps", type=C.POS_FLOAT, help="frame rate of an image sequence (25 when not given) or an override")
    p.add_argument("--input-format", help="FFmpeg input format (e.g. image2, v4l2; default: detected)")
    p.add_argument(
        "--hwaccel",
        help="hardware video decoding, e.g. cuda (NVDEC); software with one warning where the device is missing",
    )
    p.add_argument("--stride", type=C.POS_INT, default=1, help="a clip every N frames; maps in between interpolated")
    p.add_argument("--batch", type=C.POS_INT, default=1, help="clips per model call (across inputs)")
    p.add_argument("--max-wait-ms", type=C.NONNEG_FLOAT, default=20.0, help="latency budget for filling a batch")
    p.add_argument("--live", action="store_true", help="bounded latency: drop the oldest clips when behind")
    p.add_argument(
        "--release-memory-s", type=C.NONNEG_FLOAT, default=30.0,
        help="seconds between handing freed heap memory back to the OS (flat RSS on long runs; 0: never)",
    )  # fmt: skip
    p.add_argument("--outputs", default="overlay,npz", help="comma-separated: overlay,png,npy,npz (JSON always)")
    p.add_argument("--source-size", action="store_true", help="PNG/npy/npz maps at the source resolution")
    C.quiet_arg(p)
    C.ray_args(p)
    p.set_defaults(func=handle)


def run_settings(args: argparse.Namespace) -> Any:
    from salrt.app.run import RunSettings

    return RunSettings(
        outputs=tuple(o.strip() for o in args.outputs.split(",") if o.strip()),
        stride=args.stride,
        batch=args.batch,
        max_wait_ms=args.max_wait_ms,
        release_memory_s=args.release_memory_s,
        live=args.live,
        source_size=args.source_size,
        hwaccel=args.hwaccel,
        audio=args.audio,
        fps=args.fps,
        input_format=args.input_format,
    )


def handle(args: argparse.Namespace) -> int:
    from salrt import pipeline
    from salrt.app import run as app
    from salrt.io.sources import expected_frames

    settings = run_settings(args)
    C.gather_inputs(args)
    spec = C.spec_from_args(args)
    record = C.settings(args)
    if args.ray is not None:
        from salrt.app.jobs import start

        ray, log = C.ray_options(args), C.notes(args, "ray")
        spec = start(spec, ray, log)  # refusals and the cluster before the bar
        total = expected_frames(app.sources(args.inputs, settings))
        with C.new_bar(args, "frames", total, "frame") as bar:
            job = app.run_ray(
                spec,
                args.inputs,
                args.output,
                settings,
                ray,
                record=record,
                progress=bar.advance,
                log=log,
                started=True,
            )
        return report_job(job, args.output)
    srcs = app.sources(args.inputs, settings)
    pipe = pipeline.build(spec, progress=C.notes(args, "salrt run"))  # before the bar: refusals come first
    total = None if settings.live else expected_frames(srcs)
    with C.new_bar(args, "frames", total, "frame") as bar:
        stats = app.run(pipe, srcs, args.output, settings, record=record, progress=bar.advance, notes=C.warn)
    return report(stats, args.output, len(srcs))


def report(stats: Any, out: Any, n_inputs: int) -> int:
    """Print the summary line, the warnings and the errors of a run (a RunStats); its exit code."""
    lat = stats.latency_ms
    lat_txt = (
        f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms"
        if lat["p50"] is not None
        else "no map was produced"
    )
    for w in stats.warnings:
        C.warn(w)
    frames, discarded = sum(stats.frames_out), sum(stats.discarded_on_stop)
    C.say(
        f"{frames} frames from {n_inputs} input(s) in {stats.wall_s:.1f} s ({stats.fps_out:.2f} frames/s, "
        f"{stats.clips_per_s:.2f} clips/s); {lat_txt}; dropped {sum(stats.dropped_clips)}; outputs in {out}"
    )
    if stats.interrupted:
        C.warn(
            f"interrupted: outputs hold the {frames} frames written"
            + (f"; {discarded} clip(s) not yet sampled were discarded" if discarded else "")
        )
    for e in stats.errors:
        C.error(e)
    if stats.errors:
        return 1
    return 130 if stats.interrupted else 0


def report_job(report: Any, out: str) -> int:
    """Print a Ray job's summary, warnings and errors; its exit code."""
    done = sum(r["status"] == "done" for r in report.inputs)
    skipped = sum(r["status"] == "skipped" for r in report.inputs)
    C.say(
        f"{report.frames} frames from {len(report.inputs)} input(s) in {report.wall_s:.1f} s on {report.workers} Ray "
        f"worker(s): {done} done, {skipped} already complete, {len(report.errors)} failed"
        + (f", {report.retried} retried after a worker died" if report.retried else "")
        + f"; outputs in {out}"
    )
    for r in report.inputs:
        for w in r.get("warnings", []):
            C.warn(w)
    for e in report.errors:
        C.error(e)
    return 1 if report.errors else 0
