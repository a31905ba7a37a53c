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


# Run folders written by an earlier srlib, committed: each must keep resuming (test_run_folder.py). Rewrite them only
# on purpose, with `python tests/tiny_runs.py`: a change that needs that is one that stops users' run folders resuming.
RUN_FOLDER_FIXTURES = {"mse": {}, "mse_warmup": {"warmup_steps": 4}}


def fixture_config(name):
    """The TrainConfig of committed run folder ``name``: two steps of the tiny network in float32 (on every host)."""
    from srlib.training import TrainConfig

    return TrainConfig(**{**TINY, "checkpoint_every": 2, "precision": "float32", **RUN_FOLDER_FIXTURES[name]})


def write_run_folder(train_folder, run, name):
    """Train the paper recipe's mse stage of committed run folder ``name`` for two steps in ``run``; returns ``run``."""
    from srlib.training import Trainer

    config = fixture_config(name)
    Trainer("paper", "mse", run, config).fit(batches(train_folder, config), steps=2)
    return run


if __name__ == "__main__":
    import shutil
    import tempfile
    from pathlib import Path

    fixtures = Path(__file__).resolve().parent / "fixtures" / "run_folders"
    with tempfile.TemporaryDirectory() as scratch:
        images = write_train_folder(Path(scratch))
        for name in RUN_FOLDER_FIXTURES:
            shutil.rmtree(fixtures / name, ignore_errors=True)
            run = write_run_folder(images, fixtures / name, name)
            shutil.rmtree(run / "tensorboard")
            (run / ".lock").unlink(missing_ok=True)
            print(f"wrote {run}")
