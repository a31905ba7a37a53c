"""Chapter 2, the generator and its pretraining (``notebooks/02_pretrain_sr_vgg``), on small examples.

Computations: the sub-pixel shuffle and a residual block on tiny tensors, which LR pixels an output pixel
depends on, what pixel MSE, the VGG content loss and total variation say about one patch and a few
distortions of it, and a moving average of weights. Figures: one for each. (The network's code, diagram and
parameters are in ``srlib.course.networks``, which chapter 3 uses too.)
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from ..degradation import bicubic_downscale, bicubic_upscale, modcrop
from ..metrics import psnr_y


def subpixel_example(factor: int = 2, size: int = 2, channels: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A tiny tensor through the generator's own sub-pixel shuffle: (size, size, channels * factor^2) numbered
    0, 1, 2, ... in memory order, and what ``SubpixelUpsampling`` makes of it, (size * factor, size * factor,
    channels)."""
    from ..models import SubpixelUpsampling

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
    from ..recipes import CONTENT_LOSSES

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

    from .. import losses

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
    from ..benchmark import evaluate_image
    from ..models import upscale_with

    scale = trainer.config.scale
    upscale = upscale_with(trainer.generator)  # one compiled function; the weights are swapped under it
    score = lambda: float(np.mean([evaluate_image(hr, upscale, scale)[0] for _, hr in images]))  # noqa: E731
    result = {"weights of the last step": score()}
    if trainer.config.ema:
        with trainer.inference_weights():
            result[f"their moving average (ema = {trainer.config.ema})"] = score()
    return result


def plot_residual_block(parts: dict[str, np.ndarray], channel: int = 0):
    """One channel of a residual block's input, branch and output (``residual_parts``), each
    with its size (root mean square over all channels) in the title."""
    fig, axes = plt.subplots(1, len(parts), figsize=(4.2 * len(parts), 3.8))
    for ax, (name, value) in zip(axes, parts.items()):
        image = ax.imshow(value[..., channel], cmap="RdBu_r", vmin=-np.abs(value[..., channel]).max(),
                          vmax=np.abs(value[..., channel]).max())
        fig.colorbar(image, ax=ax, fraction=0.046, label="feature value (no unit)")
        ax.set_title(f"{name}\nRMS over all channels {np.sqrt(np.mean(value ** 2)):.3g}", fontsize=9)
        ax.set(xlabel="x (LR pixels)", ylabel="y (LR pixels)")
    fig.suptitle(f"Feature channel {channel} through a residual block: the block adds its branch to its input",
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_subpixel(x: np.ndarray, y: np.ndarray):
    """The sub-pixel shuffle on a tiny tensor (``subpixel_example``): each input channel (left)
    and the output (right), every value written in and coloured by the channel it came from."""
    channels, factor = x.shape[-1], y.shape[0] // x.shape[0]
    colours = plt.get_cmap("tab10")
    fig, axes = plt.subplots(1, channels + 1, figsize=(2.1 * channels + 3.6, 3.1),
                             gridspec_kw={"width_ratios": [1] * channels + [factor]})
    source = (np.arange(y.shape[0])[:, None] % factor) * factor + np.arange(y.shape[1])[None, :] % factor
    for ax, values, kind in [(axes[c], x[..., c], np.full(x.shape[:2], c)) for c in range(channels)] + [
            (axes[-1], y[..., 0], source)]:
        ax.imshow(kind, cmap=colours, vmin=0, vmax=9, alpha=0.45)
        for (i, j), v in np.ndenumerate(values):
            ax.text(j, i, str(v), ha="center", va="center", fontsize=11)
        ax.set_xticks(range(values.shape[1]))
        ax.set_yticks(range(values.shape[0]))
        ax.set_xlabel("column (pixels)", fontsize=8)
    for c in range(channels):
        axes[c].set_title(f"input channel {c}\n({x.shape[0]}×{x.shape[1]} pixels)", fontsize=9)
    axes[0].set_ylabel("row (pixels)", fontsize=8)
    axes[-1].set_title(f"output: {y.shape[0]}×{y.shape[1]} pixels, 1 channel\n(each {factor}×{factor} block "
                       f"takes one pixel from each of the {channels} channels)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_receptive_field(influence: np.ndarray, radius: int):
    """Which LR pixels move the centre output pixel (``input_influence``), on a log scale, with
    the receptive field computed from the architecture (``srlib.upscale.receptive_radius``) drawn as a square;
    right: the centre row of the same map."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.3))
    size = influence.shape[0]
    centre = size // 2
    logged = np.log10(influence + 1e-12 * max(influence.max(), 1e-30))
    image = left.imshow(logged, cmap="magma", vmin=logged.max() - 8, vmax=logged.max())
    fig.colorbar(image, ax=left, label="log10 |∂ output / ∂ LR pixel|")
    left.add_patch(Rectangle((centre - radius - 0.5, centre - radius - 0.5), 2 * radius + 1, 2 * radius + 1,
                             fill=False, edgecolor="cyan", linewidth=1.5, linestyle="--"))
    left.set(title=f"Receptive field: LR pixels that reach one output pixel\n(dashed: ±{radius} LR pixels, from "
             "the architecture)", xlabel="x (LR pixels)", ylabel="y (LR pixels)")
    offsets = np.arange(size) - centre
    right.semilogy(offsets, np.maximum(influence[centre], 1e-30), marker=".", label="centre row of the map")
    for side in (-radius, radius):
        right.axvline(side, color="cyan", linestyle="--", label=f"±{radius} LR pixels" if side > 0 else None)
    right.set(title="The same along the centre row", xlabel="offset from the output pixel (LR pixels)",
              ylabel="|∂ output / ∂ LR pixel|", ylim=(max(influence.max() * 1e-8, 1e-30), influence.max() * 3))
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_feature_maps(images: dict[str, np.ndarray], channels: list[int], maps: dict[str, np.ndarray],
                      title: str):
    """Two images and their squared difference, which pixel MSE averages (top), and their VGG feature maps in the
    given channels (``feature_maps``) with their squared difference, which the content loss
    averages over all channels (below)."""
    names = list(images)[:2]
    fig, axes = plt.subplots(len(channels) + 1, 3, figsize=(9.5, 2.7 * (len(channels) + 1) + 0.6), squeeze=False)
    for j, name in enumerate(names):
        axes[0, j].imshow(images[name])
        axes[0, j].set_title(f"{name} ({images[name].shape[1]}×{images[name].shape[0]} px)", fontsize=9)
    pixels = ((images[names[0]].astype(float) - images[names[1]].astype(float)) / 255 * 2) ** 2
    shown = axes[0, 2].imshow(pixels.mean(axis=-1), cmap="magma")
    fig.colorbar(shown, ax=axes[0, 2], fraction=0.046, label="squared difference")
    axes[0, 2].set_title(f"pixels: squared difference on [-1, 1]\n(mean {pixels.mean():.3g} = the pixel MSE)",
                         fontsize=8)
    for i, channel in enumerate(channels, start=1):
        a, b = (maps[n][..., i - 1] for n in names)
        top = max(a.max(), b.max(), 1e-12)
        for j, value in enumerate((a, b)):
            shown = axes[i, j].imshow(value, cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
            axes[i, j].set_title(f"channel {channel}: {names[j]}", fontsize=8)
        fig.colorbar(shown, ax=axes[i, 1], fraction=0.046, label="activation / 12.75")
        difference = axes[i, 2].imshow((a - b) ** 2, cmap="magma", interpolation="nearest")
        # ticks written out ("2e-05"): the axis's shared "1e-5" offset would sit on the title above
        fig.colorbar(difference, ax=axes[i, 2], fraction=0.046, label="squared difference", format="%.1g")
        axes[i, 2].set_title(f"channel {channel}: squared difference\n(mean {np.mean((a - b) ** 2):.3g}; the loss "
                             "averages all channels)", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_total_variation(images: dict[str, np.ndarray]):
    """Each image (top) and its total variation map, |∂x| + |∂y| averaged over R, G, B in grey levels (bottom),
    titled with its mean on [0, 1], which is what ``srlib.losses.total_variation`` gives (up to the last row and
    column, which the map leaves out)."""
    fig, axes = plt.subplots(2, len(images), figsize=(2.9 * len(images), 6.1), squeeze=False)
    maps = {}
    for name, image in images.items():
        x = image.astype(float)
        maps[name] = (np.abs(np.diff(x, axis=0))[:, :-1] + np.abs(np.diff(x, axis=1))[:-1, :]).mean(axis=-1)
    top = max(np.percentile(m, 99) for m in maps.values())
    for j, (name, image) in enumerate(images.items()):
        axes[0, j].imshow(image)
        axes[0, j].set_title(name, fontsize=9)
        shown = axes[1, j].imshow(maps[name], cmap="magma", vmin=0, vmax=top)
        axes[1, j].set_title(f"l_TV = {maps[name].mean() / 255:.3f} ({maps[name].mean():.1f} grey levels)", fontsize=9)
        for row in (0, 1):
            axes[row, j].set_xticks([])
            axes[row, j].set_yticks([])
    fig.colorbar(shown, ax=list(axes[1]), fraction=0.02, label="|∂x| + |∂y| (grey levels per pixel)")
    fig.suptitle("Total variation: how much neighbouring pixels differ", fontsize=10)
    return fig


def plot_moving_average(steps: np.ndarray, weight: np.ndarray, averages: dict[float, np.ndarray],
                        target: float = 1.0):
    """A weight along noisy training steps and its moving averages (``moving_average_walk``)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.plot(steps, weight, color="gray", alpha=0.6, linewidth=0.9, label="the weight after each step")
    for decay, average in averages.items():
        ax.plot(steps, average, linewidth=1.8, label=f"moving average, ema = {decay} (about the last "
                f"{round(1 / (1 - decay))} steps)")
    ax.axhline(target, color="black", linestyle=":", linewidth=1, label="the value it is learning")
    ax.set(xlabel="training step", ylabel="weight value (no unit)",
           title="A weight trained with noisy gradients, and its exponential moving averages")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
