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

    from salrt.cost import cost_report, paper_comparison
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
        changes.update(frames=vs[1], height=vs[2], width=vs[3])
        if args.model.lower() == "diffsal":
            changes.update(audio_slices=vs[1] // 2 + 1, audio_height=vs[2] // 2, audio_width=vs[3] // 2)
    if args.audio_shape is not None:
        aus = args.audio_shape
        if len(aus) != 4 or aus[0] != 1 or not hasattr(cfg, "audio_slices"):
            raise SalrtError(f"--audio-shape must be 1xSxHxW for a log-mel model, got {'x'.join(map(str, aus))}")
        changes.update(audio_slices=aus[1], audio_height=aus[2], audio_width=aus[3])
    if args.steps < 1:
        raise SalrtError(f"--steps must be >= 1, got {args.steps}")
    if args.batch < 1:
        raise SalrtError(f"--batch must be >= 1, got {args.batch}")
    try:
        cfg = dataclasses.replace(cfg, **changes)
        r = cost_report(cfg, batch=args.batch, steps=args.steps, model=args.model.lower())
    except (ValueError, RuntimeError) as exc:
        raise SalrtError(f"unsupported input shape: {str(exc).splitlines()[0]}") from None
    paper = paper_comparison(args.model.lower(), r, args.batch)
    if args.json:
        print(json.dumps({
            "model": args.model, "config": cfg.to_dict(), "batch": args.batch, "steps": r.steps,
            "params": r.params, "params_total": sum(r.params.values()),
            "paper_convention": {"macs": r.paper_macs, "params": r.paper_params},
            "flops": r.flops, "flops_encoders": r.flops_encoders, "flops_per_clip": r.flops_per_clip,
            "paper_figures": paper,
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
        con.print(f"paper reports {row['quantity']}: {row['paper']:g} {row['unit']}; salrt {row['salrt']:.2f} "
                  f"({row['difference_pct']:+.2f}%)")  # fmt: skip
    return 0


def _eval(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from rich.console import Console
    from rich.table import Table

    from salrt import evaluation as E

    names = tuple(n.strip() for n in args.metrics.split(",") if n.strip())
    if args.dataset == "plain":
        if not (args.video and args.maps and args.fixations):
            raise SalrtError("--dataset plain needs --video, --maps and --fixations")
        videos = E.plain_dataset(args.video, args.maps, args.fixations)
    else:
        if args.root is None:
            raise SalrtError(f"--dataset {args.dataset} needs --root")
        videos = E.dhf1k_dataset(args.root) if args.dataset == "dhf1k" else E.av_dataset(args.root, args.dataset, args.split)
    if args.videos:
        wanted = set(args.videos.split(","))
        unknown = wanted - {v.name for v in videos}
        if unknown:
            raise SalrtError(f"videos not in the dataset: {', '.join(sorted(unknown))}")
        videos = [v for v in videos if v.name in wanted]
    if (args.predictions is None) == (args.model is None):
        raise SalrtError("give exactly one of --predictions DIR or --model NAME (with --checkpoint)")
    pred_dir = args.predictions
    tmp = None
    if args.model is not None:
        model = _load_for_run(args)
        if args.save_predictions:
            pred_dir = args.save_predictions
        else:
            tmp = tempfile.TemporaryDirectory()
            pred_dir = tmp.name
        for v in _progress(videos, len(videos), "predicting", args.quiet):
            E.predict_video(model, v, pred_dir, steps=args.steps, batch=args.batch)
    try:
        items, report = E.match(videos, pred_dir, allow_missing=args.allow_missing)
        workers = args.workers or max(1, (os.cpu_count() or 1))
        result = E.evaluate(items, names, workers=workers,
                            progress=lambda it, n: _progress(it, n, "scoring", args.quiet))  # fmt: skip
    finally:
        if tmp is not None:
            tmp.cleanup()
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    result["report"] = report
    js, cs = E.write_results(result, args.out, settings)
    table = Table(title=f"{args.dataset} ({result['n_videos']} videos, {result['n_frames']} frames)")
    table.add_column("video")
    for n in names:
        table.add_column(n, justify="right")
    rows = result["videos"] if len(result["videos"]) <= 30 else []
    for e in rows:
        table.add_row(e["video"], *(f"{e[n]:.4f}" for n in names))
    table.add_row("mean over videos", *(f"{result['mean'][n]:.4f}" for n in names), style="bold")
    Console().print(table)
    skipped = len(report["missing_predictions"]) + len(report["videos_without_maps"])
    if skipped:
        print(f"warning: {skipped} annotated frames/videos had no prediction (listed in {js})", file=sys.stderr)
    print(f"wrote {js} and {cs}")
    return 0


def _export(args: argparse.Namespace) -> int:
    import importlib.util

    missing = [m for m in ("torch", "onnx", "onnxsim", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise SalrtError(f"salrt export needs {', '.join(missing)}: pip install 'salrt[export]'")
    from salrt.export.onnx import BatchSpec, export_onnx

    if args.batch is not None and args.dynamic_batch is not None:
        raise SalrtError("give --batch N or --dynamic-batch MIN:OPT:MAX, not both")
    batch = BatchSpec.parse(args.dynamic_batch or str(args.batch or 1))
    if args.steps < 1:
        raise SalrtError(f"--steps must be >= 1, got {args.steps}")
    onnx_precision = args.precision if args.format == "onnx" else "fp32"
    if args.format == "onnx" and args.precision == "bf16":
        raise SalrtError("bf16 is a TensorRT build precision; ONNX export supports fp32 and fp16")
    model = _load_for_run(args)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"salrt export: {s}", file=sys.stderr))
    man = export_onnx(model, args.output, precision=onnx_precision, batch=batch, opset=args.opset,
                      steps=args.steps, log=log)  # fmt: skip
    for g in man["graphs"].values():
        worst = max(e["max_abs"] for c in g["validation"] for e in c["outputs"].values())
        print(f"{g['file']}: {g['before_simplify']['nodes']} -> {g['after_simplify']['nodes']} nodes, "
              f"{g['after_simplify']['bytes'] / 1e6:.1f} MB, max abs error vs PyTorch {worst:.1e}")  # fmt: skip
    if args.format == "tensorrt":
        from salrt.export.tensorrt import build_engines

        info = build_engines(args.output, precision=args.precision, workspace_gib=args.workspace_gib, log=log)
        for e in info["engines"].values():
            print(f"{e['file']}: {'from cache' if e['cached'] else 'built in %.1f s' % e['seconds']}")
    print(f"wrote {args.output}/manifest.json")
    return 0


def _backend_for(args: argparse.Namespace):  # noqa: ANN202
    from salrt.backends import load_backend
    from salrt.io.contract import InputContract

    if args.backend in ("onnxruntime", "tensorrt"):
        if not args.export_dir:
            raise SalrtError(f"--backend {args.backend} needs --export-dir (made by salrt export)")
        b = load_backend(args.backend, export_dir=args.export_dir, device=args.device)
        return b, InputContract.from_manifest(b.manifest)
    model = _load_for_run(args)
    if args.kernels is None:  # triton is the default on CUDA
        args.kernels = "triton" if str(args.device).startswith("cuda") else "torch"
    if args.kernels == "triton":
        import os

        from salrt.kernels import enable

        on_cpu = not str(args.device).startswith("cuda")
        if on_cpu and os.environ.get("TRITON_INTERPRET") != "1":
            raise SalrtError("--kernels triton needs --device cuda (or TRITON_INTERPRET=1 to run them interpreted on CPU)")
        enable(model, force=on_cpu)
    return load_backend(args.backend, model=model), InputContract.of(model.config)


def _run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salrt.runtime import Runtime, RunOptions, default_sinks, expected_frames
    from salrt.sinks import SINKS

    outputs = [o.strip() for o in args.outputs.split(",") if o.strip()]
    bad = [o for o in outputs if o not in SINKS]
    if bad:
        raise SalrtError(f"unknown output {bad[0]!r}; choose from {', '.join(SINKS)}")
    for src in args.inputs:
        if "://" not in src and src != "-" and not Path(src).exists():
            raise SalrtError(f"{src}: no such file")
    backend, contract = _backend_for(args)
    captions = _captions(args, contract)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    opts = RunOptions(steps=_steps(args.steps), stride=args.stride, batch=args.batch, live=args.live, contract=contract,
                      captions=captions, retries=args.retries, seed=args.seed, max_wait_ms=args.max_wait_ms)  # fmt: skip
    settings = {k: v for k, v in vars(args).items() if k != "func"}
    settings["inputs"] = list(args.inputs)
    bar = _bar("frames", args.quiet, total=None if args.live else expected_frames(args.inputs))
    rt = Runtime(backend, args.inputs, opts, sinks_for=default_sinks(out, outputs, settings, args.source_size),
                 keep_frames="overlay" in outputs, progress=bar.update if bar else None)  # fmt: skip
    stats = rt.run()
    if bar:
        bar.close()
    (out / "run_stats.json").write_text(json.dumps(stats, indent=1, default=str))
    lat = stats["latency_ms"]
    print(f"{sum(stats['frames_out'])} frames from {len(args.inputs)} input(s) in {stats['wall_s']:.1f} s "
          f"({stats['fps_out']:.2f} frames/s, {stats['clips_per_s']:.2f} clips/s); latency p50 {lat['p50']} ms, "
          f"p95 {lat['p95']} ms, p99 {lat['p99']} ms; dropped {sum(stats['dropped_clips'])}; "
          f"outputs in {out}")  # fmt: skip
    if stats["errors"]:
        for e in stats["errors"]:
            print(f"salrt: error: {e}", file=sys.stderr)
        return 2
    return 130 if stats["interrupted"] else 0


def _demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from salrt import metrics as M
    from salrt.io import make_clip

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    clip = make_clip(out / "demo_input.mp4", seed=args.seed, seconds=args.seconds)
    print(f"wrote a synthetic clip with a sounding object: {clip.path} ({clip.n_frames} frames)")
    ns = argparse.Namespace(inputs=[str(clip.path)], output=str(out), model="diffsal", checkpoint=args.checkpoint,
                            random_weights=args.checkpoint is None, config=args.config, steps=args.steps,
                            stride=args.stride, batch=args.batch, live=False, outputs="overlay,png,npz",
                            backend="torch", export_dir=None, device=args.device, kernels=None, retries=0,
                            seed=args.seed, max_wait_ms=20.0, source_size=True, quiet=args.quiet)  # fmt: skip
    if args.checkpoint is None:
        print("no --checkpoint: running with random weights, so the maps show the pipeline, not saliency")
    rc = _run(ns)
    if rc:
        return rc
    import numpy as np

    maps = np.load(out / "demo_input_maps.npz")["maps"]
    cc = np.nanmean([M.cc(m.astype(np.float64), g) for m, g in zip(maps, clip.saliency)])
    print(f"mean CC against the synthetic ground truth: {cc:.3f}; overlay: {out / 'demo_input_overlay.mp4'}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    import torch

    from salrt import bench
    from salrt.models import MODELS

    def ints(text: str, what: str) -> list[int]:
        try:
            vals = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise SalrtError(f"--{what} must be comma-separated integers, got {text!r}") from None
        if not vals or any(v < 1 for v in vals):
            raise SalrtError(f"--{what} values must be >= 1, got {text!r}")
        return vals

    models = sorted(MODELS) if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    for m in models:
        if m not in MODELS:
            raise SalrtError(f"unknown model {m!r}; available: {', '.join(sorted(MODELS))}")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for b in backends:
        if b not in ("torch", "torch-compile", "onnxruntime", "tensorrt"):
            raise SalrtError(f"unknown backend {b!r}: torch, torch-compile, onnxruntime, tensorrt")
    precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
    for p in precisions:
        if p not in bench.DTYPES:
            raise SalrtError(f"unknown precision {p!r}: fp32, fp16, bf16")
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    for k in kernels:
        if k not in ("torch", "triton"):
            raise SalrtError(f"unknown kernels {k!r}: torch, triton")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SalrtError("--device cuda but no CUDA device is available")
    if args.video is not None and not __import__("os").path.exists(args.video):
        raise SalrtError(f"{args.video}: no such file")
    if args.threads:
        torch.set_num_threads(args.threads)
    log = (lambda s: None) if args.quiet else (lambda s: print(f"salrt bench: {s}", file=sys.stderr))
    results = {}
    for m in models:
        out = args.out if len(models) == 1 else f"{args.out}/{m}"
        res = bench.run(m, args.config, backends, precisions, ints(args.batch, "batch"), ints(args.steps, "steps"),
                        kernels, args.device, args.reps, args.warmup, args.stride, out, args.checkpoint, args.video,
                        log)  # fmt: skip
        results[m] = res
        print(bench.markdown(res))
    if len(models) > 1:
        md, rows = bench.cross_model(results)
        from pathlib import Path

        Path(args.out, "models.md").write_text(md)
        Path(args.out, "models.json").write_text(json.dumps({"machine": res["machine"], "device": args.device,
                                                             "config": args.config, "rows": rows}, indent=1))  # fmt: skip
        print(md)
    print(f"wrote bench.json, bench.md and plots to {args.out}")
    return 0


def _encode(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np

    from salrt.encode import CODECS, RoiEncoderSink, encode_with_maps
    from salrt.roi import RoiConfig

    if not Path(args.input).is_file():
        raise SalrtError(f"{args.input}: no such file")
    if args.codec not in CODECS:
        raise SalrtError(f"unsupported codec {args.codec!r}: {', '.join(CODECS)}")
    if (args.crf is None) == (args.bitrate is None):
        args.crf = 28.0 if args.bitrate is None else None
    roi = None if args.no_roi else RoiConfig(strength=args.roi_strength, max_offset=args.max_offset,
                                             floor=args.floor, smoothing=args.smoothing, dilation=args.dilation)  # fmt: skip
    kw = {"codec": args.codec, "crf": args.crf, "bitrate": args.bitrate, "roi": roi}
    if args.maps:
        try:
            data = np.load(args.maps)
            maps = data["maps"] if hasattr(data, "files") else data
        except (OSError, ValueError, KeyError) as exc:
            raise SalrtError(f"{args.maps}: cannot read maps ({exc})") from None
        maps = maps.astype(np.float32) / (255.0 if maps.dtype == np.uint8 else 1.0)
        encode_with_maps(args.input, args.output, maps, **kw)
    else:
        from salrt.runtime import Runtime, RunOptions

        import av

        from salrt.runtime import expected_frames

        backend, contract = _backend_for(args)
        with av.open(args.input) as c:
            fps = float(c.streams.video[0].average_rate or 25)
        sink = RoiEncoderSink(Path(args.output), fps, args.input, **kw)
        bar = _bar("encoding", args.quiet, total=expected_frames([args.input]))
        rt = Runtime(backend, [args.input], RunOptions(steps=_steps(args.steps), stride=args.stride, batch=args.batch,
                                                       contract=contract),
                     sinks_for=lambda i, info: [sink], keep_frames=True,
                     progress=bar.update if bar else None)  # fmt: skip
        stats = rt.run()
        if bar:
            bar.close()
        if stats["errors"]:
            raise SalrtError(stats["errors"][0])
        if stats["interrupted"]:
            print(f"interrupted: {args.output} holds the frames encoded so far", file=sys.stderr)
            return 130
    print(f"wrote {args.output} ({Path(args.output).stat().st_size} bytes, {args.codec}, "
          f"{'no ROI' if roi is None else f'ROI strength {args.roi_strength}'})")  # fmt: skip
    return 0


def _bar(desc: str, quiet: bool, total: int | None = None, iterable=None, unit: str = "frame"):  # noqa: ANN001, ANN202
    """A tqdm progress bar (or None / the bare iterable when quiet)."""
    if quiet:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, dynamic_ncols=True, leave=iterable is None)


def _progress(it, total: int, desc: str, quiet: bool):  # noqa: ANN001, ANN202
    return _bar(desc, quiet, total, iterable=it, unit="it")


def _steps(text: str | int) -> int | None:
    """``--steps N`` or ``--steps auto`` (the model's own choice: MUBiC's adaptive count)."""
    if str(text) == "auto":
        return None
    try:
        n = int(text)
    except ValueError:
        raise SalrtError(f"--steps must be a positive integer or 'auto', got {text!r}") from None
    if n < 1:
        raise SalrtError(f"--steps must be >= 1, got {n}")
    return n


def _captions(args: argparse.Namespace, contract):  # noqa: ANN001, ANN202
    """The caption source of a text-conditioned model (None: its AV variant, with a warning)."""
    cap = getattr(args, "captions", None)
    if not contract.text_context:
        if cap:
            raise SalrtError(f"--captions: model {args.model} takes no text")
        return None
    if not cap:
        print(f"salrt: warning: {args.model} got no --captions; running its audio-visual (AV) variant", file=sys.stderr)
        return None
    if not getattr(args, "bpe", None):
        raise SalrtError("--captions needs --bpe FILE: CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz or merges.txt)")
    from salrt.captions import Captions
    from salrt.models.clip_text import CLIPTokenizer

    return Captions(cap, CLIPTokenizer(args.bpe, contract.text_context), contract.text_context)


def _load_for_run(args: argparse.Namespace):  # noqa: ANN202
    from salrt.backends.base import require

    torch = require("torch", f"the {getattr(args, 'backend', 'torch')} backend")

    import salrt

    if args.checkpoint is None and not args.random_weights:
        raise SalrtError("no --checkpoint given: maps from untrained weights are meaningless "
                         "(pass --random-weights for a smoke run)")  # fmt: skip
    pretrained = {}
    for item in getattr(args, "backbone", None) or []:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise SalrtError(f"--backbone takes NAME=FILE (e.g. s3d=S3D_kinetics400.pt), got {item!r}")
        pretrained[name] = path
    model = salrt.load_model(args.model, checkpoint=args.checkpoint, device=args.device, config=args.config)
    if args.checkpoint is None:
        from salrt.testing import load_synthetic_weights

        load_synthetic_weights(model, 0)
    if pretrained:
        from salrt.models import load_backbone

        for name, path in pretrained.items():
            load_backbone(model, name, path)
    torch.set_grad_enabled(False)
    return model.eval()


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="salrt", description="Deployment engine for diffusion-based audio-visual saliency models.")
    p.add_argument("--version", action="version", version="salrt 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    pi = sub.add_parser("info", help="parameters and cost (papers' convention and full FLOPs) of a model")
    pi.add_argument("model", help="model name (diffsal, mubic, tavdiff, avrsp, dtfsal)")
    pi.add_argument("--config", default="paper", help="config preset: paper (default) or tiny")
    pi.add_argument("--video-shape", type=_shape, help="CxTxHxW of one clip, default 3x16x224x384")
    pi.add_argument("--audio-shape", type=_shape, help="1xSxHxW of its log-mel slices, default 1x9x112x192")
    pi.add_argument("--steps", type=int, default=4, help="denoising steps for the per-clip total (default 4)")
    pi.add_argument("--batch", type=int, default=1, help="batch size (default 1)")
    pi.add_argument("--json", action="store_true", help="print JSON instead of tables")
    pi.set_defaults(func=_info)

    pe = sub.add_parser("eval", help="score predictions (or a model) on a saliency dataset")
    pe.add_argument("--dataset", required=True, help="avad, diem, coutrot1, coutrot2, etmd, summe, dhf1k or plain")
    pe.add_argument("--root", help="dataset root folder")
    pe.add_argument("--split", type=int, default=1, help="fold 1-3 of the audio-visual datasets (default 1)")
    pe.add_argument("--video", help="plain layout: the video file")
    pe.add_argument("--maps", help="plain layout: folder of ground-truth maps")
    pe.add_argument("--fixations", help="plain layout: folder of fixation maps")
    pe.add_argument("--videos", help="comma-separated subset of videos")
    pe.add_argument("--predictions", help="folder of predicted maps: <video>/<frame>.png")
    pe.add_argument("--model", help="predict with this model instead (diffsal, mubic, tavdiff, avrsp, dtfsal)")
    pe.add_argument("--checkpoint", help="model weights")
    pe.add_argument("--random-weights", action="store_true", help="allow a model without checkpoint (smoke runs)")
    pe.add_argument("--config", default="paper", help="model config preset (paper or tiny)")
    pe.add_argument("--device", default="cpu")
    pe.add_argument("--steps", type=int, default=4)
    pe.add_argument("--batch", type=int, default=1)
    pe.add_argument("--save-predictions", help="keep the model's maps in this folder")
    pe.add_argument("--metrics", default="cc,nss,sim,auc_judd,kld",
                    help="comma-separated: cc,nss,sim,auc_judd,auc_borji,auc_shuffled,kld")  # fmt: skip
    pe.add_argument("--workers", type=int, default=0, help="processes for scoring (default: all cores)")
    pe.add_argument("--allow-missing", action="store_true", help="score what exists when predictions are missing")
    pe.add_argument("--out", default="eval_results", help="folder for results.json and results.csv")
    pe.add_argument("--quiet", action="store_true", help="no progress bars")
    pe.set_defaults(func=_eval)

    px = sub.add_parser("export", help="export ONNX graphs (validated in onnxruntime) or TensorRT engines")
    px.add_argument("--model", default="diffsal")
    px.add_argument("--checkpoint", help="model weights")
    px.add_argument("--random-weights", action="store_true", help="export untrained weights (benchmarks, tests)")
    px.add_argument("--config", default="paper", help="model config preset (paper or tiny)")
    px.add_argument("--format", choices=("onnx", "tensorrt"), default="onnx")
    px.add_argument("-o", "--output", required=True, help="output directory")
    px.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    px.add_argument("--batch", type=int, help="fixed batch size (default 1)")
    px.add_argument("--dynamic-batch", help="batch range MIN:OPT:MAX")
    px.add_argument("--opset", type=int, default=17)
    px.add_argument("--steps", type=int, default=4, help="DDIM steps unrolled in sampler.onnx (default 4)")
    px.add_argument("--workspace-gib", type=float, default=4.0, help="TensorRT builder workspace")
    px.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    px.add_argument("--quiet", action="store_true")
    px.set_defaults(func=_export)

    pr = sub.add_parser("run", help="saliency maps for videos or live streams (overlay video, PNG, npz, JSON)")
    pr.add_argument("inputs", nargs="+", help="files, URLs (rtsp://, http://, ...) or - for stdin")
    pr.add_argument("-o", "--output", required=True, help="output directory")
    _model_args(pr)
    pr.add_argument("--stride", type=int, default=1, help="a clip every N frames; maps in between interpolated")
    pr.add_argument("--batch", type=int, default=1, help="clips per model call (across inputs)")
    pr.add_argument("--max-wait-ms", type=float, default=20.0, help="latency budget for filling a batch")
    pr.add_argument("--live", action="store_true", help="bounded latency: drop the oldest clips when behind")
    pr.add_argument("--outputs", default="overlay,npz", help="comma-separated: overlay,png,npy,npz (JSON always)")
    pr.add_argument("--source-size", action="store_true", help="PNG/npz maps at the source resolution")
    pr.add_argument("--retries", type=int, default=3, help="reconnects of a lost stream (exponential backoff)")
    pr.add_argument("--seed", type=int, default=0, help="seed of the starting noise")
    pr.add_argument("--quiet", action="store_true")
    pr.set_defaults(func=_run)

    pd = sub.add_parser("demo", help="make a synthetic clip and run the whole pipeline on it")
    pd.add_argument("-o", "--output", default="salrt_demo")
    pd.add_argument("--checkpoint", help="DiffSal weights (default: random weights, paper-size needs minutes)")
    pd.add_argument("--config", default="tiny", help="tiny (default, seconds on a CPU) or paper")
    pd.add_argument("--seconds", type=float, default=2.0)
    pd.add_argument("--steps", type=int, default=4)
    pd.add_argument("--stride", type=int, default=1)
    pd.add_argument("--batch", type=int, default=4)
    pd.add_argument("--device", default="cpu")
    pd.add_argument("--seed", type=int, default=0)
    pd.add_argument("--quiet", action="store_true")
    pd.set_defaults(func=_demo)

    pb = sub.add_parser("bench", help="latency, throughput, FLOPs and memory vs the reference-style baseline")
    pb.add_argument("--model", default="diffsal", help="model name, comma-separated names, or 'all'")
    pb.add_argument("--models", dest="model", help=argparse.SUPPRESS)
    pb.add_argument("--config", default="paper", help="paper or tiny")
    pb.add_argument("--checkpoint", help="weights (default: synthetic weights; timing does not depend on them)")
    pb.add_argument("--backends", default="torch", help="comma-separated: torch,torch-compile,onnxruntime,tensorrt")
    pb.add_argument("--precision", default="fp32", help="comma-separated: fp32,fp16,bf16")
    pb.add_argument("--batch", default="1", help="comma-separated batch sizes")
    pb.add_argument("--steps", default="4", help="comma-separated step counts")
    pb.add_argument("--kernels", default="torch", help="comma-separated: torch,triton")
    pb.add_argument("--device", default="cpu")
    pb.add_argument("--reps", type=int, default=5)
    pb.add_argument("--warmup", type=int, default=1)
    pb.add_argument("--stride", type=int, default=1, help="frames per clip for frames/s")
    pb.add_argument("--threads", type=int, default=0, help="CPU threads (default: torch's)")
    pb.add_argument("--video", help="also measure the whole runtime on this video (end-to-end mode)")
    pb.add_argument("--out", default="bench_out")
    pb.add_argument("--quiet", action="store_true")
    pb.set_defaults(func=_bench)

    pn = sub.add_parser("encode", help="encode a video with saliency-driven quantisation (ROI)")
    pn.add_argument("input")
    pn.add_argument("-o", "--output", required=True)
    pn.add_argument("--codec", default="libx264", help="libx264, libx265 or libsvtav1")
    pn.add_argument("--crf", type=float, help="constant quality (default 28)")
    pn.add_argument("--bitrate", type=int, help="target bits per second instead of --crf")
    pn.add_argument("--roi-strength", type=float, default=3.0, help="QP offset per standard deviation of saliency")
    pn.add_argument("--max-offset", type=float, default=8.0, help="largest QP decrease")
    pn.add_argument("--floor", type=float, default=4.0, help="largest QP increase (nothing is starved)")
    pn.add_argument("--smoothing", type=float, default=0.5, help="temporal EMA of the offsets (0..1)")
    pn.add_argument("--dilation", type=int, default=0, help="pixels of dilation of the saliency map")
    pn.add_argument("--no-roi", action="store_true", help="plain encode with the same settings")
    pn.add_argument("--maps", help="use these maps (.npy/.npz, N x H x W) instead of running a model")
    _model_args(pn)
    pn.add_argument("--stride", type=int, default=1)
    pn.add_argument("--batch", type=int, default=1)
    pn.add_argument("--quiet", action="store_true")
    pn.set_defaults(func=_encode)
    return p


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="diffsal")
    p.add_argument("--checkpoint", help="model weights")
    p.add_argument("--random-weights", action="store_true", help="run untrained weights (smoke runs, benchmarks)")
    p.add_argument("--backbone", action="append", metavar="NAME=FILE",
                   help="load a pretrained backbone (mvit, vggish, s3d, soundnet, clip) over the weights; repeatable")
    p.add_argument("--config", default="paper", help="model config preset (paper or tiny)")
    p.add_argument("--steps", default="4", help="DDIM steps, or 'auto' (MUBiC picks per clip); one-pass models ignore it")
    p.add_argument("--captions", help="TAVDiff: captions file or folder (see salrt.captions)")
    p.add_argument("--bpe", help="TAVDiff: CLIP BPE merges file for --captions")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--backend", default="torch", choices=("torch", "torch-compile", "onnxruntime", "tensorrt"))
    p.add_argument("--export-dir", help="export directory for the onnxruntime/tensorrt backends")
    p.add_argument("--kernels", choices=("triton", "torch"), help="attention/DDIM kernels (default: triton on cuda)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SalrtError, ValueError, OSError) as exc:
        print(f"salrt: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("salrt: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - never a traceback for users; SALRT_DEBUG=1 shows it
        import os

        if os.environ.get("SALRT_DEBUG"):
            raise
        print(f"salrt: error: {type(exc).__name__}: {_one_line(exc)} (set SALRT_DEBUG=1 for the traceback)",
              file=sys.stderr)  # fmt: skip
        return 1


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 500 else text[:497] + "..."


if __name__ == "__main__":
    sys.exit(main())
