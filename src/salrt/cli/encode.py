"""``salrt encode``: flags -> :func:`salrt.app.encode.encode` -> the encoded file's size."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("encode", help="encode a video with saliency-driven quantisation (ROI)")
    p.add_argument("inputs", nargs="*", metavar="INPUT", help="the video file to encode (several with --ray)")
    C.output_arg(p, None, "output video file (with --ray: a folder or URL for <input>.mp4 files)")
    p.add_argument("--codec", default="libx264", help="libx264, libx265, libvpx-vp9 (ROI) or libsvtav1 (no ROI)")
    p.add_argument("--crf", type=C.NONNEG_FLOAT, help="constant quality (28 unless --bitrate)")
    p.add_argument("--bitrate", type=C.bitrate, help="target bit rate instead of --crf: 2M, 800k, 2000000")
    C.roi_args(p)
    p.add_argument("--no-roi", action="store_true", help="plain encode with the same settings (no model, no maps)")
    p.add_argument("--maps", help="use these maps (.npy/.npz, N x H x W, one per frame) instead of running a model")
    C.add_spec_args(
        p,
        (
            "model",
            "checkpoint",
            "random_weights",
            "backbones",
            "config",
            "steps",
            "captions",
            "bpe",
            "device",
            "backend",
            "export_dir",
            "url",
            "triton_model",
            "kernels",
            "precision",
            "seed",
            "cache_dir",
        ),  # fmt: skip
    )
    p.add_argument("--stride", type=C.POS_INT, default=1, help="a clip every N frames")
    p.add_argument("--batch", type=C.POS_INT, default=1, help="clips per model call")
    C.ray_args(p)
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app import encode as app
    from salrt.encoders import roi_config
    from salrt.errors import SalrtError, UsageError
    from salrt.io.sources import expected_frames

    C.gather_inputs(args)
    if args.ray is None and len(args.inputs) != 1:
        raise UsageError("salrt encode takes one input (several with --ray, into the -o folder)")
    if args.no_roi and args.maps:
        raise UsageError("--no-roi encodes without maps: drop --maps")
    roi = None if args.no_roi else roi_config(
        args.codec, strength=args.roi_strength, max_offset=args.max_offset, floor=args.floor,
        smoothing=args.smoothing, dilation=args.dilation,
    )  # fmt: skip
    settings = app.EncodeSettings(
        codec=args.codec, crf=args.crf, bitrate=args.bitrate, roi=roi, stride=args.stride, batch=args.batch
    )
    spec = C.spec_from_args(args)
    if args.ray is not None:
        if args.maps or args.no_roi:
            raise UsageError("--ray runs the model on every input: drop --maps/--no-roi")
        report = app.encode_ray(spec, args.inputs, args.output, settings, C.ray_options(args), log=C.notes(args, "ray"))
        from salrt.cli.run import report_job

        return report_job(report, args.output)
    source = args.inputs[0]
    app.refuse_overwriting_input(source, args.output)  # before anything opens
    if args.maps or args.no_roi:  # given maps, or a plain encode: no model involved
        maps = app.read_maps(args.maps) if args.maps else None
        if not Path(source).is_file():
            raise SalrtError(f"{source}: no such file")
        app.encode(None, source, args.output, settings, maps=maps)
    else:
        if not Path(source).is_file():
            raise SalrtError(f"{source}: no such file")
        from salrt import pipeline

        pipe = pipeline.build(spec, progress=C.notes(args, "salrt encode"))  # before the bar: refusals come first
        with C.new_bar(args, "encoding", expected_frames([source]), "frame") as bar:
            stats = app.encode(pipe, source, args.output, settings, progress=bar.advance)
        for w in stats["warnings"]:
            C.warn(w)
        if stats["errors"]:
            raise SalrtError(stats["errors"][0])
        if stats["interrupted"]:
            C.warn(f"interrupted: {args.output} holds the frames encoded so far")
            return 130
    strength = "no ROI" if roi is None else f"ROI strength {roi.strength:g}"
    C.say(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes, {args.codec}, {strength})")
    return 0
