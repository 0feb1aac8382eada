"""``salrt info``: flags -> :func:`salrt.app.info.model_info` -> tables or JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="parameters and cost of a model; the registered models and backends")
    p.add_argument("model", nargs="?", metavar="MODEL", help=C.MODEL_HELP)
    p.add_argument("--list", action="store_true", help="list the registered models")
    p.add_argument("--backends", action="store_true", help="list the backends: what each needs and runs on")
    C.add_spec_args(p, ("config",))
    p.add_argument("--video-shape", type=C.shape, help="CxTxHxW of one clip (default: the config's)")
    p.add_argument("--audio-shape", type=C.shape, help="1xSxHxW of its log-mel slices (default: the config's)")
    p.add_argument("--steps", type=C.POS_INT, default=4, help="denoising steps for the per-clip total")
    p.add_argument("--batch", type=C.POS_INT, default=1, help="batch size")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app import info as app
    from salrt.errors import UsageError

    if args.backends:
        from salrt.backends import describe

        rows = describe()
        if args.json:
            C.say(json.dumps(rows, indent=2))
        else:
            for r in rows:
                C.say(
                    f"{r['name']:<14} needs {r['needs']:<8} on {','.join(r['devices']):<9} precision: {r['precision']:<15}"
                    f"{'installed' if r['installed'] else 'not installed (' + str(r['library']) + ')'}"
                    f"{'' if r['auto'] else ', never chosen by auto'}"
                )
        return 0
    if args.list:
        C.say("\n".join(app.model_names()))
        return 0
    if args.model is None:
        raise UsageError("give a MODEL (salrt info --list shows them)")
    with (
        contextlib.nullcontext() if args.json else args.console.status("counting parameters and FLOPs on meta tensors")
    ):
        res = app.model_info(
            args.model,
            args.config,
            video_shape=args.video_shape,
            audio_shape=args.audio_shape,
            steps=args.steps,
            batch=args.batch,
        )
    if args.json:
        C.say(json.dumps(res.to_dict(), indent=2))
        return 0
    render(res, args.model)
    return 0


def render(res: Any, name: str) -> None:
    from rich.console import Console
    from rich.table import Table

    con, r, cfg, batch = Console(), res.report, res.config, res.batch
    shape = f"video {batch}x{'x'.join(map(str, cfg.video_shape))}, audio {batch}x{'x'.join(map(str, cfg.audio_shape))}"
    tp = Table(title=f"{name} parameters")
    tp.add_column("sub-network")
    tp.add_column("params (M)", justify="right")
    for k, v in r.params.items():
        tp.add_row(k, f"{v / 1e6:.3f}")
    tp.add_row("total", f"{sum(r.params.values()) / 1e6:.3f}")
    con.print(tp)
    steps_txt = f", {r.steps} steps" if r.steps else " (one pass)"
    tc = Table(title=f"cost at {shape}{steps_txt}")
    tc.add_column("part")
    tc.add_column("GFLOPs (full)", justify="right")
    tc.add_column("runs", justify="right")
    for k, v in r.flops.items():
        tc.add_row(k.replace("_", " "), f"{v / 1e9:.2f}", "per step" if k == "denoiser_step" else "once per clip")
    tc.add_row(f"total per clip{steps_txt}", f"{r.flops_per_clip / 1e9:.2f}", "")
    con.print(tc)
    con.print(
        f"papers' convention (thop MACs, {'one forward' if not r.steps else 'encoders + one denoiser pass'}): "
        f"#Params {r.paper_params / 1e6:.2f}M, #FLOPs {r.paper_macs / 1e9:.2f}G"
    )
    for row in res.paper:
        con.print(
            f"paper reports {row['quantity']}: {row['paper']:g} {row['unit']}; salrt {row['salrt']:.2f} "
            f"({row['difference_pct']:+.2f}%)"
        )
    if not res.paper:
        con.print(f"the {name} paper reports no cost figures for preset {res.preset!r}")
    short = {"params": "params", "paper_params": "params", "paper_macs": "MACs", "size_mb": "MB"}
    for field, options in res.readings.items():
        tr = Table(title=f"readings of the paper: {field} (this config: {getattr(cfg, field)})")
        for col, just in (("reading", "left"), ("params (M)", "right"), ("thop params (M)", "right"),
                          ("thop MACs (G)", "right"), ("vs paper", "left")):  # fmt: skip
            tr.add_column(col, justify=just)  # type: ignore[arg-type]
        for value, row in options.items():
            vs = ", ".join(f"{short[p['key']]} {p['difference_pct']:+.2f}%" for p in row["paper_figures"]) or "-"
            tr.add_row(
                value,
                f"{row['params'] / 1e6:.2f}",
                f"{row['paper_params'] / 1e6:.2f}",
                f"{row['paper_macs'] / 1e9:.2f}",
                vs,
            )
        con.print(tr)
