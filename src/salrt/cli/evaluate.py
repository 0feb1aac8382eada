"""``salrt eval``: flags -> :func:`salrt.app.evaluate.evaluate` -> the score table."""

from __future__ import annotations

import argparse
from typing import Any

from salrt.cli import common as C


def add_parser(sub: Any) -> None:
    from salrt.evaluation import DATASETS

    p = sub.add_parser("eval", help="score predictions (or a model) on a saliency dataset")
    p.add_argument(
        "--dataset",
        required=True,
        choices=(*DATASETS, "plain", "msu"),
        help="dataset layout (msu: the AIM 2024 / NTIRE 2026 challenges' layout and bench.py scoring)",
    )
    p.add_argument("--root", help="dataset root folder")
    p.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="fold of the audio-visual datasets")
    p.add_argument(
        "--subset",
        default="public_test",
        choices=("train", "public_test", "private_test"),
        help="msu layout: the list of TrainTestSplit.json to score",
    )
    p.add_argument("--video", help="plain layout: the video file")
    p.add_argument("--maps", help="plain layout: folder of ground-truth maps")
    p.add_argument("--fixations", help="plain layout: folder of fixation maps")
    p.add_argument("--videos", help="comma-separated subset of videos (default: all)")
    p.add_argument("--predictions", help="folder of predicted maps: <video>/<frame>.png")
    C.add_spec_args(
        p,
        (
            "model",
            "checkpoint",
            "random_weights",
            "config",
            "device",
            "steps",
            "backend",
            "export_dir",
            "url",
            "triton_model",
            "kernels",
            "precision",
            "seed",
            "cache_dir",
        ),  # fmt: skip
        model={"default": None, "help": "predict with this model instead of --predictions"},
    )
    p.add_argument("--batch", type=C.POS_INT, default=1, help="clips per model call")
    p.add_argument("--save-predictions", help="keep the model's maps in this folder (default: discarded)")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated: cc,nss,sim,auc_judd,auc_borji,auc_shuffled,kld "
        "(default: cc,nss,sim,auc_judd,kld; msu: cc,sim,nss,auc_judd)",
    )
    p.add_argument("--workers", type=C.NONNEG_INT, default=0, help="processes for scoring (0: all cores)")
    C.ray_args(p, inputs=False)
    p.add_argument("--allow-missing", action="store_true", help="score what exists when predictions are missing")
    p.add_argument(
        "--paper",
        metavar="MODEL[:PRESET]",
        help="with --predictions: show this model's paper figures for the dataset (with --model: its own)",
    )
    C.output_arg(p, "eval_results", "folder for results.json and results.csv")
    C.quiet_arg(p)
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace) -> int:
    from salrt import msu
    from salrt.app import evaluate as app
    from salrt.errors import UsageError
    from salrt.evaluation import DEFAULT_METRICS, write_results

    default = msu.METRICS if args.dataset == "msu" else DEFAULT_METRICS
    names = tuple(n.strip() for n in args.metrics.split(",") if n.strip()) if args.metrics is not None else default
    settings = app.EvalSettings(
        dataset=args.dataset, root=args.root, split=args.split, video=args.video, maps=args.maps,
        fixations=args.fixations, videos=tuple(args.videos.split(",")) if args.videos else (), metrics=names,
        allow_missing=args.allow_missing, workers=args.workers, batch=args.batch, save_predictions=args.save_predictions,
        subset=args.subset,
    )  # fmt: skip
    if args.dataset == "plain" and not (args.video and args.maps and args.fixations):
        raise UsageError("--dataset plain needs --video, --maps and --fixations")
    if args.dataset != "plain" and args.root is None:
        raise UsageError(f"--dataset {args.dataset} needs --root")
    if (args.predictions is None) == (args.model is None):
        raise UsageError("give exactly one of --predictions DIR or --model NAME (with --checkpoint)")
    spec = C.spec_from_args(args) if args.model is not None else None
    try:
        paper = app.paper_reference(args.paper, spec)
    except UsageError as exc:
        raise UsageError(f"--paper: {exc}") from None
    result = app.evaluate(
        settings,
        predictions=args.predictions,
        spec=spec,
        ray=C.ray_options(args) if args.ray is not None else None,
        paper=paper,
        progress=lambda items, desc, total: C.track(args, items, desc, total),
        log=C.notes(args, "salrt eval"),
    )
    js, cs = write_results(result, args.output, C.settings(args))
    render(result, names, args.dataset)
    if paper is not None:
        render_paper(result, names, paper, args.dataset, args.split)
    report = result["report"]
    skipped = len(report["missing_predictions"]) + len(report["videos_without_maps"])
    if skipped:
        C.warn(f"{skipped} annotated frames/videos had no prediction (listed in {js})")
    print(f"wrote {js} and {cs}")
    return 0


def render(result: dict[str, Any], names: tuple[str, ...], dataset: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{dataset} ({result['n_videos']} videos, {result['n_frames']} frames)")
    table.add_column("video")
    for n in names:
        table.add_column(n, justify="right")
    rows = result["videos"] if len(result["videos"]) <= 30 else []
    for e in rows:
        table.add_row(e["video"], *(f"{e[n]:.4f}" for n in names))
    table.add_row("mean over videos", *(f"{result['mean'][n]:.4f}" for n in names), style="bold")
    Console(width=max(100, 12 * (len(names) + 2))).print(table)


def render_paper(
    result: dict[str, Any], names: tuple[str, ...], paper: tuple[str, str], dataset: str, split: int
) -> None:
    """The paper's figures for this dataset under salrt's own mean, with table and line cited."""
    from rich.console import Console
    from rich.table import Table

    model, preset = paper
    rows = result.get("paper") or []
    if not rows:
        print(f"the {model} paper reports no figures for preset {preset!r} on {dataset}")
        return
    shown = [n for n in names if n in ("cc", "nss", "auc_judd", "sim")]
    t = Table(title=f"{model} ({preset}) on {dataset}: salrt vs the paper")
    t.add_column("source")
    for n in shown:
        t.add_column(n, justify="right")
    fold = "" if dataset in ("dhf1k", "plain") else f", split {split}"
    t.add_row(f"salrt (this run{fold})", *(f"{result['mean'][n]:.3f}" for n in shown), style="bold")
    for r in rows:
        t.add_row(
            f"{r['variant']}: {r['source']} ({r['split']})", *("-" if r[n] is None else f"{r[n]:.3f}" for n in shown)
        )
    Console(width=max(100, 12 * (len(shown) + 4))).print(t)
    for r in rows:
        if r["note"]:
            print(f"note ({r['variant']}, {r['source']}): {r['note']}")
