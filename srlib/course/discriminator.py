"""Chapter 3, the discriminator (``notebooks/03_pretrain_discriminator``), on small examples.

Computations: its binary cross-entropy and the labels it learns from (smoothed, flipped), patches drawn as
training draws them, what a generator makes of them, and the discriminator's verdicts on both. Figures: the
loss by verdict, and the verdicts on real and generated patches. (Its code, diagram and parameters are in
``srlib.course.networks``.)
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..degradation import bicubic_downscale
from ..model_card import stage_weights


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

    from ..losses import discriminator_loss

    noise = tf.random.stateless_uniform((2, count), seed=tf.constant([seed, step], tf.int64))  # as SRGAN.label_noise
    zero, one = tf.zeros(count), tf.ones(count)
    loss = lambda real, fake: discriminator_loss(real, fake, label_smoothing, label_flip, noise).numpy()  # noqa: E731
    softplus1, log2 = math.log1p(math.e), math.log(2)
    recovered = (softplus1 - (loss(one, zero) - log2), softplus1 - (loss(zero, one) - log2))
    return tuple(np.round(labels.astype(np.float64), 4) + 0.0 for labels in recovered)  # float32 noise and -0 off


def untrained_discriminator(patch_size: int, seed: int = 0):
    """A discriminator as built, with random weights drawn from ``seed``."""
    import keras

    from ..models import discriminator

    keras.utils.set_random_seed(seed)
    return discriminator(patch_size)


def patches(folder: str | os.PathLike, count: int, patch_size: int, seed: int = 1) -> np.ndarray:
    """``count`` random HR patches (uint8, with the training flips and turns) of the images in ``folder``,
    drawn as ``srlib.data`` draws training patches."""
    from ..data import PatchSource

    source = PatchSource([folder], patch_size=patch_size, seed=seed)
    return np.stack([source.patch(k) for k in range(count)])


def generated_patches(generator, hr_patches: np.ndarray, scale: int) -> np.ndarray:
    """What ``generator`` makes of the MATLAB-bicubic LR of each HR patch (uint8), as in training."""
    from ..models import upscale_with

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


def plot_cross_entropy(label_smoothing: float = 0.1):
    """The discriminator's binary cross-entropy as a function of its verdict P(real): on a real patch with
    label 1 and with the smoothed label 1 - ``label_smoothing``, and on a generated patch (label 0)."""
    p = np.linspace(0.001, 0.999, 999)
    z = np.log(p / (1 - p))
    fig, ax = plt.subplots(figsize=(7.5, 4))
    ax.plot(p, binary_cross_entropy(z, 1.0), label="real patch, label 1")
    if label_smoothing:
        ax.plot(p, binary_cross_entropy(z, 1 - label_smoothing),
                label=f"real patch, smoothed label {1 - label_smoothing:g}")
        ax.axvline(1 - label_smoothing, color="C1", linestyle=":", linewidth=1.2,
                   label=f"smoothed loss is lowest at P(real) = {1 - label_smoothing:g}")
    ax.plot(p, binary_cross_entropy(z, 0.0), label="generated patch, label 0")
    ax.set(xlabel="discriminator's verdict P(real) = σ(logit)", ylabel="loss (nats)", ylim=(0, 5),
           title="Binary cross-entropy of one verdict")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center")
    fig.tight_layout()
    return fig


def plot_verdicts(hr: np.ndarray, sr: np.ndarray, scores: dict[str, tuple[np.ndarray, np.ndarray]],
                  count: int = 6, sr_name: str = "generated"):
    """What a discriminator thinks: ``count`` real HR patches and the generator's versions of them (top two rows),
    each titled with P(real) from each discriminator in ``scores`` ({name: (P on HR, P on SR)}), and a histogram
    of P(real) over all the patches for each (bottom)."""
    from matplotlib.gridspec import GridSpec

    count = min(count, len(hr))
    columns = max(count, 2 * len(scores))
    fig = plt.figure(figsize=(2.05 * columns, 2 * (2.0 + 0.15 * len(scores)) + 3.2))
    grid = GridSpec(3, columns, figure=fig, height_ratios=[1, 1, 1.25], hspace=0.35, top=0.9, bottom=0.08)
    for i in range(count):
        for row, (images, which, name) in enumerate(((hr, 0, "HR (real)"), (sr, 1, sr_name))):
            ax = fig.add_subplot(grid[row, i])
            ax.imshow(images[i], interpolation="nearest")
            ax.set_title(f"{name}\n" + "\n".join(f"{k}: {v[which][i]:.2f}" for k, v in scores.items()), fontsize=7.5)
            ax.set_axis_off()
    bottom = grid[2, :].subgridspec(1, len(scores), wspace=0.25)
    bins = np.linspace(0, 1, 21)
    for j, (name, (on_hr, on_sr)) in enumerate(scores.items()):
        ax = fig.add_subplot(bottom[0, j])
        ax.hist(on_hr, bins=bins, alpha=0.6, color="tab:green",
                label=f"HR (real): {np.mean(on_hr > 0.5):.0%} called real")
        ax.hist(on_sr, bins=bins, alpha=0.6, color="tab:purple",
                label=f"{sr_name}: {np.mean(on_sr < 0.5):.0%} called generated")
        ax.axvline(0.5, color="gray", linestyle=":", linewidth=1)
        ax.set(xlabel="P(real) given by the discriminator", ylabel="patches", xlim=(0, 1))
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7, loc="upper center")
        ax.grid(alpha=0.3)
    fig.suptitle(f"What the discriminator thinks: P(real) of {len(hr)} HR patches and of the generator's versions "
                 f"of them (the first {count} shown)", fontsize=10)
    return fig
