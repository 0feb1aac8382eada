"""TensorRT engines from the exported ONNX graphs (TensorRT 10.x and 11.x Python API), and a
static check that every op of a graph is one the TensorRT ONNX parser supports.

Typing: TensorRT 10.12 deprecated weak typing (builder precision flags) and 11.0 removed
``BuilderFlag.FP16/BF16``. salrt builds **strongly typed** networks whenever the installed
TensorRT has ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``: the precision then comes from the
ONNX graph (fp16 engines from fp16 graphs, fp32 from fp32). bf16 engines need the weak-typing
``BF16`` flag on fp32 graphs (salrt's exporter writes no bf16 ONNX: onnxruntime cannot validate
it), so they are built only where the installed TensorRT still has it. Every API result is
checked; the engine cache key covers every build setting (:func:`engine_key`).

TensorRT is not installable on this project's machines: the build path is written against the
real API and exercised in tests with recording stand-ins of each API generation (10.0, 10.12,
11.x); the static op check runs everywhere.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from salrt.errors import TensorRTError

OPS_FILE = Path(__file__).with_name("tensorrt_onnx_ops.json")
_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def supported_ops() -> dict[str, Any]:
    """The TensorRT 10.0 ONNX parser's operator matrix kept in the repo (with its source)."""
    return json.loads(OPS_FILE.read_text())


def check_tensorrt_ops(onnx_path: str | Path) -> list[str]:
    """Problems that would stop the TensorRT 10 ONNX parser (empty list: none found)."""
    import onnx

    table = supported_ops()
    ok = set(table["supported"])
    lo, hi = table["opset_range"]
    m = onnx.load(str(onnx_path), load_external_data=False)
    problems = []
    for imp in m.opset_import:
        if imp.domain in ("", "ai.onnx") and not lo <= imp.version <= hi:
            problems.append(f"opset {imp.version} outside {lo}..{hi}")
    for node in m.graph.node:
        if node.domain not in ("", "ai.onnx"):
            problems.append(f"{node.name or node.op_type}: custom domain {node.domain!r}")
        elif node.op_type not in ok:
            problems.append(f"{node.name or node.op_type}: {node.op_type} is not supported by the TensorRT ONNX parser")
        elif node.op_type == "Resize":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            mode = attrs.get("mode", b"nearest")
            coord = attrs.get("coordinate_transformation_mode", b"half_pixel")
            mode, coord = (x.decode() if isinstance(x, bytes) else x for x in (mode, coord))
            if mode not in _RESIZE_MODES:
                problems.append(f"{node.name}: Resize mode {mode!r} unsupported (nearest, linear only)")
            if coord not in _RESIZE_COORDS:
                problems.append(f"{node.name}: Resize coordinate mode {coord!r} unsupported")
    return problems


def gpu_name() -> str:
    """Name of GPU 0 (torch if present, else nvidia-smi)."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except ImportError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        raise TensorRTError("no CUDA GPU found: TensorRT engines are built for a GPU") from None


def trt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of the tensorrt module."""
    parts = str(getattr(trt, "__version__", "0.0")).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def engine_plan(trt: Any, precision: str) -> dict[str, Any]:
    """How an engine of ``precision`` is built with this TensorRT: ``{"graph_precision",
    "strongly_typed", "flag"}`` (the ONNX precision to export, the network kind, the weak-typing
    builder flag or None). Raises :class:`TensorRTError` for a combination the version cannot build."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise TensorRTError(f"unknown precision {precision!r}: fp32, fp16 or bf16")
    strong = hasattr(getattr(trt, "NetworkDefinitionCreationFlag", None), "STRONGLY_TYPED")
    weak = {p: hasattr(getattr(trt, "BuilderFlag", None), p.upper()) for p in ("fp16", "bf16")}
    if precision == "fp32":
        return {"graph_precision": "fp32", "strongly_typed": strong, "flag": None}
    if precision == "fp16" and strong:
        return {"graph_precision": "fp16", "strongly_typed": True, "flag": None}
    if weak[precision]:
        return {"graph_precision": "fp32", "strongly_typed": False, "flag": precision.upper()}
    raise TensorRTError(
        f"TensorRT {trt.__version__} has no weak-typing {precision.upper()} builder flag (removed in 11.0) and "
        f"salrt writes no {precision} ONNX graph to build a strongly typed engine from: build fp16 or fp32, "
        "or use TensorRT 10.x for bf16"
    )


def engine_key(
    onnx_sha256: str, trt_version: str, gpu: str, precision: str, profile: dict[str, int], **settings: Any
) -> str:
    """Cache key of an engine: the graph, TensorRT version, GPU, precision, batch profile and every
    other build setting (workspace, typing, builder flag, optimisation level, ...)."""
    text = json.dumps([onnx_sha256, trt_version, gpu, precision, profile, settings], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _checked(ok: Any, what: str, onnx_path: str | Path) -> Any:
    """A TensorRT call's result, or TensorRTError when it reports failure (False, None, -1)."""
    if ok is None or ok is False or (isinstance(ok, int) and not isinstance(ok, bool) and ok < 0):
        raise TensorRTError(f"{onnx_path}: TensorRT {what} failed")
    return ok


def build_engine(
    onnx_path: str | Path,
    out_path: str | Path,
    *,
    precision: str = "fp16",
    profile: dict[str, int] | None = None,
    workspace_gib: float = 4.0,
    timing_cache: str | Path | None = None,
    opt_level: int | None = None,
    trt: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Parse ``onnx_path`` and serialise an engine to ``out_path``.

    ``precision``: fp32, fp16 or bf16, built as :func:`engine_plan` says (the graph must already be
    in its ``graph_precision``). ``profile``: ``{"min": , "opt": , "max": }`` for the batch axis
    of every input. ``opt_level``: the builder optimisation level (TensorRT's default when None).
    """
    if trt is None:
        from salrt.errors import require

        trt = require("tensorrt", "building TensorRT engines")
    plan = engine_plan(trt, precision)
    say = log or (lambda s: None)
    prof = profile or {"min": 1, "opt": 1, "max": 1}
    logger = trt.Logger(trt.Logger.WARNING)
    builder = _checked(trt.Builder(logger), "builder creation", onnx_path)
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED) if plan["strongly_typed"] else 0
    network = _checked(builder.create_network(flags), "network creation", onnx_path)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise TensorRTError(f"{onnx_path}: TensorRT could not parse the graph: {errs}")
    config = _checked(builder.create_builder_config(), "builder config creation", onnx_path)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if plan["flag"]:
        config.set_flag(getattr(trt.BuilderFlag, plan["flag"]))
    if opt_level is not None:
        config.builder_optimization_level = int(opt_level)
    opt_profile = _checked(builder.create_optimization_profile(), "optimisation profile creation", onnx_path)
    for i in range(network.num_inputs):
        inp = network.get_input(i)
        dims = list(inp.shape)
        shapes = [tuple([prof[k], *dims[1:]]) for k in ("min", "opt", "max")]
        opt_profile.set_shape(inp.name, *shapes)
    _checked(
        config.add_optimization_profile(opt_profile), "add_optimization_profile (invalid batch profile?)", onnx_path
    )
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).is_file() else b""
    cache = _checked(config.create_timing_cache(cache_bytes), "timing cache creation", onnx_path)
    _checked(config.set_timing_cache(cache, ignore_mismatch=False), "set_timing_cache (stale cache?)", onnx_path)
    t0 = time.perf_counter()
    typing = "strongly typed" if plan["strongly_typed"] else f"weakly typed, {plan['flag'] or 'fp32'}"
    say(f"building {Path(out_path).name} ({precision}, {typing}, batch {prof['min']}..{prof['max']})")
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise TensorRTError(f"{onnx_path}: TensorRT engine build failed (see the TensorRT log above)")
    Path(out_path).write_bytes(bytes(serialized))
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    return {"seconds": round(time.perf_counter() - t0, 2), "bytes": Path(out_path).stat().st_size, **plan}


def build_engines(
    export_dir: str | Path,
    *,
    precision: str | None = None,
    workspace_gib: float = 4.0,
    opt_level: int | None = None,
    cache_dir: str | Path | None = None,
    trt: Any = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Engines for every graph of an ONNX export, cached by :func:`engine_key`; records them in the
    manifest under ``tensorrt``. ``precision`` defaults to the export's; the export's graphs must
    be in the precision :func:`engine_plan` needs (``salrt export --format tensorrt`` sees to it)."""
    import shutil

    from salrt.export.manifest import read_manifest

    if trt is None:
        from salrt.errors import require

        trt = require("tensorrt", "building TensorRT engines")
    d = Path(export_dir)
    man = read_manifest(d)
    precision = precision or man["precision"]
    plan = engine_plan(trt, precision)
    if man["precision"] != plan["graph_precision"]:
        raise TensorRTError(
            f"{precision} engines with TensorRT {trt.__version__} are built from {plan['graph_precision']} ONNX "
            f"graphs; this export is {man['precision']} (export again with --precision {plan['graph_precision']})"
        )
    gpu = gpu_name()
    cache = Path(cache_dir) if cache_dir else Path.home() / ".cache" / "salrt" / "engines"
    cache.mkdir(parents=True, exist_ok=True)
    timing = cache / "timing.cache"
    settings = {"workspace_gib": workspace_gib, "opt_level": opt_level, **plan}
    entries = {}
    for name, g in man["graphs"].items():
        problems = check_tensorrt_ops(d / g["file"])
        if problems:
            raise TensorRTError(
                f"{g['file']}: {problems[0]}" + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
            )
        key = engine_key(g["sha256"], trt.__version__, gpu, precision, man["batch"], **settings)
        cached = cache / f"{name}-{key}.engine"
        info: dict[str, Any] = {"cached": cached.is_file()}
        if not cached.is_file():
            info.update(
                build_engine(
                    d / g["file"],
                    cached,
                    precision=precision,
                    profile=man["batch"],
                    workspace_gib=workspace_gib,
                    timing_cache=timing,
                    opt_level=opt_level,
                    trt=trt,
                    log=log,
                )
            )
        target = d / f"{name}.{precision}.engine"
        shutil.copyfile(cached, target)
        entries[name] = {"file": target.name, "key": key, **info}
    man["tensorrt"] = {
        "version": trt.__version__,
        "gpu": gpu,
        "precision": precision,
        "settings": settings,
        "engines": entries,
    }
    (d / "manifest.json").write_text(json.dumps(man, indent=1))
    return man["tensorrt"]
