"""A run's training curves, from its ``history.jsonl``: each loss term, their shares, the discriminator, the
validation PSNR, two runs side by side, and the tables of their mean / std / min.

``tools/plot_history.py`` and chapters 2-5 draw them alike. Every function returns a matplotlib ``Figure`` (so a
notebook shows it; ``srlib.figures.save_figure`` writes one); nothing here trains or evaluates.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator


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
STAGE_ROLES = {"sr_vgg": "the report's pretraining", "mse": "pretraining with pixel MSE",
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


def plot_validation(rows: list[dict], bicubic_psnr: float | None = None, title: str | None = None,
                    starts: dict[str, float] | None = None):
    """Validation PSNR of the run, one panel per stage (its own steps and PSNR axis, so that a short GAN stage
    gets as much room as a long pretraining), every validation a marker, bicubic's PSNR on the same images dashed
    where it falls in the panel's range; each panel's title gives the stage's last / mean / std / min. A stage
    validated once is one point, labelled with its value; a discriminator warm-up (its generator frozen) has no
    panel. ``starts`` maps a stage to the PSNR on the same images
    of the generator it started from, drawn at step 0 (the trainer validates only after steps)."""
    warm_ups = set(stages_with(rows, "d_loss")) - set(stages_with(rows, "g_loss"))  # the generator does not change
    shown = [stage for stage in stages_with(rows, "val_psnr") if stage not in warm_ups]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(4.6 * max(1, len(shown)) + 0.6, 4.4), squeeze=False)
    for ax, stage in zip(axes[0], shown):
        steps, psnr = series(rows, stage, "val_psnr")
        ax.plot(steps, psnr, marker="o", markersize=5, color="C0")
        start = (starts or {}).get(stage)
        if start is not None:
            ax.plot([0, steps[0]], [start, psnr[0]], linestyle=":", color="C0")
            ax.plot([0], [start], marker="s", markersize=6, color="C1", linestyle="none",
                    label=f"start: {start:.2f} dB")
        if len(psnr) == 1:
            ax.annotate(f"{psnr[0]:.2f} dB", (steps[0], psnr[0]), textcoords="offset points", xytext=(0, -10),
                        ha="center", va="top", fontsize=10)
        marks = [*psnr, start] if start is not None else psnr
        low, high = float(np.min(marks)), float(np.max(marks))
        if bicubic_psnr is not None:
            ax.axhline(bicubic_psnr, color="gray", linestyle="--", label=f"bicubic: {bicubic_psnr:.2f} dB")
            low, high = min(low, bicubic_psnr), max(high, bicubic_psnr)
        pad = max(0.25, 0.15 * (high - low))
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(f"{stage_label(stage)}\nlast {psnr[-1]:.2f} dB · mean {psnr.mean():.2f} · min {psnr.min():.2f}",
                     fontsize=11)
        ax.set(xlabel=f"step of {stage}", ylabel="PSNR (dB)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=5))
        ax.grid(alpha=0.3)
        if bicubic_psnr is not None or start is not None:
            ax.legend(loc="best", fontsize=10)
    if not shown:
        axes[0, 0].set(xlabel="training step", ylabel="PSNR (dB)")
        axes[0, 0].text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=axes[0, 0].transAxes)
    fig.suptitle(title or "Validation PSNR by stage (Y channel, border shaved, as in the benchmark)", fontsize=12)
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
