"""Exports made once and reused: what ``--backend auto`` runs when no export was given.

An export is keyed by everything that decides its graphs: the model, its config (or the
checkpoint's own), the checkpoint's content (every file of a salrt checkpoint folder), synthetic
weights' seed, each backbone file's content, the graphs' precision, batch and unrolled steps, and
salrt's version. A change of any gives a new key (a new export); an entry whose manifest no longer
reads is made again. Two processes asking for the same key at once (Ray workers, two runs) take a
file lock: one exports, the other waits and reuses it; an export is written beside the cache and
renamed into place, so a reader never sees half of one.

The cache folder: ``cache_dir`` (a :class:`salrt.spec.RunSpec` field), else ``$SALRT_CACHE_DIR``,
else ``~/.cache/salrt``; exports live under ``<cache>/exports/<key>``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from salrt.errors import SalrtError

Log = Callable[[str], None]


def cache_root(cache_dir: str | None = None) -> Path:
    """The cache folder (see the module docstring)."""
    if cache_dir:
        return Path(cache_dir)
    env = os.environ.get("SALRT_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "salrt"


def content_digest(path: str | os.PathLike[str]) -> str:
    """sha256 over a file's bytes, or over a folder's files (relative names and bytes, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def export_key(
    *,
    model: str,
    config: str,
    checkpoint: str | None,
    seed: int | None,
    backbones: tuple[tuple[str, str], ...],
    precision: str,
    batch: str,
    steps: int,
    extra: str = "",
) -> str:
    """A short hash of what decides an export (``seed``: synthetic weights only; ``extra``: what a
    backend builds on top, e.g. TensorRT engines)."""
    from salrt import __version__

    parts = {
        "model": model.lower(),
        "config": config,
        "checkpoint": content_digest(checkpoint) if checkpoint else None,
        "seed": seed if checkpoint is None else None,
        "backbones": [(n, content_digest(f)) for n, f in backbones],
        "precision": precision,
        "batch": batch,
        "steps": steps,
        "extra": extra,
        "salrt": __version__,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def is_current(directory: Path) -> bool:
    """Whether ``directory`` holds an export this salrt reads."""
    from salrt.export.manifest import read_manifest

    try:
        read_manifest(directory)
    except SalrtError:
        return False
    return True


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def cached(
    key: str,
    make: Callable[[Path], Any],
    *,
    cache_dir: str | None = None,
    what: str = "the export",
    log: Log | None = None,
) -> tuple[Path, bool]:
    """The export under ``key``, made by ``make(folder)`` when absent or unreadable; returns the
    folder and whether it was made now. ``log`` says when the one-time cost is paid and how long
    it took."""
    root = cache_root(cache_dir) / "exports"
    final = root / key
    if is_current(final):
        return final, False
    with _locked(root / f"{key}.lock"):
        if is_current(final):  # another process made it while this one waited
            return final, False
        if log:
            log(f"exporting {what} once into {final} (later runs reuse it)")
        t0 = time.perf_counter()
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            make(tmp)
            if final.exists():
                shutil.rmtree(final)  # an unreadable older entry
            os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if log:
            log(f"exported {what} in {time.perf_counter() - t0:.1f} s (a one-time cost)")
    return final, True
