"""The ``salrt`` command line. Errors print one line and exit non-zero, without a traceback."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Sequence

from salrt.errors import SalrtError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"salrt: error: {message}\n")


def _shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(x) for x in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: use e.g. 3x16x224x384") from None
    if not dims or any(d <= 0 for d in dims):
        raise argparse.ArgumentTypeError(f"invalid shape {text!r}: dimensions must be positive integers")
    return dims


def _info(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from salrt.cost import cost_report
    from salrt.models import MODELS

    if args.model.lower() not in MODELS:
        raise SalrtError(f"unknown model {args.model!r}; available: {', '.join(sorted(MODELS))}")
    _, cfg_cls = MODELS[args.model.lower()]
    cfg = cfg_cls.preset(args.config)
    changes: dict[str, int] = {}
    if args.video_shape is not None:
        vs = args.video_shape
        if len(vs) != 4 or vs[0] != 3:
            raise SalrtError(f"--video-shape must be 3xTxHxW, got {'x'.join(map(str, vs))}")
        changes.update(frames=vs[1], height=vs[2], width=vs[3], audio_slices=vs[1] // 2 + 1,
                       audio_height=vs[2] // 2, audio_width=vs[3] // 2)  # fmt: skip
    if args.audio_shape is not None:
        aus = args.audio_shape
        if len(aus) != 4 or aus[0] != 1:
            raise SalrtError(f"--audio-shape must be 1xSxHxW, got {'x'.join(map(str, aus))}")
        changes.update(audio_slices=aus[1], audio_height=aus[2], audio_width=aus[3])
    if args.steps < 1:
        raise SalrtError(f"--steps must be >= 1, got {args.steps}")
    if args.batch < 1:
        raise SalrtError(f"--batch must be >= 1, got {args.batch}")
    try:
        cfg = dataclasses.replace(cfg, **changes)
    except ValueError as exc:
        raise SalrtError(f"unsupported input shape: {exc}") from None
    r = cost_report(cfg, batch=args.batch, steps=args.steps)
    if args.json:
        print(json.dumps({
            "model": args.model, "config": cfg.to_dict(), "batch": args.batch, "steps": args.steps,
            "params": r.params, "params_total": sum(r.params.values()),
            "paper_convention": {"macs": r.paper_macs, "params": r.paper_params},
            "flops": r.flops, "flops_encoders": r.flops_encoders, "flops_per_clip": r.flops_per_clip,
        }, indent=2))  # fmt: skip
        return 0
    con = Console()
    shape = f"video {args.batch}x{'x'.join(map(str, cfg.video_shape))}, audio {args.batch}x{'x'.join(map(str, cfg.audio_shape))}"
    tp = Table(title=f"{args.model} parameters")
    tp.add_column("sub-network")
    tp.add_column("params (M)", justify="right")
    for k, v in r.params.items():
        tp.add_row(k, f"{v / 1e6:.3f}")
    tp.add_row("total", f"{sum(r.params.values()) / 1e6:.3f}")
    con.print(tp)
    tc = Table(title=f"cost at {shape}, {args.steps} steps")
    tc.add_column("part")
    tc.add_column("GFLOPs (full)", justify="right")
    tc.add_column("runs", justify="right")
    tc.add_row("video encoder", f"{r.flops['video_encoder'] / 1e9:.2f}", "once per clip")
    tc.add_row("audio encoder", f"{r.flops['audio_encoder'] / 1e9:.2f}", "once per clip")
    tc.add_row("audio alignment", f"{r.flops['audio_alignment'] / 1e9:.2f}", "once per clip")
    tc.add_row("denoiser", f"{r.flops['denoiser_step'] / 1e9:.2f}", "per step")
    tc.add_row(f"total per clip ({args.steps} steps)", f"{r.flops_per_clip / 1e9:.2f}", "")
    con.print(tc)
    con.print(
        f"papers' convention (thop MACs, encoders + one denoiser pass): "
        f"#Params {r.paper_params / 1e6:.2f}M, #FLOPs {r.paper_macs / 1e9:.2f}G"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="salrt", description="Deployment engine for diffusion-based audio-visual saliency models.")
    p.add_argument("--version", action="version", version="salrt 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pi = sub.add_parser("info", help="parameters and cost (papers' convention and full FLOPs) of a model")
    pi.add_argument("model", help="model name (diffsal)")
    pi.add_argument("--config", default="paper", help="config preset: paper (default) or tiny")
    pi.add_argument("--video-shape", type=_shape, help="CxTxHxW of one clip, default 3x16x224x384")
    pi.add_argument("--audio-shape", type=_shape, help="1xSxHxW of its log-mel slices, default 1x9x112x192")
    pi.add_argument("--steps", type=int, default=4, help="denoising steps for the per-clip total (default 4)")
    pi.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    pi.add_argument("--json", action="store_true", help="print JSON instead of tables")
    pi.set_defaults(func=_info)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SalrtError, ValueError, OSError) as exc:
        print(f"salrt: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("salrt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
