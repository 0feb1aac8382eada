"""``salrt info``: a model's parameters and cost (the papers' convention and full FLOPs), each
reading of an ambiguous paper, and the paper's own figures beside salrt's."""

from __future__ import annotations

import dataclasses
from typing import Any

from salrt.errors import UsageError, require


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What ``salrt info`` shows: the config, its cost report (:class:`salrt.cost.CostReport`),
    the paper's figures compared, and the cost of each reading (field -> value -> figures)."""

    model: str
    preset: str
    config: Any
    batch: int
    report: Any
    paper: list[dict[str, Any]]
    readings: dict[str, dict[str, dict[str, Any]]]

    def to_dict(self) -> dict[str, Any]:
        r = self.report
        return {
            "model": self.model,
            "config": self.config.to_dict(),
            "batch": self.batch,
            "steps": r.steps,
            "params": r.params,
            "params_total": sum(r.params.values()),
            "paper_convention": {"macs": r.paper_macs, "params": r.paper_params},
            "flops": r.flops,
            "flops_encoders": r.flops_encoders,
            "flops_per_clip": r.flops_per_clip,
            "paper_figures": self.paper,
            "readings": self.readings,
        }


def model_names() -> list[str]:
    require("torch", "the model registry")
    from salrt.models import MODELS

    return sorted(MODELS)


def model_info(
    model: str,
    preset: str = "paper",
    *,
    video_shape: tuple[int, ...] | None = None,
    audio_shape: tuple[int, ...] | None = None,
    steps: int = 4,
    batch: int = 1,
) -> ModelInfo:
    """Count ``model``'s cost at ``preset`` (or another clip shape) on meta tensors."""
    require("torch", "salrt info")
    from salrt.cost import cost_report, paper_comparison
    from salrt.models import MODELS

    name = model.lower()
    if name not in MODELS:
        raise UsageError(f"unknown model {model!r}; available: {', '.join(sorted(MODELS))}")
    cfg = MODELS[name][1].preset(preset)
    changes: dict[str, int] = {}
    if video_shape is not None:
        if len(video_shape) != 4 or video_shape[0] != 3:
            raise UsageError(f"video shape must be 3xTxHxW, got {'x'.join(map(str, video_shape))}")
        try:
            cfg = cfg.with_video_shape(*video_shape[1:])
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"unsupported input shape: {str(exc).splitlines()[0]}") from None
    if audio_shape is not None:
        if len(audio_shape) != 4 or audio_shape[0] != 1 or "audio_slices" not in cfg.to_dict():
            raise UsageError(f"audio shape must be 1xSxHxW for a log-mel model, got {'x'.join(map(str, audio_shape))}")
        changes.update(audio_slices=audio_shape[1], audio_height=audio_shape[2], audio_width=audio_shape[3])
    try:
        cfg = dataclasses.replace(cfg, **changes)
        report = cost_report(cfg, batch=batch, steps=steps, model=name)
    except (ValueError, RuntimeError) as exc:
        raise UsageError(f"unsupported input shape: {str(exc).splitlines()[0]}") from None
    paper = paper_comparison(name, report, batch, preset)
    return ModelInfo(name, preset, cfg, batch, report, paper, reading_costs(name, preset, cfg, report, batch, steps))


def reading_costs(
    model: str, preset: str, cfg: Any, report: Any, batch: int, steps: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """Cost of each reading the config offers of an ambiguous paper (``READINGS``), per field."""
    from salrt.cost import cost_report, paper_comparison

    out: dict[str, dict[str, dict[str, Any]]] = {}
    for field, values in type(cfg).READINGS.items():
        out[field] = {}
        for value in values:
            r = (
                report
                if getattr(cfg, field) == value
                else cost_report(dataclasses.replace(cfg, **{field: value}), batch=batch, steps=steps, model=model)
            )
            out[field][value] = {
                "params": float(sum(r.params.values())),
                "paper_params": r.paper_params,
                "paper_macs": r.paper_macs / batch,
                "paper_figures": paper_comparison(model, r, batch, preset),
            }
    return out
