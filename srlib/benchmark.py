"""Benchmark a super-resolution model on the standard test sets (Set5, Set14, BSD100, Urban100).

A set is the image files directly in its folder (sub-folders such as ``LR_bicubic/`` are ignored).

For every HR image: modcrop to a multiple of the scale, make the LR input with MATLAB bicubic
(``srlib.degradation``), upscale it with the model, round to uint8, and score PSNR / SSIM on the Y
channel with a border of ``scale`` shaved (``srlib.metrics``). A set's figure is the mean over its images.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .degradation import bicubic_downscale, bicubic_upscale, modcrop
from .errors import DataError
from .images import list_image_files, read_image, write_image
from .metrics import psnr_y, ssim_y

KNOWN_SETS = ("Set5", "Set14", "BSD100", "Urban100")

# Published x4 bicubic figures (PSNR dB, SSIM; Y channel, shave 4), as in the VDSR and LapSRN tables.
PUBLISHED_BICUBIC_X4 = {
    "Set5": (28.42, 0.8104),
    "Set14": (26.00, 0.7027),
    "BSD100": (25.96, 0.6675),
    "Urban100": (23.14, 0.6577),
}

MIN_SIDE = 11  # SSIM's gaussian window

# An upscaler takes an LR uint8 RGB image and returns the SR image, scale times larger.
Upscaler = Callable[[np.ndarray], np.ndarray]


def bicubic_upscaler(scale: int) -> Upscaler:
    """The baseline every SR paper reports: MATLAB bicubic upscaling of the LR input."""
    return lambda lr: bicubic_upscale(lr, scale)


def find_set_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """The folder of benchmark set ``name`` in ``data_dir`` (or in ``data_dir/benchmark``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist")
    roots = [data_dir, data_dir / "benchmark"]
    for root in roots:
        if (root / name).is_dir():
            set_dir = root / name
            if not list_image_files(set_dir, recursive=False):
                raise DataError(f"benchmark set {name} in {set_dir} holds no images")
            return set_dir
    available = sorted({p.name for root in roots if root.is_dir() for p in root.iterdir() if p.is_dir()})
    hint = f"; folders there: {', '.join(available)}" if available else ""
    raise DataError(f"benchmark set {name!r} not found in {data_dir}{hint} (the usual sets: {', '.join(KNOWN_SETS)})")


def evaluate_image(hr: np.ndarray, upscale: Upscaler, scale: int) -> tuple[float, float, np.ndarray]:
    """PSNR and SSIM (Y, shave = scale) of one HR image, and the SR image as uint8."""
    hr = modcrop(hr, scale)
    lr = bicubic_downscale(hr, scale)
    sr = np.asarray(upscale(lr))
    if sr.dtype != np.uint8:
        sr = np.clip(np.round(sr), 0, 255).astype(np.uint8)
    if sr.shape != hr.shape:
        raise ValueError(f"the model returned {sr.shape} for an LR input {lr.shape}; expected {hr.shape}")
    return psnr_y(sr, hr, scale), ssim_y(sr, hr, scale), sr


def run_benchmark(
    upscale: Upscaler,
    data_dir: str | os.PathLike,
    sets: list[str],
    scale: int,
    model_name: str,
    save_images: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict:
    """Score ``upscale`` on each named set; returns the benchmark JSON document as a dict."""
    set_dirs = {name: find_set_dir(data_dir, name) for name in sets}  # fail before any work
    results = {}
    for name, set_dir in set_dirs.items():
        per_image = []
        for path in tqdm(list_image_files(set_dir, recursive=False), desc=f"{name} x{scale}", unit="img", disable=None if progress else True, leave=False):
            hr = read_image(path)
            if min(hr.shape[:2]) < MIN_SIDE + 3 * scale:  # after modcrop and shave, SSIM needs 11 pixels
                raise DataError(f"{path} is {hr.shape[1]}x{hr.shape[0]}: too small to benchmark at x{scale} "
                                f"(each side needs at least {MIN_SIDE + 3 * scale} pixels)")
            psnr, ssim, sr = evaluate_image(hr, upscale, scale)
            per_image.append({"image": path.stem, "psnr": round(psnr, 4), "ssim": round(ssim, 5)})
            if save_images is not None:
                write_image(Path(save_images) / name / f"{path.stem}.png", sr)
        results[name] = {
            "psnr": round(float(np.mean([r["psnr"] for r in per_image])), 4),
            "ssim": round(float(np.mean([r["ssim"] for r in per_image])), 5),
            "n": len(per_image),
            "images": per_image,
        }
    return {
        "model": model_name,
        "scale": scale,
        "results": results,
        "protocol": {
            "lr": "MATLAB bicubic imresize(hr, 1/scale) of the modcropped HR",
            "channel": "Y of BT.601 YCbCr (MATLAB rgb2ycbcr, uint8)",
            "shave": scale,
            "ssim": "Wang et al. 2004: gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03",
        },
    }


def find_image(data_dir: str | os.PathLike, image: str) -> Path:
    """The file of ``SET/NAME`` (e.g. "Set14/comic" or "Set14/comic.png") among the benchmark sets."""
    set_name, slash, name = image.partition("/")
    if not slash or not name:
        raise DataError(f"give benchmark images as SET/NAME, e.g. Set14/comic, not {image!r}")
    files = list_image_files(find_set_dir(data_dir, set_name), recursive=False)
    for path in files:
        if name in (path.stem, path.name):
            return path
    raise DataError(f"no image {name!r} in benchmark set {set_name} (it has {', '.join(p.stem for p in files[:5])}, …)")


def showcase(images: list[Path], upscalers: dict[str, Upscaler], scale: int) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The panels of a visual comparison: for each HR image file, the LR input, each upscaler's SR (its label
    with this image's PSNR) and the HR image, titled "<set folder>/<name>"."""
    scenes = []
    for path in images:
        hr = modcrop(read_image(path), scale)
        panels = {"LR input": bicubic_downscale(hr, scale)}
        for label, upscale in upscalers.items():
            psnr, _, sr = evaluate_image(hr, upscale, scale)
            panels[f"{label} ({psnr:.2f} dB)"] = sr
        panels["HR"] = hr
        scenes.append((f"{Path(path).parent.name}/{Path(path).stem}", panels))
    return scenes


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
