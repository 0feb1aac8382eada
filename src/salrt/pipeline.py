"""Library-level assembly: one call builds what a run needs, for every entry point.

``salrt.pipeline.load("mubic", checkpoint=..., backend="onnxruntime", export_dir=..., device=...)``
gives a :class:`Pipeline`: the backend (a loaded model behind the torch backends, or an export
behind onnxruntime/TensorRT), the model's input contract, and the condition source (captions for
text-conditioned models). The CLI, ``salrt bench``, ``salrt eval``, ``salrt.runtime.stream`` and the
C embedding all build their runs with it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from salrt.errors import SalrtError, UsageError, require
from salrt.io.contract import InputContract

log = logging.getLogger("salrt.pipeline")


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """A ready backend, the clips it takes, and the per-clip conditions."""

    backend: Any
    contract: InputContract
    captions: Any = None  # salrt.captions.Captions, or None (a text model then runs its AV variant)
    model: Any = None  # the torch model behind a torch backend (None for exports)


def load_weights(
    model: str = "diffsal",
    *,
    checkpoint: str | None = None,
    random_weights: bool = False,
    config: Any = "paper",
    device: str = "cpu",
    backbones: dict[str, str] | None = None,
    seed: int = 0,
) -> Any:
    """A model in eval mode with its weights (refused without a checkpoint unless ``random_weights``:
    maps from untrained weights are meaningless), backbones loaded over them, gradients off."""
    require("torch", "the torch backend")
    import salrt

    if checkpoint is None and not random_weights:
        raise UsageError(
            "no --checkpoint given: maps from untrained weights are meaningless (pass --random-weights for a smoke run)"
        )
    m = salrt.load_model(model, checkpoint=checkpoint, device=device, config=config)
    if checkpoint is None:
        from salrt.models.synthetic import load_synthetic_weights

        load_synthetic_weights(m, seed)
    if backbones:
        from salrt.models import load_backbone

        for name, path in backbones.items():
            load_backbone(m, name, path)
    return m.eval()  # parameters are frozen by load_model: no autograd graph is built (no global switch)


def load(
    model: str = "diffsal",
    *,
    checkpoint: str | None = None,
    random_weights: bool = False,
    config: Any = "paper",
    backend: str = "torch",
    export_dir: str | None = None,
    device: str = "cpu",
    kernels: str | None = None,
    captions: str | None = None,
    bpe: str | None = None,
    backbones: dict[str, str] | None = None,
    seed: int = 0,
    url: str | None = None,
    triton_model: str | None = None,
    timeout_s: float = 10.0,
    retries: int = 3,
    precision: str | None = None,
) -> Pipeline:
    """Build a :class:`Pipeline`. ``kernels``: ``"triton"``, ``"torch"`` or None (the model's Triton
    kernels on CUDA when it has any); ``captions``/``bpe``: a captions file or folder and CLIP's BPE
    merges for a text-conditioned model; ``url``/``triton_model``/``timeout_s``/``retries``: a
    Triton server (``backend="triton"``; its model defaults to ``model``); ``precision``: ``fp32``,
    ``bf16`` or ``fp16`` (None: fp32, or the export's): torch casts the weights, OpenVINO takes it as
    its hint, the other backends must match their export (:func:`salrt.backends.load_backend`)."""
    from salrt.backends import BACKENDS, load_backend, pick_backend, precision_problem

    if backend not in BACKENDS:
        raise UsageError(f"unknown backend {backend!r}: {', '.join(BACKENDS)}")
    if backend == "auto":
        backend = pick_backend(device, export_dir, url)
    problem = precision_problem(backend, precision, device) if precision else None
    if problem:  # before loading weights (an unknown precision too): a refusal costs nothing
        raise UsageError(f"--precision {precision} with --backend {backend}: {problem}")
    net = None
    if backend == "triton":
        b = load_backend(
            backend,
            url=url,
            triton_model=triton_model or model,
            export_dir=export_dir,
            timeout_s=timeout_s,
            retries=retries,
            precision=precision,
        )
        contract = InputContract.from_manifest(b.manifest)
    elif backend in ("onnxruntime", "openvino", "tensorrt"):
        if not export_dir:
            raise UsageError(f"--backend {backend} needs --export-dir (made by salrt export)")
        b = load_backend(backend, export_dir=export_dir, device=device, precision=precision)
        contract = InputContract.from_manifest(b.manifest)
    else:
        net = load_weights(
            model,
            checkpoint=checkpoint,
            random_weights=random_weights,
            config=config,
            device=device,
            backbones=backbones,
            seed=seed,
        )
        if precision and precision != "fp32":
            import torch

            net = net.to({"bf16": torch.bfloat16, "fp16": torch.float16}[precision])  # our own fresh copy
        on_cuda = str(device).startswith("cuda")
        if kernels is None:
            kernels = "triton" if on_cuda and net.triton_kernels() else "torch"
        if kernels == "triton":
            from salrt.kernels import enable

            if not on_cuda and os.environ.get("TRITON_INTERPRET") != "1":
                raise UsageError(
                    "--kernels triton needs --device cuda (or TRITON_INTERPRET=1 to run them interpreted on CPU)"
                )
            enable(net, force=not on_cuda)
        elif kernels != "torch":
            raise UsageError(f"unknown kernels {kernels!r}: triton or torch")
        b = load_backend(backend, model=net, precision=precision)
        contract = InputContract.of(net.config)
    return Pipeline(b, contract, conditions_for(contract, captions, bpe, model), net)


def conditions_for(contract: InputContract, captions: str | None, bpe: str | None, model: str) -> Any:
    """The caption source of a text-conditioned model (None: its AV variant, with a warning)."""
    if not contract.text_context:
        if captions:
            raise UsageError(f"--captions: model {model} takes no text")
        return None
    if not captions:
        log.warning("%s got no --captions; running its audio-visual (AV) variant", model)
        return None
    if not bpe:
        raise UsageError("--captions needs --bpe FILE: CLIP's BPE merges (bpe_simple_vocab_16e6.txt.gz or merges.txt)")
    from salrt.captions import Captions
    from salrt.models.clip_text import CLIPTokenizer

    try:
        return Captions(captions, CLIPTokenizer(bpe, contract.text_context), contract.text_context)
    except OSError as exc:
        raise SalrtError(f"{captions}: {exc}") from None
