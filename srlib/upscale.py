"""Upscaling images of any size with a trained generator, tile by tile, within a memory budget.

The generator is fully convolutional, so an output pixel depends only on LR pixels within its receptive
field (40 LR pixels for SRResNet-16). Inference runs it in two parts: the body (head, residual blocks,
long skip) at LR resolution, 1.6 KB per LR pixel with SRResNet-16's 64 filters and 37 pixels of receptive
radius, and the upsampler (sub-pixel convs and the 9x9 tail), 16 KB per LR pixel (x4) but only 3 pixels
of radius. ``upscale`` cuts the image into body windows as large as ``max_memory`` allows, each with the
real context its result needs on every side that has a neighbour, and runs the upsampler on sub-windows
of each body window's features (in bfloat16 no larger than ``UPSAMPLER_SIDE`` allows); every window keeps
only its own part of the result, which equals the whole-image result (tests/test_upscale.py checks it to one
grey level). Peak memory follows the budget, not the image: ``upscale_files`` writes each PNG band by band as
rows of windows finish.

The 9x9 tail conv at full resolution has 3 output channels, which runs at a fifth of the speed of the
other convs (90 against 420 GFLOP/s on the 2-core AVX-512 machine this was measured on); inference
computes it at half resolution instead, as a 5x5 conv with 12 output channels on the last sub-pixel
conv's channels followed by the shuffle (``srlib.models.pre_shuffle_kernel``, which the Keras model's
``tail_conv`` uses too): the same function, the kernel rearranged.

``srlib.upscale`` is the function ``upscale`` (the package exports it); reach this module itself with
``from srlib.upscale import ...`` or ``importlib.import_module("srlib.upscale")``.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from .errors import ImageReadError, SrlibError

log = logging.getLogger(__name__)

# the shipped generators: SRResNet-16 (pixel MSE, the sharpest by PSNR), SRGAN-MSE (the same network fine-tuned
# with the paper's adversarial term: finer texture, lower PSNR) and SRResNet-16 for real photos (fine-tuned on
# srlib.realistic.MIXED: JPEG, noise and blur removed, at the cost of some PSNR on clean inputs); README, "Results"
SHIPPED = {name: Path(__file__).resolve().parent / "weights" / f"{name.replace('-', '_')}.weights.h5"
           for name in ("srresnet-x4", "srgan-mse-x4", "srresnet-real-x4")}
DEFAULT_MODEL = "srresnet-x4"
# upscaling computes in bfloat16 where the hardware has it: twice the float32 speed, for a PSNR within 0.02 dB of
# float32's on every benchmark set with both shipped models (figures/bench_upscale.md, from make bench-upscale)
DEFAULT_PRECISION = "bfloat16"
DEFAULT_MAX_MEMORY = 2 * 10**9  # bytes of tiles and output band, beyond TensorFlow itself and the model (about 1 GB)

# body windows of at least this many LR pixels, and the upsampler's windows within them, compute the PReLUs with
# XLA (see _Network)
COMPILED_FROM = 2**17

# Peak memory of a window, in bytes per LR pixel, measured as the growth of the process's peak resident
# memory on windows of 256^2 to 1024^2 (benchmarks/bench_upscale.py --memory prints it again). The body
# holds about six tensors of `filters` float32 channels; the upsampler about four of its last sub-pixel
# conv's output (4 * filters channels at half the output resolution), with TensorFlow's temporaries.
BODY_BYTES_PER_FILTER = 26
UPSAMPLER_BYTES_PER_FILTER = 17  # times scale^2
# Per compute precision, the upsampler's windows hold at most as many LR pixels as a square of this side with
# its context, whatever the budget; None: as large as the budget allows. In bfloat16 the convs are fast enough
# that the element-wise work on the upsampler's largest tensors (4 * filters channels at half the output
# resolution) weighs, and it costs less on windows of this size (32 MB tensors) than on larger ones. In float32
# the smaller windows' extra context costs more than that saves. `python benchmarks/bench_upscale.py
# --upsampler-sides 512` measures both.
UPSAMPLER_SIDE = {"bfloat16": 128, "float32": None}


def weights_path(weights: str | os.PathLike) -> Path:
    """The file of a shipped model's name (a key of ``SHIPPED``), or ``weights`` itself as a path."""
    if str(weights) not in SHIPPED:
        path = Path(weights)
        if not path.exists() and not path.name.endswith(".h5"):  # a mistyped name, e.g. srgan_mse_x4
            raise SrlibError(f"{weights} is neither a shipped model ({', '.join(SHIPPED)}) nor a file")
        return path
    path = SHIPPED[str(weights)]
    if not path.is_file():
        raise SrlibError(f"the {weights} weights are not in this copy of srlib ({path}); give a trained "
                         "generator's .weights.h5 instead (--weights PATH, or weights=PATH in Python)")
    return path


def parse_memory(text: str) -> int:
    """Bytes from "2G", "1.5GB", "500M", "800MB" or a plain number of bytes (decimal units); for --max-memory."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise SrlibError(f"not an amount of memory: {text!r} (e.g. 2G, 1.5GB, 500M)")
    return int(float(match[1]) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}[match[2].lower()])


def _load(weights: str | os.PathLike, precision: str = DEFAULT_PRECISION) -> "_Network":
    """The generator's inference network in ``precision``, built once per file (and again if the file changes)."""
    from .precision import check

    check(precision)  # a wrong name is an error before any work
    path = weights_path(weights).resolve()
    version = (path.stat().st_ino, path.stat().st_mtime_ns) if path.is_file() else None  # saves replace the inode
    return _load_file(path, version, precision)


@functools.lru_cache(maxsize=4)
def _load_file(path: Path, version, precision: str) -> "_Network":
    from .models import load_generator  # TensorFlow loads on first use, not on `import srlib`
    from .precision import effective

    return _Network(load_generator(path), effective(precision))


class _Network:
    """A generator for inference in two parts: ``body`` (uint8 LR -> float features) and ``upsampler`` (features
    -> uint8 SR), with the tail computed before the last shuffle; each is a TensorFlow function, one with the
    PReLUs compiled by XLA (for body windows of at least ``COMPILED_FROM`` LR pixels and the upsampler's windows
    within them) and one without. Batch norm, if any, is folded into the convs first."""

    def __init__(self, model, precision: str = "float32"):
        import tensorflow as tf

        from .models import fold_batch_norm, pre_shuffle_kernel

        self.precision = precision
        compute = tf.bfloat16 if precision == "bfloat16" else tf.float32
        self.architecture = dict(model.architecture)
        if self.architecture["batch_norm"]:
            model = fold_batch_norm(model)
        scale, blocks, filters = (self.architecture[k] for k in ("scale", "blocks", "filters"))
        self.scale, self.filters = scale, filters
        self.body_radius, self.upsampler_radius = radii(self.architecture)
        w = {layer.name: [np.asarray(v, np.float32) for v in layer.get_weights()] for layer in model.layers if layer.weights}
        steps = int(math.log2(scale))
        kernel, bias = w["tail_conv"]
        w["tail_conv"] = [np.asarray(pre_shuffle_kernel(kernel)), np.tile(bias, 4)]
        w[f"up{steps - 1}_prelu"] = [np.tile(w[f"up{steps - 1}_prelu"][0], 4)]  # per channel: same before the shuffle
        # every conv computes in ``precision``; the tail's bias and the rescaling to pixels in float32. In
        # bfloat16 the tail's sums are rounded to 8 significant bits, at most a quarter of a grey level on the
        # output: 0.004 dB or less on every benchmark set (figures/bench_upscale.md), and the tail in float32
        # would take a fifth of the time of the whole network
        w = {name: [tf.constant(v, dtype=tf.float32 if name == "tail_conv" and i == 1 else compute)
                    for i, v in enumerate(values)] for name, values in w.items()}

        def conv(x, name):
            kernel, bias = w[name]
            return tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, "SAME"), bias)

        def plain_prelu(x, alpha):  # what keras' PReLU computes, relu(x) - alpha relu(-x), in fewer ops
            return x * tf.where(x > 0, tf.ones_like(alpha), alpha)

        # XLA compiles the PReLU's comparison, choice of slope and product into one pass over the tensor, where
        # TensorFlow takes three: in bfloat16 a sixth of a residual block's time. The convs stay with TensorFlow's
        # oneDNN kernels, which XLA's CPU compiler does not beat. XLA compiles again for each new window shape
        # (about 0.1 s and 0.3 MB kept per shape), which pays for body windows from about COMPILED_FROM LR pixels
        # on, and for the upsampler's windows within them, which share one or two shapes; the benchmark sets'
        # images are smaller.
        compiled_prelu = tf.function(plain_prelu, jit_compile=True, autograph=False)

        def body(lr, prelu):
            x = tf.cast(tf.cast(lr, tf.float32) / 255.0 * 2.0 - 1.0, compute)
            x = head = prelu(conv(x, "head_conv"), w["head_prelu"][0])
            for i in range(blocks):
                x = x + conv(prelu(conv(x, f"block{i}_conv1"), w[f"block{i}_prelu"][0]), f"block{i}_conv2")
            return head + conv(x, "body_conv")

        def upsampler(x, prelu):
            for i in range(steps):
                x = conv(x, f"up{i}_conv")
                alpha = w[f"up{i}_prelu"][0]
                x = prelu(tf.nn.depth_to_space(x, 2), alpha) if i < steps - 1 else prelu(x, alpha)
            kernel, bias = w["tail_conv"]
            tail = tf.nn.bias_add(tf.cast(tf.nn.conv2d(x, kernel, 1, "SAME"), tf.float32), bias)
            sr = tf.nn.depth_to_space(tail, 2) * 0.5 + 0.5
            return tf.cast(tf.clip_by_value(tf.round(sr * 255.0), 0.0, 255.0), tf.uint8)

        self._functions = {  # (body, upsampler) without XLA and with
            compiled: (tf.function(functools.partial(body, prelu=prelu),
                                   input_signature=[tf.TensorSpec((1, None, None, 3), tf.uint8)]),
                       tf.function(functools.partial(upsampler, prelu=prelu),
                                   input_signature=[tf.TensorSpec((1, None, None, filters), compute)]))
            for compiled, prelu in ((False, plain_prelu), (True, compiled_prelu))}

    def body(self, lr):
        """The body's features (float, ``filters`` channels) of a (1, h, w, 3) uint8 LR window."""
        return self._functions[_compiled(lr.shape)][0](lr)

    def upsampler(self, features, compiled: bool | None = None):
        """The uint8 SR window of a window of the body's features, with the XLA PReLUs if ``compiled`` (by
        default if the window has at least ``COMPILED_FROM`` pixels)."""
        return self._functions[_compiled(features.shape) if compiled is None else compiled][1](features)

    def bytes_per_pixel(self) -> tuple[int, int]:
        """Peak memory of a body window and of an upsampler window, in bytes per LR pixel."""
        return (BODY_BYTES_PER_FILTER * self.filters,
                UPSAMPLER_BYTES_PER_FILTER * self.filters * self.scale**2)


def _compiled(shape) -> bool:
    """Whether a (1, h, w, c) window is large enough for the functions with the XLA PReLUs."""
    return shape[1] * shape[2] >= COMPILED_FROM


def radii(architecture: dict) -> tuple[int, int]:
    """LR pixels on each side that can influence a result: (of the body's features: 4 for the 9x9 head, 2 per
    residual block, 1 for the conv after the blocks; of the output given the features: 1 per x2 upsampling
    conv, halved at each finer grid, and 4 output pixels for the 9x9 tail), each rounded up."""
    steps = int(math.log2(architecture["scale"]))
    upsampler = sum(1 / 2**i for i in range(steps)) + 4 / architecture["scale"]
    return 4 + 2 * architecture["blocks"] + 1, math.ceil(upsampler)


def receptive_radius(architecture: dict) -> int:
    """LR pixels on each side that can influence an output pixel (40 for SRResNet-16 at x4)."""
    return sum(radii(architecture))


def windows(start: int, stop: int, lo: int, hi: int, pieces: int, radius: int) -> list[tuple[int, int, int, int]]:
    """Cut [start, stop) into at most ``pieces`` parts, each inside a window of one common size that reaches
    ``radius`` beyond it on both sides, within [lo, hi] (lo <= start, stop <= hi: the data available;
    nothing is needed beyond it). Returns (part start, part stop, window start, window stop) for each.

    The parts are sized so that every window has the same size (one shape for TensorFlow) and together
    the windows are as small as they can be: those at ``lo`` or ``hi`` need less context, so hold more.
    """
    pad_lo, pad_hi = start - lo, hi - stop
    size = min(hi - lo, math.ceil((stop - start + pad_lo + pad_hi + 2 * radius * (pieces - 1)) / pieces))
    if size <= 2 * radius:  # too short to cut: one window
        size = hi - lo
    parts, edge = [], start
    while edge < stop:
        room = size - (pad_lo if edge == start else radius)
        part_stop = stop if stop + pad_hi - edge <= room else min(stop, edge + room - radius)
        window_start = min(max(lo, edge - radius), hi - size)
        parts.append((edge, part_stop, window_start, window_start + size))
        edge = part_stop
    return parts


def _window_size(length: int, pieces: int, radius: int) -> int:
    """The window size of ``windows(0, length, 0, length, pieces, radius)`` without building them."""
    return min(length, math.ceil((length + 2 * radius * (pieces - 1)) / pieces))


def plan(height: int, width: int, radius: int, bytes_per_pixel: float, budget: float,
         tile: int | None = None, row_bytes: float = 0) -> tuple[int, int]:
    """Pieces (down, across) to cut a ``height`` x ``width`` LR image into: the fewest computed pixels
    whose windows (with ``radius`` of context) need at most ``budget`` bytes at ``bytes_per_pixel``, with
    ``row_bytes`` per LR row of a band of output held meanwhile; or ``tile``-sized pieces when given."""
    if tile is not None:
        return math.ceil(height / tile), math.ceil(width / tile)
    best = None
    for down in range(1, height + 1):
        size_y = _window_size(height, down, radius)
        if down > 1 and size_y <= 2 * radius + 8:
            break
        total_y = size_y * down
        band = row_bytes * (size_y if down == 1 else size_y - radius)  # the tallest part of a row of windows
        for across in range(1, width + 1):
            size_x = _window_size(width, across, radius)
            if across > 1 and size_x <= 2 * radius + 8:
                break
            total_x = size_x * across
            if size_y * size_x * bytes_per_pixel + band <= budget:
                if best is None or total_y * total_x < best[0]:
                    best = (total_y * total_x, down, across)
                break
        if best is not None and total_y * width >= best[0]:
            break  # more pieces down can only cost more
    if best is None:
        raise SrlibError(f"max_memory of {budget / 1e9:.2f} GB is too small for this network: it needs "
                         f"about {(2 * radius + 9) ** 2 * bytes_per_pixel / 1e9:.2f} GB for its smallest window")
    return best[1], best[2]


def _check(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise SrlibError(f"upscale takes uint8 images, got {image.dtype} (read files with srlib.read_image)")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise SrlibError(f"upscale takes an HxW, HxWx3 or HxWx4 image, got shape {image.shape}")
    return image[..., :3]


def _bands(image: np.ndarray, network: _Network, tile, overlap, max_memory, progress, out=None, desc=None):
    """Yield (first output row, band of output rows) down the SR image of ``image``, each band complete
    across; the bands are views of ``out`` when it is given."""
    from tqdm.auto import tqdm

    scale = network.scale
    height, width = image.shape[:2]
    max_memory = parse_memory(max_memory) if isinstance(max_memory, str) else float(max_memory)
    body_radius, up_radius = network.body_radius, network.upsampler_radius
    if overlap is not None:
        if overlap < 0:
            raise SrlibError(f"overlap must be at least 0, got {overlap}")
        up_radius = min(up_radius, overlap)
        body_radius = overlap - up_radius
    radius = body_radius + up_radius
    body_bytes, up_bytes = network.bytes_per_pixel()
    row_bytes = 0 if out is not None else width * scale**2 * 3
    if tile is None:
        down, across = 1, 1
    elif tile == "auto":
        down, across = plan(height, width, radius, body_bytes, max_memory, row_bytes=row_bytes)
    elif isinstance(tile, int) and tile >= 8:
        down, across = plan(height, width, radius, body_bytes, max_memory, tile=tile)
    else:
        raise SrlibError(f"tile must be an integer of at least 8, None (whole image) or 'auto', got {tile!r}")
    rows = windows(0, height, 0, height, down, radius)
    columns = windows(0, width, 0, width, across, radius)
    window_pixels = (rows[0][3] - rows[0][2]) * (columns[0][3] - columns[0][2])
    room = max_memory - window_pixels * 4 * network.filters - row_bytes * max(b - a for a, b, _, _ in rows)
    if out is None:  # one band's rows, reused: the caller writes each band out before asking for the next
        buffer = np.empty((max(b - a for a, b, _, _ in rows) * scale, width * scale, 3), np.uint8)
    work = []  # per body window: its part and the upsampler's windows within its features
    for top, bottom, y0, y1 in rows:
        for left, right, x0, x1 in columns:
            lo_y, hi_y, lo_x, hi_x = max(0, top - up_radius), min(height, bottom + up_radius), \
                max(0, left - up_radius), min(width, right + up_radius)
            if tile is None:
                sub = (1, 1)
            else:
                side = UPSAMPLER_SIDE["bfloat16" if network.precision == "bfloat16" else "float32"]
                budget = room if side is None else min(room, (side + 2 * up_radius) ** 2 * up_bytes)
                smallest = (2 * up_radius + 9) ** 2 * up_bytes
                sub = plan(hi_y - lo_y, hi_x - lo_x, up_radius, up_bytes, max(budget, smallest))
            work.append(((top, bottom, y0, y1), (left, right, x0, x1),
                         [(ys, xs) for ys in windows(top, bottom, lo_y, hi_y, sub[0], up_radius)
                          for xs in windows(left, right, lo_x, hi_x, sub[1], up_radius)]))
    total = sum(len(subs) for _, _, subs in work)
    bar = tqdm(total=total, desc=desc or "upscale", unit="tile", leave=False, disable=not progress or total == 1)
    index = 0
    try:
        for top, bottom, _, _ in rows:
            band = out[top * scale:bottom * scale] if out is not None else buffer[:(bottom - top) * scale]
            for (_, _, y0, y1), (left, right, x0, x1), subs in work[index:index + len(columns)]:
                features = network.body(image[None, y0:y1, x0:x1])
                compiled = _compiled(features.shape)  # the upsampler's windows take the body window's choice
                for (a, b, v0, v1), (c, d, u0, u1) in subs:
                    sr = network.upsampler(features[:, v0 - y0:v1 - y0, u0 - x0:u1 - x0], compiled).numpy()[0]
                    band[(a - top) * scale:(b - top) * scale, c * scale:d * scale] = \
                        sr[(a - v0) * scale:(b - v0) * scale, (c - u0) * scale:(d - u0) * scale]
                    bar.update()
                del features
            index += len(columns)
            yield top * scale, band
    finally:
        bar.close()


def upscale(image: np.ndarray, weights: str | os.PathLike = DEFAULT_MODEL, tile: int | str | None = "auto",
            overlap: int | None = None, max_memory: float | str = DEFAULT_MAX_MEMORY, progress: bool = False,
            precision: str = DEFAULT_PRECISION) -> np.ndarray:
    """Upscale a uint8 RGB (or grayscale, or RGBA: alpha dropped) image with a generator: a shipped model's name
    (``"srresnet-x4"``, the default, or ``"srgan-mse-x4"``), or a ``.weights.h5`` file with its JSON sidecar.
    Returns the uint8 RGB SR image.

    ``max_memory`` (bytes, or a string such as "2G" or "500M") bounds the memory of the windows the image
    is cut into, beyond TensorFlow itself and the model (about 1 GB) and the input and output arrays; ``tile`` (LR pixels per window, before context) overrides the choice,
    and ``tile=None`` runs the whole image at once. ``overlap`` (LR pixels of context around each window)
    defaults to the network's receptive radius, which makes the result that of the whole image.
    ``progress`` shows a progress bar over the windows. ``precision`` "bfloat16" computes every conv in
    bfloat16 (``srlib.precision``), rescaling to pixels in float32: faster on CPUs with bfloat16 hardware,
    with an output that differs by a grey level here and there.
    """
    image = _check(image)
    network = _load(weights, precision)
    scale = network.scale
    out = np.empty((image.shape[0] * scale, image.shape[1] * scale, 3), np.uint8)
    for _ in _bands(image, network, tile, overlap, max_memory, progress, out=out):
        pass
    return out


def _output_names(files: list[Path]) -> list[str]:
    """Each input's output file name: its stem + ".png", or, when inputs share a stem (photo.jpg and
    photo.png), its whole name + ".png" (photo.jpg.png) for all but a .png one. Inputs that would still
    write the same file (the same name in two folders) are an error naming them."""
    names = [f"{f.stem}.png" for f in files]
    stems = {}
    for name in names:
        stems[name.casefold()] = stems.get(name.casefold(), 0) + 1
    for i, path in enumerate(files):
        if stems[names[i].casefold()] > 1 and path.suffix.lower() != ".png":
            names[i] = f"{path.name}.png"
            log.info("%s shares its name with another input: writing it as %s", path, names[i])
    clashes = {}
    for path, name in zip(files, names):
        clashes.setdefault(name.casefold(), []).append(path)
    clashes = {name: paths for name, paths in clashes.items() if len(paths) > 1}
    if clashes:
        described = "; ".join(" and ".join(map(str, paths)) + f" would both be written as {names[files.index(paths[0])]}"
                              for paths in clashes.values())
        raise SrlibError(f"several inputs would write the same output: {described} (upscale them into different folders)")
    return names


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def upscale_files(inputs: list[str | os.PathLike], out_dir: str | os.PathLike, weights=DEFAULT_MODEL,
                  tile: int | str | None = "auto", overwrite: bool = False, progress: bool = True,
                  max_memory: float | str = DEFAULT_MAX_MEMORY, precision: str = DEFAULT_PRECISION) -> dict:
    """Upscale image files and folders of images into ``out_dir`` as PNGs named after each input
    (photo.jpg -> photo.png; when inputs share a stem, as photo.jpg and photo.png do, the others keep their
    extension: photo.jpg -> photo.jpg.png). Each PNG is written band by band, so memory follows
    ``max_memory`` (see ``upscale``, as ``precision``), not the image.

    An unreadable file is reported by name and skipped; an existing output is kept unless ``overwrite``, also
    one that another process writes while this one works on it (the PNG takes its name only if it is free);
    an output that would be one of the inputs is an error, whatever ``overwrite`` says, before any work.
    A full disk is an ``OSError`` (ENOSPC) naming the PNG; the outputs written before it are complete.
    The half-written output a killed earlier run left (a hidden temporary file) is deleted when its PNG is written.
    Returns {"written": [...], "kept": [...], "failed": [(path, reason)]}.
    """
    from tqdm.auto import tqdm

    from .files import make_folder, why_missing
    from .images import list_image_files, png_band_writer, read_image

    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += list_image_files(item, recursive=False)
        elif item.exists():
            files.append(item)
        else:
            raise SrlibError(f"{item} {why_missing(item)}")
    if not files:
        raise SrlibError(f"no image files in {', '.join(map(str, inputs))}")
    out_dir = Path(out_dir)
    targets = [out_dir / name for name in _output_names(files)]
    identities = {_identity(f): f for f in files}
    for target in targets:
        source = identities.get(_identity(target)) if target.exists() else None
        if source is not None:  # by path, hard link or symbolic link
            raise SrlibError(f"refusing to write {target} over the input {source}: choose another output folder")
    if isinstance(max_memory, str):
        max_memory = parse_memory(max_memory)  # a wrong amount is an error before any work
    network = _load(weights, precision)
    make_folder(out_dir, "output folder")
    done = {"written": [], "kept": [], "failed": []}
    for path, target in tqdm(list(zip(files, targets)), desc="upscale", unit="image",
                             disable=None if progress and len(files) > 1 else True):
        if target.exists() and not overwrite:
            log.warning("%s exists: kept (use --overwrite to replace it)", target)
            done["kept"].append(target)
            continue
        try:
            image = _check(read_image(path))
        except ImageReadError as error:
            log.warning("skipping %s: %s", path, error.reason)
            done["failed"].append((path, error.reason))
            continue
        height, width = image.shape[0] * network.scale, image.shape[1] * network.scale
        try:
            with png_band_writer(target, height, width, replace=overwrite) as write:
                for _, band in _bands(image, network, tile, None, max_memory, progress, desc=path.name):
                    write(band)
        except FileExistsError:  # written meanwhile by another process: kept, as one that was there before
            log.warning("%s was written by another process meanwhile: kept (use --overwrite to replace it)", target)
            done["kept"].append(target)
            continue
        done["written"].append(target)
    return done
