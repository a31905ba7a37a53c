"""The one image reader: every format and pixel layout in, RGB uint8 out; bad files named."""

import logging
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from srlib.errors import DataError, ImageReadError
from srlib.images import list_image_files, read_image, read_image_folder, write_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(12, 17, 3), dtype=np.uint8)


def _png_rgb16(path, pixels):
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one)."""
    height, width, _ = pixels.shape
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    path = tmp_path / f"image{suffix}"
    Image.fromarray(RGB).save(path)
    out = read_image(path)
    assert out.dtype == np.uint8 and out.shape == (12, 17, 3)
    np.testing.assert_array_equal(out, RGB)


def test_jpeg_reads_close_to_the_original(tmp_path):
    smooth = np.dstack([np.add.outer(np.arange(32), np.arange(40)) * 3] * 3).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "a.jpg", quality=95)
    out = read_image(tmp_path / "a.jpg")
    assert out.shape == (32, 40, 3)
    assert np.abs(out.astype(int) - smooth).mean() < 3


def test_grayscale_becomes_rgb(tmp_path):
    gray = RGB[..., 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = read_image(tmp_path / "g.png")
    assert out.shape == (12, 17, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_alpha_is_dropped_keeping_the_stored_colour(tmp_path):
    alpha = np.zeros((12, 17, 1), dtype=np.uint8)  # fully transparent
    Image.fromarray(np.concatenate([RGB, alpha], axis=-1), mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), RGB)
    gray_alpha = np.stack([RGB[..., 1], np.full((12, 17), 128, np.uint8)], axis=-1)
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), np.dstack([RGB[..., 1]] * 3))


def test_palette_image_becomes_rgb(tmp_path):
    Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16).save(tmp_path / "p.png")
    expected = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "p.png"), expected)


def test_16_bit_images_become_8_bit(tmp_path):
    gray16 = np.array([[0, 257, 65535, 32896, 1000]], dtype=np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "g16.png")[..., 0], [[0, 1, 255, 128, 4]])

    rgb16 = RNG.integers(0, 65536, size=(6, 9, 3)).astype(np.uint16)
    expected = np.round(rgb16 / 257).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb16)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb16.tif"), expected)
    _png_rgb16(tmp_path / "rgb16.png", rgb16)
    out = read_image(tmp_path / "rgb16.png")  # Pillow keeps the high byte: within 1 of the rounding
    assert out.shape == (6, 9, 3) and np.abs(out.astype(int) - expected).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    # A 20x10 (landscape) picture stored with EXIF orientation 6: "rotate 90 clockwise to view".
    image = np.zeros((10, 20, 3), dtype=np.uint8)
    image[:, :5] = 255  # white band on the left
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(image).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    out = read_image(tmp_path / "phone.jpg")
    assert out.shape == (20, 10, 3)  # now portrait
    assert out[:5].mean() > 200 and out[-5:].mean() < 50  # the left band is now at the top


@pytest.mark.parametrize("mode", ["P", "CMYK", "LAB", "YCbCr", "1", "L"])
def test_tiff_colour_spaces_become_rgb_as_pillow_converts_them(tmp_path, mode):
    source = Image.fromarray(np.full((8, 8, 3), (200, 30, 30), np.uint8))
    source = source.convert(mode) if mode != "P" else source.convert("P", palette=Image.Palette.ADAPTIVE)
    source.save(tmp_path / "x.tif")
    expected = np.asarray(Image.open(tmp_path / "x.tif").convert("RGB"))
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), expected)


def test_multi_page_tiffs_give_their_first_page(tmp_path):
    pages = [Image.fromarray(np.full((6, 7, 3), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "pillow.tif", save_all=True, append_images=pages[1:])
    out = read_image(tmp_path / "pillow.tif")
    assert out.shape == (6, 7, 3) and np.all(out == 10)
    stack = np.stack([np.full((6, 3), v * 257, np.uint16) for v in (40, 50, 60, 70)])
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")  # four 16-bit gray 6x3 pages
    out = read_image(tmp_path / "stack.tif")
    assert out.shape == (6, 3, 3) and np.all(out == 40)


def test_huge_tiff_is_refused(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "big.tif", np.zeros((20, 30, 3), np.uint16))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "big.tif")


def test_a_folder_is_not_an_image(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(ImageReadError, match="not a file"):
        read_image(tmp_path / "x.png")


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    Image.fromarray(np.full((8, 8, 3), (200, 30, 30), np.uint8)).convert("CMYK").save(tmp_path / "cmyk.jpg")
    out = read_image(tmp_path / "cmyk.jpg")
    assert out.shape == (8, 8, 3)
    assert np.abs(out[4, 4].astype(int) - (200, 30, 30)).max() < 12


def _good_png_bytes(tmp_path):
    Image.fromarray(RGB).save(tmp_path / "good.png")
    return (tmp_path / "good.png").read_bytes()


@pytest.mark.parametrize("kind", ["corrupt", "truncated_png", "truncated_jpeg", "text", "empty", "missing"])
def test_bad_files_raise_one_error_naming_the_file(tmp_path, kind):
    path = tmp_path / f"bad_{kind}.png"
    if kind == "corrupt":
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    elif kind == "truncated_png":
        data = _good_png_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_jpeg":
        path = tmp_path / "bad.jpg"
        Image.fromarray(RGB).resize((170, 120)).save(path, quality=90)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "text":
        path.write_text("this is not an image\n")
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(path) in str(caught.value)
    assert caught.value.path == str(path)


def test_folder_reader_skips_bad_and_tiny_files_with_a_warning(tmp_path, caplog):
    Image.fromarray(RGB).save(tmp_path / "a.png")
    sub = tmp_path / "sub"
    sub.mkdir()
    Image.fromarray(RGB).save(sub / "b.bmp")
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(RGB[:4, :4]).save(tmp_path / "tiny.png")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    with caplog.at_level(logging.WARNING, logger="srlib.images"):
        folder = read_image_folder(tmp_path, min_size=8)
    assert [p.name for p in folder.paths] == ["a.png", "b.bmp"]
    assert len(folder) == 2
    assert sorted(p.name for p, _ in folder.skipped) == ["broken.jpg", "tiny.png"]
    assert "broken.jpg" in caplog.text and "tiny.png" in caplog.text
    assert "skipped 2 of 4 image files" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="srlib.images"):
        again = read_image_folder(tmp_path, min_size=8)
    assert len(again.skipped) == 2 and caplog.text == ""  # each warning once per process


def test_folder_reader_fails_clearly_when_nothing_is_usable(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no usable images.*1 skipped"):
        read_image_folder(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        read_image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="found 0 image files"):
        read_image_folder(tmp_path / "empty")


def test_list_image_files_is_sorted_and_ignores_hidden_files(tmp_path):
    for name in ["b.PNG", "a.jpeg", ".hidden.png", "c.gif"]:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_image_files(tmp_path)] == ["a.jpeg", "b.PNG"]


def test_write_image_is_atomic_and_round_trips(tmp_path):
    target = tmp_path / "out" / "x.png"
    write_image(target, RGB)
    np.testing.assert_array_equal(read_image(target), RGB)
    assert [p.name for p in target.parent.iterdir()] == ["x.png"]  # no temporary file left behind


def test_write_image_interrupted_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "x.png"
    write_image(target, RGB)

    def crash_mid_write(path, data):
        open(path, "wb").write(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_bytes", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        write_image(target, np.zeros_like(RGB))
    np.testing.assert_array_equal(read_image(target), RGB)
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    Image.fromarray(RGB).save(tmp_path / "big.png")  # 204 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 150)  # stand-in for Pillow's ~89 megapixel limit
    with pytest.raises(ImageReadError, match="too large"):
        read_image(tmp_path / "big.png")
