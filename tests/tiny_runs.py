"""What the training tests share: a tiny network's settings and a small folder of training images."""

import numpy as np
from PIL import Image

from srlib.data import PatchSource, training_dataset

TINY = dict(scale=2, blocks=1, filters=8, batch_size=2, patch_size=32, vgg_weights=None, progress=False)


def write_train_folder(folder):
    """Four 40x48 smooth, slightly noisy RGB images in ``folder``; returns it."""
    rng = np.random.default_rng(0)
    for i in range(4):
        base = np.add.outer(np.sin(np.arange(48) / (3 + i)), np.cos(np.arange(40) / 4))
        image = np.dstack([base * 60 + 120 + rng.normal(0, 5, base.shape) for _ in range(3)])
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return folder


def batches(folder, config):
    """``dataset_for(start)`` for ``Trainer.fit``: the patches of ``folder`` at ``config``'s sizes."""
    source = PatchSource([folder], patch_size=config.patch_size)
    return lambda start: training_dataset(source, config.scale, config.batch_size, start)
