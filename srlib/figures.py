"""Figures of images, and writing any figure: grids, zoomed crops and comparisons, the samples a run saved,
curves of a small computation, and ``save_figure``.

The CLI (``benchmark --crops``), the tools and the chapters use them alike. Curves of a run's history are in
``srlib.plots`` (a figure of images and a figure of a history share nothing but ``save_figure``, and together they
made one module of 800 lines), each chapter's own illustrations in ``srlib.course``. Every function returns a matplotlib
``Figure`` (so a notebook shows it); nothing here trains or evaluates.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .files import atomic_path
from .plots import stage_label


def image_grid(images: list[np.ndarray], titles: list[str] | None = None, columns: int = 4, size: float = 3.0):
    """Images side by side (rows of ``columns``), each with its title."""
    rows = max(1, -(-len(images) // columns))
    columns = min(columns, max(1, len(images)))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(images):
            ax.imshow(images[i], interpolation="nearest")
            if titles:
                ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


def plot_curves(x: np.ndarray, panels: dict[str, dict[str, np.ndarray]], xlabel: str, ylabel: str, title: str,
                marks: dict[str, dict[str, float]] | None = None, ylim: tuple[float, float] | None = None,
                faint: tuple[str, ...] = ()):
    """Functions of one variable, a chapter's small computation (e.g. each loss as a function of the
    discriminator's verdict): ``panels`` is {panel title: {curve label: y}}, the panels side by side on the same
    x axis, each with its legend under it; ``marks`` ({panel title: {label: x}}) draws a dotted vertical line
    at each x value of a panel, labelled; the curves labelled as in ``faint`` are drawn faintly (raw values)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(max(7.5, 5.2 * len(panels)), 4.6), squeeze=False)
    for ax, (panel, curves) in zip(axes[0], panels.items()):
        for label, y in curves.items():
            style = dict(alpha=0.3, linewidth=0.8) if label in faint else dict(linewidth=1.8)
            ax.plot(x, np.asarray(y, dtype=float), label=label, **style)
        for label, value in (marks or {}).get(panel, {}).items():
            ax.axvline(value, color="gray", linestyle=":", linewidth=1.2)
            ax.annotate(f" {label}", (value, 0.97), xycoords=("data", "axes fraction"), fontsize=8, va="top",
                        color="dimgray")
        ax.set(xlabel=xlabel, ylabel=ylabel, ylim=ylim)
        ax.set_title(panel, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def plot_degradation_steps(steps: list[dict], columns: int = 6, size: float = 2.3):
    """The realistic degradation of one image step by step (``srlib.realistic.degradation_steps``): each
    intermediate image at the same display size, so that a shrunken one shows its pixels, titled with its step,
    what was drawn for it and its size."""
    rows = max(1, -(-len(steps) // columns))
    columns = min(columns, max(1, len(steps)))
    fig, axes = plt.subplots(rows, columns, figsize=(size * columns, (size + 0.45) * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < len(steps):
            step = steps[i]
            height, width = step["image"].shape[:2]
            ax.imshow(step["image"], interpolation="nearest")
            detail = textwrap.fill(step["detail"], int(size * 16))
            ax.set_title(f"{i}. {step['step']} ({width}x{height})\n{detail}", fontsize=8)
    fig.tight_layout()
    return fig


def sample_strips(run_dir: str | os.PathLike, stage: str, count: int = 3, crop: int = 96, scale: int = 4):
    """The samples a stage saved (``<run_dir>/<stage>/samples/step_N.png``: bicubic | SR | HR of the first
    validation image) at up to ``count`` steps spread over the stage, side by side in one row between bicubic and
    HR: the busiest ``crop`` x ``crop`` HR pixels of each, enlarged, titled with the PSNR (Y, shave ``scale``) and
    detail ratio (``srlib.metrics``) of the whole image. None when the stage saved none."""
    from .images import read_image
    from .metrics import detail_ratio, psnr_y

    samples = sorted((Path(run_dir) / stage / "samples").glob("step_*.png"))
    if not samples:
        return None
    shown = [samples[round(i)] for i in np.linspace(0, len(samples) - 1, min(count, len(samples)))]
    panels = {}
    for path in shown:
        strip = read_image(path)
        width = strip.shape[1] // 3
        bicubic, sr, hr = (strip[:, i * width:(i + 1) * width] for i in range(3))
        panels[f"SR at step {int(path.stem.rpartition('_')[2])}"] = sr
    panels = {"bicubic": bicubic, **panels}
    top, left, height, width = busiest_box(hr, crop)
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(2.9 * (len(panels) + 1), 3.6), squeeze=False)
    for ax, (name, image) in zip(axes[0], [*panels.items(), ("HR (the original)", hr)]):
        ax.imshow(image[top:top + height, left:left + width], interpolation="nearest")
        scores = (f"{psnr_y(image, hr, scale):.2f} dB, detail {detail_ratio(image, hr, scale):.2f}"
                  if image is not hr else " ")
        ax.set_title(f"{name}\n{scores}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"The first validation image during {stage_label(stage)}: its busiest {crop}×{crop} HR pixels\n"
                 "(PSNR on Y and detail ratio of the whole image; detail: HR = 1)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.88))  # room for the two-line title above the panels' titles
    return fig


def busiest_box(image: np.ndarray, size: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the ``size`` x ``size`` window with the most detail (gradient energy)."""
    gray = image.astype(float).mean(axis=-1) if image.ndim == 3 else image.astype(float)
    size = min(size, *gray.shape)
    if size < 2:
        return 0, 0, size, size
    energy = np.abs(np.diff(gray, axis=0))[:, :-1] + np.abs(np.diff(gray, axis=1))[:-1, :]
    integral = np.pad(energy, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    windows = integral[size - 1:, size - 1:] - integral[:-size + 1, size - 1:] - integral[size - 1:, :-size + 1] + integral[:-size + 1, :-size + 1]
    top, left = np.unravel_index(np.argmax(windows), windows.shape)
    return int(top), int(left), size, size


def _crop_box(image: np.ndarray, reference: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    """``box`` (top, left, height, width in ``reference``'s pixels) in the pixels of a smaller ``image``."""
    ratio = reference.shape[0] / image.shape[0]
    return tuple(int(round(v / ratio)) for v in box)


def comparison_figure(panels: dict[str, np.ndarray], box: tuple[int, int, int, int] | None = None,
                      crop: int = 96, title: str | None = None):
    """Whole images (top row, the crop marked) and zoomed crops (bottom row) of the same scene.

    ``panels`` maps a label (LR, bicubic, a model, HR) to an image; images smaller than the last one (the
    LR) are shown at their own size, and their crop is the box divided by the size ratio.
    """
    names = list(panels)
    reference = panels[names[-1]]
    box = box or busiest_box(reference, crop)
    fig, axes = plt.subplots(2, len(names), figsize=(3 * len(names), 6.2), squeeze=False)
    for column, name in enumerate(names):
        image = panels[name]
        t, l, h, w = _crop_box(image, reference, box)
        axes[0, column].imshow(image)
        axes[0, column].add_patch(Rectangle((l, t), w, h, fill=False, edgecolor="yellow", linewidth=1.5))
        axes[0, column].set_title(_fit_title(name, 36), fontsize=9)  # a model's figures on a second line
        axes[1, column].imshow(image[t:t + h, l:l + w], interpolation="nearest")
        for row in (0, 1):
            axes[row, column].set_axis_off()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _fit_title(title: str, width: int) -> str:
    """``title`` on two lines, its last parenthesis (a model's figures) on the second, when it is over ``width``
    characters."""
    head, _, tail = title.rpartition(" (")
    return f"{head}\n({tail}" if len(title) > width and head else title


def crops_figure(scenes: list[tuple[str, dict[str, np.ndarray]]], crop: int = 80, size: float = 2.6):
    """Zoomed crops of several scenes, one row each: ``scenes`` is [(title, panels)] as in
    ``comparison_figure`` (the last panel is the HR image; the crop is its busiest ``crop`` x ``crop`` box,
    and smaller images such as the LR input show the same region, enlarged without smoothing). Each crop is
    titled with its panel's label, e.g. a model's PSNR and detail ratio as ``benchmark.showcase`` gives them."""
    columns = max(len(panels) for _, panels in scenes)
    line = int(size * 13)  # characters of a title's line
    title_lines = sum(max(_fit_title(name, line).count("\n") + 1 for name in panels) for _, panels in scenes)
    fig, axes = plt.subplots(len(scenes), columns, figsize=(size * columns, size * len(scenes) + 0.2 * title_lines + 0.1),
                             squeeze=False)
    for row, (title, panels) in enumerate(scenes):
        names = list(panels)
        reference = panels[names[-1]]
        ratio = max(round(reference.shape[0] / panels[name].shape[0]) for name in names)
        top, left, height, width = busiest_box(reference, crop)
        # on the grid of the smallest image, so that every panel shows exactly the same region
        box = (top - top % ratio, left - left % ratio, height - height % ratio, width - width % ratio)
        for column, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            if column >= len(names):
                ax.set_axis_off()
                continue
            t, l, h, w = _crop_box(panels[names[column]], reference, box)
            ax.imshow(panels[names[column]][t:t + h, l:l + w], interpolation="nearest")
            ax.set_title(_fit_title(names[column], line), fontsize=9)
            if column == 0:
                ax.set_ylabel(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG atomically (a half-written figure never replaces a good one)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path
