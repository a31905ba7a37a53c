"""TFRecord shards of training images (``python -m srlib data shard``) and training from them."""

import json

import numpy as np
import pytest
from PIL import Image

from srlib.cli import main
from srlib.data import training_dataset
from srlib.errors import DataError
from srlib.images import read_image
from srlib.shards import ShardSource, decoded_images, write_shards
from tiny_runs import write_train_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The tiny runs' four PNGs, a JPEG, a palette PNG (stored again as a PNG of its RGB pixels) and a broken file."""
    folder = write_train_folder(tmp_path_factory.mktemp("images"))
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)).save(folder / "photo.jpg", quality=85)
    Image.fromarray(rng.integers(0, 256, (36, 44, 3), dtype=np.uint8)).convert("P").save(folder / "palette.png")
    (folder / "broken.png").write_bytes(b"not an image")
    return folder


@pytest.fixture(scope="module")
def shards(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "set"
    assert main(["data", "shard", str(folder), "-o", str(out), "--images-per-shard", "2", "--min-size", "32"]) == 0
    return out


def test_a_shard_round_trip_gives_the_same_decoded_images(folder, shards):
    index = json.loads((shards / "shards.json").read_text())
    assert index["images"] == 6 and index["skipped"] == 1 and len(index["shards"]) == 3
    decoded = dict(decoded_images(shards))
    assert sorted(decoded) == sorted(p.name for p in folder.iterdir() if p.name != "broken.png")
    for name, pixels in decoded.items():
        np.testing.assert_array_equal(pixels, read_image(folder / name), err_msg=name)


def _batches(source, steps, start=0, shard=(0, 1), batch=4):
    data = iter(training_dataset(source, scale=2, batch_size=batch, start_step=start, shard=shard))
    return [next(data)[1].numpy() for _ in range(steps)]


def test_the_stream_resumes_exactly_and_two_workers_read_what_one_reads(shards):
    source = ShardSource(shards, patch_size=16, seed=3)
    whole = _batches(source, 5)  # 20 samples: more than three epochs of 6 images
    assert not np.array_equal(whole[0], whole[1])
    np.testing.assert_array_equal(np.stack(_batches(source, 3, start=2)), np.stack(whole[2:]))
    parts = [_batches(source, 5, shard=(i, 2)) for i in range(2)]
    np.testing.assert_array_equal(np.stack(whole), np.concatenate([np.stack(parts[0]), np.stack(parts[1])], axis=1))
    assert not np.array_equal(np.stack(whole), np.stack(_batches(ShardSource(shards, patch_size=16, seed=4), 5)))


def test_shards_with_images_smaller_than_the_patch_are_refused(shards, tmp_path):
    with pytest.raises(DataError, match="smaller than the 48-pixel patch: shard them again with --min-size 48"):
        ShardSource(shards, patch_size=48)
    with pytest.raises(DataError, match="already holds shards"):
        write_shards([shards], shards)


def test_each_shard_is_written_when_full_not_after_every_image_is_read(folder, tmp_path, monkeypatch):
    import srlib.shards as shards_module

    reads, written_after = [], []
    read_image, writer = shards_module.read_image, shards_module.tf.io.TFRecordWriter
    monkeypatch.setattr(shards_module, "read_image", lambda path: reads.append(path) or read_image(path))
    monkeypatch.setattr(shards_module.tf.io, "TFRecordWriter", lambda name: written_after.append(len(reads)) or writer(name))
    index = write_shards([folder], tmp_path / "set", images_per_shard=2, min_size=32)
    assert written_after[0] < len(reads)  # the first shard went to disk before the last image was read
    assert sorted(p.name for p in (tmp_path / "set").iterdir()) == sorted(index["shards"] + ["shards.json"])


def test_a_broken_shard_index_is_a_one_line_error_naming_it(shards, tmp_path):
    import shutil

    copy = tmp_path / "set"
    shutil.copytree(shards, copy)
    for text in ("{not json", "[1, 2]"):
        (copy / "shards.json").write_text(text)
        with pytest.raises(DataError, match=r"shards\.json .*write the shards again"):
            ShardSource(copy, patch_size=32)


@pytest.mark.filterwarnings("ignore:.*RANDOM")
def test_a_stage_trains_from_shards(folder, shards, tmp_path):
    from srlib.training import TrainConfig, train_stage

    config = TrainConfig(scale=2, blocks=1, filters=4, batch_size=2, patch_size=16, vgg_weights=None, progress=False)
    trainer = train_stage("paper", "mse", shards, tmp_path / "run", 2, config)
    assert trainer.current_step == 2
    card = json.loads((tmp_path / "run" / "generator.json").read_text())
    assert card["training_data"]["images"] == 6 and card["training_data"]["name"] == folder.name
