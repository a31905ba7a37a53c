"""tools/ship_model.py: a trained generator becomes the shipped model, with the figures the benchmark measured."""

import importlib
import importlib.util
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from srlib.model_card import embedded_card
from srlib.models import generator, save_generator

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def ship(monkeypatch, tmp_path):
    """tools/ship_model.main, with the shipped model's path moved into tmp_path."""
    target = tmp_path / "package" / "srresnet_x4.weights.h5"
    monkeypatch.setitem(importlib.import_module("srlib.upscale").SHIPPED, "srresnet-x4", target)
    spec = importlib.util.spec_from_file_location("ship_model", ROOT / "tools" / "ship_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main, target


@pytest.fixture
def four_sets(tmp_path):
    rng = np.random.default_rng(1)
    for name in ("Set5", "Set14", "BSD100", "Urban100"):
        (tmp_path / "data" / "benchmark" / name).mkdir(parents=True)
        base = np.add.outer(np.sin(np.arange(40) / 4), np.cos(np.arange(44) / 6)) * 70 + 120
        image = np.clip(base[..., None] + rng.normal(0, 8, (40, 44, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(tmp_path / "data" / "benchmark" / name / "a.png")
    return tmp_path / "data"


def _arrays(path):
    """{name: bytes} of every array in a weights file."""
    with h5py.File(path, "r") as file:
        arrays = {}
        file.visititems(lambda name, item: arrays.update({name: item[()].tobytes()}) if isinstance(item, h5py.Dataset) else None)
    return arrays


def _trained(tmp_path, **metadata):
    path = tmp_path / "run" / "generator.weights.h5"
    path.parent.mkdir(exist_ok=True)
    save_generator(generator(scale=4, blocks=1, filters=4), path,
                   {"recipe": "paper", "stage": "mse", "steps": 12, "vgg_weights": None,
                    "training_data": {"name": "BSD200+T91", "images": 290, "folders": ["/somewhere/train"]},
                    "initialised_from": {"steps": 4500, "batch_norm_folded": True,
                                         "weights": "/somewhere/else/bn_step4500.weights.h5"}, **metadata})
    return path


def test_the_shipped_sidecar_holds_the_measured_figures_and_the_model_upscales(ship, four_sets, tmp_path):
    from srlib.benchmark import run_benchmark
    from srlib.models import load_generator, upscale_with
    from srlib.upscale import upscale

    main, target = ship
    source = _trained(tmp_path)
    assert main([str(source), "--data", str(four_sets)]) == 0
    sidecar = json.loads(target.with_name("srresnet_x4.json").read_text())
    assert _arrays(target) == _arrays(source)  # the weights bit for bit; the file holds the shipped card too
    assert embedded_card(target) == sidecar  # so the pair checks as one (ModelCard.read)
    assert (sidecar["recipe"], sidecar["stage"], sidecar["steps"]) == ("paper", "mse", 12)
    assert sidecar["training_data"] == {"name": "BSD200+T91", "images": 290}  # no machine-local folders
    assert sidecar["initialised_from"] == {"steps": 4500, "batch_norm_folded": True,
                                           "weights": "bn_step4500.weights.h5"}  # no machine-local path
    assert sidecar["architecture"] == {"scale": 4, "blocks": 1, "filters": 4, "batch_norm": True}
    assert sidecar["benchmark_command"] == (f"python -m srlib benchmark --weights {source} --data {four_sets} "
                                            "--sets Set5 Set14 BSD100 Urban100")
    assert sidecar["ship_command"] == f"python tools/ship_model.py {source} --data {four_sets} --name srresnet-x4"
    assert "colour_calibration" not in sidecar
    direct = run_benchmark(upscale_with(load_generator(source)), four_sets, ["Set5", "Urban100"], 4, "x", progress=False)
    for name in ("Set5", "Urban100"):
        assert sidecar["benchmark"][name] == {k: direct["results"][name][k] for k in ("psnr", "ssim", "detail", "colour", "n")}
    assert upscale(np.zeros((9, 7, 3), np.uint8)).shape == (36, 28, 3)  # the default model is now this one


def test_a_model_for_real_photos_is_also_scored_on_the_degraded_sets(ship, four_sets, tmp_path):
    from srlib.benchmark import run_benchmarks
    from srlib.models import load_generator, upscale_with
    from srlib.realistic import REAL_ESRGAN, settings_record

    main, target = ship
    source = _trained(tmp_path, config={"degradation": "mixed"})
    assert main([str(source), "--data", str(four_sets)]) == 0
    sidecar = json.loads(target.with_name("srresnet_x4.json").read_text())
    assert set(sidecar["benchmark_degraded"]) == {"realistic", "jpeg50", "jpeg75"}
    assert sidecar["realistic_evaluation"] == settings_record(REAL_ESRGAN)  # the degraded copy's settings
    jpeg50 = sidecar["benchmark_degraded"]["jpeg50"]
    assert "JPEG at quality 50" in jpeg50["lr"] and set(jpeg50) == {"lr", "Set14", "BSD100"}
    direct = run_benchmarks({"x": upscale_with(load_generator(source))}, four_sets, ["BSD100"], 4, progress=False,
                            degradation="jpeg50")["x"]
    assert jpeg50["BSD100"]["psnr"] == direct["results"]["BSD100"]["psnr"]
    assert jpeg50["BSD100"]["psnr"] != sidecar["benchmark"]["BSD100"]["psnr"]  # another input than the clean one
    bicubic_source = _trained(tmp_path)  # a bicubic model's card has no such figures
    assert main([str(bicubic_source), "--data", str(four_sets)]) == 0
    assert "benchmark_degraded" not in json.loads(target.with_name("srresnet_x4.json").read_text())


@pytest.mark.filterwarnings("ignore")
def test_a_generator_trained_on_random_vgg_or_missing_is_not_shipped(ship, four_sets, tmp_path, capsys):
    main, target = ship
    assert main([str(_trained(tmp_path, stage="gan", vgg_weights="random")), "--data", str(four_sets)]) == 2
    assert "random VGG features: not shipped" in capsys.readouterr().err
    assert main([str(tmp_path / "none.weights.h5"), "--data", str(four_sets)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not target.parent.exists()


def test_colour_calibration_removes_the_tint_measured_on_the_training_images(ship, four_sets, tmp_path, capsys):
    from srlib.benchmark import colour_offset
    from srlib.images import list_image_files
    from srlib.models import load_generator, shift_colour, upscale_with

    main, target = ship
    source = _trained(tmp_path, stage="gan")
    train = tmp_path / "train" / "T91"
    train.mkdir(parents=True)
    rng = np.random.default_rng(2)
    for i in range(3):
        Image.fromarray(rng.integers(40, 220, (48, 40, 3), dtype=np.uint8)).save(train / f"t{i}.png")
    Image.fromarray(np.full((20, 30, 3), 99, np.uint8)).save(train / "tiny.png")  # too small to score: skipped
    files = list_image_files(train)
    untinted, _ = colour_offset(upscale_with(load_generator(source)), files, 4, progress=False)
    tinted = shift_colour(load_generator(source), [0.0, 0.0, 6.0])  # a GAN's blue cast, exaggerated
    tinted.save_weights(source)
    tint, scored = colour_offset(upscale_with(load_generator(source)), files, 4, progress=False)
    assert scored == 3
    np.testing.assert_allclose(tint - untinted, [0.0, 0.0, 6.0], atol=0.3)  # the network's own shift, and the tint

    assert main([str(source), "--data", str(four_sets), "--calibrate-colour", str(train.parent)]) == 0
    assert "colour calibrated on 3 images" in capsys.readouterr().out
    shipped = load_generator(target)
    assert np.abs(colour_offset(upscale_with(shipped), files, 4, progress=False)[0]).max() < 0.1
    sidecar = json.loads(target.with_name("srresnet_x4.json").read_text())
    calibration = sidecar["colour_calibration"]
    assert (calibration["images"], calibration["folders"]) == (3, ["train"])
    np.testing.assert_allclose(calibration["removed"], tint, atol=1e-3)
    # the shipped weights are not the source's, so the benchmark command names the shipped model
    assert sidecar["benchmark_command"].startswith("python -m srlib benchmark --model srresnet-x4 --data")
    assert sidecar["ship_command"] == (f"python tools/ship_model.py {source} --data {four_sets} --name srresnet-x4 "
                                       f"--calibrate-colour {train.parent}")
    # only the last conv's bias moved
    for before, after in zip(load_generator(source).layers, shipped.layers):
        for w0, w1 in zip(before.get_weights(), after.get_weights()):
            assert np.array_equal(w0, w1) or (after.name == "tail_conv" and w0.ndim == 1), after.name
    # calibrating twice would hide what the first removed
    assert main([str(target), "--data", str(four_sets), "--calibrate-colour", str(train.parent)]) == 2
    assert "colour-calibrated already" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("where", ["the set's folder", "a folder holding it", "a copy", "a sub-folder of a set"])
def test_colour_calibration_on_a_benchmark_image_is_refused(ship, four_sets, tmp_path, capsys, where):
    main, target = ship
    set14 = four_sets / "benchmark" / "Set14"
    if where == "the set's folder":
        folder = set14
    elif where == "a folder holding it":
        folder = four_sets
    elif where == "a copy":
        folder = tmp_path / "train"
        folder.mkdir()
        (folder / "renamed.png").write_bytes((set14 / "a.png").read_bytes())
    else:
        folder = set14 / "LR_bicubic"
        folder.mkdir()
        Image.fromarray(np.full((30, 30, 3), 7, np.uint8)).save(folder / "a_x4.png")
    assert main([str(_trained(tmp_path)), "--data", str(four_sets), "--calibrate-colour", str(folder)]) == 2
    assert "is a benchmark image: calibrating on it would fit the test" in capsys.readouterr().err
    assert not target.parent.exists()
