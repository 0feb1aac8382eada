"""Media input: decoding with PyAV, DiffSal's exact preprocessing, synthetic test clips.

Torch-free (numpy + PyAV); torch is used only when clips are requested on a torch device.
"""

from salrt.io.media import Clip, MediaClips, MediaInfo, MediaStats, SourceFrame, open_media, probe
from salrt.io.synthetic import SyntheticClip, make_clip

__all__ = [
    "Clip",
    "MediaClips",
    "MediaInfo",
    "MediaStats",
    "SourceFrame",
    "SyntheticClip",
    "make_clip",
    "open_media",
    "probe",
]
