"""Reporting benchmark results: tables beside the published figures, and the warnings that go with them.

``srlib.benchmark`` measures; this module turns its reports into the Markdown / CSV / JSON tables that the
CLI (``python -m srlib benchmark --table``), notebook 06 and the README show, so the three cannot drift.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from .files import write_json, write_text
from .model_card import ModelCard

# Published x4 bicubic figures (PSNR dB, SSIM; Y channel, shave 4), as in the VDSR and LapSRN tables.
PUBLISHED_BICUBIC_X4 = {
    "Set5": (28.42, 0.8104),
    "Set14": (26.00, 0.7027),
    "BSD100": (25.96, 0.6675),
    "Urban100": (23.14, 0.6577),
}

RANDOM_VGG_NOTE = (
    "**Warning: VGG had random weights, not ImageNet's** (they could not be downloaded or found). The VGG "
    "content loss then compares random features, so the perceptual stages trained against it, and their "
    "numbers, mean little. With internet access (or `vgg_weights` set to the Keras `.h5` file) the real "
    "weights are used."
)



# The shipped models' names and the labels their rows get.
SHIPPED_LABELS = {"srresnet-x4": "SRResNet-16 (shipped)", "srgan-mse-x4": "SRGAN-MSE (shipped)"}


def model_note(card: ModelCard | None) -> str:
    """The "source" note of a measured model: how it was trained, and a warning for random VGG features."""
    return card.provenance() if card is not None else ""


def markdown_table(report: dict) -> str:
    """A Markdown table of a benchmark report (with the published figures when the model is bicubic)."""
    published = report["model"] == "bicubic" and report["scale"] == 4
    header = "| set | images | PSNR (dB) | SSIM |" + (" published |" if published else "")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, row in report["results"].items():
        line = f"| {name} | {row['n']} | {row['psnr']:.2f} | {row['ssim']:.4f} |"
        if published:
            figures = PUBLISHED_BICUBIC_X4.get(name)
            line += f" {figures[0]:.2f} / {figures[1]:.4f} |" if figures else " |"
        lines.append(line)
    return "\n".join(lines)


def format_table(report: dict) -> str:
    """A plain-text table of a benchmark report."""
    lines = [
        f"model: {report['model']}   scale: x{report['scale']}   (Y channel, shave {report['scale']})",
        f"{'set':<10} {'n':>4} {'PSNR (dB)':>10} {'SSIM':>8}",
    ]
    for name, row in report["results"].items():
        lines.append(f"{name:<10} {row['n']:>4} {row['psnr']:>10.2f} {row['ssim']:>8.4f}")
    return "\n".join(lines)



# Published x4 figures (PSNR dB, SSIM; Y channel, shave 4) to put beside measured ones. The course
# report's figures are PSNR only and were measured with a broken evaluation (see the README).
PUBLISHED_X4 = {
    "course report (SRGAN, as reported)": {"Set5": (19.93, None), "Set14": (20.64, None), "BSD100": (20.21, None)},
    "SRCNN (Dong et al. 2014)": {"Set5": (30.48, 0.8628), "Set14": (27.50, 0.7513), "BSD100": (26.90, 0.7101),
                                 "Urban100": (24.52, 0.7221)},
    "SRResNet (Ledig et al. 2017)": {"Set5": (32.05, 0.9019), "Set14": (28.49, 0.8184), "BSD100": (27.58, 0.7620)},
    "SRGAN (Ledig et al. 2017)": {"Set5": (29.40, 0.8472), "Set14": (26.02, 0.7397), "BSD100": (25.16, 0.6688)},
}


def comparison_rows(measured: dict[str, dict], notes: dict[str, str] | None = None,
                    published: bool = True) -> list[dict]:
    """Rows of a results table: each measured report ({label: run_benchmark output}), then the published ones.

    A row is {"method", "source", "note", "results": {set: (psnr, ssim or None)}}.
    """
    notes = notes or {}
    rows = [{"method": label, "source": "measured here", "note": notes.get(label, ""),
             "results": {name: (r["psnr"], r["ssim"]) for name, r in report["results"].items()}}
            for label, report in measured.items()]
    if published:
        rows += [{"method": label, "source": "published", "note": "", "results": dict(figures)}
                 for label, figures in PUBLISHED_X4.items()]
    return rows


def _cell(figures) -> str:
    if figures is None:
        return "–"
    psnr, ssim = figures
    return f"{psnr:.2f}" + (f" / {ssim:.4f}" if ssim is not None else "")


def comparison_markdown(rows: list[dict], sets: list[str]) -> str:
    """The rows as a Markdown table: PSNR / SSIM per set, then where the figures come from."""
    lines = ["| method | " + " | ".join(sets) + " | source |", "|---|" + "---|" * (len(sets) + 1)]
    for row in rows:
        source = row["source"] + (f": {row['note']}" if row["note"] else "")
        lines.append(f"| {row['method']} | " + " | ".join(_cell(row["results"].get(s)) for s in sets) + f" | {source} |")
    return "\n".join(lines)


def comparison_csv(rows: list[dict], sets: list[str]) -> str:
    """The rows as CSV: one line per method, a PSNR and an SSIM column per set (empty when not published)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["method", "source", "note"] + [f"{s}_{m}" for s in sets for m in ("psnr", "ssim")])
    for row in rows:
        cells = []
        for s in sets:
            psnr, ssim = row["results"].get(s, (None, None))
            cells += ["" if psnr is None else f"{psnr:.4f}", "" if ssim is None else f"{ssim:.5f}"]
        writer.writerow([row["method"], row["source"], row["note"]] + cells)
    return buffer.getvalue()


def comparison_table(measured: dict[str, dict], notes: dict[str, str], sets: list[str], scale: int) -> str:
    """The Markdown table of measured reports ({label: report}) beside the published figures (at x4 only),
    headed by the random-VGG warning when a model trained against random VGG features."""
    table = comparison_markdown(comparison_rows(measured, notes, published=scale == 4), sets)
    if scale != 4:
        table = f"x{scale} (the published rows are x4 figures, so none are shown)\n\n" + table
    if any("RANDOM VGG" in note for note in notes.values()):
        table = RANDOM_VGG_NOTE + "\n\n" + table
    return table


def write_comparison(path: str | os.PathLike, measured: dict[str, dict], notes: dict[str, str], sets: list[str],
                     scale: int) -> str:
    """Write the table as ``path`` (Markdown) with ``.csv`` and ``.json`` (every report) beside it; returns it."""
    path = Path(path)
    table = comparison_table(measured, notes, sets, scale)
    write_text(path, table + "\n")
    write_text(path.with_suffix(".csv"), comparison_csv(comparison_rows(measured, notes, published=scale == 4), sets))
    write_json(path.with_suffix(".json"), {"reports": list(measured.values())})
    return table
