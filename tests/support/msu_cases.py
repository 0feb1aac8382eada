"""Deterministic cases in the MSU benchmark's layout (AIM 2024 AViMoS / NTIRE 2026), for golden
values recorded from the organisers' bench.py (tests/data/make_msu_bench_reference.py) and for the
tests that compare salrt.msu with them. numpy and Pillow only, so the generator runs in the
script's own environment."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# (video, ground-truth size and kind, prediction size and kind): every depth and channel layout
# bench.py's cv2.imread(IMREAD_UNCHANGED) meets, and up-, down- (exactly 2x) and same-size resizes
CASES = [
    ("v0", (36, 64), "grey8", (24, 40), "grey8"),
    ("v1", (45, 80), "grey16", (90, 160), "rgba8"),
    ("v2", (40, 72), "rgb8", (40, 72), "grey16"),
    ("v3", (30, 52), "grey8", (15, 26), "rgb8"),
]
FRAMES = 5


def _blob_map(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A smooth map of a few Gaussians (0..1) plus a little noise."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w]
    m = np.zeros(shape)
    for _ in range(3):
        cy, cx, s = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(3, 12)
        m += rng.uniform(0.3, 1) * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * s * s))
    m += 0.05 * rng.random(shape)
    return m / m.max()


def _save(path: Path, m: np.ndarray, kind: str, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "grey8":
        Image.fromarray(np.round(m * 255).astype(np.uint8)).save(path)
    elif kind == "grey16":
        Image.fromarray(np.round(m * 65535).astype(np.uint16)).save(path)
    elif kind == "rgb8":  # channels differ: the grey value is their mean
        rgb = np.stack([m, m**2, np.sqrt(m)], axis=2)
        Image.fromarray(np.round(rgb * 255).astype(np.uint8)).save(path)
    elif kind == "rgba8":  # alpha joins bench.py's channel mean
        alpha = rng.uniform(0.5, 1.0, m.shape)
        rgba = np.stack([m, m, m, alpha], axis=2)
        Image.fromarray(np.round(rgba * 255).astype(np.uint8), mode="RGBA").save(path)
    else:
        raise ValueError(kind)


def make_case(root: Path, seed: int = 2026) -> list[str]:
    """Writes TrainTestSplit.json, SaliencyTest/Test/<v>/NNN.png, FixationsTest/Test/<v>/fixations.json
    and pred/<v>/NNN.png under ``root``; returns the public_test video names."""
    rng = np.random.default_rng(seed)
    names = [c[0] for c in CASES]
    root.mkdir(parents=True, exist_ok=True)
    (root / "TrainTestSplit.json").write_text(json.dumps({"train": [], "public_test": names, "private_test": []}))
    for name, gt_shape, gt_kind, pred_shape, pred_kind in CASES:
        fixations = []
        for f in range(1, FRAMES + 1):
            gt = _blob_map(rng, gt_shape)
            _save(root / "SaliencyTest" / "Test" / name / f"{f:03d}.png", gt, gt_kind, rng)
            pred = _blob_map(rng, pred_shape)
            _save(root / "pred" / name / f"{f:03d}.png", pred, pred_kind, rng)
            k = int(rng.integers(3, 12))
            pts = np.stack([rng.integers(0, gt_shape[0], k), rng.integers(0, gt_shape[1], k)], axis=1)
            pts = np.concatenate([pts, pts[:2]])  # repeated fixations (several observers, one pixel)
            fixations.append(pts.tolist())
        fx = root / "FixationsTest" / "Test" / name / "fixations.json"
        fx.parent.mkdir(parents=True, exist_ok=True)
        fx.write_text(json.dumps(fixations))
    return names
