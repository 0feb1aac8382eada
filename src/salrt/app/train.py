"""``salrt train``: train or fine-tune a registry model with its paper's objective on a dataset
layout (the synthetic sounding-object task is written when absent)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from salrt.errors import require


def train(
    opts: Any,
    *,
    dataset: str,
    root: str,
    split: int = 1,
    val_root: str | None = None,
    no_val: bool = False,
    synthetic_videos: tuple[int, int] = (64, 16),
    clip_stride: int = 4,
    cache: str | None = None,
    decode_workers: int = 2,
    status: Callable[[str], Any] | None = None,
    log: Callable[[str], None] = lambda s: None,
) -> dict[str, Any]:
    """Train with :class:`salrt.train.TrainOptions` ``opts`` on ``dataset`` under ``root``; the
    trainer's result (steps, epochs, best validation CC). ``status(text)``: a context manager shown
    during long preparation (writing the synthetic set, decoding the clip cache)."""
    require("torch", "salrt train")
    import contextlib

    from salrt import checkpoint as ckpt
    from salrt import evaluation
    from salrt.io.contract import InputContract
    from salrt.models import MODELS
    from salrt.train import ClipDataset, DataError, build_cache, check_videos
    from salrt.train import train as run_training

    show = status or (lambda text: contextlib.nullcontext())
    base = Path(root)
    if dataset == "synthetic" and not (base / "fold_lists").is_dir():
        from salrt.io.synthetic import make_dataset

        with show(f"writing the synthetic sounding-object dataset to {base}"):
            make_dataset(base, n_train=synthetic_videos[0], n_val=synthetic_videos[1], seed=opts.seed)
    if dataset == "dhf1k":
        train_videos = evaluation.dhf1k_dataset(base)
        val_videos = evaluation.dhf1k_dataset(val_root) if val_root else []
    else:
        train_videos = evaluation.av_dataset(base, dataset, split, "train")
        val_videos = [] if no_val else evaluation.av_dataset(base, dataset, split, "test")
    problems = check_videos(train_videos + val_videos)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(f"training data: {problems[0]}{more}")
    cfg_cls = MODELS[opts.model][1]
    if opts.init_from and ckpt.is_salrt_checkpoint(opts.init_from):  # its config wins, as in load_model
        cfg = cfg_cls.from_dict(ckpt.read_salrt(opts.init_from)[0]["config"])
    else:
        cfg = cfg_cls.preset(opts.config)
    contract = InputContract.of(cfg)
    folder = Path(cache or Path(opts.output) / "cache")
    with show(f"decoding {len(train_videos) + len(val_videos)} videos into {folder}"):
        tr = ClipDataset(build_cache(train_videos, contract, folder, clip_stride, decode_workers))
        va = ClipDataset(build_cache(val_videos, contract, folder, clip_stride, decode_workers))
    log(f"{len(tr)} training clips, {len(va)} validation clips")
    return run_training(opts, tr, va if len(va) else None, log=log)
