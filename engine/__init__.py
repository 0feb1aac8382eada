"""salrt: a deployment engine for diffusion-based audio-visual saliency prediction."""

from salrt.checkpoint import save_salrt as save_checkpoint
from salrt.errors import CheckpointError, SalrtError
from salrt.models import DiffSal, DiffSalConfig, DiffSalFeatures, load_model
from salrt.sampling import DDIMScheduler

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "DDIMScheduler",
    "DiffSal",
    "DiffSalConfig",
    "DiffSalFeatures",
    "SalrtError",
    "load_model",
    "save_checkpoint",
]
