"""``salrt rd``: flags -> :func:`salrt.app.rd.rd` -> the BD-rate table's headline."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def _list(kind: type) -> Any:
    def parse(text: str) -> tuple:
        try:
            return tuple(kind(t) for t in text.split(",") if t.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"a comma-separated list of {kind.__name__}s, got {text!r}") from None

    return parse


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rd", help="rate-distortion curves and BD-rates of saliency-driven encoding")
    p.add_argument("input", metavar="INPUT", help="the video to encode")
    C.output_arg(p, "rd", "folder for rd.json, rd.md, the RD plots and the encodes")
    p.add_argument("--codecs", type=_list(str), default=("libx264", "libx265"),
                   help="comma-separated: libx264, libx265, libvpx-vp9 (ROI), libsvtav1 (no ROI: --methods aq)")  # fmt: skip
    p.add_argument("--crfs", type=_list(float), help="CRF ladder, >= 4 points (default: each encoder's own)")
    p.add_argument("--bitrates", type=_list(C.bitrate), help="target bitrates instead of CRFs: 200k,400k,800k,1.6M")
    p.add_argument("--methods", type=_list(str), default=("aq", "model", "centre", "spectral"),
                   help="besides the plain encode: aq (the encoder's stronger AQ modes), model, centre, spectral")  # fmt: skip
    p.add_argument("--maps", help="also ROI from these maps (.npy/.npz, N x H x W at the frame size)")
    p.add_argument("--truth", help="ground-truth attention maps (.npy/.npz, N x H x W) for EW-PSNR")
    p.add_argument("--frames", type=C.POS_INT, help="encode the first N frames (default: all)")
    p.add_argument("--no-keep-encodes", action="store_true", help="delete the encoded files after measuring")
    C.roi_args(p)
    C.add_spec_args(
        p,
        ("model", "checkpoint", "random_weights", "backbones", "config", "steps", "device", "backend", "export_dir",
         "url", "triton_model", "precision", "seed", "cache_dir"),
        checkpoint={"help": "the model's weights (default: the bundled demo model of --model)"},
        config={"default": None, "help": "model config preset (default: the bundled model's)"},
    )  # fmt: skip
    p.add_argument("--stride", type=C.POS_INT, default=1, help="a clip every N frames (the model)")
    p.add_argument("--batch", type=C.POS_INT, default=1, help="clips per model call")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salrt.app import rd as app
    from salrt.app.encode import read_maps
    from salrt.encoders import roi_config
    from salrt.errors import SalrtError

    given = {"strength": args.roi_strength, "max_offset": args.max_offset, "floor": args.floor,
             "smoothing": args.smoothing, "dilation": args.dilation}  # fmt: skip
    roi = {c: roi_config(c, **given) for c in args.codecs} if any(v is not None for v in given.values()) else {}
    settings = app.RdSettings(
        codecs=args.codecs, crfs=args.crfs, bitrates=args.bitrates, methods=args.methods, roi=roi,
        frames=args.frames, stride=args.stride, batch=args.batch, keep_encodes=not args.no_keep_encodes,
    )  # fmt: skip
    if not Path(args.input).is_file():
        raise SalrtError(f"{args.input}: no such file")
    maps = read_maps(args.maps) if args.maps else None
    truth = read_maps(args.truth) if args.truth else None
    spec = None
    weights = ""
    if "model" in settings.methods:
        from salrt.app.demo import bundled_spec

        spec = C.spec_from_args(args)
        if not (spec.export_dir or spec.url):
            spec, weights = bundled_spec(spec)
        from salrt import pipeline

        spec = pipeline.build(spec, progress=C.notes(args, "salrt rd"))  # before the bar: refusals come first
    n_methods = len(settings.methods) + (maps is not None) - ("aq" in settings.methods)
    from salrt.encoders import ENCODERS

    total = 0
    for c in settings.codecs:
        points = len(settings.ladder(c)[0])
        total += points * (1 + n_methods + (len(ENCODERS[c].aq_variants) if "aq" in settings.methods else 0))
    if weights:
        C.info(f"salrt rd: the model's maps from {weights}")
    with C.new_bar(args, "encoding", total, "encode") as bar:
        result = app.rd(spec, args.input, args.output, settings, maps=maps, truth=truth, progress=bar.advance,
                        notes=C.notes(args, "salrt rd"))  # fmt: skip
    for name, c in result.data["codecs"].items():
        for d in c["dropped"]:
            C.warn(f"{name}: rate point dropped: {d}")
        metric = "ew_psnr_gt" if result.data["ew_psnr_gt"] else "vmaf"
        cells = [
            f"{m} {v[metric]['value']:+.1f}%"
            for m, v in c["bd_rate"].items()
            if v.get(metric, {}).get("value") is not None
        ]
        C.say(f"{name}: BD-rate on {metric} vs plain: " + (", ".join(cells) or "none computable (see rd.md)"))
    C.say(f"wrote {result.json_path}, {result.md_path} and {len(result.plots)} plot(s)")
    return 0
