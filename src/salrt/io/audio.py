"""DiffSal's audio front end: frame-aligned windows and VGGish log-mel slices.

Numpy implementation (no torch needed) plus :func:`log_mel_slices_torch`, the same computation
in torch ops for running on the model's device. Facts from ``shared/spec/diffsal.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from salrt.constants import REFERENCE_BUFFER, SLICE_SIZE, WAVEFORM_RATE
from salrt.errors import MediaError

if TYPE_CHECKING:
    import torch

VGGISH_RATE = 16000
STFT_WINDOW = 400  # 25 ms at 16 kHz
STFT_HOP = 160  # 10 ms
FFT_LENGTH = 512  # next power of two of the window
MEL_BANDS = 64
MEL_LOW_HZ = 125.0
MEL_HIGH_HZ = 7500.0
LOG_OFFSET = 0.01
EXAMPLE_FRAMES = 64  # 0.64 s
EXAMPLE_HOP = 11  # 0.11 s
N_SLICES = 9
# Shortest 16 kHz signal that yields one 64-frame example (the reference raises below it).
_MIN_SAMPLES = STFT_WINDOW + (EXAMPLE_FRAMES - 1) * STFT_HOP


def window_bounds(t_first: float, t_last: float, fps: float, rate: int) -> tuple[int, int]:
    """Sample range ``[start, end]`` (inclusive end) of a clip's audio excerpt.

    ``t_first``/``t_last`` are the times of the clip's first and last frame (for constant frame
    rate exactly ``(k - 1) * (1.0 / fps)`` with 1-based ``k``, as the reference computes them).
    The reference clamps ``end`` to the file length; slicing past the end is equivalent.
    """
    n = rate / float(fps)
    start = int(max(0.0, t_first * rate - n / 2))
    end = int(abs(t_last * rate + n / 2))
    return start, end


def centre_in_buffer(excerpt: np.ndarray, length: int = REFERENCE_BUFFER) -> np.ndarray:
    """Place ``excerpt`` in the middle of a zero buffer of ``length`` samples (float64).

    An excerpt longer than the buffer (the reference raises there: sample rates above ~48 kHz or
    frame rates below ~20 fps) is centre-cropped to it.
    """
    x = np.asarray(excerpt, dtype=np.float64)
    if x.shape[0] > length:
        off = (x.shape[0] - length) // 2
        x = x[off : off + length]
    buf = np.zeros(length, dtype=np.float64)
    v, c = x.shape[0], length // 2
    lo = c - v // 2
    buf[lo : lo + v] = x
    return buf


def mel_matrix(rate: int = VGGISH_RATE, n_bins: int = FFT_LENGTH // 2 + 1) -> np.ndarray:
    """(n_bins, 64) HTK-mel triangular weights, 125..7500 Hz, DC bin zeroed (VGGish)."""

    def mel(f):
        return 1127.0 * np.log(1.0 + f / 700.0)

    bins_mel = mel(np.linspace(0.0, rate / 2.0, n_bins))
    edges = np.linspace(mel(MEL_LOW_HZ), mel(MEL_HIGH_HZ), MEL_BANDS + 2)
    lo, mid, hi = edges[:-2], edges[1:-1], edges[2:]
    lower = (bins_mel[:, None] - lo) / (mid - lo)
    upper = (hi - bins_mel[:, None]) / (hi - mid)
    w = np.maximum(0.0, np.minimum(lower, upper))
    w[0, :] = 0.0
    return w


def _periodic_hann(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(2 * np.pi / n * np.arange(n))


def log_mel(wave16k: np.ndarray) -> np.ndarray:
    """(frames, 64) float64 log-mel spectrogram of a 16 kHz mono signal (VGGish parameters)."""
    x = np.asarray(wave16k, dtype=np.float64)
    n = 1 + (x.shape[0] - STFT_WINDOW) // STFT_HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, STFT_WINDOW)[::STFT_HOP][:n]
    spec = np.abs(np.fft.rfft(frames * _periodic_hann(STFT_WINDOW), FFT_LENGTH))
    return np.log(spec @ mel_matrix() + LOG_OFFSET)


def examples(logmel: np.ndarray) -> np.ndarray:
    """(n, 64, 64) examples: 64 log-mel frames every 11 frames, incomplete ones dropped."""
    n = 1 + (logmel.shape[0] - EXAMPLE_FRAMES) // EXAMPLE_HOP
    return np.stack([logmel[i * EXAMPLE_HOP : i * EXAMPLE_HOP + EXAMPLE_FRAMES] for i in range(n)])


def repeat_to_slices(ex: np.ndarray, n_slices: int = N_SLICES) -> np.ndarray:
    """The reference's rule for reaching ``n_slices``: repeat each example ``n_slices // n``
    times, append the first ``n_slices % n`` of that result, keep the first ``n_slices``."""
    n = ex.shape[0]
    if n != n_slices:
        if n_slices // n:
            ex = np.repeat(ex, n_slices // n, axis=0)
        ex = np.concatenate([ex, ex[: n_slices % n]], axis=0)
    return ex[:n_slices]


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) weights of bilinear resizing with align_corners=False (torch's rule)."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.maximum(src, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    m = np.zeros((n_out, n_in))
    np.add.at(m, (np.arange(n_out), i0), 1.0 - lam)
    np.add.at(m, (np.arange(n_out), i1), lam)
    return m


def resize_slices(ex: np.ndarray, size: tuple[int, int] = SLICE_SIZE) -> np.ndarray:
    """(n, 64, 64) -> (n, H, W) float32, bilinear, align_corners=False."""
    ry = _bilinear_matrix(ex.shape[1], size[0])
    rx = _bilinear_matrix(ex.shape[2], size[1])
    return (ry @ ex @ rx.T).astype(np.float32)


def pad_for_one_example(wave16k: np.ndarray) -> np.ndarray:
    """Zero-pad (centred) a signal too short for one 64-frame example (the reference raises)."""
    short = _MIN_SAMPLES - wave16k.shape[0]
    if short <= 0:
        return wave16k
    return np.pad(wave16k, (short // 2, short - short // 2))


def log_mel_slices(wave16k: np.ndarray, size: tuple[int, int] = SLICE_SIZE) -> np.ndarray:
    """(1, 9, H, W) float32 model input from a 16 kHz buffer (the centred clip excerpt)."""
    ex = examples(log_mel(pad_for_one_example(np.asarray(wave16k, dtype=np.float64))))
    return resize_slices(repeat_to_slices(ex), size)[None]


def resample_length(n: int, rate: int) -> int:
    """Samples after resampling ``n`` samples from ``rate`` to 16 kHz (the reference's resampy)."""
    return int(n * float(VGGISH_RATE) / float(rate))


def resample_to_16k(x: np.ndarray, rate: int, method: str = "swr") -> np.ndarray:
    """Resample a mono float signal to 16 kHz.

    ``method="swr"`` (default) uses FFmpeg's resampler (libswresample via PyAV);
    ``method="resampy"`` uses resampy's ``kaiser_best`` as the reference does (bit-for-bit the
    reference's slices; needs ``pip install resampy``). The output has exactly the reference's
    length, ``int(n * 16000 / rate)``: the resampler's flushed tail is trimmed or zero-padded.
    """
    return resample(x, rate, VGGISH_RATE, method)


def clip_audio(
    excerpt: np.ndarray, rate: int, size: tuple[int, int] = SLICE_SIZE, resampler: str = "swr"
) -> np.ndarray:
    """Native-rate mono excerpt -> (1, 9, H, W) float32: centre, resample, log-mel, slices."""
    return log_mel_slices(resample_to_16k(centre_in_buffer(excerpt), rate, resampler), size)


def resample(x: np.ndarray, rate: int, target: int, method: str = "swr") -> np.ndarray:
    """Resample a mono float signal from ``rate`` to ``target`` Hz (FFmpeg, or resampy's kaiser_best)."""
    if method not in ("swr", "resampy"):
        raise MediaError(f"unknown resampler {method!r}: use 'swr' or 'resampy'")
    if rate == target:
        return np.asarray(x, dtype=np.float64)
    n = int(x.shape[0] * float(target) / float(rate))
    if method == "resampy":
        try:
            import resampy
        except ImportError:
            raise MediaError(
                "resampler 'resampy' needs the resampy package: pip install 'salrt[reference-audio]'"
            ) from None
        return np.asarray(resampy.resample(np.asarray(x, np.float64), rate, target), np.float64)
    import av

    frame = av.AudioFrame.from_ndarray(np.asarray(x, np.float32)[None, :].copy(), format="fltp", layout="mono")
    frame.sample_rate = rate
    res = av.AudioResampler(format="fltp", layout="mono", rate=target)
    parts = [f.to_ndarray()[0] for f in [*res.resample(frame), *res.resample(None)]]
    y = np.concatenate(parts).astype(np.float64) if parts else np.zeros(0)
    return y[:n] if y.shape[0] >= n else np.pad(y, (0, n - y.shape[0]))


def clip_waveform(
    excerpt: np.ndarray, rate: int, frames: int, samples: int, target_rate: int = WAVEFORM_RATE, resampler: str = "swr"
) -> np.ndarray:
    """SoundNet input of one clip as the TAVDiff and AVRSP papers describe it: resample to
    ``target_rate``, split into ``frames`` equal per-frame segments, Hann-window each, centre in
    ``samples`` zeros -> (1, samples) float32. (STAViS's code, which both papers cite, windows the
    whole excerpt once at its native rate; the papers' per-segment text is followed here.)"""
    x = resample(np.asarray(excerpt, np.float64), rate, target_rate, resampler) if excerpt.size else np.zeros(0)
    segs = np.array_split(x, frames)
    x = np.concatenate([s * np.hanning(s.shape[0]) for s in segs]) if x.size else x
    return centre_in_buffer(x, samples)[None].astype(np.float32)


def silent_audio(size: tuple[int, int] = SLICE_SIZE) -> np.ndarray:
    """The slices of an all-zero buffer (the model input for a video without audio)."""
    return log_mel_slices(np.zeros(resample_length(REFERENCE_BUFFER, VGGISH_RATE)), size)


# ----------------------------------------------------------------------------- torch path
def log_mel_slices_torch(wave16k: torch.Tensor, size: tuple[int, int] = SLICE_SIZE) -> torch.Tensor:
    """:func:`log_mel_slices` in torch ops on ``wave16k``'s device and dtype: (B, N) -> (B, 1, 9, H, W)."""
    import torch
    import torch.nn.functional as F

    x = wave16k
    if x.shape[-1] < _MIN_SAMPLES:
        short = _MIN_SAMPLES - x.shape[-1]
        x = F.pad(x, (short // 2, short - short // 2))
    dev, dt = x.device, x.dtype
    win = torch.as_tensor(_periodic_hann(STFT_WINDOW), device=dev, dtype=dt)
    mel = torch.as_tensor(mel_matrix(), device=dev, dtype=dt)
    frames = x.unfold(-1, STFT_WINDOW, STFT_HOP)  # (B, F, 400)
    spec = torch.fft.rfft(frames * win, FFT_LENGTH).abs()
    lm = torch.log(spec @ mel + LOG_OFFSET)  # (B, F, 64)
    ex = lm.unfold(1, EXAMPLE_FRAMES, EXAMPLE_HOP).transpose(-1, -2)  # (B, n, 64, 64)
    n = ex.shape[1]
    if n != N_SLICES:
        if N_SLICES // n:
            ex = ex.repeat_interleave(N_SLICES // n, dim=1)
        ex = torch.cat([ex, ex[:, : N_SLICES % n]], dim=1)
    ex = ex[:, :N_SLICES]
    out = F.interpolate(ex, size=size, mode="bilinear", align_corners=False)
    return out[:, None]


def describe() -> dict[str, Any]:
    """The audio preprocessing contract (for manifests and clip metadata)."""
    return {
        "buffer_samples_native_rate": REFERENCE_BUFFER,
        "rate": VGGISH_RATE,
        "stft": {"window": STFT_WINDOW, "hop": STFT_HOP, "fft": FFT_LENGTH, "window_fn": "periodic hann"},
        "mel": {"bands": MEL_BANDS, "low_hz": MEL_LOW_HZ, "high_hz": MEL_HIGH_HZ, "scale": "htk"},
        "log_offset": LOG_OFFSET,
        "examples": {"frames": EXAMPLE_FRAMES, "hop": EXAMPLE_HOP, "count": N_SLICES},
        "slice_size": list(SLICE_SIZE),
        "resampler": "libswresample (FFmpeg) via PyAV",
        "min_16k_samples": _MIN_SAMPLES,
        "short_input": f"zero-padded (centred) to {_MIN_SAMPLES} samples at 16 kHz",
    }
