"""The small computations the course chapters show beside the real runs (notebooks 01-03).

Each takes a few images or a network and returns numbers or arrays; ``srlib.plots`` draws them. Chapter 1:
the ways an LR image can be made and what a mismatch between training and evaluation costs (measured with
a tiny linear upscaler fitted in seconds), the eight orientations of a training patch, the image sizes of
the sets. Chapter 2: the generator's parameters by part, the sub-pixel shuffle and a residual block on
tiny tensors, which LR pixels an output pixel depends on, what pixel MSE, the VGG content loss and total
variation say about one patch and a few distortions of it, and a moving average of weights. Chapter 3: the
discriminator's cross-entropy and the labels it learns from, and its verdicts on real and generated patches.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image

from .degradation import bicubic_downscale, bicubic_upscale, modcrop
from .images import list_image_files
from .metrics import psnr_y
from .model_card import stage_weights

# ---- chapter 1: the data ------------------------------------------------------------------------------


def _tensorflow_bicubic(hr: np.ndarray, scale: int) -> np.ndarray:
    """``tf.image.resize(..., "bicubic")`` without antialiasing, what many Keras tutorials make LR images with."""
    import tensorflow as tf

    height, width = hr.shape[0] // scale, hr.shape[1] // scale
    lr = tf.image.resize(hr[None].astype(np.float32), (height, width), method="bicubic", antialias=False)[0].numpy()
    return np.clip(np.floor(lr + 0.5), 0, 255).astype(np.uint8)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def lr_makers(scale: int) -> dict:
    """Three ways to make an LR image from an HR one (uint8 RGB in, uint8 RGB ``scale`` times smaller out):
    MATLAB's bicubic (what the evaluation and ``srlib.data`` use), TensorFlow's bicubic without antialiasing
    (fine detail folds into false patterns, aliasing), and keeping every ``scale``-th pixel (aliasing, and the
    image moves by (scale - 1) / 2 HR pixels, since each LR pixel is one HR pixel, not the mean of a block)."""
    return {
        "MATLAB bicubic": lambda hr: bicubic_downscale(hr, scale),
        "TensorFlow bicubic, no antialiasing": lambda hr: _tensorflow_bicubic(modcrop(hr, scale), scale),
        f"every {_ordinal(scale)} pixel": lambda hr: modcrop(hr, scale)[::scale, ::scale].copy(),
    }


def bicubic_psnr(images: list[np.ndarray], make_lr, scale: int) -> float:
    """Mean PSNR (Y, shave ``scale``, as the benchmark) of MATLAB bicubic upscaling of LR made by ``make_lr``."""
    return float(np.mean([psnr_y(bicubic_upscale(make_lr(hr), scale), modcrop(hr, scale), scale) for hr in images]))


def _neighbourhoods(lr: np.ndarray, radius: int) -> np.ndarray:
    """(H * W * C, (2 radius + 1)^2 + 1): every LR pixel's square neighbourhood (edges mirrored) and a 1."""
    from numpy.lib.stride_tricks import sliding_window_view

    padded = np.pad(lr.astype(np.float64), ((radius, radius), (radius, radius), (0, 0)), mode="symmetric")
    windows = sliding_window_view(padded, (2 * radius + 1, 2 * radius + 1), axis=(0, 1)).reshape(lr.size, -1)
    return np.concatenate([windows, np.ones((len(windows), 1))], axis=1)


def fit_linear_upscaler(hr_images: list[np.ndarray], make_lr, scale: int, radius: int = 2) -> np.ndarray:
    """The least-squares linear upscaler for LR images made by ``make_lr``: each of the scale x scale HR
    pixels above an LR pixel is a weighted sum of the (2 radius + 1)^2 LR pixels around it, plus a constant,
    with one set of weights per position in the block, shared by R, G and B. The smallest "network" that
    learns from pairs: fitted on the images in seconds. Returns the weights, (taps + 1, scale^2)."""
    taps = (2 * radius + 1) ** 2 + 1
    gram, cross = np.zeros((taps, taps)), np.zeros((taps, scale * scale))
    for hr in hr_images:
        hr = modcrop(hr, scale)
        lr = make_lr(hr)
        x = _neighbourhoods(lr, radius)
        h, w = lr.shape[:2]
        y = hr.astype(np.float64).reshape(h, scale, w, scale, 3).transpose(0, 2, 4, 1, 3).reshape(h * w * 3, -1)
        gram += np.einsum("ni,nj->ij", x, x)  # not BLAS, whose threads crawl on a busy machine
        cross += np.einsum("ni,nj->ij", x, y)
    return np.linalg.solve(gram + 1e-6 * np.eye(taps), cross)


def linear_upscale(lr: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Upscale uint8 ``lr`` with weights from ``fit_linear_upscaler``; uint8 out."""
    scale, radius = math.isqrt(weights.shape[1]), (math.isqrt(weights.shape[0] - 1) - 1) // 2
    h, w = lr.shape[:2]
    sr = np.einsum("ni,ij->nj", _neighbourhoods(lr, radius), weights)
    sr = sr.reshape(h, w, 3, scale, scale).transpose(0, 3, 1, 4, 2)
    return np.clip(np.floor(sr.reshape(h * scale, w * scale, 3) + 0.5), 0, 255).astype(np.uint8)


def mismatch_table(train_images: list[np.ndarray], test_images: list[np.ndarray], makers: dict,
                   scale: int, max_side: int = 256) -> dict[str, dict[str, float]]:
    """Mean PSNR on ``test_images`` of a linear upscaler fitted on LR made one way and tested on LR made each
    way: {"trained on <maker>": {"<maker>": dB}}, and a first row for bicubic upscaling, which learns nothing.
    The diagonal is what a matched evaluation measures; off it, what a mismatch costs. Training images larger
    than ``max_side`` are cut to their centre ``max_side`` x ``max_side`` pixels (DIV2K's would take minutes)."""
    centre = lambda a, n: a[max(0, (a.shape[0] - n) // 2):][:n, max(0, (a.shape[1] - n) // 2):][:, :n]  # noqa: E731
    train_images = [centre(hr, max_side) for hr in train_images]
    test = [modcrop(hr, scale) for hr in test_images]
    lrs = {name: [make(hr) for hr in test] for name, make in makers.items()}
    mean_psnr = lambda upscale, name: float(np.mean([psnr_y(upscale(lr), hr, scale)  # noqa: E731
                                                     for lr, hr in zip(lrs[name], test)]))
    table = {"bicubic (nothing learned)": {name: mean_psnr(lambda lr: bicubic_upscale(lr, scale), name)
                                           for name in makers}}
    for trained_on, make in makers.items():
        weights = fit_linear_upscaler(train_images, make, scale)
        table[f"trained on {trained_on}"] = {name: mean_psnr(lambda lr: linear_upscale(lr, weights), name)
                                             for name in makers}
    return table


def table_markdown(table: dict[str, dict[str, float]], corner: str = "", digits: int = 2, unit: str = "") -> str:
    """A {row: {column: value}} table as Markdown."""
    columns = list(next(iter(table.values())))
    lines = [f"| {corner} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(f"{values[c]:.{digits}f}{unit}" for c in columns) + " |"
              for row, values in table.items()]
    return "\n".join(lines)


def orientations(patch: np.ndarray) -> dict[str, np.ndarray]:
    """The eight orientations a training patch can get (``srlib.data``: a left-right flip with probability 1/2,
    then 0, 1, 2 or 3 quarter turns anticlockwise), each equally likely."""
    found = {}
    for flipped in (False, True):
        image = patch[:, ::-1] if flipped else patch
        for turns in range(4):
            name = ("flipped, " if flipped else "") + (f"turned {90 * turns}°" if turns else "as cropped")
            found[name] = np.ascontiguousarray(np.rot90(image, turns))
    return found


def image_sizes(folders: dict[str, str | os.PathLike]) -> dict[str, np.ndarray]:
    """{set: (n, 2) widths and heights in pixels} of every image, read from the file headers (fast)."""
    sizes = {}
    for name, folder in folders.items():
        found = []
        for path in list_image_files(folder):
            try:
                with Image.open(path) as image:
                    found.append(image.size)
            except Exception:  # the survey reports unreadable files
                continue
        sizes[name] = np.asarray(found, dtype=int).reshape(-1, 2)
    return sizes


# ---- chapter 2: the generator and its losses ----------------------------------------------------------

# Parts of the two networks, by layer name (srlib.models names every layer), in the order they compute.
_PARTS = [
    (r"head_", "head: 9×9 conv + PReLU"),
    (r"block\d+_", "residual blocks: (3×3 conv, BN, PReLU, 3×3 conv, BN) + skip, each"),
    (r"body_", "3×3 conv + BN after the blocks (then the long skip)"),
    (r"up\d+_", "upsampling, per ×2: 3×3 conv to 4× the filters, sub-pixel shuffle, PReLU"),
    (r"tail_", "tail: 9×9 conv to RGB"),
    (r"(conv|bn|lrelu)\d+$", "8 convs (3×3, stride 1 or 2) with BN and leaky ReLU"),
    (r"dense", "dense layer of 1024 + leaky ReLU (after flattening)"),
    (r"logit", "dense layer to one logit"),
]


def parameter_table(model) -> list[dict]:
    """The weights of ``model`` by part (``_PARTS``): {"part", "count" (blocks, for the residual blocks),
    "trainable", "fixed" (batch norm's moving statistics), "share" of all trainable weights}; "count" is how
    many residual blocks or upsampling steps a part has (1 for the others)."""
    rows: dict[str, dict] = {}
    for layer in model.layers:
        part = next((name for pattern, name in _PARTS if re.match(pattern, layer.name)), None)
        if part is None or not layer.weights:
            continue
        row = rows.setdefault(part, {"part": part, "count": set(), "trainable": 0, "fixed": 0})
        repeated = re.match(r"(block|up)(\d+)_", layer.name)
        row["count"].add(repeated.group(2) if repeated else "")
        row["trainable"] += sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        row["fixed"] += sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
    total = sum(row["trainable"] for row in rows.values()) or 1
    return [{**row, "count": len(row["count"]), "share": row["trainable"] / total} for row in rows.values()]


def parameter_markdown(rows: list[dict]) -> str:
    lines = ["| part | how many | trainable weights | share | fixed (BN statistics) |", "|---|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['count'] if r['count'] > 1 else ''} | {r['trainable']:,} | "
              f"{r['share']:.1%} | {r['fixed']:,} |" for r in rows]
    total = sum(r["trainable"] for r in rows)
    lines.append(f"| **all** | | **{total:,}** | 100% | {sum(r['fixed'] for r in rows):,} |")
    return "\n".join(lines)


def subpixel_example(factor: int = 2, size: int = 2, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A tiny tensor through the generator's own sub-pixel shuffle: (size, size, channels * factor^2) numbered
    0, 1, 2, ... in memory order, and what ``SubpixelUpsampling`` makes of it, (size * factor, size * factor,
    channels)."""
    from .models import SubpixelUpsampling

    x = np.arange(size * size * channels * factor**2, dtype=np.float32).reshape(1, size, size, -1)
    y = SubpixelUpsampling(factor)(x)
    return x[0].astype(int), np.asarray(y)[0].astype(int)


def residual_parts(generator, lr: np.ndarray, block: int = 0) -> dict[str, np.ndarray]:
    """What residual block ``block`` of ``generator`` does to the features of ``lr`` (float (H, W, 3) in [0, 1]):
    {"input x", "branch F(x)", "output x + F(x)"}, each (H, W, filters), in inference mode."""
    import keras

    add = generator.get_layer(f"block{block}_add")
    inputs = add.input if isinstance(add.input, (list, tuple)) else [add.input]
    probe = keras.Model(generator.input, [inputs[0], inputs[1], add.output])
    x, branch, out = (np.asarray(t)[0] for t in probe(lr[None].astype(np.float32), training=False))
    return {"input x": x, "branch F(x)": branch, "output x + F(x)": out}


def input_influence(generator, size: int, seed: int = 0) -> np.ndarray:
    """|d SR(centre) / d LR|: how much each pixel of a random ``size`` x ``size`` LR input moves the centre pixel
    of the output (its three colours summed), in inference mode; (size, size). Zero outside the receptive field."""
    import tensorflow as tf

    lr = tf.Variable(np.random.default_rng(seed).uniform(size=(1, size, size, 3)).astype(np.float32))
    centre = size * generator.architecture["scale"] // 2
    with tf.GradientTape() as tape:
        value = tf.reduce_sum(generator(lr, training=False)[0, centre, centre, :])
    return np.abs(tape.gradient(value, lr).numpy()[0]).sum(axis=-1)


def vgg_layer(content_loss: str | None) -> tuple[str, tuple[str, str]]:
    """(key, (network, layer)) of the VGG content loss to show: ``content_loss`` when it is a VGG one, else the
    paper's VGG54, the one its GAN uses (chapter 4)."""
    from .recipes import CONTENT_LOSSES

    key = content_loss if CONTENT_LOSSES.get(content_loss or "") else "vgg54"
    return key, CONTENT_LOSSES[key]


def distortions(image: np.ndarray, box: tuple[int, int, int, int], scale: int, noise: float = 8.0,
                seed: int = 0) -> dict[str, np.ndarray]:
    """The HR crop ``box`` (top, left, height, width) of ``image`` and four images a loss could compare it
    with: its bicubic x``scale`` (from the LR of the whole image), the crop one pixel to the right, the crop
    with gaussian noise of ``noise`` grey levels, and the crop blurred (downscaled and upscaled by 2)."""
    top, left, height, width = box
    crop = lambda picture, dx=0: picture[top:top + height, left + dx:left + dx + width]  # noqa: E731
    hr = modcrop(image, scale)
    noisy = crop(hr).astype(float) + np.random.default_rng(seed).normal(0, noise, crop(hr).shape)
    return {
        "HR (the target)": crop(hr),
        f"bicubic ×{scale}": crop(bicubic_upscale(bicubic_downscale(hr, scale), scale)),
        "HR moved 1 pixel right": crop(hr, 1),
        f"HR + noise (σ {noise:g} grey levels)": np.clip(np.round(noisy), 0, 255).astype(np.uint8),
        "HR blurred (÷2, ×2 bicubic)": bicubic_upscale(bicubic_downscale(crop(hr), 2), 2),
    }


def loss_table(images: dict[str, np.ndarray], features=None, feature_scale: float = 1 / 12.75,
               scale: int = 4) -> list[dict]:
    """What each loss says about each image against the first (the HR target), with ``srlib.losses``' own
    functions: PSNR (Y, shave ``scale``), pixel MSE (on [-1, 1]), the VGG content loss (when ``features``, a
    VGG feature extractor, is given) and total variation; one row per image."""
    import tensorflow as tf

    from . import losses

    names = list(images)
    hr = tf.constant(images[names[0]][None].astype(np.float32) / 255)
    rows = []
    for name in names:
        sr = tf.constant(images[name][None].astype(np.float32) / 255)
        psnr = psnr_y(images[name], images[names[0]], scale) if name != names[0] else math.inf
        row = {"image": name, "PSNR (dB)": psnr, "pixel MSE": float(losses.pixel_mse(hr, sr)[0])}
        if features is not None:
            row["VGG content loss"] = float(losses.content_loss(features, hr, sr, feature_scale)[0])
        row["total variation"] = float(losses.total_variation(sr)[0])
        rows.append(row)
    return rows


def loss_markdown(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k != "image"]
    lines = ["| image | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for row in rows:
        cells = ["–" if math.isinf(row[k]) else f"{row[k]:.2f}" if k.startswith("PSNR") else f"{row[k]:.4g}"
                 for k in keys]
        lines.append(f"| {row['image']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def feature_maps(features, images: dict[str, np.ndarray], count: int = 4, feature_scale: float = 1 / 12.75
                 ) -> tuple[list[int], dict[str, np.ndarray]]:
    """The VGG feature maps of each image as the content loss compares them (times ``feature_scale``): the
    ``count`` channels in which the first two images differ most, and {name: (h, w, count) maps}."""
    maps = {name: np.asarray(features(image[None].astype(np.float32) / 255, training=False))[0] * feature_scale
            for name, image in images.items()}
    first, second = list(maps.values())[:2]
    channels = [int(c) for c in np.argsort(((first - second) ** 2).mean(axis=(0, 1)))[::-1][:count]]
    return channels, {name: m[..., channels] for name, m in maps.items()}


def moving_average_walk(decays=(0.9, 0.99), steps: int = 400, rate: float = 0.05, noise: float = 1.0,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict[float, np.ndarray]]:
    """One weight trained by noisy gradient steps towards 1 (from 0), and its moving averages as Keras keeps
    them (the optimizer's ``use_ema``): the first average is the weight after step 1, then
    ``average = decay * average + (1 - decay) * weight``. Returns (steps, weight, {decay: average})."""
    rng = np.random.default_rng(seed)
    weight, trace = 0.0, []
    for _ in range(steps):
        weight -= rate * (weight - 1.0 + noise * rng.normal())
        trace.append(weight)
    trace = np.asarray(trace)
    averages = {}
    for decay in decays:
        average = np.empty_like(trace)
        average[0] = trace[0]
        for t in range(1, steps):
            average[t] = decay * average[t - 1] + (1 - decay) * trace[t]
        averages[decay] = average
    return np.arange(1, steps + 1), trace, averages


def raw_and_average_psnr(trainer, images: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    """Mean PSNR on ``images`` (the benchmark protocol) of a trainer's generator with the weights of its last
    step and, when the run keeps one (``ema``), with their moving average, which is what it validates and
    exports."""
    from .benchmark import evaluate_image
    from .models import upscale_with

    scale = trainer.config.scale
    upscale = upscale_with(trainer.generator)  # one compiled function; the weights are swapped under it
    score = lambda: float(np.mean([evaluate_image(hr, upscale, scale)[0] for _, hr in images]))  # noqa: E731
    result = {"weights of the last step": score()}
    if trainer.config.ema:
        with trainer.inference_weights():
            result[f"their moving average (ema = {trainer.config.ema})"] = score()
    return result


# ---- chapter 3: the discriminator ---------------------------------------------------------------------


def binary_cross_entropy(logits: np.ndarray, label: float) -> np.ndarray:
    """-[y log σ(z) + (1 - y) log(1 - σ(z))] for logits z and label y, in nats (computed stably)."""
    z = np.asarray(logits, dtype=float)
    return np.maximum(z, 0) - z * label + np.log1p(np.exp(-np.abs(z)))


def discriminator_labels(count: int, label_smoothing: float, label_flip: float, seed: int = 0,
                         step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The labels ``srlib.losses.discriminator_loss`` gives ``count`` real and ``count`` generated images with these
    settings, with the random numbers the training step draws at ``step`` of a run with ``seed``: (real, fake).
    Read back from the library's own loss: with logit 0 a term is log 2 whatever its label, with logit 1 it is
    softplus(1) - label."""
    import tensorflow as tf

    from .losses import discriminator_loss

    noise = tf.random.stateless_uniform((2, count), seed=tf.constant([seed, step], tf.int64))  # as SRGAN.label_noise
    zero, one = tf.zeros(count), tf.ones(count)
    loss = lambda real, fake: discriminator_loss(real, fake, label_smoothing, label_flip, noise).numpy()  # noqa: E731
    softplus1, log2 = math.log1p(math.e), math.log(2)
    recovered = (softplus1 - (loss(one, zero) - log2), softplus1 - (loss(zero, one) - log2))
    return tuple(np.round(labels.astype(np.float64), 4) + 0.0 for labels in recovered)  # float32 noise and -0 off


def untrained_discriminator(patch_size: int, seed: int = 0):
    """A discriminator as built, with random weights drawn from ``seed``."""
    import keras

    from .models import discriminator

    keras.utils.set_random_seed(seed)
    return discriminator(patch_size)


def busiest(images: np.ndarray) -> int:
    """The index of the image with the most detail (mean absolute difference of neighbouring pixels)."""
    x = np.asarray(images, dtype=float)
    detail = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
    return int(np.argmax(detail))


def patches(folder: str | os.PathLike, count: int, patch_size: int, seed: int = 1) -> np.ndarray:
    """``count`` random HR patches (uint8, with the training flips and turns) of the images in ``folder``,
    drawn as ``srlib.data`` draws training patches."""
    from .data import PatchSource

    source = PatchSource([folder], patch_size=patch_size, seed=seed)
    return np.stack([source.patch(k) for k in range(count)])


def generated_patches(generator, hr_patches: np.ndarray, scale: int) -> np.ndarray:
    """What ``generator`` makes of the MATLAB-bicubic LR of each HR patch (uint8), as in training."""
    from .models import upscale_with

    upscale = upscale_with(generator)
    return np.stack([upscale(bicubic_downscale(patch, scale)) for patch in hr_patches])


def verdicts(discriminator, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
    """P(real) = σ(D(x)) of each uint8 image. With ``batch_size``, as the training step computes it: in training
    mode, batch norm normalising each batch of ``batch_size`` images by that batch's own statistics (the step
    calls D on a batch of real patches, then on a batch of generated ones; this also moves the network's
    batch-norm averages, so use a copy that is not trained further). Without, in inference mode, with the
    moving averages of those statistics."""
    x = images.astype(np.float32) / 255
    if batch_size is None:
        logits = np.asarray(discriminator(x, training=False)).reshape(-1)
    else:
        logits = np.concatenate([np.asarray(discriminator(x[i:i + batch_size], training=True)).reshape(-1)
                                 for i in range(0, len(x), batch_size)])
    return 1 / (1 + np.exp(-logits))


def weights_file(run_dir: str | os.PathLike, stage: str, network: str) -> Path:
    """``<run_dir>/<stage>/<network>.weights.h5``, the network a stage exported (``model_card.stage_weights``)."""
    return stage_weights(run_dir, stage, network)
