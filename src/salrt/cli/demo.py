"""``salrt demo``: :func:`salrt.app.demo.demo` -> what it measured, in plain words."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="make a synthetic clip and run the whole pipeline on it")
    C.output_arg(p, "salrt_demo", "output directory")
    C.add_spec_args(
        p,
        ("model", "checkpoint", "random_weights", "config", "device", "steps", "backend", "export_dir", "precision",
         "seed", "cache_dir"),  # fmt: skip
        checkpoint={"help": "weights (default: the bundled demo model)"},
        random_weights={"help": "run untrained weights instead of the demo model"},
        config={"default": None, "help": "model config preset (default: the bundled model's: tiny for diffsal, s for "
                "the student; 'paper' needs real weights and minutes on a CPU)"},
        seed={"help": "seed of the clip and of the starting noise"},
    )  # fmt: skip
    p.add_argument("--seconds", type=C.POS_FLOAT, default=2.0, help="length of the synthetic clip")
    p.add_argument("--stride", type=C.POS_INT, default=1, help="a clip every N frames")
    p.add_argument("--batch", type=C.POS_INT, default=4, help="clips per model call")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app.demo import demo
    from salrt.cli.run import report

    spec = C.spec_from_args(args)
    if spec.checkpoint is None and not spec.random_weights:
        C.say("weights: the bundled demo model (trained on the synthetic sounding-object task, not on human attention)")
    elif spec.random_weights:
        C.say("random weights: the maps show the pipeline, not saliency")
    with C.new_bar(args, "frames", None, "frame") as bar:
        res = demo(
            args.output, spec, seconds=args.seconds, stride=args.stride, batch=args.batch, progress=bar.advance,
            notes=C.say, status=bar.status,
        )  # fmt: skip
    rc = report(res.stats, args.output, 1)
    if rc:
        return rc
    C.say(
        f"mean CC against the synthetic ground truth: {res.cc:.3f} (1 = the ground truth itself, 0 = no better than "
        f"chance; a centre-bias map that ignores the content scores {res.cc_centre_bias:.3f} here)"
    )
    listens = res.cc_own_audio - res.cc_swapped_audio > 0.05
    C.say(
        f"with another clip's soundtrack the CC falls from {res.cc_own_audio:.3f} to {res.cc_swapped_audio:.3f} "
        f"({'every frame' if res.stride_check == 1 else f'every {res.stride_check}th frame'}): the model "
        f"{'uses' if listens else 'ignores'} the sound"
    )
    C.say(f"side by side (input | predicted | ground truth): {res.comparison}; overlay: {res.overlay}")
    return 0
