"""Pictures and summaries of a run: loss curves from ``history.jsonl``, image grids, zoomed comparisons.

Every function returns a matplotlib ``Figure`` (so a notebook shows it) and ``save_figure`` writes one
atomically; nothing here trains or evaluates.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

from .files import atomic_path

# history keys of the generator's loss terms (each already times its weight), in the order the recipes add
# them, then their sum; "pixel" only in histories from before the content term covered pixel MSE
GENERATOR_TERMS = ("pixel", "content", "tv", "adversarial", "g_loss")
TERM_NAMES = {"pixel": "pixel MSE", "content": "content (pixel MSE or VGG)", "tv": "total variation",
              "adversarial": "adversarial", "g_loss": "generator loss (sum)"}
DISCRIMINATOR_TERMS = ("d_loss", "d_acc_real", "d_acc_fake")


def read_history(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of ``run_dir/history.jsonl`` (lines that are not rows, e.g. torn by an interrupted run, are skipped)."""
    from .run_folder import HistoryLog

    return HistoryLog(Path(run_dir) / "history.jsonl").rows()


def series(rows: list[dict], stage: str, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of one history key in one stage."""
    points = [(r["step"], r[key]) for r in rows if r.get("stage") == stage and r.get(key) is not None]
    if not points:
        return np.zeros(0, int), np.zeros(0)
    steps, values = zip(*points)
    return np.asarray(steps), np.asarray(values, dtype=float)


def stages_in(rows: list[dict]) -> list[str]:
    """The stages that appear in a history, in the order they ran."""
    return list(dict.fromkeys(r["stage"] for r in rows if "stage" in r))


def summary(rows: list[dict], stage: str) -> list[dict]:
    """mean / std / min / last of every logged term of a stage, as the report tabulated its losses."""
    table = []
    for key in GENERATOR_TERMS + DISCRIMINATOR_TERMS + ("val_psnr", "val_ssim"):
        _, values = series(rows, stage, key)
        if len(values):
            table.append({"term": key, "steps": len(values), "mean": float(values.mean()),
                          "std": float(values.std()), "min": float(values.min()), "last": float(values[-1])})
    return table


def summary_markdown(table: list[dict]) -> str:
    lines = ["| term | rows | mean | std | min | last |", "|---|---|---|---|---|---|"]
    lines += [f"| {t['term']} | {t['steps']} | {t['mean']:.4g} | {t['std']:.3g} | {t['min']:.4g} | {t['last']:.4g} |"
              for t in table]
    return "\n".join(lines)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (the first points average what there is so far)."""
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def _window(n: int) -> int:
    return max(1, n // 50)


def plot_generator_losses(rows: list[dict], stage: str, title: str | None = None):
    """One panel per generator loss term of a stage (log scale), raw in light colour and smoothed on top;
    each panel is titled with the term's name in words (``TERM_NAMES``)."""
    terms = [k for k in GENERATOR_TERMS if len(series(rows, stage, k)[0])]
    fig, axes = plt.subplots(1, max(1, len(terms)), figsize=(4 * max(1, len(terms)), 3.2), squeeze=False)
    for ax, key in zip(axes[0], terms):
        steps, values = series(rows, stage, key)
        ax.plot(steps, values, color="tab:blue", alpha=0.25, linewidth=0.8)
        ax.plot(steps, smooth(values, _window(len(values))), color="tab:blue")
        if (values > 0).all():
            ax.set_yscale("log")
        ax.set(title=TERM_NAMES.get(key, key), xlabel="step", ylabel="loss (times its weight)")
        ax.grid(alpha=0.3)
    if not terms:
        axes[0, 0].text(0.5, 0.5, f"{stage}: the generator does not learn here", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.suptitle(title or f"{stage}: generator loss by term (each times its weight)")
    fig.tight_layout()
    return fig


def loss_shares(rows: list[dict], stage: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(steps, {term: its share of g_loss at each step}) of a stage's weighted generator loss terms, over the
    rows that log g_loss (a term a row does not log counts 0)."""
    terms = [k for k in GENERATOR_TERMS[:-1] if len(series(rows, stage, k)[0])]
    logged = [r for r in rows if r.get("stage") == stage and r.get("g_loss")]
    steps = np.asarray([r["step"] for r in logged], dtype=int)
    total = np.asarray([r["g_loss"] for r in logged], dtype=float)
    return steps, {k: np.asarray([r.get(k) or 0.0 for r in logged], dtype=float) / total for k in terms}


def plot_loss_shares(rows: list[dict], stage: str, title: str | None = None):
    """What share of the generator loss each weighted term is over a stage's steps, smoothed, stacked (in %)."""
    steps, shares = loss_shares(rows, stage)
    names = [TERM_NAMES.get(k, k) for k in shares]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    if shares and len(steps):
        # smoothing each share with the same window keeps their sum at 100 %
        ax.stackplot(steps, *[100 * smooth(v, _window(len(steps))) for v in shares.values()], labels=names, alpha=0.8)
        ax.set(xlabel="step", ylabel="share of the generator loss (%)", ylim=(0, 100))
        ax.margins(x=0)
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="term (times its weight)")
        ax.grid(alpha=0.3)
    else:
        ax.text(0.5, 0.5, f"{stage}: the generator does not learn here", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(title or f"{stage}: share of the generator loss" + (": " + ", ".join(names) if names else ""),
                 fontsize=10)
    fig.tight_layout()
    return fig


def plot_discriminator(rows: list[dict], stage: str, title: str | None = None):
    """Discriminator loss, and its accuracy on real HR and on SR images."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
    steps, d_loss = series(rows, stage, "d_loss")
    left.plot(steps, d_loss, color="tab:red", alpha=0.25, linewidth=0.8)
    left.plot(steps, smooth(d_loss, _window(len(d_loss))), color="tab:red")
    left.set(title="discriminator loss (BCE)", xlabel="step")
    for key, colour, label in (("d_acc_real", "tab:green", "on HR (real)"), ("d_acc_fake", "tab:purple", "on SR (fake)")):
        steps, acc = series(rows, stage, key)
        right.plot(steps, smooth(acc, _window(len(acc))), color=colour, label=label)
    right.set(title="discriminator accuracy", xlabel="step", ylim=(-0.02, 1.02))
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{stage}: discriminator")
    fig.tight_layout()
    return fig


def plot_validation(rows: list[dict], bicubic_psnr: float | None = None, title: str = "validation PSNR"):
    """Validation PSNR over steps, every stage one after the other, with bicubic as a reference line."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    offset = 0
    for stage in stages_in(rows):
        steps, psnr = series(rows, stage, "val_psnr")
        all_steps, _ = series(rows, stage, "g_loss")
        if len(psnr):
            ax.plot(steps + offset, psnr, marker="o", markersize=3, label=stage)
        offset += int(max(all_steps.max() if len(all_steps) else 0, steps.max() if len(steps) else 0,
                          series(rows, stage, "d_loss")[0].max(initial=0)))
    if bicubic_psnr is not None:
        ax.axhline(bicubic_psnr, color="gray", linestyle="--", label=f"bicubic ({bicubic_psnr:.2f} dB)")
    ax.set(title=title, xlabel="step (stages one after another)", ylabel="PSNR (dB, Y)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


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


def sample_strips(run_dir: str | os.PathLike, stage: str, count: int = 4):
    """The bicubic | SR | HR strips a stage saved (``<run_dir>/<stage>/samples``), at up to ``count``
    steps spread over the stage, one under the other; None when there are none."""
    from .images import read_image

    samples = sorted((Path(run_dir) / stage / "samples").glob("step_*.png"))
    if not samples:
        return None
    shown = [samples[round(i)] for i in np.linspace(0, len(samples) - 1, min(count, len(samples)))]
    return image_grid([read_image(p) for p in shown], [f"{p.stem}: bicubic | SR | HR" for p in shown],
                      columns=1, size=4)


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
        axes[0, column].set_title(name, fontsize=10)
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
    fig, axes = plt.subplots(len(scenes), columns, figsize=(size * columns, size * len(scenes) + 0.3), squeeze=False)
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
            ax.set_title(_fit_title(names[column], int(size * 13)), fontsize=9)
            if column == 0:
                ax.set_ylabel(title, fontsize=10)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as a PNG atomically (a half-written figure never replaces a good one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path
