"""A client of NVIDIA Triton Inference Server serving a salrt model repository
(``salrt export --format triton``): decoding stays here, the graphs run behind the server.

``TritonBackend("http://host:8000")`` (or ``grpc://host:8001``) reads the export's manifest from
the servable model's ``salrt_manifest`` parameter (or a local copy, ``manifest=``), checks that
the server's models take exactly the export's inputs, and samples through :class:`GraphBackend`:
one request per clip batch to the servable (the unrolled sampler or the predictor), or the
encoders + denoiser models through salrt's DDIM loop for another step count. A request that
fails or times out is retried ``retries`` times with exponential backoff, then raised as
:class:`salrt.errors.RemoteError` (the runtime ends that input and goes on with the others).
Imports neither torch nor model code.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from salrt.backends import register
from salrt.backends.graph import GraphBackend, NumpyArrays
from salrt.errors import RemoteError, SalrtError, SpecError, UsageError, one_line, require
from salrt.export.window import FRAMES, to_pixels

_DTYPES = {"float32": "FP32", "float16": "FP16", "int64": "INT64", "uint8": "UINT8"}


def parse_url(url: str) -> tuple[str, str]:
    """(protocol, host:port) from ``http://host:port``, ``grpc://host:port`` or ``host:port`` (HTTP)."""
    u = urlparse(url if "://" in url else f"http://{url}")
    if u.scheme not in ("http", "grpc") or not u.hostname:
        raise UsageError(f"--url {url!r}: give http://HOST:PORT or grpc://HOST:PORT")
    port = u.port or (8000 if u.scheme == "http" else 8001)
    return u.scheme, f"{u.hostname}:{port}"


@register
class TritonBackend(NumpyArrays, GraphBackend):
    """Runs an export's graphs on a Triton server (see the module docstring)."""

    name = "triton"
    library = "tritonclient"
    needs_export = False  # the server holds it; a local export_dir is only a copy of its manifest
    needs_server = True
    devices = ("cpu", "cuda")  # the client's device: the server chooses its own

    @classmethod
    def auto_rank(cls, device: str, export: dict[str, Any] | None, url: str | None, can_export: bool) -> int | None:
        return 100 if url else None

    @classmethod
    def open(cls, spec: Any, *, model: Any = None, export_dir: str | None = None, **options: Any) -> TritonBackend:
        if not spec.url:
            raise SpecError(
                "url", f"{{backend}} {cls.name} runs on a server: give {{field}} (http://HOST:8000 or grpc://HOST:8001)"
            )
        return cls(
            spec.url,
            spec.triton_model or spec.model,
            manifest=export_dir,
            timeout_s=spec.timeout_s,
            retries=spec.retries,
            send=spec.send,
        )

    def __init__(
        self,
        url: str,
        model: str | None = None,
        *,
        manifest: str | Path | dict[str, Any] | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        send: str = "frames",
    ) -> None:
        self.url = url
        self.protocol, self.address = parse_url(url)
        self.timeout_s, self.retries, self.backoff_s = float(timeout_s), int(retries), float(backoff_s)
        if self.protocol == "http":
            mod = require("tritonclient.http", "the Triton backend")
            self.client = mod.InferenceServerClient(
                self.address, connection_timeout=self.timeout_s, network_timeout=self.timeout_s
            )
        else:
            mod = require("tritonclient.grpc", "the Triton backend")
            self.client = mod.InferenceServerClient(self.address)
        self._mod = mod
        self._wait_live()
        self.servable = model or self._only_salrt_model()
        self.manifest = self._manifest(manifest)
        from salrt.export.triton import model_names, servable_graph

        self.models = {g: name for name, (g, platform) in model_names(self.manifest, False).items()}
        available = self._check_models()
        self.float = np.float16 if self.manifest["precision"] == "fp16" else np.float32
        self._setup(available, self.float)
        self.retried = 0  # requests that succeeded after a retry (reported in run statistics)
        self.sent = self.received = self.requests = 0  # bytes of tensors on the wire, requests
        self.servable_graph = servable_graph(self.manifest)
        self.restarts = 0  # streams sent whole again because the server had lost their window
        self.window = self._window_model() if send == "frames" else None
        self.streams: dict[int, _Stream] = {}  # the frames-once path: what the server holds per stream
        self._client_id = (
            int.from_bytes(os.urandom(5), "little") << 16
        )  # sequence ids unique per client (< 2**56: gRPC takes int64)

    # -- connection and discovery ---------------------------------------------------------------
    def _wait_live(self) -> None:
        """The server answers within ``timeout_s``, or one clear error."""
        deadline = time.monotonic() + self.timeout_s
        last: Exception | None = None
        while True:
            try:
                if self._live():
                    return
            except Exception as exc:
                last = exc
            if time.monotonic() >= deadline:
                why = f": {_reason(last)}" if last else " (not live)"
                raise RemoteError(f"cannot reach a Triton server at {self.url} within {self.timeout_s:g} s{why}")
            time.sleep(min(0.25, max(0.0, deadline - time.monotonic())))

    def _live(self) -> bool:
        if self.protocol == "grpc":
            return bool(self.client.is_server_live(client_timeout=self.timeout_s))
        return bool(self.client.is_server_live())

    def _only_salrt_model(self) -> str:
        index = self._call_server(lambda: self.client.get_model_repository_index())
        rows = index if isinstance(index, list) else [{"name": m.name} for m in index.models]
        names = sorted({r["name"] for r in rows})
        found = [n for n in names if self._server_manifest(n) is not None]
        if len(found) != 1:
            raise UsageError(
                f"{self.url}: "
                + (f"several salrt models ({', '.join(found)})" if found else "no model with a salrt manifest")
                + ": name one with --triton-model"
            )
        return found[0]

    def _model_config(self, name: str) -> dict[str, Any]:
        """The model's config as a dict (HTTP and gRPC alike)."""
        if self.protocol == "grpc":
            cfg = self.client.get_model_config(name, as_json=True, client_timeout=self.timeout_s)
            return cfg.get("config", cfg)
        return self.client.get_model_config(name)

    def _server_manifest(self, name: str) -> dict[str, Any] | None:
        try:
            cfg = self._model_config(name)
        except self._mod_exc():
            return None
        params = cfg.get("parameters") or {}
        text = (params.get("salrt_manifest") or {}).get("string_value")
        return json.loads(text) if text else None

    def _manifest(self, given: str | Path | dict[str, Any] | None) -> dict[str, Any]:
        if isinstance(given, dict):
            return given
        if given is not None:
            from salrt.export.manifest import read_manifest

            return read_manifest(given)
        m = self._call_server(lambda: self._server_manifest(self.servable))
        if m is None:
            raise SalrtError(
                f"{self.url}: model {self.servable!r} carries no salrt manifest (not from salrt export --format triton?): "
                "pass the export's folder with --export-dir"
            )
        return m

    def _check_models(self) -> set[str]:
        """The graphs the server has, each checked against the export's inputs and outputs."""
        available = set()
        for graph, name in self.models.items():
            try:
                ready = self._call_server(lambda n=name: self.client.is_model_ready(n))
            except RemoteError:
                ready = False
            if not ready:
                if name == self.servable:
                    raise SalrtError(f"{self.url}: model {name!r} is not ready on the server")
                continue  # the encoders and denoiser are optional (other step counts need them)
            meta = self._call_server(lambda n=name: self._metadata(n))
            want = self.manifest["graphs"][graph]
            for side in ("inputs", "outputs"):
                got = {t["name"]: t["datatype"] for t in meta[side]}
                exp = {k: _DTYPES[v["dtype"]] for k, v in want[side].items()}
                if got != exp:
                    raise SalrtError(f"{self.url}: model {name!r} has {side} {got}, the export's {graph} graph {exp}")
            available.add(graph)
        return available

    def _metadata(self, name: str) -> dict[str, Any]:
        if self.protocol == "grpc":
            return self.client.get_model_metadata(name, as_json=True, client_timeout=self.timeout_s)
        return self.client.get_model_metadata(name)

    def _mod_exc(self) -> type[Exception]:
        from tritonclient.utils import InferenceServerException

        return InferenceServerException

    def _window_model(self) -> dict[str, Any] | None:
        """The frames-once model's record (manifest ``window``) when the server has it ready."""
        w = self.manifest.get("window")
        if not w:
            return None
        try:
            ready = self._call_server(lambda: self.client.is_model_ready(w["model"]))
        except RemoteError:
            ready = False
        if not ready:
            import logging

            logging.getLogger("salrt").warning(
                "%s: the frames-once model %r is not ready: clips are sent whole", self.url, w["model"]
            )
            return None
        meta = self._call_server(lambda: self._metadata(w["model"]))
        got = {t["name"]: t["datatype"] for t in meta["inputs"]}
        if got.get(FRAMES) != "UINT8":
            raise SalrtError(f"{self.url}: model {w['model']!r} takes no uint8 {FRAMES!r} input (has {got})")
        return {**w, "mean": np.asarray(w["mean"], np.float32), "std": np.asarray(w["std"], np.float32)}

    # -- the frames-once path ------------------------------------------------------------------
    def sample_streams(self, streams: list[int], video: Any, audio: Any, **options: Any) -> Any:
        """Each row's stream gets only the frames the server's window for it lacks (the whole
        window when it starts, after a gap or when the server lost it), as uint8 pixels; clips
        whose video is not made of 8-bit pixels, other step counts and ``send="clips"`` go whole."""
        steps, noise = options.get("steps", self.steps), options.get("noise")
        w = self.window
        if w is None or noise is None or steps != self.steps or options.get("seed") is not None:
            return self.sample(video, audio, **options)
        pixels = [to_pixels(v, w["mean"], w["std"]) for v in video]
        if any(p is None for p in pixels):
            return self.sample(video, audio, **options)
        cond = {k: self._int(v) for k, v in options.items() if k not in ("steps", "noise", "seed")}
        maps = []
        for r, (stream, px) in enumerate(zip(streams, pixels)):
            feed = {"audio": self._float(audio[r : r + 1]), "noise": self._float(noise[r : r + 1])}
            feed.update({k: v[r : r + 1] for k, v in cond.items()})
            maps.append(self._window_clip(stream, px, feed))
        return np.concatenate(maps)

    def _window_clip(self, stream: int, px: np.ndarray, feed: dict[str, np.ndarray]) -> np.ndarray:
        st = self.streams.get(stream)
        new = overlap_frames(st.pixels, px) if st is not None and st.pixels is not None else None
        if st is None:
            st = self.streams[stream] = _Stream(self._client_id + len(self.streams) + 1)
        if new is not None:
            try:
                return self._window_request(st, px[len(px) - new :], feed, start=False, px=px)
            except _SequenceLost:  # the server restarted or dropped it after idling: send it all again
                self.restarts += 1
        return self._window_request(st, px, feed, start=True, px=px)

    def _window_request(
        self,
        st: _Stream,
        frames: np.ndarray,
        feed: dict[str, np.ndarray],
        *,
        start: bool,
        px: np.ndarray | None,
        end: bool = False,
    ) -> np.ndarray:
        name = self.window["model"]
        out_name = self.graph_outputs[self.servable_graph][0]
        values = {FRAMES: np.ascontiguousarray(frames[None]), **feed}

        def request() -> np.ndarray:
            params = {"salrt_stream": str(st.sequence), "salrt_start": bool(start), "salrt_end": bool(end)}
            try:
                return self._infer(
                    name, values, [out_name], parameters=params,
                    sequence_id=st.sequence, sequence_start=start, sequence_end=end,
                )[out_name]  # fmt: skip
            except self._mod_exc() as exc:
                if not start and _lost_sequence(exc):
                    raise _SequenceLost(str(exc)) from None
                raise

        out = self._call_server(request)
        st.pixels = None if end else px
        return out

    def end_stream(self, stream: int) -> None:
        """Release the stream's window on the server now (a last one-frame request with the end
        flag: its map is discarded), not after the server's idle timeout."""
        st = self.streams.pop(stream, None)
        if st is None or st.pixels is None or self.window is None:
            return
        ins = self.manifest["graphs"][self.servable_graph]["inputs"]
        feed = {
            k: np.zeros((1, *v["shape"][1:]), np.int64 if v["dtype"] == "int64" else self.float)
            for k, v in ins.items()
            if k != "video"
        }
        try:
            self._window_request(st, st.pixels[-1:], feed, start=False, px=None, end=True)
        except SalrtError:  # already gone (_SequenceLost included): the server dropped it on its own
            pass

    def wire_bytes(self) -> dict[str, int]:
        return {"sent": self.sent, "received": self.received, "requests": self.requests}

    # -- requests ---------------------------------------------------------------------------
    def _call_server(self, fn: Any) -> Any:
        """``fn()`` with the retry policy; the last failure as :class:`RemoteError`."""
        for attempt in range(self.retries + 1):
            try:
                out = fn()
                if attempt:
                    self.retried += 1
                return out
            except Exception as exc:  # server errors, timeouts, refused or reset connections
                if isinstance(exc, (SalrtError, KeyboardInterrupt)):
                    raise
                if attempt >= self.retries:
                    raise RemoteError(
                        f"Triton server {self.url} failed after {self.retries + 1} attempt(s): {_reason(exc)}"
                    ) from None
                time.sleep(self.backoff_s * 2**attempt)
        raise AssertionError("unreachable")

    def _run(self, graph: str, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        name = self.models.get(graph)
        if graph not in self.available or name is None:
            raise SalrtError(f"{self.url}: the server has no model for the {graph} graph")
        outputs = self.graph_outputs[graph]

        # per-item scalars travel as (B, 1)
        values = {k: v.reshape(len(v), 1) if v.ndim == 1 else v for k, v in feed.items()}
        return self._call_server(lambda: self._infer(name, values, outputs))

    def _infer(self, name: str, values: dict[str, np.ndarray], outputs: list[str], **extra: Any) -> dict[str, Any]:
        """One request to model ``name`` (both protocols); ``extra``: sequence flags, parameters.
        Counts the tensor bytes sent (each attempt) and received."""
        inputs = []
        self.requests += 1
        for k, v in values.items():
            self.sent += v.nbytes
            x = self._mod.InferInput(k, list(v.shape), _DTYPES[str(v.dtype)])
            x.set_data_from_numpy(np.ascontiguousarray(v))
            inputs.append(x)
        req = [self._mod.InferRequestedOutput(o) for o in outputs]
        if self.protocol == "grpc":
            res = self.client.infer(name, inputs, outputs=req, client_timeout=self.timeout_s, **extra)
        else:
            res = self.client.infer(name, inputs, outputs=req, timeout=int(self.timeout_s * 1e6), **extra)
        got = {o: res.as_numpy(o) for o in outputs}
        self.received += sum(v.nbytes for v in got.values())
        return got

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # already closed or never connected
            pass


class _Stream:
    """One stream of the frames-once path: its sequence id and the window the server holds."""

    def __init__(self, sequence: int) -> None:
        self.sequence = sequence
        self.pixels: np.ndarray | None = None  # (T, H, W, 3) uint8, None before the first request


class _SequenceLost(SalrtError):
    """The server holds no window for the stream (restarted, or released it after idling)."""


def _lost_sequence(exc: BaseException) -> bool:
    """Whether a server error says the stream's sequence is unknown there (Triton: a request
    without the START flag for a sequence it does not hold; salrt serve says the same)."""
    text = str(exc).lower()
    return "start flag" in text or "unknown stream" in text


def overlap_frames(held: np.ndarray, clip: np.ndarray) -> int | None:
    """How many frames at the end of ``clip`` (T, H, W, 3) are new when the server holds ``held``:
    the smallest ``k >= 1`` with ``held[k:] == clip[:T-k]`` (pixel for pixel), None when no shift
    matches (the stream jumped: dropped clips, a reconnect) and the whole window must go."""
    t = len(clip)
    if held.shape != clip.shape:
        return None
    for k in range(1, t):
        # a cheap first test (one frame) before the whole overlap is compared
        if np.array_equal(held[k], clip[0]) and np.array_equal(held[k:], clip[: t - k]):
            return k
    return None


def _reason(exc: BaseException | None) -> str:
    """One line for a failed request: a salrt error raised on the server (``salrt serve``, under
    PyTriton's traceback) by its own message, anything else by its first 300 characters."""
    if exc is None:
        return "unknown error"
    import re

    found = re.findall(r"salrt\.errors\.\w+: (.+?)(?:\\n|\n|$)", str(exc))
    return found[-1] if found else one_line(exc, 300) or type(exc).__name__
