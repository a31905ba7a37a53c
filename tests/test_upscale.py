"""Upscaling any image, tile by tile, with a saved generator."""

import importlib
import json

import numpy as np
import pytest
from PIL import Image

from srlib.errors import SrlibError
from srlib.models import generator, save_generator
from srlib.upscale import receptive_radius, tiles, upscale, upscale_files


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.weights.h5"
    model = generator(scale=4, blocks=16, filters=8)  # SRResNet-16's depth, so its receptive field
    save_generator(model, path, {"recipe": "test"})
    return str(path)


def _image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.sin(np.arange(height) / 5), np.cos(np.arange(width) / 7)) * 80 + 120
    return np.clip(base[..., None] + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def test_tiles_cover_the_range():
    assert tiles(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert tiles(4, 4) == [(0, 4)]


def test_tiled_result_equals_the_whole_image_result(weights):
    image = _image(150, 173)
    whole = upscale(image, weights, tile=None)
    tiled = upscale(image, weights, tile=48)  # overlap: the receptive radius, 40 LR pixels
    assert tiled.shape == whole.shape == (600, 692, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    assert receptive_radius({"scale": 4, "blocks": 16}) == 40


def test_srlib_upscale_is_the_function_and_takes_an_array(weights):
    import srlib

    image = _image(10, 12)
    np.testing.assert_array_equal(srlib.upscale(image, weights), upscale(image, weights))
    assert srlib.upscale_files is upscale_files


def test_grayscale_and_rgba_inputs_are_upscaled_as_rgb(weights):
    gray = _image(20, 24)[..., 0]
    assert upscale(gray, weights).shape == (80, 96, 3)
    rgba = np.dstack([_image(20, 24), np.full((20, 24), 128, np.uint8)])
    np.testing.assert_array_equal(upscale(rgba, weights), upscale(rgba[..., :3], weights))
    with pytest.raises(SrlibError, match="uint8"):
        upscale(gray.astype(np.float32), weights)


def test_upscale_files_skips_bad_files_by_name_and_keeps_existing_outputs(weights, tmp_path, caplog):
    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_image(16, 20)).save(inputs / "a.png")
    Image.fromarray(_image(12, 12)[..., 0]).save(inputs / "b.jpg")
    (inputs / "broken.png").write_bytes(b"not an image")
    Image.fromarray((_image(10, 14).astype(np.uint16) * 257)[..., 0]).save(inputs / "deep16.png")  # 16-bit gray
    exif = Image.Exif()
    exif[0x0112] = 6  # a phone photo stored sideways: shown rotated 90 degrees
    Image.fromarray(_image(10, 14)).save(inputs / "phone.jpg", exif=exif)
    out = tmp_path / "out"
    done = upscale_files([inputs], out, weights, progress=False)
    assert sorted(p.name for p in done["written"]) == ["a.png", "b.png", "deep16.png", "phone.png"]
    with Image.open(out / "deep16.png") as deep, Image.open(out / "phone.png") as phone:
        assert (deep.mode, deep.size, phone.size) == ("RGB", (56, 40), (40, 56))
    assert [p.name for p, _ in done["failed"]] == ["broken.png"] and "broken.png" in caplog.text
    with Image.open(out / "a.png") as png:
        assert png.size == (80, 64)
    (out / "a.png").write_bytes(b"mine")
    again = upscale_files([inputs / "a.png"], out, weights, progress=False)
    assert again["kept"] == [out / "a.png"] and (out / "a.png").read_bytes() == b"mine"
    upscale_files([inputs / "a.png"], out, weights, overwrite=True, progress=False)
    assert (out / "a.png").read_bytes() != b"mine"


def test_weights_of_another_architecture_are_a_clear_error(weights, tmp_path):
    wrong = tmp_path / "wrong.weights.h5"
    wrong.write_bytes(open(weights, "rb").read())
    sidecar = json.loads(open(weights.replace(".weights.h5", ".json")).read())
    sidecar["architecture"]["blocks"] = 5
    (tmp_path / "wrong.json").write_text(json.dumps(sidecar))
    with pytest.raises(SrlibError, match="does not hold weights for a generator with .*'blocks': 5"):
        upscale(_image(8, 8), str(wrong))


def test_upscale_command_writes_the_readable_files_and_names_the_others(weights, tmp_path, capsys):
    from srlib.cli import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    Image.fromarray(_image(10, 12)).save(inputs / "good.png")
    (inputs / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\ntruncated")
    assert main(["upscale", str(inputs), "-o", str(tmp_path / "out"), "--weights", weights, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert "wrote 1 images" in captured.out and "bad.png" in captured.out
    assert "could not be read" in captured.err
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bad.png").exists()
    assert main(["upscale", str(tmp_path / "nope.png"), "-o", str(tmp_path / "out"), "--weights", weights]) == 2


def test_the_shipped_model_missing_is_a_clear_error(monkeypatch, tmp_path):
    module = importlib.import_module("srlib.upscale")  # `srlib.upscale` itself is the function

    monkeypatch.setitem(module.SHIPPED, "srresnet-x4", tmp_path / "absent.weights.h5")
    with pytest.raises(SrlibError, match="srresnet-x4 weights are not in this copy"):
        upscale(_image(8, 8), "srresnet-x4")


def test_weights_replaced_on_disk_are_loaded_again(tmp_path):
    path = tmp_path / "g.weights.h5"
    image = _image(12, 12)
    save_generator(generator(scale=4, blocks=1, filters=4), path)
    first = upscale(image, path)
    save_generator(generator(scale=4, blocks=1, filters=4), path)  # other random weights, same file name
    assert not np.array_equal(upscale(image, path), first)
