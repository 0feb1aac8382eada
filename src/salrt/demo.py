"""What ``salrt demo`` shows: a side-by-side video (input | predicted map | ground truth) with a
colour bar and a caption, and a centre-bias baseline that puts a CC figure in context."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from salrt.sinks import VideoFileSink, colormap_jet, even_frame

_CAPTION_H = 28
_BAR_W = 56


def centre_bias(shape: tuple[int, int], sigma: float = 0.25) -> np.ndarray:
    """A content-free centre-bias map (H, W) in 0..1: a Gaussian of ``sigma`` times the frame
    size around the centre, the usual chance-level reference for saliency scores."""
    h, w = shape
    y = (np.arange(h) - (h - 1) / 2) / (sigma * h)
    x = (np.arange(w) - (w - 1) / 2) / (sigma * w)
    return np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2))


def _heat(m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A map (any range) as a jet-coloured (H, W, 3) uint8 image of ``size``, scaled to its maximum."""
    from salrt.io.imaging import resize_map

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


def bundled_checkpoint() -> Path | None:
    """The demo model shipped in the package (a tiny DiffSal trained by ``salrt train`` on the
    synthetic sounding-object task; ``demo_model/TRAINING.md`` says how), or None if absent."""
    d = Path(__file__).with_name("demo_model")
    return d if (d / "model.safetensors").is_file() else None


def _decoded(model: Any, path: Path, stride: int) -> list[Any]:
    from salrt.io import open_media
    from salrt.io.contract import InputContract

    return list(open_media(str(path), stride=stride, **InputContract.of(model.config).media_options()))


def map_ccs(model: Any, clips: list[Any], audio_of: list[Any], gt: np.ndarray, steps: int = 4, seed: int = 0) -> list:
    """CC against ``gt`` (N, H, W) of the maps ``model`` makes from ``clips``' video with the audio
    of ``audio_of`` (the same clips, or another video's clips of the same frames)."""
    import torch

    from salrt import metrics as M

    n = min(len(clips), len(audio_of))
    device = next(model.parameters()).device
    video = torch.from_numpy(np.stack([c.video for c in clips[:n]])).to(device)
    audio = torch.from_numpy(np.stack([c.audio for c in audio_of[:n]])).to(device)
    noise = torch.randn((n, 1, *video.shape[-2:]), generator=torch.Generator().manual_seed(seed)).to(device)
    cond = {k: torch.zeros((n, *sh), dtype=dt, device=device) for k, (sh, dt) in model.condition_shapes().items()}
    with torch.no_grad():
        maps = model.sample(video, audio, steps=steps, noise=noise, **cond).float().cpu().numpy()[:, 0]
    return [M.cc(m, gt[c.target_index]) for m, c in zip(maps, clips[:n])]


def sounding_object_scores(
    model: Any, n_clips: int = 16, seed: int = 10_000, seconds: float = 2.0, stride: int = 4, steps: int = 4
) -> dict[str, Any]:
    """How well ``model`` solves the synthetic sounding-object task on held-out clips (seeds from
    ``seed`` on, never used for training), and how much it relies on the sound: mean CC against the
    ground truth with each clip's own audio, and with the audio of the next clip (swapped). A model
    that ignores the sound scores the same both ways. Half the clips have 22.05 kHz mono audio,
    half 44.1 kHz stereo."""
    import tempfile

    from salrt.io import make_clip

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
        clips = [_decoded(model, c.path, stride) for c in made]
    own, swapped = [], []
    for k in range(n_clips):
        own += map_ccs(model, clips[k], clips[k], made[k].saliency, steps, seed=k)
        swapped += map_ccs(model, clips[k], clips[(k + 1) % n_clips], made[k].saliency, steps, seed=k)
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
