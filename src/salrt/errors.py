"""Exceptions with messages meant for users (the CLI prints them as one line).

The CLI maps them to exit codes: :class:`UsageError` (a bad option or argument) exits 2,
every other :class:`SalrtError` (an input, weights file or output that fails at run time) exits 1.
Anything else is a bug and is shown as one.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any


class SalrtError(Exception):
    """Base class of salrt's user-facing errors."""


class UsageError(SalrtError, ValueError):
    """A bad command-line option or API argument (exit code 2)."""


class SpecError(UsageError):
    """A :class:`salrt.spec.RunSpec` field with a value that cannot work: ``field`` names it. ``reason`` may
    name fields as ``{field}`` placeholders: the library's message shows the field names, the CLI's
    (:meth:`render`) the flags."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(self.render(lambda name: name))

    def render(self, name_of: Any) -> str:
        """The message with each field named by ``name_of(field)`` (the CLI passes its flags)."""

        own = self.field

        class Names(dict):
            def __missing__(self, key: str) -> str:
                return str(name_of(own if key == "field" else key))

        text = self.reason.format_map(Names())
        return text if "{field}" in self.reason else f"{name_of(self.field)}: {text}"


class CheckpointError(SalrtError, ValueError):
    """A weights file that is missing, unreadable, or does not match the model."""


class MediaError(SalrtError):
    """An input that cannot be opened or decoded, or an unsupported input option."""


class ExportError(SalrtError):
    """An export or its validation failed."""


class TensorRTError(SalrtError):
    """A TensorRT engine build or run failed."""


class RemoteError(SalrtError):
    """A model server (Triton) that cannot be reached, fails or times out after the retries: the
    runtime fails the inputs whose clips it could not sample and goes on with the others."""


class EvalError(SalrtError):
    """Missing, unreadable or mismatched evaluation data."""


class MissingDependency(SalrtError, ImportError):
    """An optional package needed by the requested feature is not installed."""


# module -> the extra of pyproject.toml that installs it
_EXTRAS = {
    "onnxruntime": "onnx",
    "tensorrt": "tensorrt",
    "torch": "torch",
    "safetensors": "torch",
    "onnx": "export",
    "tritonclient": "triton",
    "pytriton": "serve",
    "ray": "ray",
    "fsspec": "ray",
    "onnxsim": "export",
    "av": "core",
    "skimage": "eval",
    "PIL": "eval",
    "scipy": "eval",
    "matplotlib": "bench",
    "triton": "kernels",
    "resampy": "reference-audio",
    "regex": "text",
    "cuda": "tensorrt",
    "bjontegaard": "rd",
    "imageio_ffmpeg": "rd",
    "pycuda": "tensorrt-pycuda",
    "ftfy": "text",
}


def one_line(exc: BaseException, limit: int = 500) -> str:
    """An exception's message on one line (whitespace collapsed), cut to ``limit`` characters."""
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (a finder that refuses the name
    counts as not installed)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, feature: str) -> Any:
    """Import ``module`` or raise one clear message naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = _EXTRAS.get(module.split(".")[0], module)
        raise MissingDependency(f"{feature} needs the '{module}' package: pip install 'salrt[{extra}]'") from None
