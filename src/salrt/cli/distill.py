"""``salrt distill``: flags -> :func:`salrt.app.distill.distill` -> the student and its report."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    from salrt.evaluation import DATASETS

    p = sub.add_parser("distill", help="distil a heavy teacher into the real-time student on your videos")
    C.add_spec_args(
        p,
        ("model", "config", "checkpoint", "random_weights", "backbones", "backend", "export_dir", "device",
         "precision", "steps", "url", "triton_model", "seed", "cache_dir"),
        model={"default": "diffsal", "help": "the teacher: a registry model (salrt info --list)"},
        config={"help": "the teacher's config preset (a salrt checkpoint folder carries its own)"},
        checkpoint={"help": "the teacher's weights"},
        random_weights={"help": "an untrained teacher (tests and smoke runs only)"},
        backend={"help": "where the teacher runs: auto, torch, onnxruntime, openvino, tensorrt, triton"},
        seed={"type": C.NONNEG_INT, "help": "seed of the student's weights, data order and the teacher's noise"},
    )  # fmt: skip
    # the brief's spelling: --teacher MODEL, --teacher-config PRESET
    p.add_argument("--teacher", dest="model", help=argparse.SUPPRESS)
    p.add_argument("--teacher-config", dest="config", help=argparse.SUPPRESS)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--videos", help="a folder of videos, or a text file listing them (one per line)")
    src.add_argument("--dataset", choices=DATASETS, help="a dataset layout with ground truth (its test split held out)")
    p.add_argument("--root", help="--dataset: its root folder (synthetic: written when absent)")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="--dataset: fold")
    C.output_arg(p, "distill_out", "folder for the teacher's maps, the student, logs and the report")
    p.add_argument("--student-config", default="s", choices=("s", "m"), help="student preset")
    p.add_argument("--epochs", type=C.POS_INT, default=10)
    p.add_argument("--batch", type=C.POS_INT, default=8, help="sequences per step")
    p.add_argument("--lr", type=C.POS_FLOAT, help="learning rate (default: the student's recipe, 2e-3)")
    p.add_argument("--sequence", type=C.POS_INT, default=8, help="consecutive frames per training sequence")
    p.add_argument("--hop", type=C.POS_INT, default=4, help="frames between training sequences")
    p.add_argument("--teacher-stride", type=C.POS_INT, default=1, help="a teacher map every N frames")
    p.add_argument("--teacher-batch", type=C.POS_INT, default=4, help="clips per teacher call")
    p.add_argument("--truth-weight", type=float, default=0.0, help="share of the ground truth in the target (0..1)")
    p.add_argument("--held-out", type=float, default=0.2, help="--videos: share kept for the report")
    p.add_argument("--workers", type=C.NONNEG_INT, default=0, help="data-loader worker processes")
    p.add_argument("--resume", action="store_true", help="continue the training exactly (OUTPUT/train/train_state.pt)")
    p.add_argument("--max-steps", type=C.POS_INT, help="stop after this many optimiser steps (checkpointed)")
    p.add_argument("--checkpoint-every", type=C.POS_INT, default=200, help="optimiser steps between train states")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app.distill import DistillSettings, distill

    teacher = C.spec_from_args(args)
    settings = DistillSettings(
        student_config=args.student_config, epochs=args.epochs, batch=args.batch, lr=args.lr, sequence=args.sequence,
        hop=args.hop, teacher_stride=args.teacher_stride, teacher_batch=args.teacher_batch,
        truth_weight=args.truth_weight, held_out=args.held_out, seed=args.seed, resume=args.resume,
        workers=args.workers, checkpoint_every=args.checkpoint_every, max_steps=args.max_steps, quiet=args.quiet,
    )  # fmt: skip
    res = distill(
        teacher, args.output, settings, videos=args.videos, dataset=args.dataset, root=args.root, split=args.split,
        log=C.notes(args, "salrt distill"), warn=C.warn, status=args.console.status,
    )  # fmt: skip
    for line in res.report_path.with_suffix(".md").read_text().splitlines()[2:]:
        if line:
            C.say(line)
    C.say(f"student: {res.student} (salrt run --model student --checkpoint {res.student}); report: {res.report_path}")
    return 0
