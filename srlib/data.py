"""The training input pipeline: random HR patches and their MATLAB-bicubic LR versions, in tf.data.

Sample ``k`` of a run (``k = step * batch_size + i``) is a pure function of ``(seed, k)``: which image,
where the crop sits, and which flip / 90-degree rotation it gets. Resuming at step ``s`` therefore
resumes the data exactly, with nothing to store but the step: the step *is* the data position.

Small sets are decoded once and kept in memory; large ones (COCO, DIV2K) are decoded on the fly in
parallel. Either way every file goes through ``srlib.images.read_image``, and unreadable or too-small
files are skipped with a logged warning. LR patches are made inside the graph by the same MATLAB-style
bicubic as the evaluation, so the network trains on exactly the kind of input it is tested on; with
``degradation="realistic"`` they are made instead by Real-ESRGAN's random chain (``srlib.realistic``), whose
every draw for sample ``k`` is seeded by ``(seed, k)`` too.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from PIL import Image

from .degradation import DEGRADATIONS, bicubic_downscale_tf
from .errors import DataError, ImageReadError
from .images import list_image_files, read_image, read_image_folder

log = logging.getLogger(__name__)

# Sets whose decoded pixels add up to less than this are decoded once and kept in memory.
CACHE_LIMIT_BYTES = 2 << 30


class PatchSource:
    """Random HR patches from one or more image folders; ``patch(k)`` is deterministic in (seed, k)."""

    def __init__(self, folders, patch_size: int = 96, seed: int = 0, cache: bool | None = None):
        self.folders = [Path(folder) for folder in folders]
        if not self.folders:
            raise DataError("no training folders given")
        self.patch_size = patch_size
        self.seed = seed
        files = [path for folder in self.folders for path in list_image_files(folder)]
        if not files:
            raise DataError(f"no image files in {', '.join(map(str, self.folders))}")
        if cache is None:
            cache = _decoded_bytes(files) < CACHE_LIMIT_BYTES
        self.cached = cache
        self._bad: set[int] = set()
        self._lock = threading.Lock()
        if cache:
            self.images, self.paths = [], []
            for folder in self.folders:
                loaded = read_image_folder(folder, min_size=patch_size)
                self.images += loaded.images
                self.paths += loaded.paths
            log.info("training images: %d decoded into memory from %s", len(self.images), ", ".join(map(str, self.folders)))
        else:
            self.images, self.paths = None, files
            log.info("training images: %d files decoded on the fly from %s", len(files), ", ".join(map(str, self.folders)))

    def __len__(self) -> int:
        return len(self.paths)

    def summary(self) -> dict:
        """What the patches come from, for a model's sidecar: {"name": "T91+BSD200", "images", "folders"}
        (the name joins the folders holding the images, in order)."""
        holders = dict.fromkeys(Path(path).parent.name for path in self.paths)
        return {"name": "+".join(holders), "images": len(self), "folders": [str(f) for f in self.folders]}

    def _image(self, index: int) -> np.ndarray | None:
        if self.images is not None:
            return self.images[index]
        if index in self._bad:
            return None
        path = self.paths[index]
        try:
            image = read_image(path)
        except ImageReadError as error:
            reason = error.reason
            image = None
        else:
            if min(image.shape[:2]) >= self.patch_size:
                return image
            reason = f"{image.shape[1]}x{image.shape[0]} is smaller than the {self.patch_size}-pixel patch"
            image = None
        with self._lock:
            if index not in self._bad:
                self._bad.add(index)
                log.warning("skipping %s: %s (%d bad files so far)", path, reason, len(self._bad))
                if len(self._bad) == len(self.paths):
                    raise DataError(f"no usable training images in {', '.join(map(str, self.folders))}")
        return None

    def patch(self, k: int) -> np.ndarray:
        """The k-th HR training patch, uint8 (patch_size, patch_size, 3)."""
        rng = np.random.default_rng([self.seed, int(k)])
        for _ in range(1000):
            image = self._image(int(rng.integers(len(self.paths))))
            if image is not None:
                break
        else:
            raise DataError(f"no usable training image found after 1000 draws in {', '.join(map(str, self.folders))}")
        size = self.patch_size
        top = int(rng.integers(image.shape[0] - size + 1))
        left = int(rng.integers(image.shape[1] - size + 1))
        patch = image[top : top + size, left : left + size]
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.rot90(patch, int(rng.integers(4)))
        return np.ascontiguousarray(patch)


def _decoded_bytes(files) -> int:
    """Memory the RGB pixels of ``files`` would take, from their headers (unreadable files count 0)."""
    total = 0
    for path in files:
        try:
            with Image.open(path) as image:
                total += image.size[0] * image.size[1] * 3
        except Exception:  # read_image will report it when it matters
            continue
    return total


def training_dataset(
    source,
    scale: int = 4,
    batch_size: int = 16,
    start_step: int = 0,
    parallel_calls: int | None = None,
    degradation="bicubic",
    shard: tuple[int, int] = (0, 1),
) -> tf.data.Dataset:
    """Endless batches of (lr, hr) float32 in [0, 1] from ``source`` (a ``PatchSource``, or TFRecord shards: a
    ``srlib.shards.ShardSource``), from step ``start_step`` on.

    ``shard=(index, count)`` gives part ``index`` of ``count`` equal parts of each global batch of ``batch_size``
    (samples ``step * batch_size + index * batch_size / count + i``): the workers of a multi-worker job each read
    their part, no two the same sample, and together the batches of a one-worker run.

    HR is (B, P, P, 3); LR is (B, P / scale, P / scale, 3) made in the graph by ``degradation``: "bicubic"
    (MATLAB's), "realistic" (Real-ESRGAN's chain, ``srlib.realistic.REAL_ESRGAN``), "mixed" (that chain, clean
    bicubic or bicubic + JPEG: ``srlib.realistic.MIXED``) or a
    ``srlib.realistic.DegradationSettings`` of one's own; either way LR values are whole grey levels / 255.
    """
    size = source.patch_size
    if size % scale:
        raise DataError(f"patch size {size} is not a multiple of the scale {scale}")
    if isinstance(degradation, str) and degradation not in DEGRADATIONS:
        raise DataError(f"unknown degradation {degradation!r}; choose one of {', '.join(DEGRADATIONS)}")

    def load(k):
        patch = tf.numpy_function(source.patch, [k], tf.uint8, stateful=False)
        patch.set_shape((size, size, 3))
        return patch

    def to_pair(hr):
        lr = bicubic_downscale_tf(hr, scale)
        return lr / 255.0, tf.cast(hr, tf.float32) / 255.0

    index, count = shard
    if batch_size % count or not 0 <= index < count:
        raise DataError(f"a batch of {batch_size} does not split into {count} equal parts (part {index})")
    part, whole = batch_size // count, batch_size

    def hr_patches() -> tf.data.Dataset:
        """(k, HR patch) for the samples of this part, in order: k = step * batch_size + index * part + i."""
        if not isinstance(source, PatchSource):  # TFRecord shards (srlib.shards), read as a stream
            return source.patches(start_step * whole, None if count == 1 else lambda k: k % whole // part == index)
        positions = tf.data.Dataset.range(start_step * part, np.iinfo(np.int64).max // whole * part)
        samples = positions if count == 1 else positions.map(lambda j: j // part * whole + index * part + j % part)
        return samples.map(lambda k: (k, load(k)), num_parallel_calls=calls, deterministic=True)

    options = tf.data.Options()
    options.deterministic = True
    calls = parallel_calls or tf.data.AUTOTUNE  # without the autotuning thread: one call per core (up to 16)
    if degradation != "bicubic":
        from .realistic import DEGRADATION_SETTINGS, degrade, sample_seed

        settings = DEGRADATION_SETTINGS[degradation] if isinstance(degradation, str) else degradation

        @tf.autograph.experimental.do_not_convert  # plain tf.cond inside: converting it only slows the tracing
        def degraded_pair(k, hr):  # one sample at a time: each draws its own sizes, so they batch only at the end
            lr = tf.ensure_shape(degrade(hr, scale, sample_seed(source.seed, k), settings),
                                 (size // scale, size // scale, 3))
            return tf.cast(lr, tf.float32) / 255.0, tf.cast(hr, tf.float32) / 255.0

        return (
            hr_patches()
            .map(degraded_pair, num_parallel_calls=calls, deterministic=True)
            .batch(part, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
            .with_options(options)
            .apply(without_autotuning)
        )
    return (
        hr_patches()
        .map(lambda k, hr: hr)
        .batch(part, drop_remainder=True)
        .map(to_pair, num_parallel_calls=calls, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
        .with_options(options)
        .apply(without_autotuning)
    )


def without_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` without tf.data's autotuning thread; ``AUTOTUNE`` then means one parallel call per core (up
    to 16) and a prefetch buffer that grows while the consumer waits.

    Off because TensorFlow's default costs time: deleting an iterator waits for that thread, which first sleeps
    out the rest of its optimization period (10 ms, doubling up to 60 s: tensorflow/core/framework/model.h).
    ``fit`` leaves its iterator to the garbage collector, so the wait fell on whatever ran next. Measured with
    TF 2.21 (``benchmarks/bench_autotuning.py``, T91): up to 2.08 s per iterator deleted after 3 s of reading,
    0.00 s without the thread. The rate while reading moves within the machine's noise: bicubic 2816 patches/s
    without it against 2985 with it, realistic 428 against 396.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def patches_per_second(source: PatchSource, patches: int, batch_size: int = 16, degradation: str = "bicubic",
                       scale: int = 4) -> tuple[float, float]:
    """(patches per second, CPU milliseconds per patch) of ``training_dataset(source, scale, batch_size,
    degradation=degradation)`` over about ``patches`` patches, after 3 batches of warm-up. The CPU time (all
    threads) hardly depends on what else the machine runs; the wall-clock rate does."""
    dataset = iter(training_dataset(source, scale=scale, batch_size=batch_size, degradation=degradation))
    for _ in range(3):  # warm up: threads, the prefetch buffer, tracing
        next(dataset)
    batches = max(1, patches // batch_size)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(dataset)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return batches * batch_size / wall, 1000 * cpu / (batches * batch_size)


def validation_images(folder: str | os.PathLike, limit: int | None = None, scale: int = 4
                      ) -> list[tuple[str, np.ndarray]]:
    """The HR images of a small fixed validation set (e.g. Set5), sorted by name; images too small to score
    at ``scale`` (the benchmark's rule) are skipped with a warning naming them."""
    from .benchmark import min_hr_side  # benchmark imports data

    loaded = read_image_folder(folder, min_size=min_hr_side(scale))
    pairs = [(path.stem, image) for path, image in zip(loaded.paths, loaded.images)]
    return pairs[:limit] if limit else pairs


def survey(folders: dict[str, str | os.PathLike], min_size: int = 1) -> list[dict]:
    """One row per named folder: how many usable images, their sizes and megapixels, and the files
    skipped (unreadable, or smaller than ``min_size``) with the reason. Every file is decoded once."""
    rows = []
    for name, folder in folders.items():
        found = read_image_folder(folder, min_size=min_size, keep_images=False)
        heights = [shape[0] for shape in found.shapes]
        widths = [shape[1] for shape in found.shapes]
        rows.append({
            "set": name, "folder": str(folder), "images": len(found), "skipped": len(found.skipped),
            "skipped_files": [f"{path.name}: {reason}" for path, reason in found.skipped],
            "width": (min(widths), max(widths)), "height": (min(heights), max(heights)),
            "megapixels": round(sum(h * w for h, w in zip(heights, widths)) / 1e6, 2),
        })
    return rows


def survey_markdown(rows: list[dict]) -> str:
    lines = ["| set | images | width | height | megapixels | skipped |", "|---|---|---|---|---|---|"]
    for r in rows:
        skipped = str(r["skipped"]) + (f" ({'; '.join(r['skipped_files'][:3])}{' …' if r['skipped'] > 3 else ''})"
                                       if r["skipped"] else "")
        lines.append(f"| {r['set']} | {r['images']} | {r['width'][0]}–{r['width'][1]} | "
                     f"{r['height'][0]}–{r['height'][1]} | {r['megapixels']} | {skipped} |")
    return "\n".join(lines)
