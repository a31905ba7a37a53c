"""Upscaling images of any size with a trained generator, tile by tile.

The generator is fully convolutional, so an output pixel depends only on LR pixels within its receptive
field (about 40 LR pixels for SRResNet-16). ``upscale`` cuts the LR image into tiles, runs each with
``overlap`` pixels of real context on every side that has a neighbour, and keeps only the tile's own
part of the result: memory is bounded by the tile size, and with an overlap near the receptive field the
result equals the whole-image result (tests/test_upscale.py checks it to one grey level).

``srlib.upscale`` is the function ``upscale`` (the package exports it); reach this module itself with
``from srlib.upscale import ...`` or ``importlib.import_module("srlib.upscale")``.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from .errors import ImageReadError, SrlibError

log = logging.getLogger(__name__)

SHIPPED = {"srresnet-x4": Path(__file__).resolve().parent / "weights" / "srresnet_x4.weights.h5"}
DEFAULT_MODEL = "srresnet-x4"


def weights_path(weights: str | os.PathLike) -> Path:
    """The file of a shipped model's name (e.g. "srresnet-x4"), or ``weights`` itself as a path."""
    if str(weights) not in SHIPPED:
        return Path(weights)
    path = SHIPPED[str(weights)]
    if not path.is_file():
        raise SrlibError(f"the {weights} weights are not in this copy of srlib ({path}); give a trained "
                         "generator's .weights.h5 instead (--weights PATH, or weights=PATH in Python)")
    return path


def _load(weights: str | os.PathLike):
    """The generator and its upscaler, built once per file (and again if the file changes)."""
    path = weights_path(weights).resolve()
    version = (path.stat().st_ino, path.stat().st_mtime_ns) if path.is_file() else None  # saves replace the inode
    return _load_file(path, version)


@functools.lru_cache(maxsize=4)
def _load_file(path: Path, version):
    from .models import load_generator, upscale_with  # TensorFlow loads on first use, not on `import srlib`

    model = load_generator(path)
    return model, upscale_with(model)


def tiles(length: int, tile: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``tile`` covering ``range(length)``."""
    return [(start, min(start + tile, length)) for start in range(0, length, tile)]


def receptive_radius(architecture: dict) -> int:
    """LR pixels on each side that can influence an output pixel: 4 (9x9 head) + 2 per residual block
    + 1 (the conv after the blocks) + 1 per x2 upsampling conv + 1 (the 9x9 tail at full scale), rounded up."""
    upsamplings = {2: 1, 4: 2, 8: 3}[architecture["scale"]]
    return 4 + 2 * architecture["blocks"] + 1 + upsamplings + 1


def upscale(image: np.ndarray, weights: str | os.PathLike = DEFAULT_MODEL, tile: int | None = 192,
            overlap: int | None = None) -> np.ndarray:
    """Upscale a uint8 RGB (or grayscale) image with a generator: the shipped model by default, or a
    ``.weights.h5`` file with its JSON sidecar. ``tile=None`` runs the whole image at once; ``overlap``
    (LR pixels of context around each tile) defaults to the network's receptive radius."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise SrlibError(f"upscale takes uint8 images, got {image.dtype} (read files with srlib.read_image)")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise SrlibError(f"upscale takes an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    image = image[..., :3]
    from .models import generator_config

    model, run = _load(weights)
    architecture = generator_config(model)
    scale = architecture["scale"]
    overlap = receptive_radius(architecture) if overlap is None else overlap
    height, width = image.shape[:2]
    if tile is None or (height <= tile and width <= tile):
        return run(image)
    if tile < 8 or overlap < 0:
        raise SrlibError(f"tile must be at least 8 and overlap at least 0, got {tile} and {overlap}")
    output = np.empty((height * scale, width * scale, 3), np.uint8)
    for top, bottom in tiles(height, tile):
        for left, right in tiles(width, tile):
            t, b = max(0, top - overlap), min(height, bottom + overlap)
            l, r = max(0, left - overlap), min(width, right + overlap)
            sr = run(image[t:b, l:r])
            output[top * scale:bottom * scale, left * scale:right * scale] = sr[
                (top - t) * scale:(bottom - t) * scale, (left - l) * scale:(right - l) * scale]
    return output


def upscale_files(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, weights=DEFAULT_MODEL,
                  tile: int | None = 192, overwrite: bool = False, progress: bool = True) -> dict:
    """Upscale image files and folders of images into ``out_dir`` as PNGs named after each input.

    An unreadable file is reported by name and skipped; an existing output is kept unless ``overwrite``.
    Returns {"written": [...], "kept": [...], "failed": [(path, reason)]}.
    """
    from tqdm.auto import tqdm

    from .images import list_image_files, read_image, write_image

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list_image_files(item, recursive=False)
        elif item.exists():
            files.append(item)
        else:
            raise SrlibError(f"{item} does not exist")
    if not files:
        raise SrlibError(f"no image files in {', '.join(map(str, inputs))}")
    names = [f.stem for f in files]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise SrlibError(f"several inputs would write the same output: {', '.join(sorted(duplicates))}.png")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done = {"written": [], "kept": [], "failed": []}
    for path in tqdm(files, desc="upscale", unit="image", disable=None if progress and len(files) > 1 else True):
        target = out_dir / f"{path.stem}.png"
        if target.exists() and not overwrite:
            log.warning("%s exists: kept (use --overwrite to replace it)", target)
            done["kept"].append(target)
            continue
        try:
            image = read_image(path)
        except ImageReadError as error:
            log.warning("skipping %s: %s", path, error.reason)
            done["failed"].append((path, error.reason))
            continue
        write_image(target, upscale(image, weights, tile))
        done["written"].append(target)
    return done
