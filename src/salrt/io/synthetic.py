"""Synthetic audio-visual clips with known saliency, written as real media files through PyAV.

Several look-alike discs move over a textured background; one of them "speaks": a tone whose
amplitude follows its speed and whose pitch follows its horizontal position (low at the left, high
at the right, as on a keyboard). Without the sound the task is ambiguous; with it, solvable. Ground truth: fixations are drawn around
the sounding disc (and, rarely, elsewhere), and the saliency map is their Gaussian blur, as
eye-tracking datasets build theirs. Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from salrt.errors import MediaError

_LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}


@dataclasses.dataclass(frozen=True)
class SyntheticClip:
    """What was written and its ground truth (one entry per video frame)."""

    path: Path
    fps: float
    n_frames: int
    sample_rate: int | None
    centres: np.ndarray  # (N, 2) sounding object's (y, x) in pixels
    radius: float
    saliency: np.ndarray  # (N, H, W) float32, each map sums to 1
    fixations: np.ndarray  # (N, H, W) bool
    timestamps: np.ndarray  # (N,) seconds actually written (differs from index/fps when vfr)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([90 + 40 * np.sin(xx / 9.0 + c) * np.cos(yy / 13.0 - c) for c in (0.0, 1.0, 2.0)], -1)
    return np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.float32)


def _gaussian_blur_map(points: np.ndarray, h: int, w: int, sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    m = np.zeros((h, w), np.float64)
    for y, x in points:
        m += np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return (m / m.sum()).astype(np.float32)


def make_clip(
    path: str | Path,
    *,
    seed: int = 0,
    width: int = 320,
    height: int = 192,
    fps: float = 25.0,
    seconds: float = 2.0,
    sample_rate: int | None = 44100,
    channels: int = 2,
    video_codec: str = "libx264",
    audio_codec: str | None = None,
    n_objects: int = 3,
    vfr: bool = False,
    fixations_per_frame: int = 12,
    ground_truth: bool = True,
) -> SyntheticClip:
    """Write a synthetic clip to ``path`` (container from the suffix) and return its ground truth.

    ``sample_rate=None`` writes no audio stream; ``vfr=True`` jitters frame timestamps;
    ``ground_truth=False`` skips the maps (long clips: saliency/fixations are then empty arrays).
    ``audio_codec`` defaults by container: aac (mp4/mov/mkv), opus (webm), pcm_s16le (avi).
    """
    import av

    path = Path(path)
    suffix = path.suffix.lower()
    if audio_codec is None:
        audio_codec = {".webm": "libopus", ".avi": "pcm_s16le"}.get(suffix, "aac")
    if sample_rate is not None and channels not in _LAYOUTS:
        raise MediaError(f"channels must be one of {sorted(_LAYOUTS)}, got {channels}")
    rng = np.random.default_rng(seed)
    n = max(1, int(round(seconds * fps)))
    bg = _texture(rng, height, width)
    r = 0.08 * min(height, width)
    pos = rng.uniform([r, r], [height - r, width - r], (n_objects, 2))
    vel = rng.normal(0, 2.5, (n_objects, 2)) * 25.0 / fps
    colours = rng.uniform(60, 255, (n_objects, 3))
    centres = np.zeros((n, n_objects, 2))
    for i in range(n):
        centres[i] = pos
        pos = pos + vel
        for k in range(2):
            lim = (height, width)[k]
            bounce = (pos[:, k] < r) | (pos[:, k] > lim - r)
            vel[bounce, k] *= -1
            pos[:, k] = np.clip(pos[:, k], r, lim - r)
    speaker = centres[:, 0]
    times = np.arange(n) / fps
    if vfr:
        times = times + rng.uniform(-0.3, 0.3, n) / fps
        times[0] = 0.0
        times = np.maximum.accumulate(times + np.arange(n) * 1e-6)

    gt_n = n if ground_truth else 0
    sal = np.zeros((gt_n, height, width), np.float32)
    fix = np.zeros((gt_n, height, width), bool)
    for i in range(gt_n):
        pts = speaker[i] + rng.normal(0, r * 0.6, (fixations_per_frame, 2))
        stray = rng.uniform([0, 0], [height, width], (max(1, fixations_per_frame // 6), 2))
        pts = np.concatenate([pts, stray])
        pts = np.clip(np.round(pts), [0, 0], [height - 1, width - 1]).astype(int)
        fix[i, pts[:, 0], pts[:, 1]] = True
        sal[i] = _gaussian_blur_map(pts, height, width, sigma=0.04 * max(height, width))

    yy, xx = np.mgrid[0:height, 0:width]
    container = av.open(str(path), mode="w")
    try:
        tb = Fraction(1, 90000) if vfr else Fraction(fps).limit_denominator(1001) ** -1
        vs = container.add_stream(video_codec, rate=Fraction(fps).limit_denominator(1001))
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        if video_codec in ("libx264", "h264"):
            vs.options = {"preset": "ultrafast", "crf": "18"}
        astream = None
        if sample_rate is not None:
            astream = container.add_stream(audio_codec, rate=sample_rate, layout=_LAYOUTS[channels])
        # the audio packets, muxed in time order with the video's as a real muxer interleaves them
        # (muxed after the video, MKV and MPEG-TS files would carry the audio ~10 s behind it)
        audio = (
            _audio_packets(astream, speaker, n / fps, sample_rate, channels, width, fps) if astream is not None else []
        )
        pending = iter(audio)
        nxt = next(pending, None)

        def mux_audio_until(t: float | None) -> None:
            nonlocal nxt
            while nxt is not None and (t is None or nxt.pts is None or float(nxt.pts * nxt.time_base) <= t):
                container.mux(nxt)
                nxt = next(pending, None)

        for i in range(n):
            img = bg.copy()
            for k in range(n_objects):
                d = (yy - centres[i, k, 0]) ** 2 + (xx - centres[i, k, 1]) ** 2 < r**2
                img[d] = colours[k]
            frame = av.VideoFrame.from_ndarray(img.astype(np.uint8), format="rgb24")
            frame.pts = int(round(times[i] / tb))
            frame.time_base = tb
            mux_audio_until(float(times[i]))
            for p in vs.encode(frame):
                container.mux(p)
        for p in vs.encode(None):
            container.mux(p)
        mux_audio_until(None)
    finally:
        container.close()
    return SyntheticClip(
        path=path,
        fps=fps,
        n_frames=n,
        sample_rate=sample_rate,
        centres=speaker,
        radius=r,
        saliency=sal,
        fixations=fix,
        timestamps=times,
    )


def _audio_packets(stream, speaker, duration, rate, channels, width, fps) -> list:
    """The encoded packets of the sounding object's tone (pitch follows its x, loudness its speed)."""
    import av

    packets = []

    total = int(round(duration * rate))
    t = np.arange(total) / rate
    frame_of = np.minimum((t * fps).astype(int), len(speaker) - 1)
    speed = np.r_[0.0, np.linalg.norm(np.diff(speaker, axis=0), axis=1)]
    amp = 0.1 + 0.5 * speed[frame_of] / max(speed.max(), 1e-6)
    pitch = 250.0 + 1750.0 * speaker[frame_of, 1] / width  # left: 250 Hz, right: 2 kHz
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    mono = (amp * np.sin(phase)).astype(np.float32)
    data = np.repeat(mono[None], channels, axis=0)
    fmt = stream.codec_context.codec.audio_formats[0].name if stream.codec_context.codec.audio_formats else "fltp"
    chunk = stream.codec_context.frame_size or 1024
    res = av.AudioResampler(format=fmt, layout=_LAYOUTS[channels], rate=rate)
    pts = 0
    for s in range(0, total, chunk):
        part = np.ascontiguousarray(data[:, s : s + chunk])
        fr = av.AudioFrame.from_ndarray(part, format="fltp", layout=_LAYOUTS[channels])
        fr.sample_rate = rate
        fr.pts = pts
        fr.time_base = Fraction(1, rate)
        pts += part.shape[1]
        for r_ in res.resample(fr):
            packets += stream.encode(r_)
    for r_ in res.resample(None):
        packets += stream.encode(r_)
    packets += stream.encode(None)
    return packets


def make_dataset(
    root: str | Path,
    *,
    n_train: int = 48,
    n_val: int = 12,
    seconds: float = 2.0,
    width: int = 320,
    height: int = 192,
    fps: float = 25.0,
    n_objects: int = 3,
    seed: int = 0,
    audio_formats: tuple[tuple[int, int], ...] = ((22050, 1), (44100, 2)),
    progress: Any = None,
) -> Path:
    """The sounding-object task as an audio-visual dataset in the STAViS/DiffSal layout that
    ``salrt train`` and ``salrt eval --dataset synthetic`` read: ``video_frames/Synthetic/<v>/
    img_%05d.jpg``, ``video_audio/Synthetic/<v>/<v>.wav``, ``annotations/Synthetic/<v>/maps/
    eyeMap_%05d.jpg`` and ``fixation/fixMap_%05d.png``, ``fold_lists/Synthetic_list_{train,test}_
    1_fps.txt``. Each video is :func:`make_clip` (several look-alike discs, one sounding: pitch
    follows its height, loudness its speed) with its own seed; ``n_val`` held-out videos form the
    test list; the videos cycle through ``audio_formats`` (sample rate, channels), since the
    reference's audio window is a number of samples at the source rate (a 44.1 kHz track gives
    half the context of a 22.05 kHz one). Returns ``root``."""
    import tempfile
    import wave

    import av
    from PIL import Image

    root = Path(root)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(n_train + n_val):
            name = f"syn{i:04d}"
            subset = "train" if i < n_train else "test"
            rate, channels = audio_formats[i % len(audio_formats)]
            clip = make_clip(
                Path(tmp) / f"{name}.mp4",
                seed=seed * 100003 + i,
                width=width,
                height=height,
                fps=fps,
                seconds=seconds,
                sample_rate=rate,
                channels=channels,
                n_objects=n_objects,
            )
            frames = root / "video_frames" / "Synthetic" / name
            ann = root / "annotations" / "Synthetic" / name
            for d in (frames, ann / "maps", ann / "fixation", root / "video_audio" / "Synthetic" / name):
                d.mkdir(parents=True, exist_ok=True)
            pcm = []
            with av.open(str(clip.path)) as c:
                for k, fr in enumerate(c.decode(video=0)):
                    fr.to_image().save(frames / f"img_{k + 1:05d}.jpg", quality=95)
            with av.open(str(clip.path)) as c:
                res = av.AudioResampler(format="s16", layout=_LAYOUTS[channels], rate=rate)
                for fr in c.decode(audio=0):
                    pcm += [r.to_ndarray().reshape(-1) for r in res.resample(fr)]  # packed: interleaved
                pcm += [r.to_ndarray().reshape(-1) for r in res.resample(None)]
            with wave.open(str(root / "video_audio" / "Synthetic" / name / f"{name}.wav"), "wb") as w:
                w.setnchannels(channels)
                w.setsampwidth(2)
                w.setframerate(rate)
                w.writeframes(np.concatenate(pcm).astype(np.int16).tobytes())
            for k in range(clip.n_frames):
                m = clip.saliency[k] / clip.saliency[k].max()
                Image.fromarray(np.round(m * 255).astype(np.uint8)).save(ann / "maps" / f"eyeMap_{k + 1:05d}.jpg")
                Image.fromarray(clip.fixations[k].astype(np.uint8) * 255).save(
                    ann / "fixation" / f"fixMap_{k + 1:05d}.png"
                )
            lists[subset].append(f"{name} {clip.n_frames} {fps:g}")
            if progress is not None:
                progress()
    (root / "fold_lists").mkdir(parents=True, exist_ok=True)
    for subset, rows in lists.items():
        (root / "fold_lists" / f"Synthetic_list_{subset}_1_fps.txt").write_text("\n".join(rows) + "\n")
    return root
