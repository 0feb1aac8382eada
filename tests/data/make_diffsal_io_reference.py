"""Regenerates (or, with --check, verifies) the reference outputs in diffsal_reference_io.npz: the
DiffSal reference's preprocessing (GitHub junwenxiong/diff_sal, commit c9b8070) on the file's stored
inputs (``*_pcm`` 16-bit audio at three rates, ``frame_rgb`` one 360x640 frame). None of the
reference's code is in this repository: give the path of a checkout::

    python tests/data/make_diffsal_io_reference.py /path/to/diff_sal [--check]

Run it where the reference's pins hold: Pillow 9.4.0 (its requirements.txt; later Pillow versions
resize differently), resampy 0.4.2, soundfile, scipy and torch. torchvision and torchaudio, which
its dataset module imports but these functions do not use, are replaced by stand-ins; its
``transforms.Resize((112, 192))`` of the log-mel examples is torchvision 0.15's tensor path for an
upsample, ``F.interpolate(bilinear, align_corners=False)``.

What runs: for each rate the reference's ``make_mel_dataset`` on a one-video dataset folder (frame
``starts``/``ends``), its ``saliency_db_spec.get_mel_feature`` for the clips in ``*_clips`` (first
and last 1-based frame; ``max_audio_win`` as its dataset computes it for 16-frame clips), and for
``frame_rgb`` its ``pil_loader`` (320x240) then ``Scale([384, 224])`` and ``ToTensor(1)``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import types
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILE = HERE / "diffsal_reference_io.npz"
RATES = {16000: (25.0, 60), 44100: (30.0, 50), 48000: (24.0, 40)}  # rate: (fps, frames)
MAX_AUDIO_WIN = int(22050 / 10 * 16)  # the reference dataset's max_audio_Fs / min_video_fps * sample_duration


def _stand_ins() -> None:
    """torchvision.transforms and torchaudio(.functional): imported by the dataset module, unused here."""
    tv, tr = types.ModuleType("torchvision"), types.ModuleType("torchvision.transforms")
    tv.transforms = tr
    ta, taf = types.ModuleType("torchaudio"), types.ModuleType("torchaudio.functional")
    ta.functional = taf
    sys.modules.update(
        {"torchvision": tv, "torchvision.transforms": tr, "torchaudio": ta, "torchaudio.functional": taf}
    )
    import collections
    import collections.abc

    collections.Iterable = collections.abc.Iterable  # its Scale predates Python 3.10, which dropped the alias


def reference_outputs(root: Path, stored: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import soundfile as sf
    import torch
    import torch.nn.functional as F
    from PIL import Image

    sys.path.insert(0, str(root))
    _stand_ins()
    from datasets import saliency_db as db
    from datasets.spatial_transforms import Scale, ToTensor

    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for rate, (fps, frames) in RATES.items():
            key, name = f"r{rate}", f"v{rate}"
            pcm = stored[f"{key}_pcm"]
            for d in (base / "frames" / name, base / "maps" / name / "maps", base / "audio" / name):
                d.mkdir(parents=True, exist_ok=True)
            sf.write(base / "audio" / name / f"{name}.wav", pcm, rate, subtype="PCM_16")
            (base / f"{name}.txt").write_text(f"{name} {frames} {fps}\n")
            with contextlib.redirect_stdout(io.StringIO()):
                _, audiodata = db.make_mel_dataset(
                    str(base / "frames"), str(base / f"{name}.txt"), str(base / "maps"), str(base / "audio"), 1, 16
                )
            out[f"{key}_starts"], out[f"{key}_ends"] = audiodata[0]["starts"], audiodata[0]["ends"]
            this = types.SimpleNamespace(audiodata=audiodata)
            slices = []
            for first, last in stored[f"{key}_clips"]:
                mel = db.saliency_db_spec.get_mel_feature(this, 0, int(first), int(last), MAX_AUDIO_WIN)
                slices.append(mel[:, 0].numpy().astype(np.float32))  # (9, 64, 64)
                if rate == 16000 and len(slices) == 2:  # the second clip, its first two slices resized
                    up = F.interpolate(mel[:2], size=(112, 192), mode="bilinear", align_corners=False)
                    out[f"{key}_clip1_resized"] = up[:, 0][None].numpy().astype(np.float32)
            out[f"{key}_slices"] = np.stack(slices)
        png = base / "frame.png"
        Image.fromarray(stored["frame_rgb"]).save(png)
        img = Scale([384, 224])(db.pil_loader(str(png)))
        chw = ToTensor(1)(img)
        out["frame_model_u8"] = torch.round(chw).to(torch.uint8).numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("diff_sal", type=Path, help="a checkout of github.com/junwenxiong/diff_sal")
    ap.add_argument("--check", action="store_true", help="compare with the stored values instead of writing")
    args = ap.parse_args()
    import PIL

    if PIL.__version__ != "9.4.0":
        sys.exit(f"Pillow {PIL.__version__}: the reference pins 9.4.0 (later versions resize differently)")
    stored = dict(np.load(FILE))
    values = reference_outputs(args.diff_sal.resolve(), stored)
    if not args.check:
        np.savez(FILE, **{**stored, **values})
        print("wrote", FILE)
        return
    worst = 0.0
    for k, v in sorted(values.items()):
        d = float(np.max(np.abs(np.asarray(v, np.float64) - stored[k]))) if v.shape == stored[k].shape else np.inf
        worst = max(worst, d)
        print(f"{k}: {v.shape}, largest difference {d:.3g}")
    print(f"{len(values)} arrays, largest difference from the stored ones: {worst:.3g}")
    sys.exit(0 if worst == 0 else 1)


if __name__ == "__main__":
    main()
