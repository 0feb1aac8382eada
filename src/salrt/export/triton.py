"""NVIDIA Triton Inference Server model repositories from a ``salrt export`` directory.

``write_repository(export_dir, repo)`` lays out one Triton model per exported graph::

    repo/<model>/config.pbtxt          the servable: the whole clip -> map path (unrolled sampler,
    repo/<model>/<version>/model.onnx   or the one-pass predictor), its manifest.json alongside
    repo/<model>_<graph>/...           the encoders and the denoiser (for clients running their
                                       own loop), one model each
    repo/<model>_trt/..., ..._trt/     the same as ``tensorrt_plan`` models when engines were built

Each ``config.pbtxt`` names the graph's real inputs and outputs (ONNX names, dtypes, dims after
the batch axis), dynamic batching (a preferred batch and a queue delay) and an instance group;
the servable also carries a compact manifest as the ``salrt_manifest`` parameter, so a client
can find the clip contract from the server alone. ``check_repository`` refuses a repository
with a missing or mismatched model by name (used before serving). Imports neither torch nor
tritonclient (``parse_config`` does, for checks).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from salrt.errors import ExportError, SalrtError
from salrt.export.manifest import file_sha256, read_manifest
from salrt.export.window import FRAMES, STATE_IN, STATE_OUT, normalisation, window_graph, window_shape

FORMAT = "salrt-triton/1"
TRITON_DTYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "int64": "TYPE_INT64", "uint8": "TYPE_UINT8"}
INSTANCE_KINDS = {"auto": "KIND_AUTO", "gpu": "KIND_GPU", "cpu": "KIND_CPU"}
# what a client needs from the manifest (the rest, validation records and op counts, stays on disk)
_CLIENT_KEYS = (
    "format", "model", "config", "precision", "batch", "steps", "kind", "contract", "graph_roles",
    "timesteps", "timestep_spacing", "alphas_cumprod", "adaptive_max_steps", "window",
)  # fmt: skip


def servable_graph(manifest: dict[str, Any]) -> str:
    """The graph that maps a clip to its map in one call: the unrolled sampler, the predictor, or a
    streaming model's step (its state in and out as ordinary tensors: the client keeps each stream's
    state, so the server stays stateless: any instance serves any stream, and a restart loses none)."""
    roles = manifest["graph_roles"]
    for role in ("predictor", "sampler", "step"):
        g = roles.get(role)
        if g and g in manifest["graphs"]:
            return g
    raise ExportError(
        f"this export of {manifest['model']} has no sampler, predictor or step graph: Triton serves the whole clip -> "
        "map path as one model (export it again without --graphs)"
    )


def model_names(manifest: dict[str, Any], engines: bool) -> dict[str, tuple[str, str]]:
    """Triton model name -> (graph, platform) for every model of the repository."""
    base = manifest["model"]
    top = servable_graph(manifest)
    out: dict[str, tuple[str, str]] = {}
    kinds = [("", "onnxruntime_onnx")] + ([("_trt", "tensorrt_plan")] if engines else [])
    for suffix, platform in kinds:
        for g in manifest["graphs"]:
            if platform == "tensorrt_plan" and g not in manifest["tensorrt"]["engines"]:
                continue
            name = base if g == top else f"{base}_{g}"
            out[name + suffix] = (g, platform)
    return out


def _batching(manifest: dict[str, Any]) -> tuple[int, int | None]:
    """(max_batch_size, preferred batch or None) from the export's batch range."""
    b = manifest["batch"]
    lo, opt, hi = b["min"], b.get("opt", b["min"]), b["max"]
    if lo == hi:
        return (1, None) if lo == 1 else (0, None)  # a fixed batch > 1: Triton cannot pad, no batching
    if lo != 1:
        raise ExportError(
            f"the export takes batches {lo}..{hi}, but Triton's batcher sends any batch from 1: "
            f"export it again with --dynamic-batch 1:{opt}:{hi}"
        )
    return hi, opt


def _pbtxt_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _tensor(name: str, spec: dict[str, Any], fixed_batch: int | None) -> str:
    """One tensor entry; ``fixed_batch``: the batch written into dims when Triton does not batch."""
    shape = spec["shape"]
    dims = [
        int(d) if isinstance(d, int) else -1 for d in (shape[1:] if fixed_batch is None else [fixed_batch, *shape[1:]])
    ]
    reshape = ""
    if not dims:  # a per-item scalar (the timestep): Triton wants dims, the graph wants (B,)
        dims, reshape = [1], " reshape: { shape: [ ] }"
    return (
        f"  {{ name: {_pbtxt_string(name)} data_type: {TRITON_DTYPES[spec['dtype']]} "
        f"dims: [ {', '.join(map(str, dims))} ]{reshape} }}"
    )


def _head(name: str, platform: str, max_batch: int, graph: dict[str, Any], fixed: int | None) -> list[str]:
    """The lines every model's config starts with: name, platform, batching, inputs, outputs."""
    return [
        f"name: {_pbtxt_string(name)}",
        f"platform: {_pbtxt_string(platform)}",
        f"max_batch_size: {max_batch}",
        "version_policy: { latest: { num_versions: 1 } }",
        "input [",
        ",\n".join(_tensor(k, v, fixed) for k, v in graph["inputs"].items()),
        "]",
        "output [",
        ",\n".join(_tensor(k, v, fixed) for k, v in graph["outputs"].items()),
        "]",
    ]


def config_text(
    name: str,
    platform: str,
    graph: dict[str, Any],
    manifest: dict[str, Any],
    *,
    instances: int = 1,
    kind: str = "auto",
    queue_delay_us: int = 2000,
    servable: bool = False,
) -> str:
    """The ``config.pbtxt`` of one model (protobuf text format of Triton's ``ModelConfig``)."""
    max_batch, preferred = _batching(manifest)
    fixed = None if max_batch > 0 else manifest["batch"]["min"]
    lines = _head(name, platform, max_batch, graph, fixed)
    if preferred is not None:
        lines.append(
            f"dynamic_batching {{ preferred_batch_size: [ {preferred} ] max_queue_delay_microseconds: {queue_delay_us} }}"
        )
    # a TensorRT engine runs on the GPU it was built for; onnxruntime where the server has one
    k = "KIND_GPU" if platform == "tensorrt_plan" else INSTANCE_KINDS[kind]
    lines.append(f"instance_group [ {{ count: {instances} kind: {k} }} ]")
    if servable:
        compact = {key: manifest.get(key) for key in _CLIENT_KEYS}
        compact["graphs"] = {g: {"inputs": v["inputs"], "outputs": v["outputs"]} for g, v in manifest["graphs"].items()}
        payload = json.dumps(compact, separators=(",", ":"))
        lines.append(f'parameters {{ key: "salrt_manifest" value: {{ string_value: {_pbtxt_string(payload)} }} }}')
    return "\n".join(lines) + "\n"


def window_config_text(
    name: str,
    entry: dict[str, Any],
    manifest: dict[str, Any],
    *,
    instances: int = 1,
    kind: str = "auto",
    idle_s: float = 60.0,
) -> str:
    """The ``config.pbtxt`` of the frames-once model: the servable behind the window prelude
    (:mod:`salrt.export.window`), Triton's sequence batcher keeping each stream's window as
    implicit state (zeros at a sequence's start, released at its end or after ``idle_s`` without
    a request). The direct strategy gives each stream a batch slot of an instance: ``instances``
    x max batch streams at once; Triton queues further sequences until a slot frees."""
    max_batch, _ = _batching(manifest)
    if max_batch < 1:
        raise ExportError("the frames-once model needs an export whose batch range starts at 1")
    t, h, w = entry["window"]["frames"], *entry["window"]["size"]
    dims = f"[ {t}, {h}, {w}, 3 ]"
    lines = [
        *_head(name, "onnxruntime_onnx", max_batch, entry, None),
        "sequence_batching {",
        f"  max_sequence_idle_microseconds: {int(idle_s * 1e6)}",
        "  direct { }",
        "  state [ {",
        f"    input_name: {_pbtxt_string(STATE_IN)} output_name: {_pbtxt_string(STATE_OUT)}",
        f"    data_type: TYPE_UINT8 dims: {dims}",
        f'    initial_state {{ data_type: TYPE_UINT8 dims: {dims} zero_data: true name: "empty window" }}',
        "  } ]",
        "}",
        f"instance_group [ {{ count: {instances} kind: {INSTANCE_KINDS[kind]} }} ]",
    ]
    return "\n".join(lines) + "\n"


def window_entry(manifest: dict[str, Any], version: int, instances: int, idle_s: float) -> dict[str, Any] | None:
    """The frames-once model's index entry (None when the servable takes no clip of 8-bit frames)."""
    shape = window_shape(manifest)
    if shape is None or _batching(manifest)[0] < 1:
        return None
    t, h, w = shape
    top = manifest["graphs"][servable_graph(manifest)]
    inputs = {FRAMES: {"shape": ["batch", -1, h, w, 3], "dtype": "uint8"}}
    inputs.update({k: v for k, v in top["inputs"].items() if k != "video"})
    mean, std = normalisation(manifest)
    return {
        "graph": "window",
        "role": "window",
        "platform": "onnxruntime_onnx",
        "file": f"{version}/model.onnx",
        "inputs": inputs,
        "outputs": top["outputs"],
        "window": {
            "frames": t,
            "size": [h, w],
            "mean": mean.tolist(),
            "std": std.tolist(),
            "idle_s": idle_s,
            "slots": instances * _batching(manifest)[0],
        },
    }


def _place(src: Path, dst: Path) -> None:
    """``dst`` as a hard link to ``src`` where the file system allows (graphs are large), else a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def write_repository(
    export_dir: str | Path,
    repository: str | Path,
    *,
    version: int | None = None,
    instances: int = 1,
    kind: str = "auto",
    queue_delay_us: int = 2000,
    engines: bool | None = None,
    windows: bool = True,
    window_idle_s: float = 60.0,
) -> dict[str, Any]:
    """Write (or add a version to) a Triton model repository from an export; returns its index.

    ``windows``: also write ``<model>_window``, the frames-once model (:mod:`salrt.export.window`:
    clients send each frame once, the server keeps each stream's window; a clip model only);
    ``window_idle_s``: how long a silent stream's window is kept.

    ``version``: the version folder (default: one above the newest already there, else 1);
    ``engines``: also write ``tensorrt_plan`` models (default: when the export has engines).
    """
    src = Path(export_dir)
    man = read_manifest(src)
    if kind not in INSTANCE_KINDS:
        raise ExportError(f"unknown instance kind {kind!r}: {', '.join(INSTANCE_KINDS)}")
    if instances < 1 or queue_delay_us < 0 or window_idle_s <= 0:
        raise ExportError("instances must be >= 1, the queue delay >= 0 and the window idle time > 0")
    has_engines = bool(man.get("tensorrt", {}).get("engines"))
    if engines is None:
        engines = has_engines
    elif engines and not has_engines:
        raise ExportError(f"{src}: no TensorRT engines in this export (salrt export --format tensorrt)")
    repo = Path(repository)
    names = model_names(man, engines)
    top = man["model"]
    if version is None:
        existing = [int(p.name) for p in (repo / top).glob("*") if p.is_dir() and p.name.isdigit()]
        version = max(existing, default=0) + 1
    index: dict[str, Any] = {"format": FORMAT, "servable": top, "version": version, "models": {}}
    window = window_entry(man, version, instances, window_idle_s) if windows else None
    if window is not None:  # the servable's manifest tells clients where the frames-once model is
        man = {**man, "window": {"model": f"{top}_window", **window["window"]}}
    for name, (graph, platform) in names.items():
        g = man["graphs"][graph]
        if platform == "tensorrt_plan":
            file, model_file = src / man["tensorrt"]["engines"][graph]["file"], "model.plan"
        else:
            file, model_file = src / g["file"], "model.onnx"
        if not file.is_file():
            raise ExportError(f"{file}: listed in the manifest but missing")
        d = repo / name
        _place(file, d / str(version) / model_file)
        text = config_text(
            name,
            platform,
            g,
            man,
            instances=instances,
            kind=kind,
            queue_delay_us=queue_delay_us,
            servable=graph == servable_graph(man),
        )
        (d / "config.pbtxt").write_text(text)
        index["models"][name] = {
            "graph": graph,
            "role": next(
                (r for r, v in man["graph_roles"].items() if v == graph or (isinstance(v, list) and graph in v)), None
            ),
            "platform": platform,
            "file": f"{version}/{model_file}",
            "sha256": g["sha256"] if platform == "onnxruntime_onnx" else file_sha256(file),
            "inputs": g["inputs"],
            "outputs": g["outputs"],
        }
    if window is not None:
        name = f"{top}_window"
        path = repo / name / str(version) / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        import onnx

        onnx.save(window_graph(src / man["graphs"][servable_graph(man)]["file"], man), str(path))
        (repo / name / "config.pbtxt").write_text(
            window_config_text(name, window, man, instances=instances, kind=kind, idle_s=window_idle_s)
        )
        index["models"][name] = {**window, "sha256": file_sha256(path)}
    # the export's manifest beside the servable, with the repository's index (what check_repository reads)
    (repo / top / "manifest.json").write_text(json.dumps({**man, "triton": index}, indent=1))
    return index


def parse_config(path: str | Path) -> Any:
    """A ``config.pbtxt`` parsed into Triton's ``ModelConfig`` protobuf (from ``tritonclient``)."""
    from google.protobuf import text_format

    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        from salrt.errors import MissingDependency

        raise MissingDependency(
            "reading Triton model configs needs tritonclient: pip install 'salrt[triton]'"
        ) from None
    try:
        return text_format.Parse(Path(path).read_text(), model_config_pb2.ModelConfig())
    except (text_format.ParseError, OSError) as exc:
        raise SalrtError(f"{path}: not a valid Triton model config ({exc})") from None


def check_repository(repository: str | Path, model: str | None = None, deep: bool = True) -> dict[str, Any]:
    """The index of a salrt Triton repository after checking it; a missing or mismatched model is
    refused by name (:class:`SalrtError`). ``model``: the servable to check (default: the only one);
    ``deep``: also hash every model file and compare each config with its ONNX graph."""
    repo = Path(repository)
    if not repo.is_dir():
        raise SalrtError(f"{repo}: no such model repository")
    found = sorted(p.parent.name for p in repo.glob("*/manifest.json"))
    if model is None:
        if len(found) != 1:
            raise SalrtError(
                f"{repo}: "
                + (
                    "no salrt model (no <model>/manifest.json)"
                    if not found
                    else f"several models ({', '.join(found)}): name one"
                )
            )
        model = found[0]
    mpath = repo / model / "manifest.json"
    if not mpath.is_file():
        raise SalrtError(f"{repo}: model {model!r} is missing (no {model}/manifest.json)")
    full = json.loads(mpath.read_text())
    index = full.get("triton")
    if not index or index.get("format") != FORMAT:
        raise SalrtError(f"{mpath}: not written by salrt export --format triton")
    for name, entry in index["models"].items():
        d = repo / name
        cfg_path, file = d / "config.pbtxt", d / entry["file"]
        if not cfg_path.is_file():
            raise SalrtError(f"model {name!r}: missing {cfg_path}")
        if not file.is_file():
            raise SalrtError(f"model {name!r}: missing {file}")
        cfg = parse_config(cfg_path)
        if cfg.name != name:
            raise SalrtError(f"model {name!r}: config.pbtxt names it {cfg.name!r}")
        if cfg.platform != entry["platform"]:
            raise SalrtError(f"model {name!r}: platform {cfg.platform!r}, expected {entry['platform']!r}")
        _compare_io(name, cfg, entry, int(full["batch"]["min"]))
        if deep:
            if file_sha256(file) != entry["sha256"]:
                raise SalrtError(f"model {name!r}: {file} differs from the exported graph (sha256 mismatch)")
            if entry["platform"] == "onnxruntime_onnx":
                _compare_onnx(name, cfg, file)
    return index


def _config_io(cfg: Any) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    from tritonclient.grpc import model_config_pb2 as pb

    def one(t: Any) -> tuple[str, tuple[int, ...]]:
        dims = tuple(t.reshape.shape) if t.HasField("reshape") else tuple(t.dims)
        return pb.DataType.Name(t.data_type), dims

    return {"inputs": {t.name: one(t) for t in cfg.input}, "outputs": {t.name: one(t) for t in cfg.output}}


def _compare_io(name: str, cfg: Any, entry: dict[str, Any], fixed_batch: int) -> None:
    got = _config_io(cfg)
    batched = cfg.max_batch_size > 0
    for side in ("inputs", "outputs"):
        want = {
            k: (
                TRITON_DTYPES[v["dtype"]],
                tuple(int(d) for d in (v["shape"][1:] if batched else [fixed_batch, *v["shape"][1:]])),
            )
            for k, v in entry[side].items()
        }
        if got[side] != want:
            raise SalrtError(f"model {name!r}: config {side} {got[side]} do not match the export's {want}")


def _graph_io(file: Path) -> dict[str, dict[str, tuple[str, tuple[int, ...]]]]:
    """An ONNX graph's inputs and outputs: name -> (Triton dtype, dims with -1 for dynamic), read
    with onnx where installed (no weights loaded), else with onnxruntime (a serving machine)."""
    try:
        import onnx
    except ImportError:
        onnx = None
    if onnx is not None:
        m = onnx.load(str(file), load_external_data=False)
        elem = {1: "TYPE_FP32", 10: "TYPE_FP16", 7: "TYPE_INT64", 2: "TYPE_UINT8"}

        def one(v: Any) -> tuple[str, tuple[int, ...]]:
            t = v.type.tensor_type
            dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in t.shape.dim)
            return elem.get(t.elem_type, str(t.elem_type)), dims

        return {"inputs": {v.name: one(v) for v in m.graph.input}, "outputs": {v.name: one(v) for v in m.graph.output}}
    import onnxruntime as ort

    s = ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
    types = {
        "tensor(float)": "TYPE_FP32",
        "tensor(float16)": "TYPE_FP16",
        "tensor(int64)": "TYPE_INT64",
        "tensor(uint8)": "TYPE_UINT8",
    }

    def one_ort(v: Any) -> tuple[str, tuple[int, ...]]:
        return types.get(v.type, v.type), tuple(d if isinstance(d, int) else -1 for d in v.shape)

    return {
        "inputs": {v.name: one_ort(v) for v in s.get_inputs()},
        "outputs": {v.name: one_ort(v) for v in s.get_outputs()},
    }


def _compare_onnx(name: str, cfg: Any, file: Path) -> None:
    """The config's tensors against the ONNX graph's own (names, element types, static dims)."""
    got = _config_io(cfg)
    batched = cfg.max_batch_size > 0
    # implicit state (the frames-once model's window) is declared by the sequence batcher, not as I/O
    state = {n for st in cfg.sequence_batching.state for n in (st.input_name, st.output_name)}
    for side, graph_side in _graph_io(file).items():
        graph = {k: (dtype, dims[1:] if batched else dims) for k, (dtype, dims) in graph_side.items() if k not in state}
        if set(graph) != set(got[side]):
            raise SalrtError(f"model {name!r}: config {side} {sorted(got[side])} but the graph has {sorted(graph)}")
        for k, (dtype, dims) in graph.items():
            cdtype, cdims = got[side][k]
            if cdtype != dtype or len(cdims) != len(dims) or any(a != b for a, b in zip(cdims, dims) if b != -1):
                raise SalrtError(
                    f"model {name!r}: {k} is {cdtype}{list(cdims)} in config.pbtxt, {dtype}{list(dims)} in the graph"
                )
