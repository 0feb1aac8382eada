"""``salrt train``: flags -> :func:`salrt.app.train.train` -> where the checkpoints are."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    from salrt.evaluation import DATASETS

    p = sub.add_parser("train", help="train or fine-tune a model with its paper's objective")
    C.add_spec_args(p, ("model", "config", "device", "seed", "backbones"),
                    device={"help": "cpu, cuda or cuda:N (torchrun: one GPU per process)"},
                    seed={"type": C.NONNEG_INT, "help": "seed of weights, data order and noise"},
                    backbones={"help": "pretrained backbone (mvit, vggish, s3d, soundnet, clip) to start from; repeatable"})  # fmt: skip
    p.add_argument(
        "--dataset",
        required=True,
        choices=DATASETS,
        help="dataset layout (as salrt eval); synthetic: the sounding-object task, written to --root if absent",
    )
    p.add_argument("--root", required=True, help="dataset root folder")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="fold of the audio-visual datasets")
    p.add_argument("--val-root", help="DHF1K: the validation videos' root")
    p.add_argument("--no-val", action="store_true", help="no validation (best = last)")
    p.add_argument("--synthetic-videos", default="64,16", help="synthetic: TRAIN,VAL videos to write")
    C.output_arg(p, "train_out", "folder for checkpoints, logs and curves")
    p.add_argument("--epochs", type=C.POS_INT, help="epochs (default: the paper's)")
    p.add_argument("--batch", type=C.POS_INT, help="clips per step (default: the paper's)")
    p.add_argument("--lr", type=C.POS_FLOAT, help="learning rate (default: the paper's)")
    p.add_argument("--accumulate", type=C.POS_INT, default=1, help="batches per optimiser step")
    p.add_argument("--grad-clip", type=C.POS_FLOAT, help="gradient-norm clip (default: the paper's)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast on CUDA")
    p.add_argument("--workers", type=C.NONNEG_INT, default=0, help="data-loader worker processes")
    p.add_argument("--decode-workers", type=C.NONNEG_INT, default=2, help="processes decoding videos into the cache")
    p.add_argument("--clip-stride", type=C.POS_INT, default=4, help="a training clip for every N-th annotated frame")
    p.add_argument("--cache", help="decoded-clip cache folder (default: OUTPUT/cache; resumable)")
    p.add_argument("--checkpoint-every", type=C.POS_INT, default=200, help="optimiser steps between train_state.pt")
    p.add_argument("--log-every", type=C.POS_INT, default=10, help="optimiser steps between log rows")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT/train_state.pt exactly")
    p.add_argument("--init-from", help="start from these weights (a salrt directory or the authors' DiffSal .pth)")
    p.add_argument("--val-steps", type=C.POS_INT, default=4, help="DDIM steps when validating diffusion models")
    p.add_argument("--max-steps", type=C.POS_INT, help="stop after this many optimiser steps (checkpointed)")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt.app.train import train
    from salrt.errors import UsageError, require

    require("torch", "salrt train")
    from salrt.train import TrainOptions

    spec = C.spec_from_args(args).validated()  # the model name and device checked as for a run
    try:
        n_train, n_val = (int(x) for x in args.synthetic_videos.split(","))
    except ValueError:
        raise UsageError(f"--synthetic-videos takes TRAIN,VAL counts, got {args.synthetic_videos!r}") from None
    opts = TrainOptions(
        model=spec.model, config=args.config, output=args.output, epochs=args.epochs, batch=args.batch, lr=args.lr,
        accumulate=args.accumulate, grad_clip=args.grad_clip, precision=args.precision, device=spec.device,
        workers=args.workers, seed=args.seed, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
        resume=args.resume, init_from=args.init_from, backbones=spec.backbone_files, val_steps=args.val_steps,
        max_steps=args.max_steps, quiet=args.quiet,
    )  # fmt: skip
    from salrt.pipeline import check_device

    check_device(spec.device, torch_needed=True)
    res = train(
        opts, dataset=args.dataset, root=args.root, split=args.split, val_root=args.val_root, no_val=args.no_val,
        synthetic_videos=(n_train, n_val), clip_stride=args.clip_stride, cache=args.cache,
        decode_workers=args.decode_workers, status=args.console.status, log=C.notes(args, "salrt train"),
    )  # fmt: skip
    best = f", best validation CC {res['best_cc']:.4f}" if res["best_cc"] is not None else ""
    C.say(f"trained {res['step']} steps in {res['epochs']} epochs{best}: {args.output}/best, {args.output}/last")
    return 0
