"""Execution backends in one registry; each is a self-describing :class:`~salrt.backends.base.Backend`
subclass in its own module (see the modules for what each runs on and needs).

- :func:`names` / :func:`get`: the registered backends;
- :func:`resolve`: the one place ``"auto"`` is decided (the fastest exact path for a spec on this machine);
- adding a backend: its module here, with ``@register`` on its class, and its module name in
  ``_MODULES``; nothing else in salrt names backends.
"""

from __future__ import annotations

import importlib
from typing import Any

from salrt.backends.base import Backend
from salrt.errors import MissingDependency, UsageError

__all__ = ["Backend", "describe", "for_format", "for_model", "get", "names", "register", "resolve"]

# the modules that define backends (imported on first use; each imports its own library lazily)
_MODULES = ("torch_backend", "onnxruntime_backend", "openvino_backend", "tensorrt_backend", "triton_backend")
_REGISTRY: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Class decorator: add ``cls`` to the registry under ``cls.name``."""
    if not cls.name or cls.name == "auto":
        raise ValueError(f"a backend needs a name other than 'auto', got {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _registry() -> dict[str, type[Backend]]:
    for m in _MODULES:
        importlib.import_module(f"salrt.backends.{m}")
    return _REGISTRY


def names() -> list[str]:
    """Registered backend names, in registration order."""
    return list(_registry())


def get(name: str) -> type[Backend]:
    """The backend class registered as ``name``."""
    reg = _registry()
    if name not in reg:
        raise UsageError(f"unknown backend {name!r}: auto, {', '.join(reg)}")
    return reg[name]


def resolve(name: str, device: str, export_dir: str | None, url: str | None, can_export: bool) -> type[Backend]:
    """The backend class for ``name``; ``"auto"``: the installed backend that ranks highest for
    ``device``, an existing ``export_dir``, a server ``url``, and whether an export can be made into
    the cache (:meth:`Backend.auto_rank`)."""
    if name != "auto":
        return get(name)
    export = None
    if export_dir:
        from salrt.export.manifest import read_manifest

        export = read_manifest(export_dir)
    ranked: list[tuple[int, type[Backend]]] = []
    for cls in _registry().values():
        if cls.auto_choice and cls.installed() and cls.runs_on(device):
            rank = cls.auto_rank(device, export, url, can_export)
            if rank is not None:
                ranked.append((rank, cls))
    if not ranked:
        here = [c for c in _registry().values() if c.auto_choice and c.runs_on(device)]
        missing = [f"{c.name} needs {c.library}" for c in here if not c.installed()]
        wants = [
            f"{c.name} needs {'an export' if c.needs_export else 'a server url' if c.needs_server else 'weights'}"
            for c in here
            if c.installed()
        ]
        text = f"no backend can run on {device} with what was given ({'; '.join(missing + wants)})"
        if missing:  # a missing package, named with its extra: exit 1 as every missing dependency
            raise MissingDependency(f"{text}: pip install 'salrt[torch]' for the model's own weights")
        raise UsageError(text)
    return max(ranked, key=lambda r: r[0])[1]


def for_format(export_format: str) -> type[Backend] | None:
    """The backend whose engines an export ``--format`` builds over the graphs (None: graphs only)."""
    return next((c for c in _registry().values() if c.export_format == export_format), None)


def for_model(model: Any) -> Backend:
    """The backend ``auto`` runs a loaded torch ``model`` on when there is no export (eager)."""
    device = str(next(model.parameters()).device)
    cls = resolve("auto", device, None, None, can_export=False)
    return cls(model)  # type: ignore[call-arg]


def describe() -> list[dict[str, Any]]:
    """One row per backend: what it needs and runs on (``salrt info --backends``, docs)."""
    return [
        {
            "name": c.name,
            "installed": c.installed(),
            "library": c.library,
            "needs": "weights" if c.needs_weights else "server" if c.needs_server else "export",
            "devices": list(c.devices),
            "precision": "chosen at load" if c.precision_at_load else "the export's",
            "auto": c.auto_choice,
        }
        for c in _registry().values()
    ]
