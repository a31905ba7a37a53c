"""Errors name what failed: a symbolic link loop, a file where a folder must be, a truncated image."""

import os
from pathlib import Path

import numpy as np
import pytest

from srlib import cli
from srlib.errors import DataError, ImageReadError, SrlibError
from srlib.files import make_folder, why_missing
from srlib.images import list_image_files, read_image, write_image


@pytest.fixture
def odd_paths(tmp_path):
    """A symbolic link loop, a broken link, a plain file and an image, in tmp_path."""
    os.symlink("loop", tmp_path / "loop")
    os.symlink("nowhere", tmp_path / "broken")
    (tmp_path / "afile").write_text("not a folder")
    write_image(tmp_path / "image.png", np.zeros((24, 24, 3), np.uint8))
    return tmp_path


def test_why_a_path_cannot_be_opened_is_said(odd_paths):
    assert why_missing(odd_paths / "loop") == "is a symbolic link loop"
    assert why_missing(odd_paths / "broken") == "is a symbolic link to nowhere, which does not exist"
    assert why_missing(odd_paths / "absent") == "does not exist"
    assert why_missing(odd_paths / "afile") == "is a file, not a folder"
    assert why_missing(odd_paths / "afile" / "x") == f"does not exist ({odd_paths / 'afile'} is a file, not a folder)"


def test_a_folder_cannot_be_made_where_a_file_is(odd_paths):
    with pytest.raises(SrlibError, match=f"cannot make the output folder {odd_paths}/afile/sub: {odd_paths}/afile is "
                                         "a file, not a folder"):
        make_folder(odd_paths / "afile" / "sub", "output folder")
    assert make_folder(odd_paths / "new" / "sub").is_dir()


def test_an_image_folder_that_is_a_loop_says_so(odd_paths):
    with pytest.raises(DataError, match="image folder .*/loop is a symbolic link loop"):
        list_image_files(odd_paths / "loop")


@pytest.mark.parametrize("name, keep", [("image.png", 60), ("photo.jpg", 300)])
def test_a_truncated_image_says_truncated(name, keep, tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    whole = tmp_path / ("whole" + Path(name).suffix)
    if name.endswith(".jpg"):
        from PIL import Image
        Image.fromarray(pixels).save(whole, quality=90)
    else:
        write_image(whole, pixels)
    cut = tmp_path / name
    cut.write_bytes(whole.read_bytes()[:len(whole.read_bytes()) * keep // 1000])
    with pytest.raises(ImageReadError) as error:
        read_image(cut)
    assert f"cannot read image {cut}: truncated: the file ends before its image data do" in str(error.value)
    assert "unpack" not in str(error.value)


@pytest.mark.parametrize("argv, said", [
    (["upscale", "{d}/loop", "-o", "{d}/out"], "error: {d}/loop is a symbolic link loop"),
    (["upscale", "{d}/broken", "-o", "{d}/out"], "error: {d}/broken is a symbolic link to nowhere, which does not exist"),
    (["upscale", "{d}/image.png", "-o", "{d}/afile"], "error: cannot make the output folder {d}/afile: {d}/afile is a "
                                                      "file, not a folder"),
    (["benchmark", "--data", "{d}/loop"], "error: data folder {d}/loop is a symbolic link loop"),
    (["train", "--recipe", "paper", "--stage", "mse", "--data", "{d}/loop", "--steps", "1", "--run-dir", "{d}/run",
      "--vgg-weights", "none"], "error: image folder {d}/loop is a symbolic link loop"),
    (["train", "--recipe", "paper", "--stage", "mse", "--data", "{d}", "--steps", "1", "--run-dir", "{d}/afile",
      "--vgg-weights", "none"], "error: cannot make the run folder {d}/afile/mse: {d}/afile is a file, not a folder"),
])
def test_the_command_line_names_what_failed_in_one_line(argv, said, odd_paths, capsys):
    code = cli.main([a.format(d=odd_paths) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines()[-1] == said.format(d=odd_paths)
    assert "Traceback" not in err
