"""Pictures and summaries of a run: loss curves from ``history.jsonl``, image grids, zoomed comparisons.

Every function returns a matplotlib ``Figure`` (so a notebook shows it) and ``save_figure`` writes one
atomically; nothing here trains or evaluates.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from .degradation import cubic_kernel
from .files import atomic_path

# history keys of the generator's loss terms (each already times its weight), in the order the recipes add
# them, then their sum; "pixel" only in histories from before the content term covered pixel MSE
GENERATOR_TERMS = ("pixel", "content", "tv", "adversarial", "g_loss")
TERM_NAMES = {"pixel": "pixel MSE", "content": "content (pixel MSE or VGG)", "tv": "total variation",
              "adversarial": "adversarial", "g_loss": "generator loss (sum)",
              "d_loss": "discriminator loss (BCE)", "d_acc_real": "discriminator accuracy on HR (real)",
              "d_acc_fake": "discriminator accuracy on SR (fake)", "val_psnr": "validation PSNR (dB)",
              "val_ssim": "validation SSIM"}
DISCRIMINATOR_TERMS = ("d_loss", "d_acc_real", "d_acc_fake")

# The moving average of every training curve, in steps (one history row per step): one window for all
# figures, so that curves of different stages and runs are smoothed alike; the raw values are drawn faintly.
SMOOTHING = 25

# What each stage does, in words, for titles (the recipes' stage names are code names)
STAGE_ROLES = {"sr_vgg": "pretraining with a VGG16 content loss", "mse": "pretraining with pixel MSE",
               "discriminator": "discriminator warm-up", "full": "GAN training", "gan": "GAN training"}


def stage_label(stage: str) -> str:
    """A stage in words with its name, for titles: "discriminator warm-up (stage “discriminator”)"."""
    role = STAGE_ROLES.get(stage)
    return f"{role} (stage “{stage}”)" if role else f"stage “{stage}”"


def stats_text(values: np.ndarray, unit: str = "") -> str:
    """"mean 0.123 · std 0.0456 · min 0.0789" of a curve's raw values, as the course report printed them."""
    unit = f" {unit}" if unit else ""
    return (f"mean {values.mean():.4g}{unit} · std {values.std():.3g}{unit} · min {values.min():.4g}{unit}"
            if len(values) else "no values")


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
    """``summary`` as a Markdown table: each term in words with its history key, the number of values logged
    (one per step; validation every ``validate_every`` steps), then mean / std / min / last."""
    lines = ["| term (history key) | values | mean | std | min | last |", "|---|---|---|---|---|---|"]
    lines += [f"| {TERM_NAMES.get(t['term'], t['term'])} (`{t['term']}`) | {t['steps']} | {t['mean']:.4g} | "
              f"{t['std']:.3g} | {t['min']:.4g} | {t['last']:.4g} |" for t in table]
    return "\n".join(lines)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """A trailing moving average (the first points average what there is so far)."""
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, len(values) + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, len(values) + 1) - counts]) / counts


def stage_offsets(rows: list[dict]) -> dict[str, int]:
    """Where each stage starts when the stages are drawn one after another: the sum of the earlier stages'
    last steps (a stage's steps count from 1)."""
    offsets, offset = {}, 0
    for stage in stages_in(rows):
        offsets[stage] = offset
        offset += last_step(rows, stage)
    return offsets


def stages_with(rows: list[dict], key: str) -> list[str]:
    """The stages whose rows log ``key`` (e.g. "g_loss": the stages in which the generator learns)."""
    return [stage for stage in stages_in(rows) if len(series(rows, stage, key)[0])]


def last_step(rows: list[dict], stage: str) -> int:
    """The last step a stage logged in the history (0 when it has not run)."""
    return max((r["step"] for r in rows if r.get("stage") == stage and isinstance(r.get("step"), int)), default=0)


def _curve(ax, steps: np.ndarray, values: np.ndarray, colour: str, window: int, label: str | None = None) -> None:
    """The raw values faintly, their moving average over ``window`` steps on top (labelled ``label``)."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps
    if len(values) == 1:  # one value is a point, not a curve
        ax.plot(steps, values, "o", color=colour, label=label)
        return
    ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
    ax.plot(steps, smooth(values, window), color=colour, linewidth=1.6, label=label)


def _mark_rate_changes(ax, rows: list[dict], stage: str, offset: int = 0) -> None:
    """A dashed line where the stage's learning rate changed (the paper's tenfold drop), labelled with the rates."""
    steps, rates = series(rows, stage, "lr")
    for i in np.flatnonzero(np.diff(rates) != 0) + 1:
        ax.axvline(steps[i] + offset, color="gray", linestyle="--", linewidth=1)
        ax.annotate(f" learning rate {rates[i - 1]:.0e} → {rates[i]:.0e}", (steps[i] + offset, 0.98),
                    xycoords=("data", "axes fraction"), fontsize=7, color="dimgray", va="top", ha="left",
                    bbox=dict(facecolor="white", alpha=0.75, edgecolor="none", pad=1))


def _mark_stages(ax, offsets: dict[str, int], shown: list[str]) -> None:
    """A dotted line where each shown stage starts (after the first) and the stage's name in words at the top,
    one line lower for each stage so that the names of short stages do not run into each other."""
    for i, stage in enumerate(shown):
        if i:
            ax.axvline(offsets[stage], color="black", linestyle=":", linewidth=1.2)
        ax.annotate(f" {stage_label(stage)}", (offsets[stage], 0.98 - 0.07 * i), xycoords=("data", "axes fraction"),
                    fontsize=7, va="top", ha="left", color="black",
                    bbox=dict(facecolor="white", alpha=0.75, edgecolor="none", pad=1))


def plot_generator_losses(rows: list[dict], stage: str, title: str | None = None, window: int = SMOOTHING):
    """One panel per weighted generator loss term of a stage and their sum: the raw values faintly, their moving
    average over ``window`` steps on top, log scale; each panel titled in words (``TERM_NAMES``) with the term's
    mean / std / min. None when the generator does not learn in the stage (nothing to draw)."""
    terms = [k for k in GENERATOR_TERMS if len(series(rows, stage, k)[0])]
    if not terms:
        return None
    fig, axes = plt.subplots(1, len(terms), figsize=(3.6 * len(terms) + 0.6, 3.4), squeeze=False)
    for ax, key in zip(axes[0], terms):
        steps, values = series(rows, stage, key)
        _curve(ax, steps, values, "tab:blue" if key != "g_loss" else "black", window)
        if (values > 0).all():
            ax.set_yscale("log")
        _mark_rate_changes(ax, rows, stage)
        ax.set_title(f"{TERM_NAMES.get(key, key)}\n{stats_text(values)}", fontsize=9)
        ax.set(xlabel="training step", ylabel="loss × its weight (no unit)" if ax is axes[0, 0] else None)
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"Generator loss by term, each times its weight: {stage_label(stage)}\n"
                 f"(faint: every step; solid: mean of the last {window} steps)", fontsize=10)
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


def plot_loss_shares(rows: list[dict], stage: str, title: str | None = None, window: int = SMOOTHING):
    """What share of the generator loss each weighted term is over a stage's steps (in %, stacked), each share
    averaged over ``window`` steps; None when the generator does not learn in the stage."""
    steps, shares = loss_shares(rows, stage)
    if not shares or not len(steps):
        return None
    names = [TERM_NAMES.get(k, k) for k in shares]
    fig, ax = plt.subplots(figsize=(7.5, 3.5))
    # smoothing each share with the same window keeps their sum at 100 %
    ax.stackplot(steps, *[100 * smooth(v, window) for v in shares.values()], labels=names, alpha=0.8)
    ax.set(xlabel="training step", ylabel="share of the generator loss (%)", ylim=(0, 100))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(x=0)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="term (times its weight)", fontsize=8)
    ax.grid(alpha=0.3)
    _mark_rate_changes(ax, rows, stage)
    ax.set_title(title or f"Share of each term in the generator loss: {stage_label(stage)}\n"
                 f"(each share averaged over {window} steps)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_discriminator(rows: list[dict], stage: str, title: str | None = None, window: int = SMOOTHING):
    """The discriminator's loss (left) and its accuracy on real HR and on SR patches (right) over a stage, with
    the 0.5 of a coin toss marked: the raw values faintly, their moving average over ``window`` steps on top, the
    mean / std / min of each in the titles and legend. None when the stage has no discriminator."""
    steps, d_loss = series(rows, stage, "d_loss")
    if not len(d_loss):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    _curve(left, steps, d_loss, "tab:red", window)
    left.set_title(f"discriminator loss (binary cross-entropy)\n{stats_text(d_loss)}", fontsize=9)
    left.set(xlabel="training step", ylabel="loss (nats per image)")
    stats = []
    for key, colour, label in (("d_acc_real", "tab:green", "on HR (real)"),
                               ("d_acc_fake", "tab:purple", "on SR (fake)")):
        steps, acc = series(rows, stage, key)
        _curve(right, steps, acc, colour, window, label)
        stats.append(f"{label}: {stats_text(acc)}")
    right.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance (a coin toss): 0.5")
    right.set_title("discriminator accuracy (share of the batch it classifies right)\n" + "\n".join(stats), fontsize=9)
    right.set(xlabel="training step", ylabel="accuracy (0 to 1)", ylim=(-0.02, 1.02))
    right.legend(loc="lower left", ncol=3, fontsize=7, framealpha=0.85)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        _mark_rate_changes(ax, rows, stage)
    fig.suptitle(title or f"The discriminator during {stage_label(stage)}\n"
                 f"(faint: every step; solid: mean of the last {window} steps)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_validation(rows: list[dict], bicubic_psnr: float | None = None, title: str | None = None):
    """Validation PSNR of the whole run, the stages one after another with a dotted line where each starts and
    its name in words, every validation a marker, bicubic's PSNR on the same images dashed; the legend gives each
    stage's last / mean / std / min. A stage validated once is one point, labelled with its value."""
    offsets = stage_offsets(rows)
    shown = stages_with(rows, "val_psnr")
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for stage in shown:
        steps, psnr = series(rows, stage, "val_psnr")
        ax.plot(steps + offsets[stage], psnr, marker="o", markersize=4,
                label=f"{stage_label(stage)}: last {psnr[-1]:.2f} dB; {stats_text(psnr, 'dB')}")
        if len(psnr) == 1:
            # below the point: the stage names sit at the top of the axes
            ax.annotate(f"{psnr[0]:.2f} dB", (steps[0] + offsets[stage], psnr[0]), textcoords="offset points",
                        xytext=(0, -8), ha="center", va="top", fontsize=8)
    _mark_stages(ax, offsets, stages_in(rows))
    if bicubic_psnr is not None:
        ax.axhline(bicubic_psnr, color="gray", linestyle="--",
                   label=f"bicubic on the same images: {bicubic_psnr:.2f} dB")
    ax.set(title=title or "Validation PSNR over the whole run (Y channel, border shaved, as in the benchmark)",
           xlabel="training step (the stages one after another)", ylabel="PSNR (dB)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    end = max([offsets[s] + r["step"] for r in rows for s in [r.get("stage")]
               if s in offsets and isinstance(r.get("step"), int)], default=1)
    ax.set_xlim(0, end * 1.02)
    ax.grid(alpha=0.3)
    if shown or bicubic_psnr is not None:
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=8)
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


def _unit(key: str) -> str:
    """The y-axis label of a history key."""
    if key.startswith("d_acc"):
        return "accuracy (0 to 1)"
    if key == "val_psnr":
        return "PSNR (dB)"
    if key == "val_ssim":
        return "SSIM (0 to 1)"
    return "loss (nats)" if key == "d_loss" else "loss × its weight (no unit)"


def plot_runs(histories: dict[str, list[dict]], stage: str, keys=("adversarial", "d_acc_fake", "val_psnr"),
              window: int = SMOOTHING):
    """Two (or more) runs of one stage side by side: ``histories`` is {run label: history rows}; one panel per
    history key in ``keys`` that some run logs, one colour per run (raw faintly, the mean over ``window`` steps
    on top; validation as points), each run's mean in the legend. None when no run logs any of ``keys``."""
    keys = [k for k in keys if any(len(series(rows, stage, k)[0]) for rows in histories.values())]
    if not keys:
        return None
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.8 * len(keys), 4.4), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for colour, (label, rows) in zip(colours, histories.items()):
            steps, values = series(rows, stage, key)
            if not len(values):
                continue
            if key.startswith("val_"):
                ax.plot(steps, values, "o-", color=colour, markersize=4, label=f"{label}: last {values[-1]:.4g}")
            else:
                _curve(ax, steps, values, colour, window, f"{label}: {stats_text(values)}")
        if key.startswith("d_acc"):
            ax.axhline(0.5, color="gray", linestyle="--", linewidth=1, label="chance: 0.5")
        ax.set_title(TERM_NAMES.get(key, key), fontsize=10)
        ax.set(xlabel="training step", ylabel=_unit(key))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    fig.suptitle(f"{' against '.join(histories)}: {stage_label(stage)}\n"
                 f"(faint: every step; solid: mean of the last {window} steps)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_spectra(images: dict[str, np.ndarray], scale: int, title: str | None = None):
    """What the detail ratio measures: the power of each uint8 RGB image's Y channel by spatial frequency
    (``srlib.metrics.power_spectrum``, border of ``scale`` shaved, as the detail ratio takes it), averaged per
    frequency band, log scale, with the LR image's Nyquist frequency 1/(2 * scale) marked and the band above
    it shaded. The last image is the HR reference; each label in the legend gets its detail ratio."""
    from .metrics import detail_ratio, power_spectrum, rgb_to_y, shave

    reference = images[list(images)[-1]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bands = np.linspace(0, 0.5, 41)
    for label, image in images.items():
        power, frequency = power_spectrum(shave(rgb_to_y(image), scale))
        band = np.clip(np.digitize(frequency, bands) - 1, 0, len(bands) - 2)
        counts = np.bincount(band.ravel(), minlength=len(bands) - 1)
        mean = np.bincount(band.ravel(), power.ravel(), len(bands) - 1) / np.maximum(counts, 1)
        ax.semilogy((bands[:-1] + bands[1:]) / 2, np.maximum(mean, 1e-6), linewidth=1.6,
                    label=f"{label}: detail {detail_ratio(image, reference, scale):.2f}")
    nyquist = 1 / (2 * scale)
    ax.axvspan(nyquist, 0.5, color="gold", alpha=0.15, label=f"above the LR image's Nyquist frequency, 1/(2×{scale})")
    ax.axvline(nyquist, color="goldenrod", linestyle="--", linewidth=1)
    ax.set(xlabel="spatial frequency (cycles per HR pixel)", ylabel="power of Y per pixel (grey levels², log)",
           xlim=(0, 0.5))
    ax.set_title(title or "Where the detail ratio looks: the power above the LR image's Nyquist frequency, "
                 "SR over HR", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
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
            detail = textwrap.fill(step["detail"], int(size * 14))
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
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png")
    return path


# --- the course's small computations (chapters 1-3; the numbers come from srlib.explain) ---------------


def plot_resize_kernels(scale: int = 4):
    """Left: the bicubic kernel (MATLAB's a = -0.5 beside OpenCV's a = -0.75) that upscaling weighs LR pixels
    with. Right: the weights of the HR pixels that make one LR pixel, for MATLAB's bicubic (the kernel stretched
    ``scale`` times: an average over a wide window), TensorFlow's bicubic without antialiasing (four pixels),
    and keeping every ``scale``-th pixel (one pixel, off the LR pixel's centre)."""
    from .degradation import resize_weights

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
    """A {row: {column: value}} table (``srlib.explain.mismatch_table``) as a heat map with each value written in."""
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


def plot_image_sizes(sizes: dict[str, np.ndarray], patch_size: int | None = None):
    """Width against height of every image of each set (``srlib.explain.image_sizes``), with the training
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


def plot_subpixel(x: np.ndarray, y: np.ndarray):
    """The sub-pixel shuffle on a tiny tensor (``srlib.explain.subpixel_example``): each input channel (left)
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


def plot_residual_block(parts: dict[str, np.ndarray], channel: int = 0):
    """One channel of a residual block's input, branch and output (``srlib.explain.residual_parts``), each
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


def plot_receptive_field(influence: np.ndarray, radius: int):
    """Which LR pixels move the centre output pixel (``srlib.explain.input_influence``), on a log scale, with
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
    given channels (``srlib.explain.feature_maps``) with their squared difference, which the content loss
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
        fig.colorbar(difference, ax=axes[i, 2], fraction=0.046, label="squared difference")
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
    """A weight along noisy training steps and its moving averages (``srlib.explain.moving_average_walk``)."""
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


def plot_cross_entropy(label_smoothing: float = 0.1):
    """The discriminator's binary cross-entropy as a function of its verdict P(real): on a real patch with
    label 1 and with the smoothed label 1 - ``label_smoothing``, and on a generated patch (label 0)."""
    from .explain import binary_cross_entropy

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
