"""``salrt demo``: a synthetic clip with a sounding object through the whole pipeline, and what it
shows: a side-by-side video (input | predicted map | ground truth) with a colour bar and a caption,
the CC against the ground truth beside a centre-bias baseline (chance level), and the CC again with
another clip's soundtrack (does the model listen?)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import SalrtError, UsageError
from salrt.io.imaging import colormap_jet, resize_map
from salrt.sinks.files import VideoFileSink, even_frame
from salrt.spec import RunSpec

_CAPTION_H = 28
_BAR_W = 56


def centre_bias(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A content-free centre-bias map (H, W) in 0..1: a Gaussian of ``sigma`` times the frame
    size around the centre, the usual chance-level reference for saliency scores."""
    from salrt.rd.baselines import centre_bias as prior

    return prior(shape, sigma)


def _heat(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map (any range) as a jet-coloured (H, W, 3) uint8 image of ``size``, scaled to its maximum."""

    m = np.asarray(m, np.float64)
    top = m.max()
    m = m / top if top > 0 else m
    return colormap_jet(resize_map(m.astype(np.float32), size))


def _text_strip(text: str, width: int, height: int) -> np.ndarray:
    """A black (height, width, 3) strip with ``text`` in white."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (width, height), (0, 0, 0))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=max(10, height - 12))
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        font = ImageFont.load_default()
    draw.text((6, 4), text, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def _colour_bar(height: int) -> np.ndarray:
    """A vertical jet colour bar (1 at the top, 0 at the bottom) with its two end labels."""
    from PIL import Image, ImageDraw

    grad = colormap_jet(np.linspace(1.0, 0.0, height - 24)[:, None].repeat(16, axis=1))
    img = Image.new("RGB", (_BAR_W, height), (0, 0, 0))
    img.paste(Image.fromarray(grad), (6, 12))
    draw = ImageDraw.Draw(img)
    draw.text((26, 8), "1", fill=(255, 255, 255))
    draw.text((26, height - 22), "0", fill=(255, 255, 255))
    return np.asarray(img)


def comparison_video(
    source: str | Path,
    predicted: np.ndarray,
    truth: np.ndarray,
    output: str | Path,
    caption: str,
    panel_height: int = 240,
) -> Path:
    """Write ``output``: every frame of ``source`` beside its predicted map and its ground truth
    (``predicted``, ``truth``: (N, h, w), one per frame), a colour bar and ``caption`` on top,
    with the source's audio."""
    import av

    output = Path(output)
    with av.open(str(source)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate or 25)
        sink = VideoFileSink(output, fps, str(source))
        try:
            t0 = None
            for i, f in enumerate(c.decode(vs)):
                if i >= len(predicted):
                    break
                h = panel_height
                w = int(round(f.width * h / f.height))
                frame = f.reformat(width=w, height=h, format="rgb24").to_ndarray()
                row = np.concatenate(
                    [frame, _heat(predicted[i], (h, w)), _heat(truth[min(i, len(truth) - 1)], (h, w)), _colour_bar(h)],
                    axis=1,
                )
                full = even_frame(np.concatenate([_text_strip(caption, row.shape[1], _CAPTION_H), row], axis=0))
                if sink.stream is None:
                    sink._add_video("libx264", full.shape[0], full.shape[1])
                t0 = f.time if t0 is None else t0
                sink._mux(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(full), format="rgb24"),
                    (f.time or 0.0) - (t0 or 0.0),
                )
        finally:
            sink.close()
    return output


def _bundled() -> dict[str, Any]:
    """``demo_model/bundled.json``: model -> its folder and config preset (read without torch)."""
    import json

    try:
        data = json.loads((Path(__file__).parent.parent / "demo_model" / "bundled.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def bundled_checkpoint(model: str = "diffsal") -> Path | None:
    """The demo model of ``model`` shipped in the package, or None: the tiny DiffSal trained by
    ``salrt train`` on the synthetic sounding-object task (``demo_model/``), and the real-time
    student distilled from it (``demo_model/student/``); ``demo_model/TRAINING.md`` says how."""
    entry = _bundled().get(model)
    if not isinstance(entry, dict):
        return None
    folder = (Path(__file__).parent.parent / "demo_model" / str(entry.get("folder", ""))).resolve()
    return folder if (folder / "model.safetensors").is_file() else None


def bundled_config(model: str = "diffsal") -> str | None:
    """The config preset of the bundled ``model`` (what ``--config`` must say), or None."""
    entry = _bundled().get(model)
    return str(entry["config"]) if isinstance(entry, dict) and "config" in entry and bundled_checkpoint(model) else None


def bundled_export(model: str = "diffsal") -> Path | None:
    """The bundled ``model``'s ONNX export (``onnx/`` beside its weights, made by ``salrt export``
    from them; ``TRAINING.md`` has the command), which runs without torch, or None."""
    checkpoint = bundled_checkpoint(model)
    d = None if checkpoint is None else checkpoint / "onnx"
    return d if d is not None and (d / "manifest.json").is_file() else None


def _bundled_graphs(spec: RunSpec) -> RunSpec:
    """``spec`` on the bundled export instead of the bundled weights where that is the same model
    and ``auto`` would have exported it anyway (CPU, fp32): no torch needed, no export to wait for.
    A backend named by the user, a GPU or another precision keep the weights."""
    export, bundled = bundled_export(spec.model), bundled_checkpoint(spec.model)
    same = bundled is not None and spec.checkpoint == str(bundled) and not spec.backbones
    plain = (
        spec.backend == "auto" and spec.export_dir is None and spec.device == "cpu" and spec.precision in (None, "fp32")
    )
    if export is None or not (same and plain):
        return spec
    return spec.replace(checkpoint=None, export_dir=str(export))


def bundled_spec(spec: RunSpec) -> tuple[RunSpec, str]:
    """``spec`` with the bundled demo model (its preset, weights and ONNX graphs) where it names
    no weights (no checkpoint, no random weights), else random weights for a model without one;
    and a description of the weights."""
    if spec.config is None:  # the bundled model's own preset, else the small one
        spec = spec.replace(config=bundled_config(spec.model) or "tiny")
    if spec.checkpoint is None and not spec.random_weights:
        bundled = bundled_checkpoint(spec.model)
        preset = bundled_config(spec.model)
        if bundled is not None and spec.config != preset:
            raise UsageError(
                f"the bundled {spec.model} demo model has the {preset!r} config: use config {preset}, or pass a checkpoint"
            )
        spec = spec.replace(checkpoint=None if bundled is None else str(bundled), random_weights=bundled is None)
    weights = (
        "random weights"
        if spec.checkpoint is None
        else (
            "the bundled demo model" if spec.checkpoint == str(bundled_checkpoint(spec.model)) else str(spec.checkpoint)
        )
    )
    return _bundled_graphs(spec), weights


def _decoded(contract: Any, path: Path, stride: int) -> list[Any]:
    from salrt.io import open_media

    return list(open_media(str(path), stride=stride, **contract.media_options()))


def map_ccs(
    backend: Any, contract: Any, clips: list[Any], audio_of: list[Any], gt: np.ndarray, steps: int = 4, seed: int = 0
) -> list:
    """CC against ``gt`` (N, H, W) of the maps ``backend`` (any backend) makes from ``clips``' video
    with the audio of ``audio_of`` (the same clips, or another video's clips of the same frames)."""
    from salrt import metrics
    from salrt.backends.base import to_numpy

    n = min(len(clips), len(audio_of))
    video = np.stack([c.video for c in clips[:n]])
    audio = np.stack([c.audio for c in audio_of[:n]])
    if getattr(backend, "streaming", False):  # one frame at a time, its state carried (clips in order)
        maps = backend.step_through(video, audio)
    else:
        noise = np.random.default_rng(seed).standard_normal((n, 1, *video.shape[-2:])).astype(np.float32)
        cond = {"text": np.zeros((n, contract.text_context), np.int64)} if contract.text_context else {}
        maps = np.asarray(to_numpy(backend.sample(video, audio, steps=steps, noise=noise, **cond)), np.float32)[:, 0]
    size = gt.shape[1:]  # to the ground truth's size as salrt run writes maps (Pillow; no scikit-image needed)
    return [metrics.cc(resize_map(np.clip(m, 0, 1), size), gt[c.target_index]) for m, c in zip(maps, clips[:n])]


def sounding_object_scores(
    model: Any, n_clips: int = 16, seed: int = 10_000, seconds: float = 2.0, stride: int = 4, steps: int = 4
) -> dict[str, Any]:
    """How well ``model`` solves the synthetic sounding-object task on held-out clips (seeds from
    ``seed`` on, never used for training), and how much it relies on the sound: mean CC against the
    ground truth with each clip's own audio, and with the audio of the next clip (swapped). A model
    that ignores the sound scores the same both ways. Half the clips have 22.05 kHz mono audio,
    half 44.1 kHz stereo."""
    import tempfile

    from salrt.backends import for_model
    from salrt.io import make_clip
    from salrt.io.contract import InputContract

    backend, contract = for_model(model), InputContract.of(model.config)

    with tempfile.TemporaryDirectory() as tmp:
        formats = ((22050, 1), (44100, 2))  # as the training set: both audio formats, alternating
        made = [
            make_clip(
                Path(tmp) / f"held_out_{k}.mp4",
                seed=seed + k,
                seconds=seconds,
                sample_rate=formats[k % 2][0],
                channels=formats[k % 2][1],
            )
            for k in range(n_clips)
        ]
        clips = [_decoded(contract, c.path, stride) for c in made]
    own, swapped = [], []
    for k in range(n_clips):
        own += map_ccs(backend, contract, clips[k], clips[k], made[k].saliency, steps, seed=k)
        swapped += map_ccs(backend, contract, clips[k], clips[(k + 1) % n_clips], made[k].saliency, steps, seed=k)
    return {
        "clips": n_clips,
        "maps": len(own),
        "cc": float(np.nanmean(own)),
        "cc_audio_swapped": float(np.nanmean(swapped)),
        "drop": float(np.nanmean(own) - np.nanmean(swapped)),
        "seed": seed,
        "stride": stride,
        "steps": steps,
    }


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """What the demo measured and wrote."""

    clip: Path
    frames: int
    weights: str  # "random weights", "the bundled demo model" or the checkpoint's path
    stats: Any  # the run's salrt.runtime.RunStats
    cc: float  # mean CC of the maps against the synthetic ground truth
    cc_centre_bias: float  # a content-free centre-bias map on the same clip (chance level)
    cc_own_audio: float  # every ``stride_check``-th frame, the clip's own soundtrack
    cc_swapped_audio: float  # the same frames with another clip's soundtrack
    stride_check: int
    comparison: Path  # input | predicted | ground truth
    overlay: Path


def demo(
    output: str | Path,
    spec: RunSpec,
    *,
    seconds: float = 2.0,
    stride: int = 1,
    batch: int = 4,
    progress: Callable[[int], None] | None = None,
    notes: Callable[[str], None] | None = None,
    status: Callable[[str], Any] | None = None,
) -> DemoResult:
    """Write a synthetic clip into ``output``, run ``spec`` on it (no checkpoint and no random
    weights: the bundled demo model of ``spec.model``; ``spec.config`` None: its preset), and
    measure what :class:`DemoResult` holds."""
    import contextlib

    from salrt import metrics
    from salrt.app.run import RunSettings, run
    from salrt.io import make_clip

    show = status or (lambda text: contextlib.nullcontext())
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    spec, weights = bundled_spec(spec)
    clip = make_clip(out / "demo_input.mp4", seed=spec.seed, seconds=seconds)
    if notes:
        notes(f"wrote a synthetic clip with a sounding object: {clip.path} ({clip.n_frames} frames)")
    from salrt import pipeline

    pipe = pipeline.build(spec, progress=notes)  # one build: the run and the soundtrack check share it
    settings = RunSettings(outputs=("overlay", "png", "npz"), stride=stride, batch=batch, source_size=True)
    stats = run(pipe, [str(clip.path)], out, settings, record={"demo": True, "weights": weights}, progress=progress)
    if stats.errors:
        raise SalrtError(stats.errors[0])
    maps = np.load(out / "demo_input_maps.npz")["maps"].astype(np.float64) / 255.0
    cc = float(np.nanmean([metrics.cc(m, g) for m, g in zip(maps, clip.saliency)]))
    prior = centre_bias(clip.saliency.shape[1:])
    cc_prior = float(np.nanmean([metrics.cc(prior, g) for g in clip.saliency]))
    side = comparison_video(
        clip.path, maps, clip.saliency, out / "demo_comparison.mp4",
        f"{spec.model} ({spec.config} config, {weights}): input | predicted | ground truth",
    )  # fmt: skip
    check = 1 if pipe.backend.streaming else max(stride, 4)  # a streaming model needs every frame in order
    with show("running the clip again with another clip's soundtrack"):
        other = make_clip(out / "demo_other_audio.mp4", seed=spec.seed + 1, seconds=seconds)
        own = _decoded(pipe.contract, clip.path, check)
        steps = spec.steps or 4
        ccs_own = map_ccs(pipe.backend, pipe.contract, own, own, clip.saliency, steps, spec.seed)
        theirs = _decoded(pipe.contract, other.path, check)
        ccs_swapped = map_ccs(pipe.backend, pipe.contract, own, theirs, clip.saliency, steps, spec.seed)
        other.path.unlink()
    return DemoResult(
        clip.path, clip.n_frames, weights, stats, cc, cc_prior, float(np.nanmean(ccs_own)),
        float(np.nanmean(ccs_swapped)), check, Path(side), out / "demo_input_overlay.mp4",
    )  # fmt: skip
