"""The generator shipped in the package: its sidecar, its packaging, and its figures reproduced."""

import fnmatch
import json
import tomllib
from pathlib import Path

import pytest

from srlib.model_card import card_path
from srlib.upscale import SHIPPED

WEIGHTS = SHIPPED["srresnet-x4"]
SIDECAR = card_path(WEIGHTS)
ROOT = Path(__file__).resolve().parent.parent
# the targets: above SRCNN (30.48 / 27.50 / 26.90), far above bicubic (28.42 / 26.08 / 25.96)
TARGETS = {"Set5": 31.0, "Set14": 27.7, "BSD100": 27.0}


def _sidecar() -> dict:
    assert WEIGHTS.is_file() and SIDECAR.is_file(), f"{WEIGHTS} or its sidecar is missing"
    return json.loads(SIDECAR.read_text())


def test_the_sidecar_says_what_the_model_is_and_how_it_was_made():
    sidecar = _sidecar()
    # SRResNet-16 without batch norm (BN's moving statistics gave artifacts in dark regions; see the README)
    assert sidecar["architecture"] == {"scale": 4, "blocks": 16, "filters": 64, "batch_norm": False}
    assert (sidecar["recipe"], sidecar["stage"]) == ("paper", "mse")  # no GAN trained on random VGG features
    # the 291 images of T91 + BSD200, less t20.png (78x78, smaller than a 96-pixel training patch)
    assert sidecar["training_data"] == {"name": "BSD200+T91", "images": 290}
    assert sidecar["initialised_from"]["batch_norm_folded"] and sidecar["initialised_from"]["steps"] == 4500
    assert sidecar["steps"] > 0 and sidecar["benchmark_command"].startswith("python -m srlib benchmark --weights")
    assert set(sidecar["benchmark"]) == {"Set5", "Set14", "BSD100", "Urban100"}
    assert sidecar["benchmark"]["Set5"]["n"] == 5
    below = {name: sidecar["benchmark"][name]["psnr"] for name, target in TARGETS.items()
             if sidecar["benchmark"][name]["psnr"] < target}
    assert not below, f"below the targets {TARGETS}: {below}"
    rates = sidecar["learning_rates"]  # every rate the run used, from its first step
    assert rates[0]["from_step"] == 1 and all(r["rate"] > 0 for r in rates)


def test_the_weights_are_package_data():
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["srlib"]
    for path in (WEIGHTS, SIDECAR):
        assert path.is_file(), path
        relative = path.relative_to(ROOT / "srlib").as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative


@pytest.mark.data
def test_the_shipped_model_scores_its_recorded_set5_figures(data_dir):
    from srlib.benchmark import run_benchmark
    from srlib.models import load_generator, upscale_with

    recorded = _sidecar()["benchmark"]["Set5"]
    report = run_benchmark(upscale_with(load_generator(WEIGHTS)), data_dir / "benchmark", ["Set5"], 4,
                           model_name="srresnet-x4", progress=False)
    measured = report["results"]["Set5"]
    assert measured["psnr"] == pytest.approx(recorded["psnr"], abs=0.01)
    assert measured["ssim"] == pytest.approx(recorded["ssim"], abs=1e-4)
    assert measured["psnr"] >= TARGETS["Set5"]


def test_the_shipped_model_is_the_default_of_upscale_and_of_the_command(tmp_path):
    import numpy as np
    from PIL import Image

    import srlib
    from srlib.cli import main

    image = np.add.outer(np.arange(20), np.arange(24)).astype(np.uint8)[..., None].repeat(3, axis=-1) * 5
    sr = srlib.upscale(image)
    assert sr.shape == (80, 96, 3) and sr.dtype == np.uint8
    Image.fromarray(image).save(tmp_path / "small.png")
    assert main(["upscale", str(tmp_path / "small.png"), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / "small.png")), sr)
