"""Triton kernels for the hot parts of the torch backend (``enable(model)`` switches them on)."""

from __future__ import annotations

from typing import Any

from salrt.errors import SalrtError


def enable(model: Any) -> None:
    """Use the Triton kernels in ``model`` (CUDA only)."""
    raise SalrtError("the Triton kernels are not implemented yet; use --kernels torch")
