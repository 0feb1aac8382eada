"""``salrt serve``: a salrt Triton model repository served by the Triton Inference Server that
NVIDIA's PyTriton bundles (``pip install 'salrt[serve]'``), for machines without the NGC container.

The repository is checked first (:func:`salrt.export.triton.check_repository`: a missing or
mismatched model is refused by name). Each ONNX model is then bound under its own name with the
inputs, outputs and batching of its ``config.pbtxt`` and runs in onnxruntime; clients see what a
Triton server started with ``--model-repository`` on the same folder would show them (the
manifest parameter included), so ``salrt run --backend triton`` works against either.
``tensorrt_plan`` models need a Triton server with the TensorRT backend (the container) and are
skipped here, with a note. Imports no torch.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError, require
from salrt.export.triton import check_repository, parse_config

_NP = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64}


def _infer_fn(session: Any, scalars: set[str]) -> Callable[..., dict[str, np.ndarray]]:
    """A PyTriton batched callable running ``session`` (per-item scalars arrive as (B, 1))."""
    from pytriton.decorators import batch

    names = [o.name for o in session.get_outputs()]
    lock = threading.Lock()  # one onnxruntime run at a time per instance (it threads internally)

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        feed = {k: (v.reshape(len(v)) if k in scalars else v) for k, v in inputs.items()}
        with lock:
            out = session.run(None, feed)
        return dict(zip(names, out))

    return infer


def bind_repository(
    triton: Any, repository: str | Path, model: str | None = None, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Bind every ONNX model of a checked salrt repository to a PyTriton ``Triton`` instance;
    returns the repository's index."""
    ort = require("onnxruntime", "salrt serve")
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor

    repo = Path(repository)
    index = check_repository(repo, model)
    manifest_text = None
    for name, entry in index["models"].items():
        if entry["platform"] != "onnxruntime_onnx":
            log(
                f"salrt serve: skipping {name} ({entry['platform']}: needs Triton's TensorRT backend, the NGC container)"
            )
            continue
        cfg = parse_config(repo / name / "config.pbtxt")
        batched = cfg.max_batch_size > 0
        scalars = {t.name for t in cfg.input if t.HasField("reshape") and not list(t.reshape.shape)}
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(repo / name / entry["file"]), opts, providers=["CPUExecutionProvider"])
        inputs = [Tensor(name=t.name, dtype=_NP[_dtype(t.data_type)], shape=tuple(t.dims)) for t in cfg.input]
        outputs = [Tensor(name=t.name, dtype=_NP[_dtype(t.data_type)], shape=tuple(t.dims)) for t in cfg.output]
        if batched and cfg.HasField("dynamic_batching"):
            db = cfg.dynamic_batching
            batcher = DynamicBatcher(
                max_queue_delay_microseconds=db.max_queue_delay_microseconds,
                preferred_batch_size=list(db.preferred_batch_size) or None,
            )
        else:
            batcher = DynamicBatcher()
        config = ModelConfig(batching=batched, max_batch_size=max(cfg.max_batch_size, 1), batcher=batcher)
        count = max((g.count for g in cfg.instance_group), default=1)
        fns = [_infer_fn(session, scalars) for _ in range(count)]
        triton.bind(
            model_name=name, infer_func=fns if count > 1 else fns[0], inputs=inputs, outputs=outputs, config=config
        )
        params = dict(cfg.parameters)
        if "salrt_manifest" in params:
            manifest_text = params["salrt_manifest"].string_value
            _carry_parameter(triton, name, "salrt_manifest", manifest_text)
        log(f"salrt serve: {name} ({entry['graph']}, max batch {cfg.max_batch_size})")
    if manifest_text is None:
        raise SalrtError(f"{repo}: the servable model carries no salrt_manifest parameter")
    json.loads(manifest_text)  # a broken parameter is refused here, not by the first client
    return index


def _dtype(code: int) -> str:
    from tritonclient.grpc import model_config_pb2 as pb

    return pb.DataType.Name(code)


def _carry_parameter(triton: Any, name: str, key: str, value: str) -> None:
    """Put ``key`` into the config PyTriton generates for model ``name`` (before the server
    starts). PyTriton's public ModelConfig has no parameters; its generated config does
    (``backend_parameters``): this sets one on the cached config and writes the file again.
    PyTriton internals, as of the tested 0.7; without it clients pass --export-dir."""
    for m in triton._model_manager.models:
        if m.model_name == name:
            m._get_triton_model_config().backend_parameters[key] = value
            store = triton._model_manager._model_store_path
            if store is not None:
                m.generate_model(store)
            return


def _own_libpython() -> None:
    """Point the server's Python stubs at this interpreter's libpython. The bundled stub links
    ``libpython3.X.so`` by name; where the system has another build of the same minor version
    (a pyenv or conda Python on Debian), the stub would load that one and fail against this
    interpreter's standard library."""
    import os
    import sysconfig

    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("LDLIBRARY") or ""
    if libdir and name and (Path(libdir) / name).exists():
        current = os.environ.get("LD_LIBRARY_PATH", "")
        if libdir not in current.split(os.pathsep):
            os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, current) if p)


def serve(
    repository: str | Path,
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    http_port: int = 8000,
    grpc_port: int = 8001,
    metrics_port: int = 8002,
    log: Callable[[str], None] = print,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve ``repository`` until interrupted (Ctrl-C / SIGTERM)."""
    require("pytriton", "salrt serve")
    _own_libpython()
    from pytriton.triton import Triton, TritonConfig

    config = TritonConfig(
        http_address=host,
        http_port=http_port,
        grpc_address=host,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        exit_timeout_secs=5,
    )
    triton = Triton(config=config)
    try:
        bind_repository(triton, repository, model, log)  # before the server starts: configs are final
        triton.run()
        log(f"salrt serve: ready at http://{host}:{http_port} and grpc://{host}:{grpc_port}")
        if ready is not None:
            ready()
        triton.serve()
    finally:
        triton.stop()


class Spawned:
    """A ``salrt serve`` process started by :func:`spawn`: its URLs, and ``stop()``."""

    def __init__(self, proc: Any, http_port: int, grpc_port: int) -> None:
        self.proc = proc
        self.http_url, self.grpc_url = f"http://127.0.0.1:{http_port}", f"grpc://127.0.0.1:{grpc_port}"

    def stop(self, kill: bool = False) -> None:
        """End the server (SIGTERM, or SIGKILL with ``kill``) and wait for it."""
        import os
        import signal
        import subprocess

        try:
            os.killpg(self.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(
    repository: str | Path, *, python: str | None = None, log: str | Path | None = None, timeout_s: float = 120.0
) -> Spawned:
    """Start ``salrt serve`` on loopback in its own process (``python``: an interpreter with
    ``salrt[serve]``, default this one) and return once the servable model is ready."""
    import subprocess
    import sys
    import time

    import tritonclient.http as http

    index = check_repository(repository, deep=False)
    ports = [_free_port() for _ in range(3)]
    cmd = [python or sys.executable, "-m", "salrt.cli", "serve", str(repository), "--host", "127.0.0.1",
           "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]  # fmt: skip
    out = open(log, "w") if log else subprocess.DEVNULL
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    served = Spawned(proc, ports[0], ports[1])
    client = http.InferenceServerClient(f"127.0.0.1:{ports[0]}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = Path(log).read_text()[-1500:] if log else ""
            raise SalrtError(f"salrt serve exited with {proc.returncode} before it was ready {tail}".strip())
        try:
            if client.is_server_ready() and client.is_model_ready(index["servable"]):
                return served
        except Exception:  # not listening yet
            pass
        time.sleep(0.3)
    served.stop(kill=True)
    raise SalrtError(f"salrt serve was not ready within {timeout_s:g} s")
