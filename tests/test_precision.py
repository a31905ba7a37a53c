"""The precision setting: bfloat16 training and upscaling, the float32 fallback, resuming across precisions."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import srlib.precision as precision
from srlib.cli import build_parser
from srlib.errors import SrlibError
from srlib.model_card import ModelCard
from srlib.recipes import TrainConfig, train_config
from srlib.training import Trainer
from tiny_runs import TINY, batches, write_train_folder



@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_train_folder(tmp_path_factory.mktemp("train"))


@pytest.fixture
def bf16_machine(monkeypatch):
    """As if the machine had bfloat16 hardware, whatever this one has."""
    monkeypatch.setattr(precision, "bf16_hardware", lambda: True)


@pytest.fixture
def no_bf16_machine(monkeypatch):
    """A machine without bfloat16 hardware (the fallback forced), its once-only warning not yet given."""
    monkeypatch.setattr(precision, "bf16_hardware", lambda: False)
    monkeypatch.setattr(precision, "_warned", False)


def _rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("flags, found, shown", [
    ("fpu vme avx512f avx512_bf16 avx512_vnni", True, "avx512_bf16"),  # AMD Zen 4, Intel Cooper Lake
    ("fpu vme avx512f amx_bf16 amx_tile avx512_bf16", True, "amx_bf16, avx512_bf16"),  # Intel Sapphire Rapids
    ("fpu vme avx2 fma avx512f", False, "no bfloat16 hardware"),  # AVX-512 without bfloat16
])
def test_the_cpu_flags_tell_bfloat16_hardware(tmp_path, flags, found, shown):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
    assert bool(precision.cpu_flags(cpuinfo) & precision.BF16_CPU_FLAGS) is found
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")
    assert "bf16" in precision.cpu_flags(arm)
    assert precision.cpu_flags(tmp_path / "missing") == set()
    assert precision.cpu_description(cpuinfo).endswith(f" cores of Some CPU ({shown})")  # a benchmark's caption


def test_without_bfloat16_hardware_bfloat16_falls_back_to_float32_and_says_so_once(no_bf16_machine, caplog):
    with caplog.at_level(logging.WARNING, logger="srlib.precision"):
        assert precision.effective("bfloat16") == "float32"
        assert precision.effective("bfloat16") == "float32"
        assert precision.effective("float32") == "float32"
        assert precision.effective("mixed_float16") == "mixed_float16"  # asked for by name: a GPU setting
    warnings = [r for r in caplog.records if "no bfloat16 hardware" in r.getMessage()]
    assert len(warnings) == 1


def test_a_precision_has_one_name_and_a_wrong_one_is_refused_where_the_config_is_built():
    with pytest.raises(SrlibError, match=r"precision = 'float16': must be one of 'float32', 'bfloat16', 'mixed_float16'"):
        TrainConfig(precision="float16")
    assert train_config({"precision": "float32", "mixed_precision": True}).precision == "float32"
    assert TrainConfig().precision == "bfloat16"
    args = build_parser().parse_args(["train", "--recipe", "paper", "--stage", "mse", "--data", "x", "--steps", "1",
                                      "--run-dir", "r", "--precision", "float32"])
    assert args.precision == "float32"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["upscale", "in.png", "-o", "out", "--precision", "half"])


def test_bfloat16_training_keeps_variables_losses_and_the_average_in_float32(bf16_machine, train_folder, tmp_path):
    config = TrainConfig(**{**TINY, "precision": "bfloat16"}, checkpoint_every=2, ema=0.9)
    trainer = Trainer("paper", "gan", tmp_path, config, from_scratch=True)
    generator, discriminator = trainer.generator, trainer.discriminator
    assert generator.get_layer("head_conv").compute_dtype == "bfloat16"
    assert generator.output.dtype == "float32" and discriminator.output.dtype == "float32"
    assert discriminator.get_layer("logit").compute_dtype == "float32"
    assert {v.dtype for v in generator.weights + discriminator.weights} == {"float32"}
    assert {a.dtype for a in trainer.networks.ema()} == {"float32"}
    last = trainer.fit(batches(train_folder, config), steps=2)
    assert last["precision"] == "bfloat16"
    assert all(np.isfinite(last[k]) for k in ("content", "adversarial", "g_loss", "d_loss", "g_grad_norm"))
    assert [r["precision"] for r in _rows(tmp_path)] == ["bfloat16", "bfloat16"]
    card = ModelCard.read(tmp_path / "generator.weights.h5")
    assert card.precisions == [{"from_step": 1, "precision": "bfloat16"}]


def test_without_the_hardware_a_bfloat16_run_trains_in_float32_and_records_it(no_bf16_machine, train_folder, tmp_path):
    config = TrainConfig(**{**TINY, "precision": "bfloat16"}, checkpoint_every=100)
    trainer = Trainer("paper", "mse", tmp_path, config)
    assert trainer.generator.get_layer("head_conv").compute_dtype == "float32"
    trainer.fit(batches(train_folder, config), steps=1)
    assert _rows(tmp_path)[0]["precision"] == "float32"


def test_a_stage_moves_between_float32_and_bfloat16_but_not_to_float16(bf16_machine, train_folder, tmp_path):
    float32 = TrainConfig(**{**TINY, "precision": "float32"}, checkpoint_every=2)
    Trainer("paper", "mse", tmp_path, float32).fit(batches(train_folder, float32), steps=2)
    bfloat16 = TrainConfig(**{**TINY, "precision": "bfloat16"}, checkpoint_every=2)
    resumed = Trainer("paper", "mse", tmp_path, bfloat16)
    assert resumed.current_step == 2
    resumed.fit(batches(train_folder, bfloat16), steps=4)
    card = ModelCard.read(tmp_path / "generator.weights.h5")
    assert card.precisions == [{"from_step": 1, "precision": "float32"}, {"from_step": 3, "precision": "bfloat16"}]
    with pytest.raises(SrlibError, match=r"other settings \(precision: bfloat16 -> mixed_float16\)"):
        Trainer("paper", "mse", tmp_path, TrainConfig(**{**TINY, "precision": "mixed_float16"}))


def test_a_run_folder_from_before_the_precision_setting_resumes(train_folder, tmp_path):
    config = TrainConfig(**{**TINY, "precision": "float32"}, checkpoint_every=2)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=2)
    stored = json.loads((tmp_path / "mse" / "config.json").read_text())
    del stored["precision"]
    (tmp_path / "mse" / "config.json").write_text(json.dumps({**stored, "mixed_precision": False}))
    resumed = Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, checkpoint_every=2))  # the default precision
    assert resumed.current_step == 2
    resumed.fit(batches(train_folder, config), steps=3)
    (tmp_path / "mse" / "config.json").write_text(json.dumps({**stored, "mixed_precision": True}))
    with pytest.raises(SrlibError, match=r"precision: mixed_float16 -> bfloat16"):
        Trainer("paper", "mse", tmp_path, TrainConfig(**TINY))


def test_validation_measures_the_weights_in_float32(bf16_machine, train_folder, tmp_path):
    from srlib.benchmark import evaluate_image
    from srlib.models import load_generator, upscale_with

    config = TrainConfig(**{**TINY, "precision": "bfloat16"}, checkpoint_every=100)
    trainer = Trainer("paper", "mse", tmp_path, config)
    hr = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(next(train_folder.glob("*.png"))))
    trainer.validation = [("v", hr)]
    trainer.fit(batches(train_folder, config), steps=2)
    row = next(r for r in _rows(tmp_path) if "val_psnr" in r)
    exported = load_generator(tmp_path / "generator.weights.h5")  # built in float32
    assert row["val_psnr"] == pytest.approx(evaluate_image(hr, upscale_with(exported), 2)[0], abs=1e-4)


def test_upscale_in_bfloat16_is_within_a_few_grey_levels_of_float32(bf16_machine, tmp_path):
    from srlib.models import generator, save_generator
    from srlib.upscale import upscale

    weights = tmp_path / "g.weights.h5"
    save_generator(generator(scale=2, blocks=2, filters=16, batch_norm=False), weights)
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (40, 48, 3)), 0, 255).astype(np.uint8)
    full = upscale(image, weights, precision="float32").astype(int)
    half = upscale(image, weights, precision="bfloat16").astype(int)
    assert half.shape == full.shape == (80, 96, 3)
    difference = np.abs(half - full)
    assert difference.max() <= 3 and difference.mean() < 0.5
    assert not np.array_equal(half, full)  # it did compute in bfloat16


def test_upscale_without_bfloat16_hardware_computes_in_float32(no_bf16_machine, tmp_path):
    from srlib.models import generator, save_generator
    from srlib.upscale import upscale

    weights = tmp_path / "g.weights.h5"
    save_generator(generator(scale=2, blocks=1, filters=8, batch_norm=False), weights)
    image = np.random.default_rng(1).integers(0, 256, (24, 24, 3), dtype=np.uint8)
    np.testing.assert_array_equal(upscale(image, weights, precision="bfloat16"),
                                  upscale(image, weights, precision="float32"))
