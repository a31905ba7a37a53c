"""Reading and writing images: one reader for every image the project touches.

``read_image`` always returns an RGB ``uint8`` array of shape (height, width, 3):

- PNG, JPEG, BMP and TIFF (and anything else Pillow decodes); the first frame of a multi-frame file.
- Grayscale becomes RGB by repeating the channel.
- Alpha is dropped, not composited: the stored colour under transparent pixels is kept.
- 16-bit images become 8-bit as ``round(v / 257)``, which maps 65535 to 255. (Pillow itself
  hands 16-bit *colour* PNGs over already reduced to their high byte; 16-bit gray and RGB TIFFs go
  through tifffile and keep all 16 bits until this conversion.)
- The EXIF orientation of JPEG (and other Pillow-read) files is applied, so a phone photo is the right
  way up.
- CMYK, YCbCr, LAB and palette images (TIFF included) are converted to RGB by Pillow.
- Images larger than Pillow's ``Image.MAX_IMAGE_PIXELS`` (about 89 megapixels) are refused, TIFF included.

A file that cannot be decoded (corrupt, truncated, not an image, empty) raises ``ImageReadError``
naming the file. ``read_image_folder`` is the lenient version for training data: it skips such files
with a logged warning and a count, and raises ``DataError`` when nothing usable is left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from ._quiet import warn_once
from .errors import DataError, ImageReadError
from .files import atomic_path, why_missing, write_bytes

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_TIFF_EXTENSIONS = frozenset({".tif", ".tiff"})
# Pillow modes that imageio would hand back in their own colour space; ask Pillow for RGB instead.
_CONVERT_TO_RGB = frozenset({"CMYK", "YCbCr", "LAB", "HSV"})


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as an RGB uint8 array (H, W, 3); see the module docstring for the rules."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(path, "no such file")
    if not path.is_file():
        raise ImageReadError(path, "not a file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "the file is empty")
    pixels = _read_16_bit_tiff(path) if path.suffix.lower() in _TIFF_EXTENSIONS else None
    if pixels is None:
        pixels = _read_with_pillow(path)
    return _to_rgb_uint8(pixels, path)


def _read_16_bit_tiff(path: Path) -> np.ndarray | None:
    """The first page of a 16-bit gray or RGB TIFF, at full depth; None for anything Pillow should read.

    Pillow reduces 16-bit colour TIFFs to their high byte; tifffile keeps all 16 bits. Every other TIFF
    (palette, CMYK, LAB, YCbCr, 1-bit, 8-bit) goes to Pillow, which converts colour spaces correctly.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            plain = (
                page.bitspersample == 16
                and page.photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB)
                and (page.samplesperpixel == 1 or page.planarconfig == tifffile.PLANARCONFIG.CONTIG)
            )
            if not plain:
                return None
            if np.prod(page.shape[:2]) > Image.MAX_IMAGE_PIXELS:
                raise ImageReadError(path, f"image is too large to decode safely ({page.shape[1]}x{page.shape[0]})")
            return page.asarray()
    except ImageReadError:
        raise
    except Exception:  # not a TIFF tifffile can read (e.g. a PNG named .tif); Pillow gets a try
        return None


def _read_with_pillow(path: Path) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with iio.imopen(path, "r", plugin="pillow") as image_file:
                mode = image_file.metadata(index=0).get("mode")
                return image_file.read(index=0, rotate=True, mode="RGB" if mode in _CONVERT_TO_RGB else None)
    except Exception as error:  # decoders raise OSError, ValueError, SyntaxError, struct.error, ...
        cause = _root_cause(error)
        if isinstance(cause, (Image.DecompressionBombWarning, Image.DecompressionBombError)):
            raise ImageReadError(path, f"image is too large to decode safely ({cause})") from None
        if isinstance(cause, UnidentifiedImageError):
            raise ImageReadError(path, "not an image file in any format Pillow knows") from None
        if any("truncated" in str(e) for e in _chain(error)):  # Pillow's OSError, above the decoder's struct.error
            raise ImageReadError(path, f"truncated: the file ends before its image data do "
                                       f"({path.stat().st_size} bytes; an interrupted download or copy?)") from None
        raise ImageReadError(path, f"not a readable image ({str(cause) or type(cause).__name__})") from None


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it was raised from or while handling, outermost first."""
    chain = [error]
    while (chain[-1].__cause__ or chain[-1].__context__) is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


def _root_cause(error: BaseException) -> BaseException:
    """imageio wraps decoder errors ("unknown error while initializing plugin"); find the real one."""
    return _chain(error)[-1]


def _to_rgb_uint8(pixels: np.ndarray, path: Path) -> np.ndarray:
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[-1] in (2, 4):
        pixels = pixels[..., :-1]  # drop alpha
    if pixels.ndim == 3 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    if pixels.ndim != 3 or pixels.shape[-1] != 3:
        raise ImageReadError(path, f"unsupported pixel layout {pixels.shape}")
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        raise ImageReadError(path, "the image has no pixels")
    return np.ascontiguousarray(_to_uint8(pixels, path))


def _to_uint8(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    if pixels.dtype == np.bool_:
        return pixels.astype(np.uint8) * 255
    if pixels.dtype == np.uint16:
        return np.round(pixels / 257.0).astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.floating) and pixels.size and 0.0 <= pixels.min() and pixels.max() <= 1.0:
        return np.round(pixels * 255.0).astype(np.uint8)
    if np.issubdtype(pixels.dtype, np.integer) and pixels.size and 0 <= pixels.min() and pixels.max() <= 65535:
        # Pillow reads some 16-bit grayscale files as 32-bit integers ("I" mode).
        return np.round(pixels / 257.0).astype(np.uint8)
    raise ImageReadError(path, f"unsupported pixel values (dtype {pixels.dtype})")


def list_image_files(folder: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Image files (by extension) under ``folder``, sorted by path; hidden files are left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} {why_missing(folder)}")
    pattern = "**/*" if recursive else "*"
    return sorted(
        path
        for path in folder.glob(pattern)
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file() and not path.name.startswith(".")
    )


@dataclass
class ImageFolder:
    """The usable images of a folder (their paths, shapes and, unless not kept, pixels) and what was
    skipped (path and reason)."""

    paths: list[Path] = field(default_factory=list)
    images: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.paths)


def read_image_folder(folder: str | os.PathLike, min_size: int = 1, recursive: bool = True,
                      keep_images: bool = True) -> ImageFolder:
    """Read every image under ``folder``, skipping unreadable ones and those smaller than ``min_size``.

    Each skip is logged as a warning naming the file, and a summary gives the count (each once per process). Raises
    ``DataError`` when the folder is missing or nothing usable is left. With ``keep_images=False`` every
    file is still decoded (to find the bad ones) but only its shape is kept, for surveying large sets.
    """
    result = ImageFolder()
    files = list_image_files(folder, recursive=recursive)
    for path in files:
        try:
            image = read_image(path)
        except ImageReadError as error:
            result.skipped.append((path, error.reason))
            warn_once(log, f"skipping {path}: {error.reason}")
            continue
        height, width = image.shape[:2]
        if min(height, width) < min_size:
            reason = f"{width}x{height} is smaller than {min_size} pixels"
            result.skipped.append((path, reason))
            warn_once(log, f"skipping {path}: {reason}")
            continue
        result.paths.append(path)
        result.shapes.append(image.shape)
        if keep_images:
            result.images.append(image)
    if result.skipped:
        warn_once(log, f"skipped {len(result.skipped)} of {len(files)} image files in {folder}")
    if not result.paths:
        detail = f" ({len(result.skipped)} skipped)" if result.skipped else ""
        raise DataError(f"no usable images in {folder}: found {len(files)} image files{detail}")
    return result


def write_image(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write a uint8 image (format from the extension) atomically: no reader sees a partial file. It is encoded in
    memory first: imageio writing a file on a full disk also fails again later, when its plugin is collected."""
    encoded = iio.imwrite("<bytes>", np.asarray(image, dtype=np.uint8), extension=Path(path).suffix or ".png")
    write_bytes(path, encoded)


@contextlib.contextmanager
def png_band_writer(path: str | os.PathLike, height: int, width: int, replace: bool = True):
    """Yield ``write(band)``, which appends a band of rows (uint8, (rows, width, 3)) to the RGB PNG ``path``
    of ``height`` x ``width``, so that a large image never has to be held whole. The file appears once all
    rows are written, atomically; with ``replace`` false, only if no file has that name by then
    (``FileExistsError`` otherwise: ``srlib.files.atomic_path``).

    Written here with zlib because neither Pillow nor imageio write a PNG in parts, and pypng, which does,
    leaves every row unfiltered: its PNG of a 4096x2576 upscaled photo was 19.1 MB against Pillow's 9.2.
    Every row gets PNG's "Up" filter, which on upscaled images compresses as well as Pillow's per-row
    choice (9.3 MB), and zlib level 4 is a quarter of level 6's time for files about 5% larger.
    """
    row_bytes = width * 3
    chunk_rows = max(1, (1 << 20) // (row_bytes + 1))  # filter and compress 1 MB at a time, whatever the band
    with atomic_path(path, replace=replace) as tmp, open(tmp, "wb") as file:
        def chunk(kind: bytes, data) -> None:
            file.write(struct.pack(">I", len(data)) + kind)
            file.write(data)
            file.write(struct.pack(">I", zlib.crc32(data, zlib.crc32(kind))))

        file.write(b"\x89PNG\r\n\x1a\n")
        chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))  # 8-bit RGB, not interlaced
        compressor = zlib.compressobj(4)
        previous = np.zeros(row_bytes, np.uint8)  # PNG's row above the first
        written = 0

        def write(band: np.ndarray) -> None:
            nonlocal previous, written
            band = np.asarray(band, np.uint8)
            if band.ndim != 3 or band.shape[1:] != (width, 3) or written + len(band) > height:
                raise ValueError(f"a band of shape {band.shape} does not fit a {width}x{height} RGB PNG "
                                 f"with {written} rows written")
            rows = band.reshape(len(band), row_bytes)
            for start in range(0, len(rows), chunk_rows):
                part = rows[start:start + chunk_rows]
                filtered = np.empty((len(part), row_bytes + 1), np.uint8)
                filtered[:, 0] = 2  # "Up": each byte minus the one above it, modulo 256
                np.subtract(part[:1], previous, out=filtered[:1, 1:])
                np.subtract(part[1:], part[:-1], out=filtered[1:, 1:])
                previous = part[-1].copy()
                data = compressor.compress(filtered)
                if data:
                    chunk(b"IDAT", data)
            written += len(band)

        yield write
        if written != height:
            raise ValueError(f"{path}: {written} of {height} rows were written")
        chunk(b"IDAT", compressor.flush())
        chunk(b"IEND", b"")
