"""Benchmark super-resolution models on the standard test sets (Set5, Set14, BSD100, Urban100): measuring only;
tables and published figures are in ``srlib.reporting``.

A set is the image files directly in its folder (sub-folders such as ``LR_bicubic/`` are ignored).

For every HR image: modcrop to a multiple of the scale, make the LR input with MATLAB bicubic
(``srlib.degradation``), upscale it with the model, round to uint8, and score PSNR / SSIM on the Y
channel with a border of ``scale`` shaved (``srlib.metrics``). Beside them, with the same shave: ``detail``, the
SR image's power above the LR Nyquist frequency over the HR image's (1 = as much fine detail as HR), and
``colour``, the mean R, G, B of SR minus HR in grey levels. A set's figure is the mean over its images; for
colour, the mean of each image's largest absolute channel shift (so a tint in one channel is not averaged away).

``degradation`` makes the LR inputs otherwise, for models meant for real photos: "realistic" (Real-ESRGAN's chain,
``srlib.realistic``, with a fixed seed per image, so every model and every run sees the same degraded copy of a set)
or "jpeg50" / "jpeg75" (bicubic, then JPEG at that quality); SR is still scored against the clean HR.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from .degradation import bicubic_downscale, bicubic_upscale, modcrop, parse_degradation
from .errors import DataError, SrlibError
from .files import why_missing, write_json
from .images import list_image_files, read_image, write_image
from .metrics import colour_shift, detail_ratio, psnr_y, ssim_y

log = logging.getLogger(__name__)

KNOWN_SETS = ("Set5", "Set14", "BSD100", "Urban100")
SHIPPED_RESULTS = Path(__file__).resolve().parent / "weights" / "results"  # ResultCache of the shipped models

MIN_SIDE = 11  # SSIM's gaussian window


def min_hr_side(scale: int) -> int:
    """The shortest HR side that can be scored at ``scale``: after modcrop and the border shave, SSIM's window."""
    return MIN_SIDE + 3 * scale

# An upscaler takes an LR uint8 RGB image and returns the SR image, scale times larger.
Upscaler = Callable[[np.ndarray], np.ndarray]


def bicubic_upscaler(scale: int) -> Upscaler:
    """The baseline every SR paper reports: MATLAB bicubic upscaling of the LR input."""
    return lambda lr: bicubic_upscale(lr, scale)


def find_set_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """The folder of benchmark set ``name`` in ``data_dir`` (or in ``data_dir/benchmark``)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} {why_missing(data_dir)}")
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


def lr_input(hr: np.ndarray, scale: int, degradation: str = "bicubic", name: str = "") -> np.ndarray:
    """The LR input of a modcropped HR image under ``degradation``; ``name`` ("SET/IMAGE") seeds the realistic one."""
    if degradation == "bicubic":
        return bicubic_downscale(hr, scale)
    from .realistic import degraded_lr  # TensorFlow, only when asked for

    return degraded_lr(hr, scale, degradation, name)


def lr_protocol(degradation: str, scale: int) -> str:
    """The protocol's words for how LR inputs are made under ``degradation``."""
    kind, quality = parse_degradation(degradation)
    bicubic = f"MATLAB bicubic imresize(hr, 1/{scale}) of the modcropped HR"
    if kind == "jpeg":
        return f"{bicubic}, then JPEG at quality {quality} (TensorFlow's codec)"
    if kind != "bicubic":  # a chain of srlib.realistic
        from .realistic import EVALUATION_SEED

        what = ("Real-ESRGAN's second-order degradation (srlib.realistic.REAL_ESRGAN)" if kind == "realistic" else
                "Real-ESRGAN's chain, clean bicubic or bicubic + JPEG (srlib.realistic.MIXED)")
        return (f"{what} of the modcropped HR to 1/{scale}, "
                f"image SET/NAME seeded by ({EVALUATION_SEED}, crc32('SET/NAME'))")
    return bicubic


def evaluate_image(hr: np.ndarray, upscale: Upscaler, scale: int, lr: np.ndarray | None = None
                   ) -> tuple[float, float, np.ndarray]:
    """PSNR and SSIM (Y, shave = scale) of one HR image, and the SR image as uint8; ``lr``, when given, is
    the image's LR input already made (``bicubic_downscale(modcrop(hr, scale), scale)``)."""
    hr = modcrop(hr, scale)
    lr = bicubic_downscale(hr, scale) if lr is None else lr
    sr = np.asarray(upscale(lr))
    if sr.dtype != np.uint8:
        sr = np.clip(np.round(sr), 0, 255).astype(np.uint8)
    if sr.shape != hr.shape:
        raise ValueError(f"the model returned {sr.shape} for an LR input {lr.shape}; expected {hr.shape}")
    return psnr_y(sr, hr, scale), ssim_y(sr, hr, scale), sr


def colour_offset(upscale: Upscaler, files: list[Path], scale: int, progress: bool = True) -> tuple[np.ndarray, int]:
    """The mean over ``files`` (HR images, each scored as the benchmark scores it) of SR minus HR per channel,
    R, G, B in grey levels (uint8), and how many images it averages: an image too small to score is skipped with
    a warning. ``models.shift_colour(model, -offset)`` removes it."""
    shifts = []
    for path in tqdm(files, desc="colour", unit="img", disable=None if progress else True, leave=False):
        hr = read_image(path)
        if min(hr.shape[:2]) < min_hr_side(scale):
            log.warning("skipping %s: %dx%d is too small to score at x%d", path, hr.shape[1], hr.shape[0], scale)
            continue
        _, _, sr = evaluate_image(hr, upscale, scale)
        shifts.append(colour_shift(sr, modcrop(hr, scale), scale))
    if not shifts:
        raise DataError(f"no image of {len(files)} large enough to measure colour at x{scale}")
    return np.mean(shifts, axis=0), len(shifts)


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
    return run_benchmarks({model_name: upscale}, data_dir, sets, scale, save_images, progress)[model_name]


def run_benchmarks(
    upscalers: dict[str, Upscaler],
    data_dir: str | os.PathLike,
    sets: list[str],
    scale: int,
    save_images: str | os.PathLike | None = None,
    progress: bool = True,
    degradation: str = "bicubic",
    cache: "ResultCache | None" = None,
) -> dict[str, dict]:
    """Score each of ``upscalers`` ({name: upscaler}) on each named set, making each image's LR input once (by
    ``degradation``: bicubic, realistic, jpeg50, jpeg75, ...); returns {name: benchmark JSON document}.
    ``save_images`` writes each SR image as ``DIR/<name>/<set>/<image>.png`` (``DIR/<set>/<image>.png`` with one
    upscaler). With ``cache``, an upscaler it knows (by its weights' hash) is not run again on a set it has
    scored before (the same files, scale and degradation), and what is measured is added to it."""
    try:
        parse_degradation(degradation)
    except ValueError as error:
        raise SrlibError(str(error)) from None
    set_dirs = {name: find_set_dir(data_dir, name) for name in sets}  # fail before any work
    per_image = {model: {name: [] for name in sets} for model in upscalers}
    for name, set_dir in set_dirs.items():
        files = list_image_files(set_dir, recursive=False)
        known = {} if cache is None or save_images is not None else {
            model: rows for model in upscalers
            if (rows := cache.get(model, name, files, scale, degradation)) is not None}
        per_image.update({model: {**per_image[model], name: rows} for model, rows in known.items()})
        to_run = {model: upscale for model, upscale in upscalers.items() if model not in known}
        for path in tqdm(files if to_run else [], desc=f"{name} x{scale}", unit="img",
                         disable=None if progress else True, leave=False):
            hr = read_image(path)
            if min(hr.shape[:2]) < min_hr_side(scale):
                raise DataError(f"{path} is {hr.shape[1]}x{hr.shape[0]}: too small to benchmark at x{scale} "
                                f"(each side needs at least {min_hr_side(scale)} pixels)")
            hr = modcrop(hr, scale)
            lr = lr_input(hr, scale, degradation, f"{name}/{path.stem}")
            for model, upscale in to_run.items():
                psnr, ssim, sr = evaluate_image(hr, upscale, scale, lr)
                per_image[model][name].append({
                    "image": path.stem, "psnr": round(psnr, 4), "ssim": round(ssim, 5),
                    "detail": round(detail_ratio(sr, hr, scale), 4),
                    "colour": [round(float(c), 3) for c in colour_shift(sr, hr, scale)]})
                if save_images is not None:
                    folder = Path(save_images) / (model if len(upscalers) > 1 else "") / name
                    write_image(folder / f"{path.stem}.png", sr)
        if cache is not None:
            for model in to_run:
                cache.put(model, name, files, scale, degradation, per_image[model][name])
    reports = {model: _report(model, scale, results, degradation) for model, results in per_image.items()}
    if parse_degradation(degradation)[0] not in ("bicubic", "jpeg"):  # a chain: its every setting
        from .realistic import DEGRADATION_SETTINGS, settings_record

        for report in reports.values():
            report["protocol"][degradation] = settings_record(DEGRADATION_SETTINGS[degradation])
    return reports


class ResultCache:
    """Per-image results already measured, so that a model that has not changed is not scored again (chapter 6 and
    ``make results`` score the shipped models on every run). ``folder`` holds one JSON file per weights file, named
    by its SHA-256 and precision; an entry is keyed by the set's name, the hash of its files' bytes, the scale, the
    degradation and ``VERSION`` (raise it when what is measured per image changes). ``models`` maps the names
    given to ``run_benchmarks`` to (weights file, precision); others are always run. With ``write=False`` nothing
    new is kept. The shipped models' results are kept beside them (``SHIPPED_RESULTS``, written by ``make results``,
    read by chapters 6 and 7)."""

    VERSION = 1

    def __init__(self, folder: str | os.PathLike, models: dict[str, tuple[str | os.PathLike, str]], write: bool = True):
        self.folder, self.write = Path(folder), write
        self.files = {name: self.folder / f"{_sha256([Path(weights)])[:16]}-{precision}.json"
                      for name, (weights, precision) in models.items()}
        self._set_hashes: dict[tuple, str] = {}

    def _key(self, set_name: str, files: list[Path], scale: int, degradation: str) -> str:
        files_key = tuple(files)
        if files_key not in self._set_hashes:
            self._set_hashes[files_key] = _sha256(files)[:16]
        return f"{set_name}|{self._set_hashes[files_key]}|x{scale}|{degradation}|v{self.VERSION}"

    def get(self, model: str, set_name: str, files: list[Path], scale: int, degradation: str) -> list | None:
        """The per-image rows ``model`` got on that set before, or None (unknown model, or not measured)."""
        if model not in self.files or not self.files[model].is_file():
            return None
        try:
            entries = json.loads(self.files[model].read_text()).get("entries", {})
        except (OSError, ValueError, AttributeError):
            return None  # a damaged file is measured again, and rewritten
        rows = entries.get(self._key(set_name, files, scale, degradation))
        return rows if isinstance(rows, list) and len(rows) == len(files) else None

    def put(self, model: str, set_name: str, files: list[Path], scale: int, degradation: str, rows: list) -> None:
        if model not in self.files or not self.write:
            return
        path = self.files[model]
        try:
            entries = json.loads(path.read_text()).get("entries", {}) if path.is_file() else {}
        except (OSError, ValueError, AttributeError):
            entries = {}
        entries[self._key(set_name, files, scale, degradation)] = rows
        write_json(path, {"entries": dict(sorted(entries.items()))})


def _sha256(files: list[Path]) -> str:
    """The SHA-256 of the files' names and bytes, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _report(model: str, scale: int, per_set: dict[str, list[dict]], degradation: str = "bicubic") -> dict:
    return {
        "model": model,
        "scale": scale,
        "degradation": degradation,
        "results": {name: {"psnr": round(float(np.mean([r["psnr"] for r in rows])), 4),
                           "ssim": round(float(np.mean([r["ssim"] for r in rows])), 5),
                           "detail": round(float(np.mean([r["detail"] for r in rows])), 4),
                           "colour": round(float(np.mean([np.abs(r["colour"]).max() for r in rows])), 3),
                           "n": len(rows), "images": rows} for name, rows in per_set.items()},
        "protocol": {
            "lr": lr_protocol(degradation, scale),
            "channel": "Y of BT.601 YCbCr (MATLAB rgb2ycbcr, uint8)",
            "shave": scale,
            "ssim": "Wang et al. 2004: gaussian 11x11, sigma 1.5, K1 0.01, K2 0.03",
            "detail": "power of Y above 1/(2*scale) cycles/pixel (Hann window), SR over HR; 1 = as much as HR",
            "colour": "per image: mean R, G, B of SR minus HR in grey levels (uint8); per set: the mean over "
                      "images of the largest absolute channel shift",
        },
    }


def model_upscaler(model: str | os.PathLike, scale: int,
                   precision: str = "float32") -> tuple[Upscaler, "ModelCard | None"]:
    """``"bicubic"``, a shipped model's name (``"srresnet-x4"``) or a generator's ``.weights.h5`` (with its model
    card) -> (its upscaler, its model card or None); a generator of another scale is a clear error. In float32
    the upscaler is the Keras model on the whole image; in another ``precision``, ``srlib.upscale``'s network."""
    if str(model) == "bicubic":
        return bicubic_upscaler(scale), None
    from .model_card import ModelCard
    from .models import load_generator, upscale_with
    from .precision import check
    from .upscale import upscale, weights_path

    check(precision)
    path = weights_path(model)
    network = load_generator(path)
    if network.architecture["scale"] != scale:
        raise SrlibError(f"{model} is a x{network.architecture['scale']} generator, not x{scale}")
    if precision != "float32":
        return (lambda lr: upscale(lr, path, precision=precision)), ModelCard.read(path)
    return upscale_with(network), ModelCard.read(path)


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


def public_domain_photos() -> list[Path]:
    """JPEG photos in the public domain that the installed packages ship: Grace Hopper (US Navy; a scanned print,
    resized, in matplotlib's sample data) and a rocket launch (SpaceX; downsized for the web, in scikit-image's
    data). Nobody made them smaller with MATLAB's bicubic: they are the inputs a model for real photos is for."""
    import matplotlib.cbook
    import skimage

    return [Path(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)),
            Path(skimage.__file__).parent / "data" / "rocket.jpg"]


def photo_showcase(photos: list[Path], upscalers: dict[str, Upscaler], window: int = 48, context: int = 16,
                   scale: int = 4) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The panels of a gallery of real photos, as ``showcase`` gives them for ``figures.crops_figure`` (with
    ``crop=window * scale``): for each photo file, its busiest ``window`` x ``window`` region as it is (the LR
    input: there is no HR to compare with), and each upscaler's SR of that region, upscaled with ``context`` more
    pixels around it (where the photo has them) so that no network sees an edge the photo does not have."""
    from .figures import busiest_box

    scenes = []
    for path in photos:
        photo = read_image(path)
        top, left, height, width = busiest_box(photo, window)
        t, l = max(0, top - context), max(0, left - context)
        around = photo[t:top + height + context, l:left + width + context]
        panels = {"the JPEG photo": photo[top:top + height, left:left + width]}
        for label, upscale in upscalers.items():
            sr = np.clip(np.round(np.asarray(upscale(around))), 0, 255).astype(np.uint8)
            panels[label] = sr[(top - t) * scale:(top - t + height) * scale, (left - l) * scale:(left - l + width) * scale]
        scenes.append((Path(path).stem, panels))
    return scenes


def showcase(images: list[Path], upscalers: dict[str, Upscaler], scale: int, degradation: str = "bicubic"
             ) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The panels of a visual comparison: for each HR image file, the LR input (made by ``degradation``, as
    ``run_benchmarks`` makes it), each upscaler's SR (its label with this image's PSNR and detail ratio) and the HR
    image, titled "<set folder>/<name>"."""
    scenes = []
    for path in images:
        hr = modcrop(read_image(path), scale)
        lr = lr_input(hr, scale, degradation, f"{Path(path).parent.name}/{Path(path).stem}")
        panels = {"LR input": lr}
        for label, upscale in upscalers.items():
            psnr, _, sr = evaluate_image(hr, upscale, scale, lr)
            panels[f"{label} ({psnr:.2f} dB, detail {detail_ratio(sr, hr, scale):.2f})"] = sr
        panels["HR"] = hr
        scenes.append((f"{Path(path).parent.name}/{Path(path).stem}", panels))
    return scenes
