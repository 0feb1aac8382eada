"""The ``salrt`` command line: argument parsing and printing.

Exit codes: 0 success; 1 a run-time failure (an input, weights file or output that fails: one
line on stderr, no traceback); 2 a usage error (bad option or argument); 130 interrupted (Ctrl-C,
SIGTERM; outputs are finalised). Warnings are one line each (``salrt: warning: ...``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import re
import sys
from collections.abc import Sequence
from typing import Any

from salrt import __version__
from salrt.backends import BACKENDS, EXPORT_BACKENDS, PRECISIONS
from salrt.errors import SalrtError, UsageError, one_line, require


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"salrt: error: {message}\n")


def _number(kind: type, low: float, what: str, strict: bool = False):
    """An argparse type: ``kind`` (int or float) >= ``low`` (> with ``strict``)."""

    def parse(text: str) -> Any:
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}") from None
        if v < low or (strict and v == low) or v != v:
            raise argparse.ArgumentTypeError(f"{what} must be {'>' if strict else '>='} {low:g}, got {text}")
        return v

    return parse


_POS_INT = _number(int, 1, "value")
_NONNEG_INT = _number(int, 0, "value")
_NONNEG_FLOAT = _number(float, 0.0, "value")
_POS_FLOAT = _number(float, 0.0, "value", strict=True)


def _bitrate(text: str) -> int:
    """Bits per second: ``2000000``, ``2M``, ``800k`` (as FFmpeg's -b:v)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"invalid bitrate {text!r}: use e.g. 2M, 800k or 2000000")
    v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    if v < 1:
        raise argparse.ArgumentTypeError(f"bitrate must be positive, got {text!r}")
    return int(v)


def _model_names() -> list[str] | None:
    """The registry's model names (None without torch: the name is then checked when loading)."""
    try:
        from salrt.models import MODELS
    except ImportError:
        return None
    return sorted(MODELS)


def _check_device(device: str, torch_needed: bool) -> None:
    """A clear error for a device that does not exist or is not usable here."""
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise UsageError(f"unknown device {device!r}: use cpu, cuda or cuda:N")
    if not torch_needed or device == "cpu":
        return
    torch = require("torch", f"--device {device}")
    if not torch.cuda.is_available():
        build = "this torch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
        raise SalrtError(f"--device {device}: {build} (use --device cpu)")
    idx = int(device.split(":")[1]) if ":" in device else 0
    if idx >= torch.cuda.device_count():
        raise SalrtError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) visible")


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

    require("torch", "salrt info")
    from salrt.cost import cost_report, paper_comparison
    from salrt.models import MODELS

    if args.model.lower() not in MODELS:
        raise UsageError(f"unknown model {args.model!r}; available: {', '.join(sorted(MODELS))}")
    _, cfg_cls = MODELS[args.model.lower()]
    cfg = cfg_cls.preset(args.config)
    changes: dict[str, int] = {}
    if args.video_shape is not None:
        vs = args.video_shape
        if len(vs) != 4 or vs[0] != 3:
            raise UsageError(f"--video-shape must be 3xTxHxW, got {'x'.join(map(str, vs))}")
        try:
            cfg = cfg.with_video_shape(vs[1], vs[2], vs[3])
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"unsupported input shape: {str(exc).splitlines()[0]}") from None
    if args.audio_shape is not None:
        aus = args.audio_shape
        if len(aus) != 4 or aus[0] != 1 or not hasattr(cfg, "audio_slices"):
            raise UsageError(f"--audio-shape must be 1xSxHxW for a log-mel model, got {'x'.join(map(str, aus))}")
        changes.update(audio_slices=aus[1], audio_height=aus[2], audio_width=aus[3])
    try:
        cfg = dataclasses.replace(cfg, **changes)
        with (
            contextlib.nullcontext()
            if args.json
            else args.console.status("counting parameters and FLOPs on meta tensors")
        ):
            r = cost_report(cfg, batch=args.batch, steps=args.steps, model=args.model.lower())
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"unsupported input shape: {str(exc).splitlines()[0]}") from None
    paper = paper_comparison(args.model.lower(), r, args.batch, args.config)
    readings = _reading_costs(cfg, args, r)
    if args.json:
        _print(
            json.dumps(
                {
                    "model": args.model,
                    "config": cfg.to_dict(),
                    "batch": args.batch,
                    "steps": r.steps,
                    "params": r.params,
                    "params_total": sum(r.params.values()),
                    "paper_convention": {"macs": r.paper_macs, "params": r.paper_params},
                    "flops": r.flops,
                    "flops_encoders": r.flops_encoders,
                    "flops_per_clip": r.flops_per_clip,
                    "paper_figures": paper,
                    "readings": readings,
                },
                indent=2,
            )
        )
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
    for row in paper:
        con.print(
            f"paper reports {row['quantity']}: {row['paper']:g} {row['unit']}; salrt {row['salrt']:.2f} "
            f"({row['difference_pct']:+.2f}%)"
        )
    if not paper:
        con.print(f"the {args.model} paper reports no cost figures for preset {args.config!r}")
    for field, options in readings.items():
        tr = Table(title=f"readings of the paper: {field} (this config: {getattr(cfg, field)})")
        tr.add_column("reading")
        tr.add_column("params (M)", justify="right")
        tr.add_column("thop params (M)", justify="right")
        tr.add_column("thop MACs (G)", justify="right")
        tr.add_column("vs paper", justify="left")
        for value, row in options.items():
            short = {"params": "params", "paper_params": "params", "paper_macs": "MACs", "size_mb": "MB"}
            vs = ", ".join(f"{short[p['key']]} {p['difference_pct']:+.2f}%" for p in row["paper_figures"]) or "-"
            tr.add_row(
                value,
                f"{row['params'] / 1e6:.2f}",
                f"{row['paper_params'] / 1e6:.2f}",
                f"{row['paper_macs'] / 1e9:.2f}",
                vs,
            )
        con.print(tr)
    return 0


def _reading_costs(cfg: Any, args: argparse.Namespace, report: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Cost of each reading the config offers of an ambiguous paper (``READINGS``), per field."""
    from salrt.cost import cost_report, paper_comparison

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for field, values in type(cfg).READINGS.items():
        out[field] = {}
        for value in values:
            r = (
                report
                if getattr(cfg, field) == value
                else cost_report(
                    dataclasses.replace(cfg, **{field: value}),
                    batch=args.batch,
                    steps=args.steps,
                    model=args.model.lower(),
                )
            )
            out[field][value] = {
                "params": float(sum(r.params.values())),
                "paper_params": r.paper_params,
                "paper_macs": r.paper_macs / args.batch,
                "paper_figures": paper_comparison(args.model.lower(), r, args.batch, args.config),
            }
    return out


def _eval(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from salrt import evaluation as E

    names = tuple(n.strip() for n in args.metrics.split(",") if n.strip())
    if (args.predictions is None) == (args.model is None):
        raise UsageError("give exactly one of --predictions DIR or --model NAME (with --checkpoint)")
    if args.dataset == "plain":
        if not (args.video and args.maps and args.fixations):
            raise UsageError("--dataset plain needs --video, --maps and --fixations")
        videos = E.plain_dataset(args.video, args.maps, args.fixations)
    else:
        if args.root is None:
            raise UsageError(f"--dataset {args.dataset} needs --root")
        videos = (
            E.dhf1k_dataset(args.root) if args.dataset == "dhf1k" else E.av_dataset(args.root, args.dataset, args.split)
        )
    if args.videos:
        wanted = set(args.videos.split(","))
        unknown = wanted - {v.name for v in videos}
        if unknown:
            raise UsageError(f"videos not in the dataset: {', '.join(sorted(unknown))}")
        videos = [v for v in videos if v.name in wanted]
    pred_dir = args.predictions
    tmp = None
    if args.model is not None:
        model = _pipeline(args) if args.ray is None else None  # the Ray workers load their own
        if args.save_predictions:
            pred_dir = args.save_predictions
        else:
            tmp = tempfile.TemporaryDirectory()
            pred_dir = tmp.name
        if args.ray is not None:
            from salrt.cluster import Item, PngOutputs

            if "://" in pred_dir:
                raise UsageError("--save-predictions: a local folder (the scores are computed here)")
            items = [Item(i, E.video_source(v), v.name) for i, v in enumerate(videos)]
            report = _ray_job(args, items, PngOutputs(), pred_dir, {"steps": args.steps, "batch": args.batch})
            if report.errors:
                raise SalrtError(f"{len(report.errors)} video(s) could not be predicted (listed above)")
        else:
            for v in _track(args, videos, "predicting"):
                E.predict_video(model, v, pred_dir, steps=args.steps, batch=args.batch)
    try:
        items, report = E.match(videos, pred_dir, allow_missing=args.allow_missing)
        workers = args.workers or max(1, (os.cpu_count() or 1))
        result = E.evaluate(items, names, workers=workers, progress=lambda it, n: _track(args, it, "scoring", n))
    finally:
        if tmp is not None:
            tmp.cleanup()
    settings = _settings(args)
    result["report"] = report
    paper_model, paper_preset = _paper_reference(args)
    if paper_model is not None:
        from salrt.models.paper_results import paper_results

        result["paper"] = paper_results(paper_model, paper_preset, args.dataset)
    js, cs = E.write_results(result, args.output, settings)
    table = Table(title=f"{args.dataset} ({result['n_videos']} videos, {result['n_frames']} frames)")
    table.add_column("video")
    for n in names:
        table.add_column(n, justify="right")
    rows = result["videos"] if len(result["videos"]) <= 30 else []
    for e in rows:
        table.add_row(e["video"], *(f"{e[n]:.4f}" for n in names))
    table.add_row("mean over videos", *(f"{result['mean'][n]:.4f}" for n in names), style="bold")
    Console(width=max(100, 12 * (len(names) + 2))).print(table)
    if paper_model is not None:
        _print_paper_rows(result, names, paper_model, paper_preset, args)
    skipped = len(report["missing_predictions"]) + len(report["videos_without_maps"])
    if skipped:
        _warn(f"{skipped} annotated frames/videos had no prediction (listed in {js})")
    print(f"wrote {js} and {cs}")
    return 0


def _paper_reference(args: argparse.Namespace) -> tuple[str | None, str]:
    """The model and preset whose paper figures ``salrt eval`` shows: ``--model``/``--config``,
    or ``--paper MODEL[:PRESET]`` when scoring a folder of predictions."""
    if args.paper:
        model, _, preset = args.paper.partition(":")
        from salrt.models import MODELS

        if model.lower() not in MODELS:
            raise UsageError(f"--paper: unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
        return model.lower(), preset or "paper"
    return (args.model.lower(), args.config) if args.model else (None, "paper")


def _print_paper_rows(
    result: dict[str, Any], names: tuple[str, ...], model: str, preset: str, args: argparse.Namespace
) -> None:
    """The paper's figures for this dataset under salrt's own mean, with table and line cited."""
    from rich.console import Console
    from rich.table import Table

    rows = result.get("paper") or []
    if not rows:
        print(f"the {model} paper reports no figures for preset {preset!r} on {args.dataset}")
        return
    shown = [n for n in names if n in ("cc", "nss", "auc_judd", "sim")]
    t = Table(title=f"{model} ({preset}) on {args.dataset}: salrt vs the paper")
    t.add_column("source")
    for n in shown:
        t.add_column(n, justify="right")
    split = "" if args.dataset in ("dhf1k", "plain") else f", split {args.split}"
    t.add_row(f"salrt (this run{split})", *(f"{result['mean'][n]:.3f}" for n in shown), style="bold")
    for r in rows:
        t.add_row(
            f"{r['variant']}: {r['source']} ({r['split']})",
            *("-" if r[n] is None else f"{r[n]:.3f}" for n in shown),
        )
    Console(width=max(100, 12 * (len(shown) + 4))).print(t)
    for r in rows:
        if r["note"]:
            print(f"note ({r['variant']}, {r['source']}): {r['note']}")


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    require("torch", "salrt train")
    from salrt import evaluation as E
    from salrt.io.contract import InputContract
    from salrt.models import MODELS
    from salrt.train import ClipDataset, DataError, TrainOptions, build_cache, check_videos, train

    _check_device(args.device, torch_needed=True)
    root = Path(args.root)
    if args.dataset == "synthetic" and not (root / "fold_lists").is_dir():
        from salrt.io.synthetic import make_dataset

        n_train, n_val = (int(x) for x in args.synthetic_videos.split(","))
        with args.console.status(f"writing the synthetic sounding-object dataset to {root}"):
            make_dataset(root, n_train=n_train, n_val=n_val, seed=args.seed)
    if args.dataset == "dhf1k":
        train_videos = E.dhf1k_dataset(root)
        val_videos = E.dhf1k_dataset(args.val_root) if args.val_root else []
    else:
        train_videos = E.av_dataset(root, args.dataset, args.split, "train")
        val_videos = [] if args.no_val else E.av_dataset(root, args.dataset, args.split, "test")
    problems = check_videos(train_videos + val_videos)
    if problems:
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataError(f"training data: {problems[0]}{more}")
    _, cfg_cls = MODELS[args.model]
    from salrt import checkpoint as ckpt

    if args.init_from and ckpt.is_salrt_checkpoint(args.init_from):  # its config wins, as in load_model
        cfg = cfg_cls.from_dict(ckpt.read_salrt(args.init_from)[0]["config"])
    else:
        cfg = cfg_cls.preset(args.config)
    contract = InputContract.of(cfg)
    cache = Path(args.cache or Path(args.output) / "cache")
    with args.console.status(f"decoding {len(train_videos) + len(val_videos)} videos into {cache}"):
        tr = ClipDataset(build_cache(train_videos, contract, cache, args.clip_stride, args.decode_workers))
        va = ClipDataset(build_cache(val_videos, contract, cache, args.clip_stride, args.decode_workers))
    log = (lambda s: None) if args.quiet else (lambda s: _info_line(f"salrt train: {s}"))
    log(f"{len(tr)} training clips, {len(va)} validation clips")
    opts = TrainOptions(
        model=args.model,
        config=args.config,
        output=args.output,
        epochs=args.epochs,
        batch=args.batch,
        lr=args.lr,
        accumulate=args.accumulate,
        grad_clip=args.grad_clip,
        precision=args.precision,
        device=args.device,
        workers=args.workers,
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
        log_every=args.log_every,
        resume=args.resume,
        init_from=args.init_from,
        backbones=_backbones(args),
        val_steps=args.val_steps,
        max_steps=args.max_steps,
        quiet=args.quiet,
    )
    res = train(opts, tr, va if len(va) else None, log=log)
    best = f", best validation CC {res['best_cc']:.4f}" if res["best_cc"] is not None else ""
    _print(f"trained {res['step']} steps in {res['epochs']} epochs{best}: {args.output}/best, {args.output}/last")
    return 0


def _export(args: argparse.Namespace) -> int:
    import importlib.util
    import warnings

    if args.format == "triton" and args.export_dir:  # a model repository from an existing export
        return _triton_repository(args, args.export_dir)

    needed = ("torch", "onnx", "onnxruntime")  # onnxsim: used when installed (a warning otherwise)
    missing = [m for m in needed if importlib.util.find_spec(m) is None]
    if missing:
        raise SalrtError(f"salrt export needs {', '.join(missing)}: pip install 'salrt[export]'")
    from salrt.export.onnx import BatchSpec, ExportError, check_opset, export_onnx

    if args.batch is not None and args.dynamic_batch is not None:
        raise UsageError("give --batch N or --dynamic-batch MIN:OPT:MAX, not both")
    try:
        batch = BatchSpec.parse(args.dynamic_batch or str(args.batch or 1))
        check_opset(args.opset)
    except ExportError as exc:  # a bad option value
        raise UsageError(str(exc)) from None
    onnx_precision = args.precision
    if args.format == "tensorrt":  # the graphs' precision follows what this TensorRT builds from
        from salrt.export.tensorrt import engine_plan

        onnx_precision = engine_plan(require("tensorrt", "--format tensorrt"), args.precision)["graph_precision"]
    elif args.precision == "bf16":
        raise UsageError("bf16 is a TensorRT build precision; ONNX export supports fp32 and fp16")
    model = _load_for_run(args)
    log = (lambda s: None) if args.quiet else (lambda s: _info_line(f"salrt export: {s}"))
    import torch

    with warnings.catch_warnings():  # the tracer's warnings about constant shapes are expected here
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        man = export_onnx(
            model,
            args.output,
            precision=onnx_precision,
            batch=batch,
            opset=args.opset,
            steps=args.steps,
            log=log,
            simplify=False if args.no_simplify else None,
        )
    for g in man["graphs"].values():
        worst = max(e["max_abs"] for c in g["validation"] for e in c["outputs"].values())
        after = g.get("after_simplify") or g["before_simplify"]
        _print(
            f"{g['file']}: {g['before_simplify']['nodes']} -> {after['nodes']} nodes, "
            f"{after['bytes'] / 1e6:.1f} MB, max abs error vs PyTorch {worst:.1e}"
        )
    if args.format == "triton":
        return _triton_repository(args, args.output, onnx_done=True)
    if args.format == "tensorrt":
        from salrt.export.tensorrt import build_engines

        info = build_engines(args.output, precision=args.precision, workspace_gib=args.workspace_gib, log=log)
        for e in info["engines"].values():
            _print(f"{e['file']}: {'from cache' if e['cached'] else 'built in {:.1f} s'.format(e['seconds'])}")
    _print(f"wrote {args.output}/manifest.json")
    return 0


def _triton_repository(args: argparse.Namespace, export_dir: str, onnx_done: bool = False) -> int:
    """``salrt export --format triton``: the repository from ``export_dir`` (the ONNX graphs just
    exported into the output folder are moved into the repository's model folders)."""
    import shutil
    import tempfile
    from pathlib import Path

    from salrt.export.triton import write_repository

    src = Path(export_dir)
    staged = None
    if onnx_done:  # the export went to the output folder itself: stage it beside, then lay out
        staged = Path(tempfile.mkdtemp(prefix=".salrt-export-", dir=src.parent))
        for f in list(src.glob("*.onnx")) + [src / "manifest.json"]:
            shutil.move(str(f), staged / f.name)
        src = staged
    try:
        index = write_repository(
            src,
            args.output,
            version=args.version,
            instances=args.instances,
            kind=args.instance_kind,
            queue_delay_us=args.queue_delay_us,
        )
    finally:
        if staged is not None:
            shutil.rmtree(staged, ignore_errors=True)
    for name, m in index["models"].items():
        _print(f"{args.output}/{name}: {m['platform']} ({m['graph']}), version {index['version']}")
    _print(f"wrote {args.output} (servable model: {index['servable']})")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from salrt.serve import serve

    log = (lambda s: None) if args.quiet else _info_line
    serve(
        args.repository,
        args.model,
        host=args.host,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log=log,
    )
    return 0


def _pipeline(args: argparse.Namespace) -> Any:
    """The run's :class:`salrt.pipeline.Pipeline` from the model options."""
    from salrt import pipeline

    _resolve_backend(args)
    exported = args.backend in EXPORT_BACKENDS
    _check_device(args.device, torch_needed=not exported)
    if exported:
        ignored = [o for o in ("checkpoint", "backbone") if getattr(args, o, None)]
        if ignored:
            _warn(f"--{ignored[0]} is ignored with --backend {args.backend}: the weights are those of the export")
    return pipeline.load(
        args.model,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        config=args.config,
        backend=args.backend,
        export_dir=args.export_dir,
        device=args.device,
        kernels=args.kernels,
        captions=getattr(args, "captions", None),
        bpe=getattr(args, "bpe", None),
        backbones=_backbones(args),
        url=getattr(args, "url", None),
        triton_model=getattr(args, "triton_model", None),
        timeout_s=getattr(args, "timeout", 10.0),
        retries=getattr(args, "retries", 3),
        precision=getattr(args, "precision", None),
    )


def _backbones(args: argparse.Namespace) -> dict[str, str]:
    out = {}
    for item in getattr(args, "backbone", None) or []:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise UsageError(f"--backbone takes NAME=FILE (e.g. s3d=S3D_kinetics400.pt), got {item!r}")
        out[name] = path
    return out


def _load_for_run(args: argparse.Namespace) -> Any:
    """The torch model alone (export, eval)."""
    from salrt.pipeline import load_weights

    _check_device(args.device, torch_needed=True)
    return load_weights(
        args.model,
        checkpoint=args.checkpoint,
        random_weights=args.random_weights,
        config=args.config,
        device=args.device,
        backbones=_backbones(args),
    )


def _say_passes(backend: Any, steps: int | None) -> None:
    """Make visible when ``--steps N`` runs another number of denoiser passes under the model's plan."""
    passes = backend.passes(steps) if steps is not None and hasattr(backend, "passes") else None
    if passes is not None and passes != steps:
        _warn(
            f"--steps {steps} runs {passes} denoiser passes: the model's timestep plan (kept for its checkpoints) "
            f"visits {passes} timesteps when {steps} does not divide its 1000 training steps"
        )


def _sources(args: argparse.Namespace) -> list[Any]:
    """The inputs as :class:`salrt.runtime.Source` (image sequences, a separate audio file, fps)."""
    from pathlib import Path

    from salrt.runtime import Source

    if args.audio and len(args.inputs) != 1:
        raise UsageError("--audio FILE goes with exactly one input")
    if args.inputs.count("-") > 1:
        raise UsageError("stdin ('-') can be read by one input only")
    out = []
    for text in args.inputs:
        src = Source.of(text)
        if args.audio or args.fps or args.input_format:
            src = dataclasses.replace(src, audio=args.audio, fps=args.fps, format=args.input_format or src.format)
        if src.is_file and not Path(src.path).exists():
            raise SalrtError(f"{src.path}: no such file")
        if src.is_file and Path(src.path).is_dir():
            raise SalrtError(f"{src.path}: is a directory (for an image sequence give a pattern: dir/img_%05d.png)")
        if src.audio and not Path(src.audio).is_file():
            raise SalrtError(f"{src.audio}: no such file")
        out.append(src)
    return out


def _gather_inputs(args: argparse.Namespace, what: str = "INPUT") -> None:
    """``args.inputs`` from the positional inputs and ``--input-list``; ``--ray`` takes an address
    only when the word after it looks like one (``salrt run --ray a.mp4 b.mp4`` reads a.mp4 as an
    input), so ``args.ray`` ends as None (no Ray), ``"local"`` or the address."""
    from salrt.cluster import read_input_list

    ray = getattr(args, "ray", None)
    if ray not in (None, "local") and not _looks_like_address(ray):
        args.inputs = [ray, *args.inputs]
        args.ray = "local"
    if getattr(args, "input_list", None):
        args.inputs = [*args.inputs, *read_input_list(args.input_list)]
    if not args.inputs:
        raise UsageError(f"give at least one {what} (or --input-list FILE)")


def _looks_like_address(text: str) -> bool:
    import os.path

    return (
        text == "auto"
        or text.startswith("ray://")
        or (re.fullmatch(r"[\w.\-]+:\d+", text) is not None and not os.path.exists(text))
    )


def _resolve_backend(args: argparse.Namespace) -> None:
    """``--backend auto`` made concrete (:func:`salrt.backends.pick_backend`)."""
    if args.backend == "auto":
        from salrt.backends import pick_backend

        args.backend = pick_backend(args.device, args.export_dir, getattr(args, "url", None))


def _ray_job(args: argparse.Namespace, items: list[Any], outputs: Any, out: str, options: dict[str, Any]) -> Any:
    """Run ``items`` as a Ray job with the CLI's model options; its report."""
    from salrt.cluster import run_job

    _resolve_backend(args)
    pipeline_kwargs = {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "random_weights": args.random_weights,
        "config": args.config,
        "backend": args.backend,
        "export_dir": args.export_dir,
        "device": args.device,
        "kernels": args.kernels,
        "captions": getattr(args, "captions", None),
        "bpe": getattr(args, "bpe", None),
        "backbones": _backbones(args),
        "url": getattr(args, "url", None),
        "triton_model": getattr(args, "triton_model", None),
        "timeout_s": getattr(args, "timeout", 10.0),
        "retries": getattr(args, "retries", 3),
        "precision": getattr(args, "precision", None),
    }
    if args.checkpoint is None and not args.random_weights and args.backend not in EXPORT_BACKENDS:
        raise UsageError(
            "no --checkpoint given: maps from untrained weights are meaningless (pass --random-weights for a smoke run)"
        )
    log = (lambda s: None) if args.quiet else (lambda s: _info_line(f"ray: {s}"))
    from salrt.cluster import connect
    from salrt.runtime import expected_frames

    started = connect(None if args.ray == "local" else args.ray, timeout_s=getattr(args, "timeout", 10.0))
    log(f"cluster ready in {started:.1f} s")
    total = expected_frames([it.source for it in items])
    with _new_bar(args, "frames", total, "frame") as bar:
        report = run_job(
            items,
            outputs,
            out,
            pipeline_kwargs=pipeline_kwargs,
            options=options,
            address=None if args.ray == "local" else args.ray,
            workers=args.workers_ray,
            worker_cpus=args.worker_cpus,
            worker_gpus=args.worker_gpus,
            resume=args.resume,
            timeout_s=getattr(args, "timeout", 10.0),
            progress=bar.advance,
            log=log,
        )
    done = sum(r["status"] == "done" for r in report.inputs)
    skipped = sum(r["status"] == "skipped" for r in report.inputs)
    _print(
        f"{report.frames} frames from {len(items)} input(s) in {report.wall_s:.1f} s on {report.workers} Ray "
        f"worker(s): {done} done, {skipped} already complete, {len(report.errors)} failed"
        + (f", {report.retried} retried after a worker died" if report.retried else "")
        + f"; outputs in {out}"
    )
    for r in report.inputs:
        for w in r.get("warnings", []):
            _warn(w)
    for e in report.errors:
        _error(e)
    return report


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salrt.runtime import RunOptions, Runtime, default_sinks, expected_frames
    from salrt.sinks import SINKS

    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    bad = [o for o in outputs if o not in SINKS]
    if bad or not outputs:
        raise UsageError(f"unknown output {bad[0] if bad else args.outputs!r}; choose from {', '.join(SINKS)}")
    _gather_inputs(args)
    sources = _sources(args)
    if args.ray is not None:
        from salrt.cluster import Item, RunOutputs
        from salrt.runtime import output_stems

        settings = _settings(args)
        items = [Item(i, src, stem) for i, (src, stem) in enumerate(zip(sources, output_stems(sources)))]
        options = {
            "steps": _steps(args.steps), "stride": args.stride, "batch": args.batch, "retries": args.retries,
            "seed": args.seed, "max_wait_ms": args.max_wait_ms, "timeout_s": args.timeout,
        }  # fmt: skip
        report = _ray_job(args, items, RunOutputs(tuple(outputs), settings, args.source_size), args.output, options)
        return 1 if report.errors else 0
    if "://" in args.output:
        raise UsageError(f"-o {args.output}: output URLs are for Ray jobs (--ray); give a local folder")
    pipe = _pipeline(args)
    backend, contract, captions = pipe.backend, pipe.contract, pipe.captions
    _say_passes(backend, _steps(args.steps))
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    opts = RunOptions(
        steps=_steps(args.steps),
        stride=args.stride,
        batch=args.batch,
        live=args.live,
        contract=contract,
        captions=captions,
        retries=args.retries,
        seed=args.seed,
        max_wait_ms=args.max_wait_ms,
        timeout_s=args.timeout,
    )
    settings = _settings(args)
    settings["inputs"] = [s.path for s in sources]
    total = None if args.live else expected_frames(sources)
    with _new_bar(args, "frames", total, "frame") as bar:
        rt = Runtime(
            backend,
            sources,
            opts,
            sinks_for=default_sinks(out, outputs, settings, args.source_size, sources),
            keep_frames="overlay" in outputs,
            progress=bar.advance,
            stats_path=out / "run_stats.json",
        )
        stats = rt.run()
    return _report(stats, out, len(sources))


def _report(stats: Any, out: Any, n_inputs: int) -> int:
    """Print the summary line, the warnings and the errors of a run (a RunStats); its exit code."""
    lat = stats.latency_ms
    lat_txt = (
        f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms"
        if lat["p50"] is not None
        else "no map was produced"
    )
    for w in stats.warnings:
        _warn(w)
    frames, discarded = sum(stats.frames_out), sum(stats.discarded_on_stop)
    _print(
        f"{frames} frames from {n_inputs} input(s) in {stats.wall_s:.1f} s ({stats.fps_out:.2f} frames/s, "
        f"{stats.clips_per_s:.2f} clips/s); {lat_txt}; dropped {sum(stats.dropped_clips)}; outputs in {out}"
    )
    if stats.interrupted:
        _warn(
            f"interrupted: outputs hold the {frames} frames written"
            + (f"; {discarded} clip(s) not yet sampled were discarded" if discarded else "")
        )
    for e in stats.errors:
        _error(e)
    if stats.errors:
        return 1
    return 130 if stats.interrupted else 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from salrt import metrics as M
    from salrt.demo import _decoded, bundled_checkpoint, centre_bias, comparison_video, map_ccs
    from salrt.io import make_clip

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    clip = make_clip(out / "demo_input.mp4", seed=args.seed, seconds=args.seconds)
    _print(f"wrote a synthetic clip with a sounding object: {clip.path} ({clip.n_frames} frames)")
    checkpoint = args.checkpoint
    if checkpoint is None and not args.random_weights:
        checkpoint = bundled_checkpoint()
        if checkpoint is not None and args.config != "tiny":
            raise UsageError("the bundled demo model is a tiny DiffSal: use --config tiny, or pass --checkpoint")
    weights = (
        "random weights"
        if checkpoint is None
        else ("the bundled demo model" if checkpoint == bundled_checkpoint() else str(checkpoint))
    )
    if checkpoint is None:
        _print("random weights: the maps show the pipeline, not saliency")
    else:
        _print(f"weights: {weights} (trained on the synthetic sounding-object task, not on human attention)")
    run_argv = [
        "run",
        str(clip.path),
        "-o",
        str(out),
        "--config",
        args.config,
        "--steps",
        str(args.steps),
        "--stride",
        str(args.stride),
        "--batch",
        str(args.batch),
        "--device",
        args.device,
        "--seed",
        str(args.seed),
        "--outputs",
        "overlay,png,npz",
        "--source-size",
        "--retries",
        "0",
    ]
    run_argv += ["--checkpoint", str(checkpoint)] if checkpoint else ["--random-weights"]
    run_argv += ["--quiet"] if args.quiet else []
    run_args = build_parser().parse_args(run_argv)
    run_args.console = args.console
    rc = _run(run_args)
    if rc:
        return rc
    maps = np.load(out / "demo_input_maps.npz")["maps"].astype(np.float64) / 255.0
    cc = float(np.nanmean([M.cc(m, g) for m, g in zip(maps, clip.saliency)]))
    prior = centre_bias(clip.saliency.shape[1:])
    cc_prior = float(np.nanmean([M.cc(prior, g) for g in clip.saliency]))
    side = comparison_video(
        clip.path,
        maps,
        clip.saliency,
        out / "demo_comparison.mp4",
        f"{run_args.model} ({args.config} config, {weights}): input | predicted | ground truth",
    )
    _print(
        f"mean CC against the synthetic ground truth: {cc:.3f} (1 = the ground truth itself, 0 = no better than "
        f"chance; a centre-bias map that ignores the content scores {cc_prior:.3f} here)"
    )
    # the same clip with another clip's soundtrack: a model that listens points at the wrong disc
    from salrt.pipeline import load_weights

    with args.console.status("running the clip again with another clip's soundtrack"):
        model = load_weights(
            run_args.model,
            checkpoint=str(checkpoint) if checkpoint else None,
            random_weights=checkpoint is None,
            config=args.config,
            device=args.device,
            seed=args.seed,
        )
        other = make_clip(out / "demo_other_audio.mp4", seed=args.seed + 1, seconds=args.seconds)
        stride = max(args.stride, 4)
        own = _decoded(model, clip.path, stride)
        ccs_own = map_ccs(model, own, own, clip.saliency, args.steps, args.seed)
        ccs_swapped = map_ccs(model, own, _decoded(model, other.path, stride), clip.saliency, args.steps, args.seed)
        other.path.unlink()
    _print(
        f"with another clip's soundtrack the CC falls from {np.nanmean(ccs_own):.3f} to {np.nanmean(ccs_swapped):.3f} "
        f"(every {stride}th frame): the model {'uses' if np.nanmean(ccs_own) - np.nanmean(ccs_swapped) > 0.05 else 'ignores'} "
        "the sound"
    )
    _print(f"side by side (input | predicted | ground truth): {side}; overlay: {out / 'demo_input_overlay.mp4'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    torch = require("torch", "salrt bench")
    from salrt import bench
    from salrt.models import MODELS

    def ints(text: str, what: str) -> list[int]:
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise UsageError(f"--{what} must be comma-separated integers, got {text!r}") from None
        if not vals or any(v < 1 for v in vals):
            raise UsageError(f"--{what} values must be >= 1, got {text!r}")
        return vals

    models = sorted(MODELS) if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise UsageError(f"unknown model {m!r}; available: {', '.join(sorted(MODELS))}")
    backends = [b.strip() for b in args.backend.split(",") if b.strip()]
    for b in backends:
        if b not in BACKENDS:
            raise UsageError(f"unknown backend {b!r}: {', '.join(BACKENDS)}")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for p in precisions:
        if p not in bench.DTYPES:
            raise UsageError(f"unknown precision {p!r}: fp32, fp16, bf16")
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    for k in kernels:
        if k not in ("torch", "triton"):
            raise UsageError(f"unknown kernels {k!r}: torch, triton")
    graph_opts = {"on": True, "off": False}
    graphs = [g.strip() for g in args.cuda_graphs.split(",") if g.strip()]
    for g in graphs:
        if g not in graph_opts:
            raise UsageError(f"unknown --cuda-graphs value {g!r}: on, off")
    _check_device(args.device, torch_needed=True)
    if args.video is not None and not os.path.exists(args.video):
        raise SalrtError(f"{args.video}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda s: None) if args.quiet else (lambda s: _info_line(f"salrt bench: {s}"))
    results = {}
    for m in models:
        out = args.output if len(models) == 1 else f"{args.output}/{m}"
        res = bench.run(
            m,
            args.config,
            backends,
            precisions,
            ints(args.batch, "batch"),
            ints(args.steps, "steps"),
            kernels,
            args.device,
            args.reps,
            args.warmup,
            args.stride,
            out,
            args.checkpoint,
            args.video,
            log,
            cuda_graphs=[graph_opts[g] for g in graphs],
        )
        results[m] = res
        for st in sorted({(r["steps"], r["passes"]) for r in res["rows"] if r.get("passes") not in (None, r["steps"])}):
            _warn(f"{m}: --steps {st[0]} runs {st[1]} denoiser passes (the model's timestep plan)")
        _print(bench.markdown(res))
    if len(models) > 1:
        md, rows = bench.cross_model(results)
        from pathlib import Path

        Path(args.output, "models.md").write_text(md)
        Path(args.output, "models.json").write_text(
            json.dumps(
                {"machine": res["machine"], "device": args.device, "config": args.config, "rows": rows}, indent=1
            )
        )
        _print(md)
    _print(f"wrote bench.json, bench.md and plots to {args.output}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from salrt.encode import CODECS, RoiEncoderSink, encode_with_maps
    from salrt.roi import RoiConfig

    _gather_inputs(args)
    if args.ray is None and len(args.inputs) != 1:
        raise UsageError("salrt encode takes one input (several with --ray, into the -o folder)")
    args.input = args.inputs[0]
    for path in args.inputs:
        if not Path(path).is_file():
            raise SalrtError(f"{path}: no such file")
    if args.codec not in CODECS:
        raise UsageError(f"unsupported codec {args.codec!r}: {', '.join(CODECS)}")
    if args.crf is not None and args.bitrate is not None:
        raise UsageError("give --crf or --bitrate, not both")
    if args.crf is None and args.bitrate is None:
        args.crf = 28.0
    if args.no_roi and args.maps:
        raise UsageError("--no-roi encodes without maps: drop --maps")
    roi = (
        None
        if args.no_roi
        else RoiConfig(
            strength=args.roi_strength,
            max_offset=args.max_offset,
            floor=args.floor,
            smoothing=args.smoothing,
            dilation=args.dilation,
        )
    )
    kw = {"codec": args.codec, "crf": args.crf, "bitrate": args.bitrate, "roi": roi}
    if args.ray is not None:
        if args.maps or args.no_roi:
            raise UsageError("--ray runs the model on every input: drop --maps/--no-roi")
        from salrt.cluster import EncodeOutputs, Item
        from salrt.runtime import Source, output_stems

        sources = [Source.of(p) for p in args.inputs]
        items = [Item(i, src, stem) for i, (src, stem) in enumerate(zip(sources, output_stems(sources)))]
        options = {"steps": _steps(args.steps), "stride": args.stride, "batch": args.batch}
        report = _ray_job(args, items, EncodeOutputs(kw), args.output, options)
        return 1 if report.errors else 0
    if args.maps or args.no_roi:  # given maps, or a plain encode: no model involved
        maps = None
        if args.maps:
            try:
                data = np.load(args.maps)
                maps = data["maps"] if hasattr(data, "files") else data
            except (OSError, ValueError, KeyError) as exc:
                raise SalrtError(f"{args.maps}: cannot read maps ({exc})") from None
            if maps.ndim != 3:
                raise SalrtError(f"{args.maps}: maps must be N x H x W, got shape {maps.shape}")
            maps = maps.astype(np.float32) / (255.0 if maps.dtype == np.uint8 else 1.0)
        encode_with_maps(args.input, args.output, maps, **kw)
    else:
        from salrt.io import probe
        from salrt.runtime import RunOptions, Runtime, expected_frames

        pipe = _pipeline(args)
        backend, contract = pipe.backend, pipe.contract
        sink = RoiEncoderSink(Path(args.output), probe(args.input).fps, args.input, **kw)
        with _new_bar(args, "encoding", expected_frames([args.input]), "frame") as bar:
            rt = Runtime(
                backend,
                [args.input],
                RunOptions(steps=_steps(args.steps), stride=args.stride, batch=args.batch, contract=contract),
                sinks_for=lambda i, info: [sink],
                keep_frames=True,
                progress=bar.advance,
            )
            stats = rt.run()
        for w in stats["warnings"]:
            _warn(w)
        if stats["errors"]:
            raise SalrtError(stats["errors"][0])
        if stats["interrupted"]:
            _warn(f"interrupted: {args.output} holds the frames encoded so far")
            return 130
    _print(
        f"wrote {args.output} ({Path(args.output).stat().st_size} bytes, {args.codec}, "
        f"{'no ROI' if roi is None else f'ROI strength {args.roi_strength}'})"
    )
    return 0


# -- output helpers: stdout for results, the shared stderr console for progress and messages ---
def _print(text: str) -> None:
    print(text, flush=True)


def _info_line(text: str) -> None:
    from salrt.console import log

    log.info("%s", text)


def _warn(text: str) -> None:
    from salrt.console import log

    log.warning("%s", text)


def _error(text: str) -> None:
    from salrt.console import log

    log.error("%s", text)


def _new_bar(args: argparse.Namespace, desc: str, total: int | None, unit: str):
    from salrt.console import Bar

    return Bar(desc, total, unit, args.quiet, args.console)


def _track(args: argparse.Namespace, items: Any, desc: str, total: int | None = None):
    from salrt.console import track

    return track(items, len(items) if total is None else total, desc, args.quiet, args.console)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The run's options, for the JSON files it writes."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "console")}


def _steps(text: str | int) -> int | None:
    """``--steps N`` or ``--steps auto`` (the model's own choice: MUBiC's adaptive count)."""
    if str(text) == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise UsageError(f"--steps must be a positive integer or 'auto', got {text!r}") from None
    if n < 1:
        raise UsageError(f"--steps must be >= 1, got {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    models = _model_names()
    model_help = f"model: {', '.join(models)}" if models else "model name (diffsal, ...)"
    p = _Parser(
        prog="salrt",
        description="Deployment engine for diffusion-based audio-visual saliency models. "
        "Exit codes: 0 ok, 1 run-time failure, 2 usage error, 130 interrupted.",
    )
    p.add_argument("--version", action="version", version=f"salrt {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    pi = sub.add_parser("info", help="parameters and cost (papers' convention and full FLOPs) of a model")
    pi.add_argument("model", choices=models, metavar="MODEL", help=model_help)
    _config_arg(pi)
    pi.add_argument("--video-shape", type=_shape, help="CxTxHxW of one clip (default: the config's)")
    pi.add_argument("--audio-shape", type=_shape, help="1xSxHxW of its log-mel slices (default: the config's)")
    pi.add_argument("--steps", type=_POS_INT, default=4, help="denoising steps for the per-clip total")
    pi.add_argument("--batch", type=_POS_INT, default=1, help="batch size")
    pi.add_argument("--json", action="store_true", help="print JSON instead of tables")
    pi.set_defaults(func=_info)

    pe = sub.add_parser("eval", help="score predictions (or a model) on a saliency dataset")
    pe.add_argument(
        "--dataset",
        required=True,
        choices=("avad", "diem", "coutrot1", "coutrot2", "etmd", "summe", "synthetic", "dhf1k", "plain"),
        help="dataset layout",
    )
    pe.add_argument("--root", help="dataset root folder")
    pe.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="fold of the audio-visual datasets")
    pe.add_argument("--video", help="plain layout: the video file")
    pe.add_argument("--maps", help="plain layout: folder of ground-truth maps")
    pe.add_argument("--fixations", help="plain layout: folder of fixation maps")
    pe.add_argument("--videos", help="comma-separated subset of videos (default: all)")
    pe.add_argument("--predictions", help="folder of predicted maps: <video>/<frame>.png")
    pe.add_argument("--model", choices=models, metavar="MODEL", help=f"predict with this {model_help} instead")
    pe.add_argument("--checkpoint", help="model weights")
    pe.add_argument("--random-weights", action="store_true", help="allow a model without checkpoint (smoke runs)")
    _config_arg(pe)
    pe.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    pe.add_argument("--steps", type=_POS_INT, default=4, help="DDIM steps of diffusion models")
    pe.add_argument("--batch", type=_POS_INT, default=1, help="clips per model call")
    pe.add_argument("--save-predictions", help="keep the model's maps in this folder (default: discarded)")
    pe.add_argument(
        "--metrics",
        default="cc,nss,sim,auc_judd,kld",
        help="comma-separated: cc,nss,sim,auc_judd,auc_borji,auc_shuffled,kld",
    )
    pe.add_argument("--workers", type=_NONNEG_INT, default=0, help="processes for scoring (0: all cores)")
    pe.add_argument("--backend", default="auto", choices=BACKENDS, help="execution backend of --model (see salrt run)")
    pe.add_argument("--export-dir", help="export directory for the onnxruntime/tensorrt backends")
    pe.add_argument("--url", help="--backend triton: the server")
    pe.add_argument("--triton-model", help="--backend triton: the served model's name")
    pe.add_argument("--kernels", choices=("triton", "torch"), help="attention/DDIM kernels (default: triton on cuda)")
    _precision_arg(pe)
    _ray_args(pe, inputs=False)
    pe.add_argument("--allow-missing", action="store_true", help="score what exists when predictions are missing")
    pe.add_argument(
        "--paper",
        metavar="MODEL[:PRESET]",
        help="with --predictions: show this model's paper figures for the dataset (with --model: its own)",
    )
    _output_arg(pe, "eval_results", "folder for results.json and results.csv")
    _quiet_arg(pe)
    pe.set_defaults(func=_eval)

    pt = sub.add_parser("train", help="train or fine-tune a model with its paper's objective")
    pt.add_argument("--model", default="diffsal", choices=models, metavar="MODEL", help=model_help)
    _config_arg(pt)
    pt.add_argument(
        "--dataset",
        required=True,
        choices=("avad", "diem", "coutrot1", "coutrot2", "etmd", "summe", "synthetic", "dhf1k"),
        help="dataset layout (as salrt eval); synthetic: the sounding-object task, written to --root if absent",
    )
    pt.add_argument("--root", required=True, help="dataset root folder")
    pt.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="fold of the audio-visual datasets")
    pt.add_argument("--val-root", help="DHF1K: the validation videos' root")
    pt.add_argument("--no-val", action="store_true", help="no validation (best = last)")
    pt.add_argument("--synthetic-videos", default="64,16", help="synthetic: TRAIN,VAL videos to write")
    _output_arg(pt, "train_out", "folder for checkpoints, logs and curves")
    pt.add_argument("--epochs", type=_POS_INT, help="epochs (default: the paper's)")
    pt.add_argument("--batch", type=_POS_INT, help="clips per step (default: the paper's)")
    pt.add_argument("--lr", type=_POS_FLOAT, help="learning rate (default: the paper's)")
    pt.add_argument("--accumulate", type=_POS_INT, default=1, help="batches per optimiser step")
    pt.add_argument("--grad-clip", type=_POS_FLOAT, help="gradient-norm clip (default: the paper's)")
    pt.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast on CUDA")
    pt.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (torchrun: one GPU per process)")
    pt.add_argument("--workers", type=_NONNEG_INT, default=0, help="data-loader worker processes")
    pt.add_argument("--decode-workers", type=_NONNEG_INT, default=2, help="processes decoding videos into the cache")
    pt.add_argument("--clip-stride", type=_POS_INT, default=4, help="a training clip for every N-th annotated frame")
    pt.add_argument("--cache", help="decoded-clip cache folder (default: OUTPUT/cache; resumable)")
    pt.add_argument("--seed", type=_NONNEG_INT, default=0, help="seed of weights, data order and noise")
    pt.add_argument("--checkpoint-every", type=_POS_INT, default=200, help="optimiser steps between train_state.pt")
    pt.add_argument("--log-every", type=_POS_INT, default=10, help="optimiser steps between log rows")
    pt.add_argument("--resume", action="store_true", help="continue from OUTPUT/train_state.pt exactly")
    pt.add_argument("--init-from", help="start from these weights (a salrt directory or the authors' DiffSal .pth)")
    pt.add_argument(
        "--backbone",
        action="append",
        metavar="NAME=FILE",
        help="pretrained backbone (mvit, vggish, s3d, soundnet, clip) to start from; repeatable",
    )
    pt.add_argument("--val-steps", type=_POS_INT, default=4, help="DDIM steps when validating diffusion models")
    pt.add_argument("--max-steps", type=_POS_INT, help="stop after this many optimiser steps (checkpointed)")
    _quiet_arg(pt)
    pt.set_defaults(func=_train)

    px = sub.add_parser("export", help="export ONNX graphs (validated in onnxruntime) or TensorRT engines")
    px.add_argument("--model", default="diffsal", choices=models, metavar="MODEL", help=model_help)
    px.add_argument("--checkpoint", help="model weights")
    px.add_argument("--random-weights", action="store_true", help="export untrained weights (benchmarks, tests)")
    _config_arg(px)
    px.add_argument(
        "--format",
        choices=("onnx", "tensorrt", "triton"),
        default="onnx",
        help="what to write (triton: a Triton Inference Server model repository)",
    )
    _output_arg(px, None, "output directory")
    px.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32", help="precision of the graphs")
    px.add_argument("--batch", type=_POS_INT, help="fixed batch size (default 1)")
    px.add_argument("--dynamic-batch", help="batch range MIN:OPT:MAX (instead of --batch)")
    px.add_argument("--opset", type=_POS_INT, default=17, help="ONNX opset")
    px.add_argument("--steps", type=_POS_INT, default=4, help="DDIM steps unrolled in sampler.onnx")
    px.add_argument("--no-simplify", action="store_true", help="skip onnxsim (the graphs are still validated)")
    px.add_argument("--workspace-gib", type=_POS_FLOAT, default=4.0, help="TensorRT builder workspace")
    px.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    px.add_argument("--export-dir", help="--format triton: lay out this existing export (with its engines) instead")
    px.add_argument("--version", type=_POS_INT, help="--format triton: version folder (default: next)")
    px.add_argument("--instances", type=_POS_INT, default=1, help="--format triton: model instances per device")
    px.add_argument(
        "--instance-kind", choices=("auto", "gpu", "cpu"), default="auto", help="--format triton: where ONNX models run"
    )
    px.add_argument(
        "--queue-delay-us", type=_NONNEG_INT, default=2000, help="--format triton: dynamic batching queue delay"
    )
    _quiet_arg(px)
    px.set_defaults(func=_export)

    ps = sub.add_parser("serve", help="serve a Triton model repository (salrt export --format triton) with PyTriton")
    ps.add_argument("repository", help="the model repository folder")
    ps.add_argument("--model", help="the servable model (default: the repository's only one)")
    ps.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: every interface)")
    ps.add_argument("--http-port", type=_POS_INT, default=8000, help="HTTP port")
    ps.add_argument("--grpc-port", type=_POS_INT, default=8001, help="gRPC port")
    ps.add_argument("--metrics-port", type=_POS_INT, default=8002, help="metrics port")
    _quiet_arg(ps)
    ps.set_defaults(func=_serve)

    pr = sub.add_parser("run", help="saliency maps for videos or live streams (overlay video, PNG, npy, npz, JSON)")
    pr.add_argument(
        "inputs",
        nargs="*",
        metavar="INPUT",
        help="files, image sequences (img_%%05d.png), URLs (rtsp://, http://, ...) or - for stdin",
    )
    _output_arg(pr, None, "output directory")
    _model_args(pr, models, model_help)
    pr.add_argument("--audio", help="a separate audio file for the (single) input, e.g. with an image sequence")
    pr.add_argument("--fps", type=_POS_FLOAT, help="frame rate of an image sequence (default: 25) or an override")
    pr.add_argument("--input-format", help="FFmpeg input format (e.g. image2, v4l2; default: detected)")
    pr.add_argument("--stride", type=_POS_INT, default=1, help="a clip every N frames; maps in between interpolated")
    pr.add_argument("--batch", type=_POS_INT, default=1, help="clips per model call (across inputs)")
    pr.add_argument("--max-wait-ms", type=_NONNEG_FLOAT, default=20.0, help="latency budget for filling a batch")
    pr.add_argument("--live", action="store_true", help="bounded latency: drop the oldest clips when behind")
    pr.add_argument("--outputs", default="overlay,npz", help="comma-separated: overlay,png,npy,npz (JSON always)")
    pr.add_argument("--source-size", action="store_true", help="PNG/npy/npz maps at the source resolution")
    pr.add_argument(
        "--retries",
        type=_NONNEG_INT,
        default=3,
        help="reconnects of a lost stream, retries of a model-server request (exponential backoff)",
    )
    pr.add_argument(
        "--timeout",
        type=_POS_FLOAT,
        default=10.0,
        help="seconds a network input or a model server may stall before a retry",
    )
    pr.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    _quiet_arg(pr)
    _ray_args(pr)
    pr.set_defaults(func=_run)

    pd = sub.add_parser("demo", help="make a synthetic clip and run the whole pipeline on it")
    _output_arg(pd, "salrt_demo", "output directory")
    pd.add_argument("--checkpoint", help="DiffSal weights (default: the bundled demo model)")
    pd.add_argument("--random-weights", action="store_true", help="run untrained weights instead of the demo model")
    pd.add_argument(
        "--config",
        default="tiny",
        help="model config preset: the demo runs the small 'tiny' preset (seconds on a CPU); "
        "'paper' needs real weights and minutes on a CPU",
    )
    pd.add_argument("--seconds", type=_POS_FLOAT, default=2.0, help="length of the synthetic clip")
    pd.add_argument("--steps", type=_POS_INT, default=4, help="DDIM steps")
    pd.add_argument("--stride", type=_POS_INT, default=1, help="a clip every N frames")
    pd.add_argument("--batch", type=_POS_INT, default=4, help="clips per model call")
    pd.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    pd.add_argument("--seed", type=int, default=0, help="seed of the clip and of the starting noise")
    _quiet_arg(pd)
    pd.set_defaults(func=_demo)

    pb = sub.add_parser("bench", help="latency, throughput, FLOPs and memory vs the reference-style baseline")
    pb.add_argument("--model", default="diffsal", help=f"{model_help}; comma-separated names, or 'all'")
    pb.add_argument("--models", dest="model", help=argparse.SUPPRESS)
    _config_arg(pb)
    pb.add_argument("--checkpoint", help="weights (default: synthetic weights; timing does not depend on them)")
    pb.add_argument("--backend", default="torch", help=f"comma-separated: {','.join(BACKENDS)}")
    pb.add_argument("--backends", dest="backend", help=argparse.SUPPRESS)
    pb.add_argument("--precision", default="fp32", help="comma-separated: fp32,fp16,bf16")
    pb.add_argument("--batch", default="1", help="comma-separated batch sizes")
    pb.add_argument("--steps", default="4", help="comma-separated step counts")
    pb.add_argument("--kernels", default="torch", help="comma-separated: torch,triton (torch backends)")
    pb.add_argument(
        "--cuda-graphs", default="on", help="comma-separated: on,off (torch backends on CUDA: clips as graph replays)"
    )
    pb.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    pb.add_argument("--reps", type=_POS_INT, default=5, help="timed calls per configuration")
    pb.add_argument("--warmup", type=_POS_INT, default=1, help="untimed calls first (compilation, allocation)")
    pb.add_argument("--stride", type=_POS_INT, default=1, help="frames per clip for frames/s")
    pb.add_argument("--threads", type=_NONNEG_INT, default=0, help="CPU threads (0: torch's default)")
    pb.add_argument("--video", help="also measure the whole runtime on this video (end-to-end mode)")
    _output_arg(pb, "bench_out", "folder for bench.json, bench.md and plots")
    _quiet_arg(pb)
    pb.set_defaults(func=_bench)

    pn = sub.add_parser("encode", help="encode a video with saliency-driven quantisation (ROI)")
    pn.add_argument("inputs", nargs="*", metavar="INPUT", help="the video file to encode (several with --ray)")
    _output_arg(pn, None, "output video file (with --ray: a folder or URL for <input>.mp4 files)")
    pn.add_argument("--codec", default="libx264", help="libx264, libx265 or libsvtav1")
    pn.add_argument("--crf", type=_NONNEG_FLOAT, help="constant quality (default 28 unless --bitrate)")
    pn.add_argument("--bitrate", type=_bitrate, help="target bit rate instead of --crf: 2M, 800k, 2000000")
    pn.add_argument(
        "--roi-strength", type=_NONNEG_FLOAT, default=3.0, help="QP offset per standard deviation of saliency"
    )
    pn.add_argument("--max-offset", type=_POS_FLOAT, default=8.0, help="largest QP decrease")
    pn.add_argument("--floor", type=_NONNEG_FLOAT, default=4.0, help="largest QP increase (nothing is starved)")
    pn.add_argument("--smoothing", type=float, default=0.5, help="temporal EMA of the offsets (0..1)")
    pn.add_argument("--dilation", type=_NONNEG_INT, default=0, help="pixels of dilation of the saliency map")
    pn.add_argument("--no-roi", action="store_true", help="plain encode with the same settings (no model, no maps)")
    pn.add_argument("--maps", help="use these maps (.npy/.npz, N x H x W, one per frame) instead of running a model")
    _model_args(pn, models, model_help)
    pn.add_argument("--stride", type=_POS_INT, default=1, help="a clip every N frames")
    pn.add_argument("--batch", type=_POS_INT, default=1, help="clips per model call")
    _ray_args(pn)
    _quiet_arg(pn)
    pn.set_defaults(func=_encode)
    return p


def _ray_args(p: argparse.ArgumentParser, inputs: bool = True) -> None:
    g = p.add_argument_group("Ray (pip install 'salrt[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="distribute the inputs over a Ray cluster (HOST:PORT, ray://HOST:PORT, auto; none: a local one)",
    )
    if inputs:
        g.add_argument("--input-list", metavar="FILE", help="more inputs, one per line (# comments)")
    g.add_argument(
        "--ray-workers",
        dest="workers_ray",
        type=_POS_INT,
        help="model workers (default: one per GPU, else one per --worker-cpus cores)",
    )
    g.add_argument("--worker-cpus", type=_POS_FLOAT, default=1.0, help="CPU cores per model worker")
    g.add_argument("--worker-gpus", type=_NONNEG_FLOAT, help="GPUs per model worker (default: 1 with --device cuda)")
    g.add_argument("--resume", action="store_true", help="skip inputs whose outputs are complete and valid")


def _config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        default="paper",
        help="model config preset: paper or tiny (a salrt checkpoint directory carries its own)",
    )


def _output_arg(p: argparse.ArgumentParser, default: str | None, what: str) -> None:
    p.add_argument("-o", "--output", default=default, required=default is None, help=what)
    p.add_argument("--out", dest="output", help=argparse.SUPPRESS)  # the older spelling


def _quiet_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no progress display or progress notes (warnings and errors are still shown)",
    )


def _model_args(p: argparse.ArgumentParser, models: list[str] | None, model_help: str) -> None:
    p.add_argument("--model", default="diffsal", choices=models, metavar="MODEL", help=model_help)
    p.add_argument("--checkpoint", help="model weights (.pth of the authors, a state dict, or a salrt directory)")
    p.add_argument("--random-weights", action="store_true", help="run untrained weights (smoke runs, benchmarks)")
    p.add_argument(
        "--backbone",
        action="append",
        metavar="NAME=FILE",
        help="load a pretrained backbone (mvit, vggish, s3d, soundnet, clip) over the weights; repeatable",
    )
    _config_arg(p)
    p.add_argument(
        "--steps", default="4", help="DDIM steps, or 'auto' (MUBiC picks per clip); one-pass models ignore it"
    )
    p.add_argument("--captions", help="TAVDiff: captions file or folder (see salrt.captions)")
    p.add_argument("--bpe", help="TAVDiff: CLIP BPE merges file for --captions")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument(
        "--backend",
        default="auto",
        choices=BACKENDS,
        help="execution backend (auto: openvino/onnxruntime with --export-dir on CPU, tensorrt/onnxruntime on CUDA, "
        "triton with --url, else torch)",
    )
    p.add_argument("--export-dir", help="export directory for the onnxruntime/tensorrt backends")
    p.add_argument("--url", help="--backend triton: the server, http://HOST:8000 or grpc://HOST:8001")
    p.add_argument("--triton-model", help="--backend triton: the served model's name (default: --model)")
    p.add_argument("--kernels", choices=("triton", "torch"), help="attention/DDIM kernels (default: triton on cuda)")
    _precision_arg(p)


def _precision_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="inference precision (default: fp32, or the export's): bf16 is the fast approximate path on GPUs and on CPUs "
        "with native bf16 (torch, openvino); the other backends run their export's",
    )


def main(argv: Sequence[str] | None = None) -> int:
    from salrt.console import cli_logging, stderr_console

    args = build_parser().parse_args(argv)  # usage errors exit 2 here
    args.console = stderr_console()
    try:
        with cli_logging(args.console, args.quiet if hasattr(args, "quiet") else False):
            try:
                return int(args.func(args))
            except UsageError as exc:
                _error(one_line(exc))
                return 2
            except (SalrtError, OSError) as exc:
                if isinstance(exc, BrokenPipeError):
                    raise
                _error(one_line(exc))
                return 1
            except KeyboardInterrupt:
                _error("interrupted")
                return 130
    except BrokenPipeError:  # the reader went away (salrt info --json | head): not an error of ours
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141
    except Exception as exc:
        if os.environ.get("SALRT_DEBUG"):
            raise
        print(
            f"salrt: internal error: {type(exc).__name__}: {one_line(exc)} (this is a bug; "
            f"SALRT_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
