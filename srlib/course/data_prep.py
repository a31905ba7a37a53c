"""Chapter 1, the data (``notebooks/01_data_prep``): how an LR image is made and what a mismatch costs.

Computations: three ways to make an LR image (``lr_makers``), a tiny linear upscaler fitted in seconds
(``fit_linear_upscaler``) and the table of what training on one and testing on another costs
(``mismatch_table``), the eight orientations of a training patch, the image sizes of the sets.
Figures: the resize kernels, the mismatch table as a heat map, a training batch, the image sizes.
"""

from __future__ import annotations

import math
import os

import matplotlib.pyplot as plt
import numpy as np
from PIL import Image

from ..degradation import bicubic_downscale, bicubic_upscale, cubic_kernel, modcrop
from ..images import list_image_files
from ..metrics import psnr_y


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


def busiest(images: np.ndarray) -> int:
    """The index of the image with the most detail (mean absolute difference of neighbouring pixels)."""
    x = np.asarray(images, dtype=float)
    detail = np.abs(np.diff(x, axis=1)).mean(axis=(1, 2, 3)) + np.abs(np.diff(x, axis=2)).mean(axis=(1, 2, 3))
    return int(np.argmax(detail))


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


def plot_resize_kernels(scale: int = 4):
    """Left: the bicubic kernel (MATLAB's a = -0.5 beside OpenCV's a = -0.75) that upscaling weighs LR pixels
    with. Right: the weights of the HR pixels that make one LR pixel, for MATLAB's bicubic (the kernel stretched
    ``scale`` times: an average over a wide window), TensorFlow's bicubic without antialiasing (four pixels),
    and keeping every ``scale``-th pixel (one pixel, off the LR pixel's centre)."""
    from ..degradation import resize_weights

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    x = np.linspace(-2.5, 2.5, 501)
    left.plot(x, cubic_kernel(x, -0.5), label="MATLAB imresize (a = -0.5)")
    left.plot(x, cubic_kernel(x, -0.75), "--", label="OpenCV INTER_CUBIC (a = -0.75)")
    left.axhline(0, color="gray", linewidth=0.8)
    left.set(title="Bicubic kernel for upscaling", xlabel="distance from the new pixel (LR pixels)",
             ylabel="weight of an LR pixel")
    left.legend(fontsize=8)
    index = 3  # an LR pixel away from the border
    weights, sources = resize_weights(8 * scale, 8, 1 / scale)
    centre = (index + 1) * scale + 0.5 * (1 - scale) - 1  # the LR pixel's centre on the HR grid, 0-based
    offsets = sources[index] - centre
    right.stem(offsets, weights[index], linefmt="C0-", markerfmt="C0o", basefmt=" ",
               label=f"MATLAB bicubic ÷{scale}: {len(offsets)} HR pixels")
    near = np.array([-1.5, -0.5, 0.5, 1.5])
    right.stem(near + 0.08, cubic_kernel(near, -0.5), linefmt="C1-", markerfmt="C1s", basefmt=" ",
               label="TensorFlow bicubic, no antialiasing: 4")
    right.stem([index * scale - centre - 0.08], [1.0], linefmt="C3-", markerfmt="C3^", basefmt=" ",
               label=f"every {scale}th pixel: 1, off centre")
    right.axhline(0, color="gray", linewidth=0.8)
    right.set(title=f"Making one LR pixel (÷{scale})", xlabel="HR pixel, from the LR pixel's centre (HR pixels)",
              ylabel="weight of an HR pixel")
    right.legend(fontsize=8, loc="upper right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_mismatch(table: dict[str, dict[str, float]], title: str, unit: str = "PSNR (dB)"):
    """A {row: {column: value}} table (``mismatch_table``) as a heat map with each value written in."""
    rows, columns = list(table), list(next(iter(table.values())))
    values = np.array([[table[r][c] for c in columns] for r in rows])
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 3.5, 0.55 * len(rows) + 1.8))
    image = ax.imshow(values, cmap="viridis", aspect="auto")
    for i in range(len(rows)):
        for j in range(len(columns)):
            dark = values[i, j] < values.min() + 0.6 * (values.max() - values.min())
            ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", color="white" if dark else "black",
                    fontsize=10, fontweight="bold" if i > 0 and i - 1 == j else None)
    ax.set_xticks(range(len(columns)), [f"tested on\n{c}" for c in columns], fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    fig.colorbar(image, ax=ax, label=unit)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_pairs(lr: np.ndarray, hr: np.ndarray, count: int = 6, size: float = 1.9):
    """Training pairs as the network gets them: HR patches (top) and their LR inputs (bottom, each pixel
    drawn as a square), from a batch of uint8 or [0, 1] float arrays."""
    lr, hr = (a if a.dtype == np.uint8 else np.clip(np.round(a * 255), 0, 255).astype(np.uint8)
              for a in (np.asarray(lr), np.asarray(hr)))
    count = min(count, len(hr))
    fig, axes = plt.subplots(2, count, figsize=(size * count, 2 * size + 0.5), squeeze=False)
    for i in range(count):
        for row, (image, name) in enumerate(((hr[i], "HR"), (lr[i], "LR"))):
            axes[row, i].imshow(image, interpolation="nearest")
            axes[row, i].set_title(f"{name} {image.shape[1]}×{image.shape[0]} px", fontsize=8)
            axes[row, i].set_axis_off()
    fig.suptitle("A training batch: random HR patches (top) and their MATLAB-bicubic LR inputs (bottom)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_image_sizes(sizes: dict[str, np.ndarray], patch_size: int | None = None):
    """Width against height of every image of each set (``image_sizes``), with the training
    patch's size marked: the patches are drawn from anywhere inside an image."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (name, wh), marker in zip(sizes.items(), "os^vD<>p*h"):
        if len(wh):
            ax.scatter(wh[:, 0], wh[:, 1], s=14, alpha=0.7, marker=marker, label=f"{name} ({len(wh)} images)")
    if patch_size:
        ax.axvline(patch_size, color="gray", linestyle="--", linewidth=1)
        ax.axhline(patch_size, color="gray", linestyle="--", linewidth=1, label=f"training patch ({patch_size} px)")
    ax.set(xlabel="width (pixels)", ylabel="height (pixels)", title="Image sizes of the sets", xlim=(0, None),
           ylim=(0, None))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
