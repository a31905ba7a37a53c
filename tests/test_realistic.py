"""The realistic degradation (srlib.realistic): a pure function of (seed, k), each step doing what it says, and the
one setting ``degradation`` from the command line to the training data and the benchmark."""

import dataclasses
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from srlib import cli, realistic
from srlib.benchmark import bicubic_upscaler, run_benchmarks
from srlib.data import PatchSource, training_dataset
from srlib.degradation import bicubic_downscale, parse_degradation
from srlib.errors import SrlibError
from srlib.model_card import ModelCard
from srlib.recipes import TrainConfig
from srlib.settings import SettingError
from tiny_runs import TINY, write_train_folder

ROOT = Path(__file__).resolve().parent.parent


def _smooth_image(height=48, width=48, seed=0):
    """A photo-like uint8 image: a few low-frequency waves per channel and mild noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width]
    channels = [sum(np.sin(x * rng.uniform(0.05, 0.4) + y * rng.uniform(0.05, 0.4) + rng.uniform(0, 6))
                    for _ in range(3)) * 30 + 128 + rng.normal(0, 3, (height, width)) for _ in range(3)]
    return np.clip(np.dstack(channels), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_train_folder(tmp_path_factory.mktemp("train"))


# -- purity ---------------------------------------------------------------------------------------------------


def test_an_lr_image_is_a_function_of_the_seed_and_the_index():
    hr = _smooth_image()
    first = realistic.degrade(hr, 4, (0, 5)).numpy()
    assert first.shape == (12, 12, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(realistic.degrade(hr, 4, (0, 5)).numpy(), first)
    assert not np.array_equal(realistic.degrade(hr, 4, (0, 6)).numpy(), first)  # another sample
    assert not np.array_equal(realistic.degrade(hr, 4, (1, 5)).numpy(), first)  # another run's seed


@pytest.mark.parametrize("degradation", ["realistic", "mixed"])
def test_a_resumed_run_sees_the_same_realistic_batches(train_folder, degradation):
    source, batch = PatchSource([train_folder], patch_size=16, seed=3), 12
    bicubic = [(lr.numpy(), hr.numpy()) for lr, hr in training_dataset(source, 4, batch).take(3)]
    lr, hr = (x.numpy() for x in next(iter(training_dataset(source, 4, batch, start_step=2, degradation=degradation))))
    assert lr.shape == (batch, 4, 4, 3) and hr.shape == (batch, 16, 16, 3) and lr.dtype == np.float32
    np.testing.assert_array_equal(hr, bicubic[2][1])  # the same HR patches as from the start; only the LR differs
    assert not np.array_equal(lr, bicubic[2][0])
    np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-4)  # whole grey levels, as a real image
    settings = realistic.DEGRADATION_SETTINGS[degradation]
    kinds = set()
    for i in range(batch):  # sample k = step * batch + i is degraded from the stateless seed (seed, k), in the graph
        hr_i, k = np.round(hr[i] * 255).astype(np.uint8), 2 * batch + i  # as eagerly
        np.testing.assert_array_equal(np.round(lr[i] * 255).astype(np.uint8),
                                      realistic.degrade(hr_i, 4, (3, k), settings).numpy())
        kinds.add(realistic.degradation_steps(hr_i, 4, (3, k), settings)[1]["step"])
    assert kinds == ({"blur 1", "bicubic"} if degradation == "mixed" else {"blur 1"})  # the chain and a bicubic branch


def test_a_mixture_needs_the_image_size_in_a_graph_and_says_so():
    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
    def unknown_size(hr):
        return realistic.degrade(hr, 4, (0, 1), realistic.MIXED)
    with pytest.raises(ValueError, match="the bicubic branches of a mixture need the image's height and width known"):
        unknown_size.get_concrete_function()


def test_the_mixture_gives_clean_bicubic_jpeg_or_the_chain_and_leaves_the_chain_as_it_was():
    hr = _smooth_image()
    taken = {}
    for k in range(60):
        steps = realistic.degradation_steps(hr, 4, (0, k), realistic.MIXED)
        lr = realistic.degrade(hr, 4, (0, k), realistic.MIXED).numpy()
        np.testing.assert_array_equal(steps[-1]["image"], lr)  # the pictures end in the LR image
        kind = ("jpeg" if steps[2]["step"] == "JPEG" else "bicubic") if steps[1]["step"] == "bicubic" else "chain"
        taken.setdefault(kind, []).append(k)
        if kind == "bicubic":
            np.testing.assert_array_equal(lr, bicubic_downscale(hr, 4))
        elif kind == "jpeg":
            quality = int(steps[2]["detail"].split()[-1])
            assert 30 <= quality <= 95
            coded = tf.image.adjust_jpeg_quality(bicubic_downscale(hr, 4), quality).numpy()
            np.testing.assert_array_equal(lr, coded)
        else:  # the chain's own draws: the same LR as Real-ESRGAN's settings give for this seed
            np.testing.assert_array_equal(lr, realistic.degrade(hr, 4, (0, k)).numpy())
    counts = {kind: len(ks) for kind, ks in taken.items()}
    assert counts.keys() == {"bicubic", "jpeg", "chain"}
    assert 24 <= counts["chain"] <= 48 and 4 <= counts["bicubic"] <= 22 and 4 <= counts["jpeg"] <= 22, counts


def test_a_mixture_of_more_than_everything_is_refused():
    with pytest.raises(SettingError, match=r"^bicubic_prob \+ bicubic_jpeg_prob = 1.2: must be at most 1"):
        dataclasses.replace(realistic.REAL_ESRGAN, bicubic_prob=0.6, bicubic_jpeg_prob=0.6)


def test_the_pictured_steps_end_in_the_lr_image_and_name_every_step():
    hr = _smooth_image(64, 64)
    steps = realistic.degradation_steps(hr, 4, (2, 9))
    names = [s["step"] for s in steps]
    assert names[0] == "HR" and names[-1] == "LR"
    assert {"blur 1", "resize 1", "noise", "JPEG", "blur 2", "resize 2", "resize to LR", "sinc"} <= set(names)
    np.testing.assert_array_equal(steps[-1]["image"], realistic.degrade(hr, 4, (2, 9)).numpy())
    first_order = dataclasses.replace(realistic.REAL_ESRGAN, second=None)
    names = [s["step"] for s in realistic.degradation_steps(hr, 4, (2, 9), first_order)]
    assert "blur 2" not in names and names.count("JPEG") == 1 and names.count("noise") == 1


def test_the_step_figure_shows_every_step():
    from srlib.figures import plot_degradation_steps

    steps = realistic.degradation_steps(_smooth_image(32, 32), 4, (0, 1))
    fig = plot_degradation_steps(steps, columns=6)
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == len(steps) and shown[-1].get_title().startswith(f"{len(steps) - 1}. LR (8x8)")


# -- each step does what it says ----------------------------------------------------------------------------


@pytest.mark.parametrize("quality", [30, 75, 95])
def test_the_jpeg_step_is_the_codec_at_that_quality(quality):
    image = _smooth_image(40, 48, seed=quality)
    coded = realistic.to_uint8(realistic.jpeg(image / 255, quality)).numpy()
    np.testing.assert_array_equal(coded, tf.io.decode_jpeg(tf.io.encode_jpeg(image, quality=quality)).numpy())
    assert not np.array_equal(coded, image)


def test_noise_of_strength_zero_changes_nothing():
    image = _smooth_image() / 255
    for grey in (False, True):
        np.testing.assert_array_equal(realistic.gaussian_noise(image, 0.0, grey, (1, 2)).numpy(), image.astype(np.float32))
        np.testing.assert_array_equal(realistic.poisson_noise(image, 0.0, grey, (1, 2)).numpy(), image.astype(np.float32))


def test_noise_has_its_strength_and_grey_noise_is_the_same_in_every_channel():
    grey_image = np.full((64, 64, 3), 0.5, np.float32)
    noisy = realistic.gaussian_noise(grey_image, 10.0, False, (1, 2)).numpy() - grey_image
    assert abs(noisy.std() * 255 - 10) < 0.5 and not np.allclose(noisy[..., 0], noisy[..., 1])
    noisy = realistic.gaussian_noise(grey_image, 10.0, True, (1, 2)).numpy() - grey_image
    np.testing.assert_array_equal(noisy[..., 0], noisy[..., 2])
    # Poisson: 2**ceil(log2(distinct levels)) photons per unit, so 1 for a flat image: Poisson(0.25) - 0.25, of
    # standard deviation 0.5, times the scale 0.1
    shot = realistic.poisson_noise(np.full((64, 64, 3), 0.25, np.float32), 0.1, True, (3, 4)).numpy() - 0.25
    np.testing.assert_array_equal(shot[..., 0], shot[..., 1])
    assert abs(shot.std() - 0.05) < 0.005


def test_a_delta_kernel_changes_nothing_and_kernels_are_what_they_say():
    image = _smooth_image().astype(np.float32) / 255
    delta = np.zeros((21, 21), np.float32)
    delta[10, 10] = 1
    np.testing.assert_allclose(realistic.blur(image, delta).numpy(), image, atol=1e-6)
    tiny = image[:3, :4]  # smaller than the kernel: mirrored as often as needed
    np.testing.assert_allclose(realistic.blur(tiny, delta).numpy(), tiny, atol=1e-6)
    assert realistic.blur(tiny, realistic.blur_kernel(21, 3.0, 3.0, 0.0)).shape == tiny.shape

    iso = realistic.blur_kernel(15, 2.0, 2.0, 0.0).numpy()
    assert iso.shape == (15, 15) and math.isclose(iso.sum(), 1, rel_tol=1e-5)
    np.testing.assert_allclose(iso, iso.T, atol=1e-7)  # round
    wide = realistic.blur_kernel(15, 3.0, 0.5, 0.0).numpy()  # sigma 3 along x (columns), 0.5 along y
    assert wide[7, 3] > 10 * wide[3, 7]
    turned = realistic.blur_kernel(15, 3.0, 0.5, math.pi / 2).numpy()
    np.testing.assert_allclose(turned, wide.T, atol=1e-6)
    plateau = realistic.blur_kernel(15, 2.0, 2.0, 0.0, 2.0, True).numpy()
    assert plateau[7, 8] / plateau[7, 7] > iso[7, 8] / iso[7, 7]  # flatter top than the Gaussian


def test_the_sinc_filter_at_nyquist_is_close_to_identity_and_lower_cutoffs_blur():
    image = _smooth_image(64, 64).astype(np.float32) / 255

    def psnr(cutoff):
        out = realistic.blur(image, realistic.sinc_kernel(21, cutoff)).numpy()
        return 10 * np.log10(1 / np.mean((out - image) ** 2))
    assert psnr(math.pi) > 40 and psnr(math.pi / 3) < psnr(math.pi) - 5


@pytest.mark.parametrize("method", realistic.RESIZE_METHODS)
def test_resize_keep_changes_nothing_and_resize_gives_the_size(method):
    image = _smooth_image(24, 20).astype(np.float32) / 255
    np.testing.assert_array_equal(realistic.resize(image, (24, 20), method).numpy(), image)
    assert tuple(realistic.resize(image, (7, 30), method).shape) == (7, 30, 3)


def test_the_chain_works_on_patches_from_tiny_to_large_and_keeps_the_size():
    for size, k in ((8, 0), (32, 1), (96, 2)):
        lr = realistic.degrade(_smooth_image(size, size), 4, (0, k))
        assert lr.shape == (size // 4, size // 4, 3) and lr.dtype == tf.uint8


# -- the settings ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, said", [
    (dict(first=realistic.Order(jpeg_range=(20, 120))), "first.jpeg_range = (20, 120): must be (low, high)"),
    (dict(second=dataclasses.replace(realistic.SECOND_ORDER, resize_probs=(0.5, 0.5, 0.5))),
     "second.resize_probs = (0.5, 0.5, 0.5): must be 3 probabilities adding up to 1"),
    (dict(final_sinc_prob=1.5), "final_sinc_prob = 1.5: must be a probability from 0 to 1"),
    (dict(kernel_sizes=(7, 8)), "kernel_sizes = (7, 8): must be odd positive integers"),
])
def test_a_bad_degradation_setting_is_named(change, said):
    with pytest.raises(SettingError) as error:
        dataclasses.replace(realistic.REAL_ESRGAN, **change)
    assert str(error.value).startswith(said)


def test_the_degradation_setting_is_checked_everywhere(train_folder, tmp_path, capsys):
    with pytest.raises(SettingError, match=r"^degradation = 'jpeg': must be one of 'bicubic', 'realistic'"):
        TrainConfig(degradation="jpeg")
    with pytest.raises(SystemExit):
        cli.main(["train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder), "--steps", "1",
                  "--run-dir", str(tmp_path / "run"), "--degradation", "jpeg"])
    assert "--degradation: invalid choice: 'jpeg'" in capsys.readouterr().err
    with pytest.raises(SrlibError, match="unknown degradation 'blurry'"):
        training_dataset(PatchSource([train_folder], patch_size=16), 4, 2, degradation="blurry")
    assert parse_degradation("jpeg50") == ("jpeg", 50) and parse_degradation("realistic") == ("realistic", None)
    with pytest.raises(ValueError, match="jpeg<quality 1-100>"):
        parse_degradation("jpeg0")


def test_the_train_flag_reaches_the_training_data_and_a_stage_resumes_only_with_its_own(train_folder, tmp_path,
                                                                                          monkeypatch, capsys):
    import srlib.training as training

    asked = []
    real = training.training_dataset
    monkeypatch.setattr(training, "training_dataset", lambda *a, **k: asked.append(k["degradation"]) or real(*a, **k))
    tiny = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items() if k not in ("vgg_weights", "progress")]
    run = ["train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder), "--steps", "1",
           "--run-dir", str(tmp_path / "run"), "--vgg-weights", "none", *tiny]
    assert cli.main([*run, "--degradation", "realistic"]) == 0
    assert asked == ["realistic"]
    card = ModelCard.read(tmp_path / "run" / "generator.weights.h5")
    assert card.config["degradation"] == "realistic"
    assert card.training_data["degradation"]["realistic"]["first"]["jpeg_range"] == [30, 95]  # the chain's settings
    run[run.index("--steps") + 1] = "2"
    capsys.readouterr()
    assert cli.main(run) == 2  # the default, bicubic, on a stage trained on realistic data
    assert "degradation: realistic -> bicubic" in capsys.readouterr().err


# -- evaluation --------------------------------------------------------------------------------------------------


@pytest.fixture
def tiny_set(tmp_path):
    folder = tmp_path / "benchmark" / "Tiny"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(_smooth_image(40, 44, seed=i)).save(folder / f"img{i}.png")
    return tmp_path


def test_the_degraded_benchmark_sets_are_fixed_and_scored_against_the_clean_hr(tiny_set):
    hr = np.asarray(Image.open(tiny_set / "benchmark" / "Tiny" / "img0.png"))
    lr = realistic.degraded_lr(hr, 4, "realistic", "Tiny/img0")
    np.testing.assert_array_equal(lr, realistic.degraded_lr(hr, 4, "realistic", "Tiny/img0"))
    assert not np.array_equal(lr, realistic.degraded_lr(hr, 4, "realistic", "Tiny/img1"))
    jpeg = realistic.degraded_lr(hr, 4, "jpeg50", "Tiny/img0")
    np.testing.assert_array_equal(jpeg, tf.io.decode_jpeg(tf.io.encode_jpeg(bicubic_downscale(hr, 4), quality=50)))

    reports = {d: run_benchmarks({"bicubic": bicubic_upscaler(4)}, tiny_set, ["Tiny"], 4, progress=False,
                                 degradation=d)["bicubic"] for d in ("bicubic", "jpeg50", "realistic")}
    again = run_benchmarks({"bicubic": bicubic_upscaler(4)}, tiny_set, ["Tiny"], 4, progress=False,
                           degradation="realistic")["bicubic"]
    assert again["results"] == reports["realistic"]["results"]
    assert reports["realistic"]["protocol"]["realistic"] == realistic.settings_record(realistic.REAL_ESRGAN)
    psnr = {d: r["results"]["Tiny"]["psnr"] for d, r in reports.items()}
    assert psnr["bicubic"] > psnr["jpeg50"] > psnr["realistic"]
    assert reports["jpeg50"]["degradation"] == "jpeg50" and "JPEG at quality 50" in reports["jpeg50"]["protocol"]["lr"]
    with pytest.raises(SrlibError, match="unknown degradation 'jpeg'"):
        run_benchmarks({"bicubic": bicubic_upscaler(4)}, tiny_set, ["Tiny"], 4, progress=False, degradation="jpeg")


def test_the_input_benchmark_reads_the_step_demand():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_input", ROOT / "benchmarks" / "bench_input.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    demand = module.step_demand("cpu")
    assert set(demand) == {"pretrain", "GAN"} and demand["pretrain"] > demand["GAN"] > 0


def test_benchmark_takes_the_degradation_on_the_command_line(tiny_set, tmp_path, capsys):
    out = tmp_path / "jpeg75.json"
    assert cli.main(["benchmark", "--data", str(tiny_set), "--sets", "Tiny", "--degradation", "jpeg75",
                     "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["degradation"] == "jpeg75" and "LR: jpeg75" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        cli.main(["benchmark", "--data", str(tiny_set), "--sets", "Tiny", "--degradation", "jpeg0"])
    assert "unknown degradation 'jpeg0'" in capsys.readouterr().err


def test_several_degradations_make_one_table_side_by_side(tiny_set, tmp_path, capsys):
    table = tmp_path / "real.md"
    assert cli.main(["benchmark", "--model", "bicubic", "--data", str(tiny_set), "--sets", "Tiny", "--degradation",
                     "bicubic", "realistic", "jpeg50", "--table", str(table)]) == 0
    text = table.read_text()
    assert "| method | Tiny bicubic | Tiny realistic | Tiny jpeg50 |" in text
    reports = json.loads(table.with_suffix(".json").read_text())["reports"]
    assert [r["degradation"] for r in reports] == ["bicubic", "realistic", "jpeg50"]
    psnr = [f"{r['results']['Tiny']['psnr']:.2f}" for r in reports]
    assert f"| bicubic | {psnr[0]} / " in text and f" | {psnr[2]} / " in text  # each column its own report
    assert "* jpeg50: MATLAB bicubic imresize(hr, 1/4) of the modcropped HR, then JPEG at quality 50" in text
    capsys.readouterr()
    assert cli.main(["benchmark", "--data", str(tiny_set), "--sets", "Tiny", "--degradation", "jpeg50", "jpeg75",
                     "--out", str(tmp_path / "x.json")]) == 2
    assert "--out takes one model and one degradation" in capsys.readouterr().err


def test_the_gallery_shows_each_model_on_real_jpeg_photos(tiny_set, tmp_path):
    from srlib.benchmark import photo_showcase, public_domain_photos
    from srlib.images import read_image

    photos = public_domain_photos()
    assert [p.suffix for p in photos] == [".jpg", ".jpg"] and all(p.is_file() for p in photos)
    scenes = photo_showcase(photos, {"bicubic": bicubic_upscaler(4)}, window=24, context=8)
    assert [title for title, _ in scenes] == ["grace_hopper", "rocket"]
    photo, sr = scenes[0][1].values()
    assert photo.shape == (24, 24, 3) and sr.shape == (96, 96, 3) and sr.dtype == np.uint8
    whole = read_image(photos[0])  # the window is a piece of the photo as it is: nothing made smaller
    [(top, left)] = [(t, l) for t in range(whole.shape[0] - 23) for l in range(whole.shape[1] - 23)
                     if np.array_equal(whole[t:t + 24, l:l + 24], photo)]
    around = whole[max(0, top - 8):top + 32, max(0, left - 8):left + 32]  # upscaled with its context, then cut
    t, l = 4 * (top - max(0, top - 8)), 4 * (left - max(0, left - 8))
    np.testing.assert_array_equal(sr, bicubic_upscaler(4)(around)[t:t + 96, l:l + 96])
    out = tmp_path / "gallery.png"
    assert cli.main(["benchmark", "--data", str(tiny_set), "--sets", "Tiny", "--gallery", str(out)]) == 0
    assert Image.open(out).size[0] > 300


def test_a_chain_of_ones_own_settings_trains_as_it_says(train_folder):
    first_order = dataclasses.replace(realistic.REAL_ESRGAN, second=None)  # the chapter's exercise
    source = PatchSource([train_folder], patch_size=16, seed=5)
    lr, hr = (x.numpy() for x in next(iter(training_dataset(source, 4, 2, degradation=first_order))))
    for i in range(2):
        hr_i = np.round(hr[i] * 255).astype(np.uint8)
        np.testing.assert_array_equal(np.round(lr[i] * 255).astype(np.uint8),
                                      realistic.degrade(hr_i, 4, (5, i), first_order).numpy())


def test_the_chapters_pictures_show_every_step_and_every_kind_of_sample():
    """Chapter 7 pictures sample 0 of seed 0 (its example_index and seed) step by step, and the mixture's samples."""
    import nbformat

    from srlib.course.real_photos import mixture_examples, sample_kind
    from srlib.pipeline import PROFILES

    cell = next(c for c in nbformat.read(ROOT / "notebooks" / "07_real_photos.ipynb", as_version=4).cells
                if "parameters" in c.metadata.get("tags", []))
    example = int(re.search(r"^example_index = (\d+)", cell.source, re.M).group(1))
    hr = _smooth_image(96, 96)
    steps = realistic.degradation_steps(hr, 4, (PROFILES["cpu"]["seed"], example))
    assert [s["step"] for s in steps if s["detail"] == "none"] == [], "a step the picture would not show"
    assert {"sinc", "blur 2", "JPEG"} <= {s["step"] for s in steps}
    kinds = [title.split(": ")[1] for title, _ in mixture_examples(hr, 4, 0, 8)]
    assert len(kinds) == 8 and {"the chain", "clean bicubic"} <= set(kinds)
    assert any(k.startswith("bicubic + JPEG ") for k in kinds)
    assert sample_kind(realistic.degradation_steps(hr, 4, (0, 0))) == "the chain"
