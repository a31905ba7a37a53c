"""Upscaling any image, tile by tile, with a saved generator."""

import importlib
import json
import logging
import os
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from srlib.errors import SrlibError
from srlib.models import generator, load_generator, save_generator, upscale_with
from srlib.upscale import parse_memory, plan, receptive_radius, upscale, upscale_files, windows

module = importlib.import_module("srlib.upscale")  # `srlib.upscale` itself is the function


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "small.weights.h5"
    model = generator(scale=4, blocks=16, filters=8)  # SRResNet-16's depth, so its receptive field
    save_generator(model, path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A generator too small to be slow on large images."""
    path = tmp_path_factory.mktemp("tiny") / "tiny.weights.h5"
    save_generator(generator(scale=4, blocks=1, filters=4, batch_norm=False), path)
    return str(path)


def _image(height, width, seed=0):
    rng = np.random.default_rng(seed)
    base = np.add.outer(np.sin(np.arange(height) / 5), np.cos(np.arange(width) / 7)) * 80 + 120
    return np.clip(base[..., None] + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)


def test_windows_cover_the_range_with_context_and_one_size():
    assert windows(10, 20, 10, 20, 1, 5) == [(10, 20, 10, 20)]
    assert windows(0, 100, 0, 100, 2, 10) == [(0, 50, 0, 60), (50, 100, 40, 100)]
    assert windows(30, 60, 27, 63, 2, 3) == [(30, 45, 27, 48), (45, 60, 42, 63)]  # context beyond the part
    for length, pieces, radius in [(1, 3, 0), (79, 2, 40), (150, 4, 40), (173, 3, 40), (2048, 5, 40), (999, 7, 3)]:
        parts = windows(0, length, 0, length, pieces, radius)
        assert [p[0] for p in parts[1:]] == [p[1] for p in parts[:-1]] and (parts[0][0], parts[-1][1]) == (0, length)
        assert len(parts) <= pieces and len({stop - start for _, _, start, stop in parts}) == 1
        for part_start, part_stop, start, stop in parts:
            assert 0 <= start <= max(0, part_start - radius) and min(length, part_stop + radius) <= stop <= length


def test_tiled_result_equals_the_whole_image_result(weights):
    image = _image(150, 173)
    whole = upscale(image, weights, tile=None)
    tiled = upscale(image, weights, tile=48)  # overlap: the receptive radius, 40 LR pixels
    assert tiled.shape == whole.shape == (600, 692, 3)
    assert np.abs(tiled.astype(int) - whole.astype(int)).max() <= 1
    budgeted = upscale(image, weights, max_memory=4e6)  # 2x3 body windows, each with 2x2 upsampler windows
    assert np.abs(budgeted.astype(int) - whole.astype(int)).max() <= 1
    assert receptive_radius({"scale": 4, "blocks": 16}) == 40
    assert receptive_radius({"scale": 2, "blocks": 16}) == 40  # the 9x9 tail reaches 2 LR pixels at x2


def test_the_tail_computed_before_the_shuffle_is_the_same_conv():
    import tensorflow as tf

    from srlib.models import pre_shuffle_kernel

    rng = np.random.default_rng(1)
    for size in (9, 3):
        kernel, bias = rng.normal(size=(size, size, 5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
        x = rng.normal(size=(1, 7, 6, 20)).astype(np.float32)
        after = tf.nn.bias_add(tf.nn.conv2d(tf.nn.depth_to_space(x, 2), kernel, 1, "SAME"), bias)
        new_kernel = pre_shuffle_kernel(kernel)
        before = tf.nn.depth_to_space(tf.nn.bias_add(tf.nn.conv2d(x, new_kernel, 1, "SAME"), np.tile(bias, 4)), 2)
        assert new_kernel.shape == ((size // 2 + 1) // 2 * 2 + 1,) * 2 + (20, 12)
        np.testing.assert_allclose(before.numpy(), after.numpy(), atol=1e-4)


def test_the_fast_inference_graph_computes_what_the_model_does(tmp_path):
    image = _image(40, 52)
    for batch_norm in (False, True):
        path = tmp_path / f"g{batch_norm}.weights.h5"
        model = generator(scale=4, blocks=2, filters=8, batch_norm=batch_norm)
        tail = model.get_layer("tail_conv")
        tail.set_weights([w * 40 for w in tail.get_weights()])  # an untrained tail gives grey: make it matter
        save_generator(model, path)
        keras_result = upscale_with(load_generator(path))(image)
        assert keras_result.std() > 20
        # in float32, as the Keras model computes here (bfloat16's own cost: tests/test_precision.py)
        assert np.abs(upscale(image, path, tile=None, precision="float32").astype(int) - keras_result).max() <= 1


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_large_windows_compute_the_prelus_with_xla_and_get_the_same_image(monkeypatch, precision):
    # the shipped model: an untrained network of this depth turns rounding differences into large ones
    # (bfloat16 and float32 are 15 grey levels apart on this image with random weights)
    image = _image(60, 70)
    plain = upscale(image, "srresnet-x4", tile=None, precision=precision)
    network = module._load("srresnet-x4", precision)
    compiled = []  # the windows the XLA pair (body, upsampler) computes

    def counted(function):
        return lambda x: (compiled.append(tuple(x.shape)), function(x))[1]

    monkeypatch.setattr(module, "COMPILED_FROM", 60 * 70)  # the whole image's body window and upsampler windows
    monkeypatch.setitem(network._functions, True, tuple(map(counted, network._functions[True])))
    with_xla = upscale(image, "srresnet-x4", tile=None, precision=precision)
    assert [shape[1:3] for shape in compiled] == [(60, 70), (60, 70)]  # the body, then the upsampler
    # the same function; TensorFlow fuses the ops around the PReLUs differently, so a rounding may differ (in
    # bfloat16 on AMX, one value in 200 000 by 2 grey levels)
    difference = np.abs(with_xla.astype(int) - plain)
    assert difference.max() <= 2 and np.mean(difference > 1) < 1e-4 and difference.mean() < 0.15


def test_the_upsampler_windows_keep_to_their_size_and_take_the_body_windows_xla_choice(tiny, monkeypatch):
    image = _image(150, 173)
    uncapped = upscale(image, tiny, precision="float32")
    network = module._load(tiny, "float32")
    calls = []  # (pixels, with XLA) of each upsampler window, from the function that ran

    def counted(function, compiled):
        return lambda x: (calls.append((x.shape[1] * x.shape[2], compiled)), function(x))[1]

    for compiled in (False, True):
        body, upsampler = network._functions[compiled]
        monkeypatch.setitem(network._functions, compiled, (body, counted(upsampler, compiled)))
    monkeypatch.setitem(module.UPSAMPLER_SIDE, "float32", 40)
    for compiled_from, compiled in [(150 * 173, True), (150 * 173 + 1, False)]:  # the one body window: XLA or not
        monkeypatch.setattr(module, "COMPILED_FROM", compiled_from)
        calls.clear()
        capped = upscale(image, tiny, precision="float32")
        assert len(calls) >= 4 and {with_xla for _, with_xla in calls} == {compiled}
        assert all(pixels <= (40 + 2 * network.upsampler_radius) ** 2 for pixels, _ in calls)
        assert np.abs(capped.astype(int) - uncapped).max() <= 1


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
    with pytest.raises(SrlibError, match="wrong.weights.h5"):
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


def test_the_windows_follow_the_memory_budget_not_the_image(tiny):
    body_bytes = module.BODY_BYTES_PER_FILTER * 64  # SRResNet-16, 64 filters
    for size, budget in [(512, 2e9), (2048, 2e9), (9000, 2e9), (9000, 5e8), (2048, 1e8)]:
        row_bytes = size * 4**2 * 3  # a band of x4 output rows
        down, across = plan(size, size, 40, body_bytes, budget, row_bytes=row_bytes)
        rows, columns = windows(0, size, 0, size, down, 40), windows(0, size, 0, size, across, 40)
        window = (rows[0][3] - rows[0][2]) * (columns[0][3] - columns[0][2])
        band = row_bytes * max(stop - start for start, stop, _, _ in rows)
        assert window * body_bytes + band <= budget
        if budget == 2e9:  # the default: little context computed twice
            assert len(rows) * len(columns) * window / size**2 < {512: 1.001, 2048: 1.1, 9000: 1.2}[size]
    assert plan(9000, 9000, 40, body_bytes, 2e9, tile=192) == (47, 47)  # tile= overrides the budget
    with pytest.raises(SrlibError, match="max_memory of 0.00 GB is too small"):
        plan(500, 500, 40, body_bytes, 1e6)
    assert (parse_memory("2G"), parse_memory("1.5GB"), parse_memory("500m"), parse_memory("123")) == (
        2_000_000_000, 1_500_000_000, 500_000_000, 123)
    with pytest.raises(SrlibError, match="not an amount of memory"):
        parse_memory("lots")
    with pytest.raises(SrlibError, match="not an amount of memory"):
        upscale(_image(8, 8), tiny, max_memory="2 gigs")
    assert np.abs(upscale(_image(30, 30), tiny, max_memory="3M").astype(int) - upscale(_image(30, 30), tiny)).max() <= 1


def test_a_large_image_is_written_band_by_band_not_held_whole(tiny, tmp_path):
    image = _image(800, 1000)
    Image.fromarray(image).save(tmp_path / "large.png")
    output_bytes = 3200 * 4000 * 3
    tracemalloc.start()  # numpy reports its arrays to tracemalloc; the old code held the whole output
    try:
        upscale_files([tmp_path / "large.png"], tmp_path / "out", tiny, max_memory=8e6, progress=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the input (and its copy while decoding), the budget, and the PNG encoder's few MB; not the output
    assert peak < 2 * image.nbytes + 8e6 + 4e6 < output_bytes / 2, f"{peak / 1e6:.1f} MB held"
    with Image.open(tmp_path / "out" / "large.png") as png:  # what upscale computes in the same windows
        np.testing.assert_array_equal(np.asarray(png), upscale(image, tiny, max_memory=8e6))


def test_a_single_large_image_shows_progress_unless_told_not_to(tiny, tmp_path, capsys):
    Image.fromarray(_image(200, 200)).save(tmp_path / "one.png")
    upscale_files([tmp_path / "one.png"], tmp_path / "a", tiny, max_memory=2e6, progress=True)
    assert "one.png" in capsys.readouterr().err
    upscale_files([tmp_path / "one.png"], tmp_path / "b", tiny, max_memory=2e6, progress=False)
    assert capsys.readouterr().err == ""


def test_an_output_is_never_written_over_an_input(tiny, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(_image(10, 12)).save(folder / "a.png")
    original = (folder / "a.png").read_bytes()
    for overwrite in (True, False):
        with pytest.raises(SrlibError, match=r"refusing to write .*a\.png over the input .*a\.png"):
            upscale_files([folder], folder, tiny, overwrite=overwrite, progress=False)
    out = tmp_path / "out"
    out.mkdir()
    os.link(folder / "a.png", out / "a.png")  # the same file under another name
    with pytest.raises(SrlibError, match="over the input"):
        upscale_files([folder / "a.png"], out, tiny, overwrite=True, progress=False)
    (out / "a.png").unlink()
    (out / "a.png").symlink_to(folder / "a.png")
    with pytest.raises(SrlibError, match="over the input"):
        upscale_files([folder / "a.png"], out, tiny, overwrite=True, progress=False)
    assert (folder / "a.png").read_bytes() == original


def test_half_written_outputs_of_a_killed_run_are_removed_and_nothing_else(tiny, tmp_path):
    import time

    Image.fromarray(_image(10, 12)).save(tmp_path / "a.png")
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    killed = [out / ".a.png.tmp-0123456789ab.png"]  # this run's output, e.g. a 4096² band write, killed
    kept = [out / ".b.png.tmp-abcdef012345.png",  # another file's: not this run's to judge
            out / "mine" / ".a.png.tmp-00aa11bb22cc.png", out / "notes.txt"]  # below the folder; not a temporary
    for path in killed + kept:
        path.write_bytes(b"half")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # left by a process killed an hour ago
    upscale_files([tmp_path / "a.png"], out, tiny, progress=False)
    assert (out / "a.png").is_file()
    assert not any(path.exists() for path in killed) and all(path.exists() for path in kept)


def test_inputs_sharing_a_name_are_written_apart_and_real_clashes_named_one_by_one(tiny, tmp_path, caplog):
    folder = tmp_path / "camera"
    folder.mkdir()
    Image.fromarray(_image(10, 12)).save(folder / "photo.png")
    Image.fromarray(_image(10, 12, seed=1)).save(folder / "photo.jpg")
    Image.fromarray(_image(8, 8)).save(folder / "other.jpg")
    with caplog.at_level(logging.INFO, logger="srlib.upscale"):
        done = upscale_files([folder], tmp_path / "out", tiny, progress=False)
    assert sorted(p.name for p in done["written"]) == ["other.png", "photo.jpg.png", "photo.png"]
    assert "writing it as photo.jpg.png" in caplog.text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    Image.fromarray(_image(10, 12)).save(elsewhere / "plain.png")
    (folder / "plain.png").write_bytes((elsewhere / "plain.png").read_bytes())
    with pytest.raises(SrlibError) as error:
        upscale_files([folder, elsewhere], tmp_path / "out2", tiny, progress=False)
    assert f"{folder / 'plain.png'} and {elsewhere / 'plain.png'} would both be written as plain.png" in str(error.value)
    assert not (tmp_path / "out2").exists()


def test_the_band_writer_makes_a_png_that_readers_decode_and_none_when_rows_are_missing(tmp_path):
    from srlib.images import png_band_writer, read_image

    image = _image(37, 29)
    with png_band_writer(tmp_path / "bands.png", 37, 29) as write:
        for start in (0, 1, 17):
            write(image[start:{0: 1, 1: 17, 17: 37}[start]])
    np.testing.assert_array_equal(read_image(tmp_path / "bands.png"), image)
    with Image.open(tmp_path / "bands.png") as png:
        assert (png.mode, png.size) == ("RGB", (29, 37))
    with pytest.raises(ValueError, match="20 of 37 rows"):
        with png_band_writer(tmp_path / "short.png", 37, 29) as write:
            write(image[:20])
    with pytest.raises(ValueError, match="does not fit"):
        with png_band_writer(tmp_path / "wide.png", 37, 28) as write:
            write(image)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bands.png"]  # no partial files left
