"""``salrt.train``: train or fine-tune any registered model with the objective its paper defines.

    from salrt.train import TrainOptions, train, build_cache, ClipDataset
    folders = build_cache(videos, InputContract.of(model.config), "cache/")
    train(TrainOptions(model="diffsal", config="tiny", output="run/"), ClipDataset(folders))

``salrt train`` is the command-line form (datasets in the layouts ``salrt eval`` reads).
"""

from salrt.models.recipe import TrainingRecipe, diffusion_x0_loss, saliency_terms
from salrt.train.data import ClipDataset, DataError, build_cache, check_videos, collate
from salrt.train.trainer import Trainer, TrainingError, TrainOptions, train

__all__ = [
    "ClipDataset",
    "DataError",
    "Trainer",
    "TrainOptions",
    "TrainingError",
    "TrainingRecipe",
    "build_cache",
    "check_videos",
    "collate",
    "diffusion_x0_loss",
    "saliency_terms",
    "train",
]
