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
SHIPPED_LABELS = {"srresnet-x4": "SRResNet-16 (shipped)", "srgan-mse-x4": "SRGAN-MSE (shipped)",
                  "srresnet-real-x4": "SRResNet-16 real photos (shipped)"}


def model_note(card: ModelCard | None) -> str:
    """The "source" note of a measured model: how it was trained, and a warning for random VGG features."""
    return card.provenance() if card is not None else ""


DETAIL_NOTE = (
    "detail: the SR image's power above the LR image's Nyquist frequency (Y channel), over the HR image's; "
    "1 = as much fine detail as HR, below = smoother, above = more (noise too). colour: the mean R, G, B of SR "
    "minus HR in grey levels, the largest of the three, averaged over the set's images (true colour: within 1)."
)


def _has_detail(report: dict) -> bool:
    """Whether every set of a report has the detail and colour figures (reports made before them have not)."""
    return all("detail" in row and "colour" in row for row in report["results"].values())


def _figure(value, digits: int) -> str:
    """A figure with ``digits`` decimals; "–" for None (how JSON stores a NaN, e.g. a flat HR image's detail)."""
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_table(report: dict) -> str:
    """A Markdown table of a benchmark report (with the published figures when the model is bicubic, and the
    detail ratio and colour shift when the report has them)."""
    published = report["model"] == "bicubic" and report["scale"] == 4 and _degradation(report) == "bicubic"
    detail = _has_detail(report)
    header = ("| set | images | PSNR (dB) | SSIM |" + (" published |" if published else "")
              + (" detail (HR = 1) | colour shift (grey levels) |" if detail else ""))
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for name, row in report["results"].items():
        line = f"| {name} | {row['n']} | {row['psnr']:.2f} | {row['ssim']:.4f} |"
        if published:
            figures = PUBLISHED_BICUBIC_X4.get(name)
            line += f" {figures[0]:.2f} / {figures[1]:.4f} |" if figures else " |"
        if detail:
            line += f" {_figure(row['detail'], 2)} | {_figure(row['colour'], 2)} |"
        lines.append(line)
    return "\n".join(lines)


def _degradation(report: dict) -> str:
    """How a report's LR inputs were made (reports from before the setting: bicubic)."""
    return report.get("degradation", "bicubic")


def format_table(report: dict) -> str:
    """A plain-text table of a benchmark report (with detail and colour when it has them)."""
    detail = _has_detail(report)
    degraded = "" if _degradation(report) == "bicubic" else f"   LR: {_degradation(report)}"
    lines = [
        f"model: {report['model']}   scale: x{report['scale']}{degraded}   (Y channel, shave {report['scale']})",
        f"{'set':<10} {'n':>4} {'PSNR (dB)':>10} {'SSIM':>8}" + (f" {'detail':>7} {'colour':>7}" if detail else ""),
    ]
    for name, row in report["results"].items():
        lines.append(f"{name:<10} {row['n']:>4} {row['psnr']:>10.2f} {row['ssim']:>8.4f}"
                     + (f" {row['detail']:>7.3f} {row['colour']:>7.2f}" if detail else ""))
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

    A row is {"method", "source", "note", "results": {set: (psnr, ssim or None)}, "detail": {set: (detail ratio,
    colour shift)}}; "detail" is empty for published rows and for reports made before it was measured.
    """
    notes = notes or {}
    rows = [{"method": label, "source": "measured here", "note": notes.get(label, ""),
             "results": {name: (r["psnr"], r["ssim"]) for name, r in report["results"].items()},
             "detail": {name: (r["detail"], r["colour"]) for name, r in report["results"].items()
                        if "detail" in r and "colour" in r}}
            for label, report in measured.items()]
    if published:
        rows += [{"method": label, "source": "published", "note": "", "results": dict(figures), "detail": {}}
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


def comparison_detail_markdown(rows: list[dict], sets: list[str]) -> str:
    """The measured rows' detail ratio and colour shift per set as a Markdown table ("detail / colour" cells),
    under a line saying what they are; "" when no row has them."""
    rows = [row for row in rows if row.get("detail")]
    if not rows:
        return ""
    lines = [f"Fine detail / colour shift ({DETAIL_NOTE})", "",
             "| method | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for row in rows:
        cells = [" / ".join(_figure(v, 2) for v in row["detail"][s]) if s in row["detail"] else "–" for s in sets]
        lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def comparison_csv(rows: list[dict], sets: list[str]) -> str:
    """The rows as CSV: one line per method; per set a PSNR, SSIM, detail ratio and colour shift column (empty
    when not published or not measured)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    figures = ("psnr", "ssim", "detail", "colour")
    writer.writerow(["method", "source", "note"] + [f"{s}_{m}" for s in sets for m in figures])
    for row in rows:
        cells = []
        for s in sets:
            psnr, ssim = row["results"].get(s, (None, None))
            detail, colour = row.get("detail", {}).get(s, (None, None))
            cells += ["" if psnr is None else f"{psnr:.4f}", "" if ssim is None else f"{ssim:.5f}",
                      "" if detail is None else f"{detail:.4f}", "" if colour is None else f"{colour:.3f}"]
        writer.writerow([row["method"], row["source"], row["note"]] + cells)
    return buffer.getvalue()


def comparison_table(measured: dict[str, dict], notes: dict[str, str], sets: list[str], scale: int) -> str:
    """The Markdown table of measured reports ({label: report}) beside the published figures (at x4 only),
    headed by the random-VGG warning when a model trained against random VGG features, and followed by the
    measured models' detail ratios and colour shifts when the reports have them. The published rows (bicubic LR)
    are left out when the LR inputs were degraded otherwise, and the table then says how."""
    degradations = {_degradation(report) for report in measured.values()}
    rows = comparison_rows(measured, notes, published=scale == 4 and degradations == {"bicubic"})
    table = comparison_markdown(rows, sets)
    detail = comparison_detail_markdown(rows, sets)
    if detail:
        table += "\n\n" + detail
    if degradations != {"bicubic"}:
        protocol = next(iter(measured.values())).get("protocol", {}).get("lr", ", ".join(sorted(degradations)))
        table = f"LR inputs: {protocol} (scored against the clean HR; published figures are for bicubic LR)\n\n" + table
    elif scale != 4:
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
    published = scale == 4 and {_degradation(report) for report in measured.values()} == {"bicubic"}
    write_text(path.with_suffix(".csv"), comparison_csv(comparison_rows(measured, notes, published=published), sets))
    write_json(path.with_suffix(".json"), {"reports": list(measured.values())})
    return table


def degradation_table(measured: dict[str, dict[str, dict]], sets: list[str]) -> str:
    """The Markdown tables of the same models scored with LR inputs made several ways (``measured``:
    {degradation: {label: report}}): PSNR / SSIM per set and degradation (a column "<set> <degradation>"), then
    the detail ratio / colour shift, then how each degradation makes the LR inputs."""
    degradations = list(measured)
    labels = list(next(iter(measured.values())))
    columns = [(d, s) for d in degradations for s in sets]
    header = "| method | " + " | ".join(f"{s} {d}" for d, s in columns) + " |"
    rule = "|---|" + "---|" * len(columns)

    def cell(label, d, s, keys, digits):
        row = measured[d][label]["results"].get(s)
        return " / ".join(_figure(row.get(k), n) for k, n in zip(keys, digits)) if row else "–"
    psnr = [header, rule] + [f"| {label} | " + " | ".join(cell(label, d, s, ("psnr", "ssim"), (2, 4)) for d, s in columns)
                             + " |" for label in labels]
    detail = [header, rule] + [f"| {label} | " + " | ".join(cell(label, d, s, ("detail", "colour"), (2, 2))
                                                            for d, s in columns) + " |" for label in labels]
    inputs = "\n".join(f"* {d}: {next(iter(measured[d].values()))['protocol']['lr']}"
                       for d in degradations)
    return ("PSNR (dB) / SSIM, x{0}, scored against the clean HR image:\n\n".format(
                next(iter(measured[degradations[0]].values()))["scale"]) + "\n".join(psnr)
            + f"\n\nFine detail / colour shift ({DETAIL_NOTE})\n\n" + "\n".join(detail)
            + "\n\nThe LR inputs:\n\n" + inputs)


def write_degradation_comparison(path: str | os.PathLike, measured: dict[str, dict[str, dict]], sets: list[str]) -> str:
    """Write ``degradation_table(measured, sets)`` as ``path`` (Markdown) with every report as ``.json`` beside it;
    returns the table."""
    path = Path(path)
    table = degradation_table(measured, sets)
    write_text(path, table + "\n")
    write_json(path.with_suffix(".json"), {"reports": [report for by_label in measured.values()
                                                       for report in by_label.values()]})
    return table
