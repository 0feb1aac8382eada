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
from salrt.memory import release_every

_NP = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_INT64": np.int64, "TYPE_UINT8": np.uint8}


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


class WindowStore:
    """Each stream's frame window, as Triton's sequence batcher keeps the frames-once model's
    implicit state (:mod:`salrt.export.window`): a stream starts with a zero window (the start
    flag), a request for a stream the server does not hold is refused with Triton's wording (the
    client sends its whole window again), the end flag releases it, a stream silent for
    ``idle_s`` is released, and at most ``slots`` streams are held at once (a new one beyond is
    refused, saying so). Thread-safe."""

    def __init__(
        self, shape: tuple[int, ...], slots: int, idle_s: float, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.shape, self.slots, self.idle_s = shape, slots, idle_s
        self.clock = clock or time.monotonic
        self.windows: dict[str, tuple[np.ndarray, float]] = {}
        self.lock = threading.Lock()
        self.released_idle = 0

    def take(self, stream: str, start: bool) -> np.ndarray:
        """The window stream ``stream`` continues from (zeros at its start)."""
        with self.lock:
            self.sweep()
            if start:
                if stream not in self.windows and len(self.windows) >= self.slots:
                    raise SalrtError(
                        f"no free stream slot: this server holds {self.slots} streams at once "
                        "(salrt export --format triton --instances N, or more servers)"
                    )
                zero = np.zeros(self.shape, np.uint8)
                self.windows[stream] = (zero, self.clock())  # the slot is taken from the start
                return zero
            if stream not in self.windows:
                raise SalrtError(
                    f"inference request for sequence {stream} must specify the START flag on the first request of "
                    "the sequence (unknown stream: the server restarted or released it after idling)"
                )
            return self.windows[stream][0]

    def put(self, stream: str, window: np.ndarray) -> None:
        with self.lock:
            self.windows[stream] = (window, self.clock())

    def release(self, stream: str) -> None:
        with self.lock:
            self.windows.pop(stream, None)

    def start_sweeper(self) -> None:
        """Release idle streams in the background too (no request may come to trigger it)."""
        import time

        def loop() -> None:
            while True:
                time.sleep(min(self.idle_s / 2, 5.0))
                with self.lock:
                    self.sweep()

        threading.Thread(target=loop, name="salrt-window-sweeper", daemon=True).start()

    def sweep(self) -> None:
        """Release the streams silent for longer than ``idle_s`` (a client that disappeared)."""
        now = self.clock()
        for k in [k for k, (_, t) in self.windows.items() if now - t > self.idle_s]:
            del self.windows[k]
            self.released_idle += 1


def _window_fn(
    session: Any, store: WindowStore, outputs: dict[str, tuple[int, ...]]
) -> Callable[..., list[dict[str, np.ndarray]]]:
    """A PyTriton callable for the frames-once model: per request, the stream's window from
    ``store`` goes in as ``window_in`` and ``window_out`` goes back into it; ``outputs``: the
    config's outputs (name -> dims after the batch), what an end request gets back."""
    from salrt.export.window import STATE_IN, STATE_OUT

    names = [o.name for o in session.get_outputs()]
    lock = threading.Lock()

    def infer(requests: list[Any]) -> list[dict[str, np.ndarray]]:
        out = []
        for req in requests:
            params = req.parameters or {}
            stream = str(params.get("salrt_stream", ""))
            if not stream:
                raise SalrtError("the frames-once model needs a stream: send the salrt_stream parameter")
            start, end = bool(params.get("salrt_start", False)), bool(params.get("salrt_end", False))
            if end:  # the stream ends: release it (again is harmless), no model run
                store.release(stream)
                out.append({n: np.zeros((1, *dims), np.float32) for n, dims in outputs.items()})
                continue
            window = store.take(stream, start)
            feed = {k: np.asarray(v) for k, v in req.items()}
            feed[STATE_IN] = window[None]
            with lock:
                res = dict(zip(names, session.run(None, feed)))
            store.put(stream, res.pop(STATE_OUT)[0])
            out.append(res)
        return out

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
        if cfg.HasField("sequence_batching"):
            _bind_window(triton, repo, name, entry, cfg, ort, log)
            continue
        batched = cfg.max_batch_size > 0
        scalars = {t.name for t in cfg.input if t.HasField("reshape") and not list(t.reshape.shape)}
        session = _session(ort, repo / name / entry["file"])
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


def _bind_window(triton: Any, repo: Path, name: str, entry: dict[str, Any], cfg: Any, ort: Any, log: Any) -> None:
    """Bind the frames-once model with a :class:`WindowStore` standing in for Triton's sequence
    batcher (PyTriton has none): one request per stream clip, unbatched."""
    from pytriton.model_config import ModelConfig, Tensor

    state = cfg.sequence_batching.state[0]
    slots = max(cfg.max_batch_size, 1) * max((g.count for g in cfg.instance_group), default=1)
    store = WindowStore(tuple(state.dims), slots, cfg.sequence_batching.max_sequence_idle_microseconds / 1e6)
    session = _session(ort, repo / name / entry["file"])
    inputs = [Tensor(name=t.name, dtype=_NP[_dtype(t.data_type)], shape=(-1, *t.dims)) for t in cfg.input]
    outputs = [Tensor(name=t.name, dtype=_NP[_dtype(t.data_type)], shape=(-1, *t.dims)) for t in cfg.output]
    store.start_sweeper()
    dims = {t.name: tuple(t.dims) for t in cfg.output}
    triton.bind(model_name=name, infer_func=_window_fn(session, store, dims), inputs=inputs, outputs=outputs,
                config=ModelConfig(batching=False))  # fmt: skip
    log(f"salrt serve: {name} (frames once: {slots} stream slots, windows released after "
        f"{store.idle_s:g} s idle)")  # fmt: skip


def _session(ort: Any, path: Path) -> Any:
    """An onnxruntime CPU session with every graph optimisation, as each served model runs."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


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
    releasing = release_every(30.0)  # flat RSS over days of requests (salrt.memory)
    try:
        bind_repository(triton, repository, model, log)  # before the server starts: configs are final
        triton.run()
        log(f"salrt serve: ready at http://{host}:{http_port} and grpc://{host}:{grpc_port}")
        if ready is not None:
            ready()
        triton.serve()
    finally:
        releasing.set()
        triton.stop()


def _served_models(repository: str | Path, index: dict[str, Any]) -> list[str]:
    """The models ``salrt serve`` binds (all but TensorRT plans)."""
    return [n for n, e in index["models"].items() if e["platform"] == "onnxruntime_onnx"]


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
            if client.is_server_ready() and all(client.is_model_ready(m) for m in _served_models(repository, index)):
                return served
        except Exception:  # not listening yet
            pass
        time.sleep(0.3)
    served.stop(kill=True)
    raise SalrtError(f"salrt serve was not ready within {timeout_s:g} s")
