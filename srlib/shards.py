"""Training images as TFRecord shards, for sets too large to list and decode file by file (DIV2K + Flickr2K,
ImageNet) and for a cluster's shared file system: ``python -m srlib data shard``.

``write_shards`` stores each image's encoded PNG or JPEG (the file's own bytes when TensorFlow decodes them to
the pixels ``srlib.images.read_image`` gives, else a PNG of those pixels) as a ``tf.train.Example`` with its
name, in ``<out>/train-00000-of-00008.tfrecord`` ... and an index ``<out>/shards.json`` (images, shards,
smallest side, where they came from). Unreadable files and images smaller than ``min_size`` are left out, with
a warning.

Training reads the shards as a stream (``ShardSource.patches``): each epoch, the shards in an order drawn from
the seed and the epoch, read several at a time with parallel interleave, shuffled in blocks drawn the same
way, and numbered: the k-th image of the stream is sample k, whose crop, flip and rotation are drawn from
``(seed, k)`` as for a folder (``srlib.data``), so a run repeats exactly and resumes at any step (by skipping,
without decoding, the records of the current epoch before it). The workers of a multi-worker job read the same
stream and each decodes only its part of every global batch, so they together train what one worker would.
"""

from __future__ import annotations

import glob
import json
import logging
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from .errors import DataError, ImageReadError
from .files import make_folder, write_json
from .images import list_image_files, read_image

log = logging.getLogger(__name__)

INDEX = "shards.json"
SHUFFLE_BUFFER = 256  # records shuffled together within an epoch, beyond the shard order (held encoded in memory)
READ_AT_ONCE = 8  # shards read in parallel (the interleave's cycle length)


def _encoded(path: Path, pixels: np.ndarray) -> bytes:
    """The bytes to store for ``path``: its own when it is a PNG or JPEG that TensorFlow decodes to ``pixels``,
    else ``pixels`` as a PNG."""
    if path.suffix.lower() in (".png", ".jpg", ".jpeg"):
        data = path.read_bytes()
        try:
            decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
            if decoded.shape == pixels.shape and np.array_equal(decoded, pixels):
                return data
        except tf.errors.OpError:
            pass
    return tf.io.encode_png(pixels).numpy()


def write_shards(folders, out_dir: str | os.PathLike, images_per_shard: int = 256, min_size: int = 96) -> dict:
    """Write the images under ``folders`` (searched recursively, sorted by path) as TFRecord shards of at most
    ``images_per_shard`` images in ``out_dir``; returns the index written to ``out_dir/shards.json``.

    Each shard is written as soon as it is full (one shard's images in memory, whatever the size of the set)
    as ``train-NNNNN.partial``, and renamed ``train-NNNNN-of-MMMMM.tfrecord`` once the count is known; the
    index, written last, marks the set complete."""
    if images_per_shard < 1 or min_size < 1:
        raise DataError(f"images per shard ({images_per_shard}) and the smallest side ({min_size}) must be at least 1")
    out = Path(out_dir)
    if out.is_dir() and (any(out.glob("*.tfrecord")) or (out / INDEX).exists()):
        raise DataError(f"{out} already holds shards: give an empty or new folder")
    make_folder(out, "shard folder")
    files = [path for folder in folders for path in list_image_files(folder)]
    if not files:
        raise DataError(f"no image files in {', '.join(map(str, folders))}")
    records, partials, images, smallest, skipped = [], [], 0, None, 0

    def flush():
        partials.append(out / f"train-{len(partials):05d}.partial")
        with tf.io.TFRecordWriter(str(partials[-1])) as writer:
            for record in records:
                writer.write(record)
        records.clear()

    for path in files:
        try:
            pixels = read_image(path)
        except ImageReadError as error:
            log.warning("skipping %s: %s", path, error.reason)
            skipped += 1
            continue
        if min(pixels.shape[:2]) < min_size:
            log.warning("skipping %s: %dx%d is smaller than %d pixels", path, pixels.shape[1], pixels.shape[0], min_size)
            skipped += 1
            continue
        smallest = min(smallest or min(pixels.shape[:2]), min(pixels.shape[:2]))
        feature = {"image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[_encoded(path, pixels)])),
                   "name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[path.name.encode()]))}
        records.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
        images += 1
        if len(records) == images_per_shard:
            flush()
    if records:
        flush()
    if not images:
        raise DataError(f"no usable images (of at least {min_size} pixels a side) in {', '.join(map(str, folders))}")
    names = [f"train-{i:05d}-of-{len(partials):05d}.tfrecord" for i in range(len(partials))]
    for partial, name in zip(partials, names):
        os.replace(partial, out / name)
    index = {"images": images, "shards": names, "min_side": smallest, "skipped": skipped,
             "name": "+".join(dict.fromkeys(Path(p).parent.name for p in files)), "folders": [str(f) for f in folders]}
    write_json(out / INDEX, index)
    return index


def is_shards(data) -> bool:
    """Whether ``data`` (a --data value) names TFRecord shards: a folder holding ``shards.json`` or a glob
    pattern or file ending in ``.tfrecord``."""
    text = str(data)
    return text.endswith(".tfrecord") or (Path(text).is_dir() and (Path(text) / INDEX).is_file())


class ShardSource:
    """The training images of TFRecord shards (a folder written by ``write_shards``, or a pattern of shard files
    beside their ``shards.json``); ``patches`` streams (k, HR patch) from sample ``start`` on."""

    def __init__(self, data, patch_size: int = 96, seed: int = 0):
        items = [data] if isinstance(data, (str, os.PathLike)) else list(data)  # a folder, a pattern, or files
        text = " ".join(map(str, items))
        self.files = sorted({f for item in map(str, items) for f in (
            glob.glob(os.path.join(item, "*.tfrecord")) if Path(item).is_dir() else glob.glob(item))})
        if not self.files:
            raise DataError(f"no TFRecord shards found at {text}")
        index_path = Path(self.files[0]).parent / INDEX
        try:
            self.index = json.loads(index_path.read_text()) if index_path.is_file() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{index_path} is not valid JSON ({error.__class__.__name__}): write the shards again with "
                            "python -m srlib data shard") from None
        if not isinstance(self.index, dict):
            raise DataError(f"{index_path} should hold a JSON object: write the shards again with python -m srlib data shard")
        names = set(self.index.get("shards", []))
        if not names.issuperset(Path(f).name for f in self.files):
            raise DataError(f"{index_path} does not list the shards at {text}: write them with python -m srlib data shard")
        self.images = sum(1 for f in self.files for _ in tf.data.TFRecordDataset(f)) if len(names) != len(
            self.files) else self.index["images"]
        if self.index.get("min_side", 0) < patch_size:
            raise DataError(f"the shards at {text} hold images down to {self.index.get('min_side')} pixels a side, "
                            f"smaller than the {patch_size}-pixel patch: shard them again with --min-size {patch_size}")
        self.patch_size, self.seed, self.data = patch_size, seed, text
        log.info("training images: %d in %d TFRecord shards at %s", self.images, len(self.files), text)

    def __len__(self) -> int:
        return self.images

    @property
    def cached(self) -> bool:  # as PatchSource says: the images are not decoded into memory
        return False

    def summary(self) -> dict:
        """What the patches come from, for a model's card: {"name", "images", "shards"}."""
        return {"name": self.index.get("name", Path(self.data).name), "images": self.images, "shards": self.data}

    def records(self, epoch) -> tf.data.Dataset:
        """The serialized examples of one epoch (a tensor), in the order the seed and the epoch give: the shards in
        a drawn order, read ``READ_AT_ONCE`` at a time, and each block of ``SHUFFLE_BUFFER`` records shuffled.
        (Stateless draws: ``Dataset.shuffle`` cannot take a tensor seed once Keras has set the global one.)"""
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(epoch, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([len(self.files)], seed=seed))
        files = tf.data.Dataset.from_tensor_slices(tf.gather(tf.constant(self.files), order))
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=min(READ_AT_ONCE, len(self.files)),
                                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

        def shuffled(block_index, block):
            draw = tf.random.stateless_uniform(tf.shape(block)[:1], tf.random.experimental.stateless_fold_in(
                seed, block_index))
            return tf.data.Dataset.from_tensor_slices(tf.gather(block, tf.argsort(draw)))

        return records.batch(SHUFFLE_BUFFER).enumerate().flat_map(shuffled)

    def patches(self, start: int, keep=None) -> tf.data.Dataset:
        """(k, HR patch uint8) for samples k = ``start``, ``start`` + 1, ... of the stream; ``keep(k)`` (a tensor
        predicate) picks the samples to decode (a worker's part), the others are passed over undecoded."""
        first_epoch, within = divmod(start, self.images)
        stream = (tf.data.Dataset.range(first_epoch, np.iinfo(np.int64).max).flat_map(self.records)
                  .skip(within).enumerate(start))
        if keep is not None:
            stream = stream.filter(lambda k, record: keep(k))
        return stream.map(self._patch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    def _patch(self, k, record):
        """(k, HR patch uint8) of sample ``k`` from its serialized example: a crop, flip and rotation drawn from
        (seed, k)."""
        image = tf.io.parse_single_example(record, {"image": tf.io.FixedLenFeature([], tf.string)})["image"]
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
        seeds = tf.random.experimental.stateless_split(tf.stack([tf.cast(self.seed, tf.int64), k]), 3)
        size = self.patch_size
        patch = tf.image.stateless_random_crop(image, (size, size, 3), seed=seeds[0])
        patch = tf.image.stateless_random_flip_left_right(patch, seed=seeds[1])
        patch = tf.image.rot90(patch, tf.random.stateless_uniform((), seeds[2], 0, 4, tf.int32))
        return k, tf.ensure_shape(patch, (size, size, 3))


def decoded_images(data) -> list[tuple[str, np.ndarray]]:
    """(name, RGB uint8 pixels) of every image in the shards ``data``, in shard order (to check a round trip)."""
    spec = {"image": tf.io.FixedLenFeature([], tf.string), "name": tf.io.FixedLenFeature([], tf.string)}
    found = []
    for path in ShardSource(data, patch_size=1).files:
        for record in tf.data.TFRecordDataset(path):
            example = tf.io.parse_single_example(record, spec)
            found.append((example["name"].numpy().decode(),
                          tf.io.decode_image(example["image"], channels=3, expand_animations=False).numpy()))
    return found
