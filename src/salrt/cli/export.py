"""``salrt export``: flags -> :func:`salrt.app.export.export` -> one line per graph or engine."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("export", help="export ONNX graphs (validated in onnxruntime) or TensorRT engines")
    C.add_spec_args(p, ("model", "checkpoint", "random_weights", "config", "backbones"),
                    random_weights={"help": "export untrained weights (benchmarks, tests)"})  # fmt: skip
    p.add_argument(
        "--format", choices=("onnx", "tensorrt", "triton"), default="onnx",
        help="what to write (triton: a Triton Inference Server model repository)",
    )  # fmt: skip
    C.output_arg(p, None, "output directory")
    p.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="precision of the graphs")
    p.add_argument("--batch", type=C.POS_INT, help="fixed batch size (1 when neither this nor --dynamic-batch)")
    p.add_argument("--dynamic-batch", help="batch range MIN:OPT:MAX (instead of --batch)")
    p.add_argument("--opset", type=C.POS_INT, default=17, help="ONNX opset")
    p.add_argument("--steps", type=C.POS_INT, default=4, help="DDIM steps unrolled in sampler.onnx")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim (the graphs are still validated)")
    p.add_argument("--workspace-gib", type=C.POS_FLOAT, default=4.0, help="TensorRT builder workspace")
    p.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    p.add_argument("--export-dir", help="--format triton: lay out this existing export (with its engines) instead")
    p.add_argument("--version", type=C.POS_INT, help="--format triton: version folder (next when not given)")
    p.add_argument("--instances", type=C.POS_INT, default=1, help="--format triton: model instances per device")
    p.add_argument(
        "--instance-kind", choices=("auto", "gpu", "cpu"), default="auto", help="--format triton: where ONNX models run"
    )
    p.add_argument("--queue-delay-us", type=C.NONNEG_INT, default=2000, help="--format triton: dynamic batching delay")
    p.add_argument(
        "--window-idle-s", type=C.POS_FLOAT, default=60.0,
        help="--format triton: seconds the server keeps a silent stream's frame window",
    )  # fmt: skip
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app import export as app
    from salrt.errors import UsageError

    if args.batch is not None and args.dynamic_batch is not None:
        raise UsageError("give --batch N or --dynamic-batch MIN:OPT:MAX, not both")
    settings = app.ExportSettings(
        format=args.format, precision=args.precision, batch=args.batch, dynamic_batch=args.dynamic_batch,
        opset=args.opset, steps=args.steps, simplify=False if args.no_simplify else None,
        workspace_gib=args.workspace_gib, version=args.version, instances=args.instances,
        instance_kind=args.instance_kind, queue_delay_us=args.queue_delay_us, window_idle_s=args.window_idle_s,
    )  # fmt: skip
    if args.format == "triton" and args.export_dir:  # a model repository from an existing export
        return say_repository(app.triton_repository(args.export_dir, args.output, settings), args.output)
    spec = C.spec_from_args(args)
    man = app.export(spec, args.output, settings, log=C.notes(args, "salrt export"))
    if args.format == "triton":
        return say_repository(man, args.output)
    for g in man["graphs"].values():
        worst = max(e["max_abs"] for c in g["validation"] for e in c["outputs"].values())
        after = g.get("after_simplify") or g["before_simplify"]
        C.say(
            f"{g['file']}: {g['before_simplify']['nodes']} -> {after['nodes']} nodes, "
            f"{after['bytes'] / 1e6:.1f} MB, max abs error vs PyTorch {worst:.1e}"
        )
    for e in man.get("tensorrt", {}).get("engines", {}).values():
        C.say(f"{e['file']}: {'from cache' if e.get('cached') else 'built in {:.1f} s'.format(e.get('seconds', 0.0))}")
    C.say(f"wrote {args.output}/manifest.json")
    return 0


def say_repository(index: dict[str, Any], output: str) -> int:
    for name, m in index["models"].items():
        C.say(f"{output}/{name}: {m['platform']} ({m['graph']}), version {index['version']}")
    C.say(f"wrote {output} (servable model: {index['servable']})")
    return 0
