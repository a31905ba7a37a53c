"""Chapters 1-3 of the course: what their small computations show (srlib.course), how the training cells say what
they are about to do (srlib.stage_plan) and how chapter 1 gets its data offline (srlib.download.data_plan). The
chapters run through papermill in tests/test_pipeline.py (the report recipe, with chapter 3's exercise 1) and
tests/test_chapters_4_6.py (the paper recipe)."""

import dataclasses
import json

import nbformat
import numpy as np
import pytest
from PIL import Image

from srlib.course import data_prep, discriminator, networks, pretrain
from srlib.download import DownloadError, data_plan, get_data
from srlib.metrics import psnr_y
from srlib.model_card import ModelCard
from srlib.pipeline import ROOT
from srlib.recipes import TrainConfig
from srlib.stage_plan import StageChange, plan_stage
from srlib.upscale import receptive_radius

# ---- chapter 1: the data -------------------------------------------------------------------------------


def _smooth_image(seed: int, size: int = 96) -> np.ndarray:
    """A smooth random colour image (low frequencies only), uint8."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (size // 8, size // 8, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((size, size), Image.BICUBIC))


def test_a_linear_upscaler_learns_its_own_degradation_and_loses_on_another():
    train = [_smooth_image(s) for s in range(6)]
    test = [_smooth_image(s) for s in range(10, 13)]
    makers = data_prep.lr_makers(4)
    table = data_prep.mismatch_table(train, test, makers, 4)
    matched, names = table["trained on MATLAB bicubic"], list(makers)
    bicubic = data_prep.bicubic_psnr(test, makers["MATLAB bicubic"], 4)
    assert table["bicubic (nothing learned)"]["MATLAB bicubic"] == pytest.approx(bicubic)
    assert matched["MATLAB bicubic"] > bicubic  # it learns something bicubic does not know
    for name in names:  # each model is best on the degradation it learned, by a margin off the diagonal
        row = table[f"trained on {name}"]
        assert max(row, key=row.get) == name
    assert matched["every 4th pixel"] < matched["MATLAB bicubic"] - 2
    assert list(data_prep.lr_makers(2))[-1] == "every 2nd pixel"


def test_orientations_are_the_eight_flips_and_turns():
    patch = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    variants = data_prep.orientations(patch)
    assert len(variants) == 8 and len({v.tobytes() for v in variants.values()}) == 8
    assert np.array_equal(variants["as cropped"], patch)
    assert np.array_equal(variants["flipped, turned 90°"], np.rot90(patch[:, ::-1]))


def test_the_data_plan_says_where_each_set_comes_from_and_what_to_do_when_it_cannot(tmp_path):
    data = tmp_path / "data"
    (data / "benchmark" / "Set5").mkdir(parents=True)
    (data / "benchmark" / "Set5" / "a.png").write_bytes(b"x")
    rows = {r["set"]: r for r in data_plan(data, ["Set5", "Set14"], ["T91", "DIV2K_valid_HR"])}
    assert rows["Set5"]["source"] == "already here"
    assert rows["Set14"]["source"].startswith("download benchmark.tar")
    assert rows["DIV2K_valid_HR"]["source"].startswith("download DIV2K_valid_HR.zip")
    assert rows["T91"]["source"] == "missing"
    assert str(data.resolve() / "train" / "T91") in rows["T91"]["fix"] and "source_dir" in rows["T91"]["fix"]
    assert 'training_sets = ["DIV2K_valid_HR"]' in rows["T91"]["fix"]


def test_get_data_names_every_missing_set_before_downloading_anything(tmp_path, monkeypatch):
    import srlib.download

    monkeypatch.setattr(srlib.download, "_download_for", lambda *a: pytest.fail("nothing may be downloaded"))
    with pytest.raises(DownloadError, match=r"(?s)no training set 'T91'.*no training set 'BSD200'.*DIV2K_valid_HR"):
        get_data(tmp_path / "data", ["Set5"], ["T91", "BSD200"])
    filled = tmp_path / "filled"  # a filled data folder works offline, nothing fetched
    for folder in ("benchmark/Set5", "train/T91"):
        (filled / folder).mkdir(parents=True)
        (filled / folder / "a.png").write_bytes(b"x")
    assert set(get_data(filled, ["Set5"], ["T91"])) == {"Set5", "T91"}


# ---- chapter 2: the generator ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_generator():
    from srlib.models import generator

    return generator(4, blocks=2, filters=8, batch_norm=True)


def test_the_sub_pixel_shuffle_moves_each_value_once():
    x, y = pretrain.subpixel_example(factor=2, size=2, channels=1)
    assert y.shape == (4, 4, 1) and sorted(y.ravel()) == list(range(16))
    for i in range(4):
        for j in range(4):  # output (2i + a, 2j + b) is input (i, j) of channel 2a + b
            assert y[i, j, 0] == x[i // 2, j // 2, 2 * (i % 2) + j % 2]


def test_parameters_by_part_add_up_and_the_residual_block_adds_its_branch(tiny_generator):
    rows = networks.parameter_table(tiny_generator)
    trainable = sum(int(np.prod(w.shape)) for w in tiny_generator.trainable_weights)
    assert sum(r["trainable"] for r in rows) == trainable
    assert {r["part"].split(":")[0]: r["count"] for r in rows}["residual blocks"] == 2
    assert "| **all** |" in networks.parameter_markdown(rows)
    parts = pretrain.residual_parts(tiny_generator, np.random.default_rng(0).uniform(size=(12, 12, 3)), block=1)
    x, branch, out = parts.values()
    assert out.shape == (12, 12, 8) and np.allclose(out, x + branch, atol=1e-5)


def _texts(figure) -> list:
    """The figure's non-empty text artists (titles and labels included)."""
    import matplotlib.text

    return [t for t in figure.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]


def _overlapping(figure) -> list[tuple[str, str]]:
    """Pairs of texts of ``figure`` whose drawn boxes overlap."""
    renderer = figure.canvas.get_renderer()
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in _texts(figure)]
    return [(a, b) for i, (a, box) in enumerate(boxes) for b, other in boxes[i + 1:] if box.overlaps(other)]


def test_the_network_diagrams_show_every_step_with_the_shapes_the_network_computes(tiny_generator):
    from srlib.models import discriminator as build_discriminator

    shapes = networks.layer_shapes(tiny_generator, 6)
    assert shapes["up0_conv"] == (6, 6, 32) and shapes["up1_prelu"] == (24, 24, 8) and shapes["from_pm1"] == (24, 24, 3)
    figure = networks.draw_generator(tiny_generator, lr_size=6)
    words = [t.get_text() for t in _texts(figure)]
    for text in ("6×6×3", "6×6×8", "6×6×32", "12×12×8", "24×24×3", "long skip", "residual block 2: F(x)",
                 "batch norm", "x + F(x)"):
        assert text in words, text
    assert words.count("pixel shuffle ×2, PReLU") == 2
    figure = networks.draw_discriminator(build_discriminator(32))
    words = [t.get_text() for t in _texts(figure)]
    assert "3×3 conv, 512 filters, stride 2, BN, LReLU" in words and "2×2×512" in words and "2,048" in words
    for figure in (networks.draw_generator(tiny_generator, 6), networks.draw_discriminator(build_discriminator(32))):
        assert not _overlapping(figure)
        assert min(t.get_fontsize() for t in _texts(figure)) >= 10  # no caption smaller than the body text
    code = networks.builder_source("generator")
    assert code.startswith("```python\n") and "def generator(" in code and "class SubpixelUpsampling" in code
    assert "def discriminator(" in networks.builder_source("discriminator")


def test_an_output_pixel_depends_on_the_lr_pixels_of_the_receptive_field_only(tiny_generator):
    radius = receptive_radius(tiny_generator.architecture)
    influence = pretrain.input_influence(tiny_generator, size=2 * radius + 9)
    centre = influence.shape[0] // 2
    reached = np.abs(np.argwhere(influence > 0) - centre).max()
    assert radius - 2 <= reached <= radius


def test_what_each_loss_says_about_distortions_of_a_patch():
    image = _smooth_image(0, 128)
    variants = pretrain.distortions(image, (32, 32, 64, 64), 4)
    rows = {r["image"]: r for r in pretrain.loss_table(variants)}
    assert rows["HR (the target)"]["pixel MSE"] == 0
    noisy = next(k for k in rows if "noise" in k)
    tv = {name: row["total variation"] for name, row in rows.items()}
    assert tv[noisy] > tv["HR (the target)"] > tv["bicubic ×4"]
    moved = variants["HR moved 1 pixel right"]
    assert rows["HR moved 1 pixel right"]["PSNR (dB)"] == pytest.approx(psnr_y(moved, variants["HR (the target)"], 4))
    assert "| HR (the target) | – | 0 |" in pretrain.loss_markdown(list(rows.values()))


def test_the_moving_average_follows_keras_rule():
    steps, weight, averages = pretrain.moving_average_walk(decays=(0.9,), steps=50)
    average = averages[0.9]
    assert average[0] == weight[0] and np.isclose(average[5], 0.9 * average[4] + 0.1 * weight[5])
    assert np.std(np.diff(average)) < np.std(np.diff(weight))


# ---- chapter 3: the discriminator ----------------------------------------------------------------------


def test_the_labels_are_those_the_library_loss_uses():
    real, fake = discriminator.discriminator_labels(2000, 0.1, 0.05, seed=0, step=1)
    assert set(np.round(real, 4)) == {0.0, 0.9} and set(np.round(fake, 4)) == {0.0, 0.9}
    assert 0.03 < np.mean(np.round(real, 4) == 0) < 0.07 and 0.03 < np.mean(np.round(fake, 4) == 0.9) < 0.07
    plain_real, plain_fake = discriminator.discriminator_labels(100, 0.0, 0.0)
    assert np.allclose(plain_real, 1) and np.allclose(plain_fake, 0, atol=1e-6)
    assert discriminator.binary_cross_entropy(np.array([0.0]), 1.0)[0] == pytest.approx(np.log(2))


def test_verdicts_are_probabilities_in_both_modes(tiny_generator):
    d = discriminator.untrained_discriminator(32, seed=0)
    patches = np.stack([_smooth_image(s, 32) for s in range(4)])
    generated = discriminator.generated_patches(tiny_generator, patches, 4)
    assert generated.shape == patches.shape and generated.dtype == np.uint8
    for batch in (None, 2):
        p = discriminator.verdicts(d, generated, batch)
        assert p.shape == (4,) and ((0 <= p) & (p <= 1)).all()
    assert data_prep.busiest(np.stack([np.zeros((32, 32, 3)), patches[0] / 255.0])) == 1


# ---- the training cells: what they are about to do ----------------------------------------------------

CONFIG = TrainConfig(blocks=2, filters=8, batch_size=2, patch_size=16, vgg_weights=None, learning_rate=1e-3)


def _fake_stage(run_dir, stage, steps, config, times=()):
    """A stage folder as the trainer leaves it: a checkpoint named by its step, the config, history rows."""
    folder = run_dir / stage
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints" / f"ckpt-{steps}.index").write_bytes(b"")
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(config)))
    with open(run_dir / "history.jsonl", "a") as history:
        for step, moment in enumerate(times, 1):
            history.write(json.dumps({"stage": stage, "step": step, "time": moment}) + "\n")


def _fake_generator(run_dir, stage, **architecture):
    path = run_dir / stage / "generator.weights.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    ModelCard(architecture={"scale": 4, "blocks": 2, "filters": 8, "batch_norm": True, **architecture},
              recipe="report", stage=stage, steps=8).write(path)


def test_a_plan_says_start_resume_or_nothing_to_train(tmp_path):
    assert plan_stage("report", "sr_vgg", tmp_path, CONFIG, 8).action == "start"
    _fake_stage(tmp_path, "sr_vgg", 8, CONFIG)
    done = plan_stage("report", "sr_vgg", tmp_path, CONFIG, 8)
    assert done.action == "done" and "nothing to train" in done.message and "raise steps" in done.message
    more = plan_stage("report", "sr_vgg", tmp_path, CONFIG, 20)
    assert more.action == "resume" and "resumes at step 8 and trains to step 20" in more.message
    assert not more.restart and plan_stage("report", "sr_vgg", tmp_path, CONFIG, 8, fresh=True).restart


def test_a_change_that_cannot_continue_the_run_names_the_fix(tmp_path):
    _fake_stage(tmp_path, "sr_vgg", 8, CONFIG)
    with pytest.raises(StageChange, match=r"blocks = 4 \(it was trained with 2\).*fresh = True.*run_dir"):
        plan_stage("report", "sr_vgg", tmp_path, dataclasses.replace(CONFIG, blocks=4), 8)
    with pytest.raises(StageChange, match=r"content_loss = 'mse' \(it was trained with 'vgg16_22'\)"):
        plan_stage("report", "sr_vgg", tmp_path, dataclasses.replace(CONFIG, content_loss="mse"), 8)
    slower = dataclasses.replace(CONFIG, learning_rate=1e-4)
    with pytest.raises(StageChange, match=r"all its 8 steps.*learning_rate 0.001 -> 0.0001 would train nothing.*"
                                          r"fresh = True.*steps above 8"):
        plan_stage("report", "sr_vgg", tmp_path, slower, 8)
    assert "with learning_rate 0.001 -> 0.0001" in plan_stage("report", "sr_vgg", tmp_path, slower, 12).message
    assert plan_stage("report", "sr_vgg", tmp_path, dataclasses.replace(CONFIG, blocks=4), 8, fresh=True).restart


def test_a_stage_that_starts_from_another_checks_it_first(tmp_path):
    with pytest.raises(StageChange, match=r"generator that stage 'sr_vgg' trained \(02_pretrain_sr_vgg.ipynb\).*"
                                          r"run that notebook first"):
        plan_stage("report", "discriminator", tmp_path, CONFIG, 4)
    _fake_generator(tmp_path, "sr_vgg", blocks=3)
    with pytest.raises(StageChange, match=r"built with blocks = 3.*parameters say blocks = 2.*02_pretrain_sr_vgg"):
        plan_stage("report", "discriminator", tmp_path, CONFIG, 4)
    _fake_generator(tmp_path, "sr_vgg")
    plan = plan_stage("report", "discriminator", tmp_path, CONFIG, 4)
    assert plan.action == "start" and "the generator of stage 'sr_vgg' (8 steps)" in plan.message


def test_a_stage_started_before_the_one_it_starts_from_trained_again_is_flagged(tmp_path):
    _fake_stage(tmp_path, "sr_vgg", 8, CONFIG, times=[100.0, 101.0])
    _fake_stage(tmp_path, "discriminator", 4, CONFIG, times=[200.0, 201.0])
    assert plan_stage("report", "discriminator", tmp_path, CONFIG, 4).warnings == []
    assert "later stage(s) discriminator" in plan_stage("report", "sr_vgg", tmp_path, CONFIG, 8, fresh=True).warnings[0]
    with open(tmp_path / "history.jsonl", "a") as history:  # sr_vgg trained again, after the warm-up started
        history.write(json.dumps({"stage": "sr_vgg", "step": 9, "time": 300.0}) + "\n")
    warnings = plan_stage("report", "discriminator", tmp_path, CONFIG, 4).warnings
    assert len(warnings) == 1 and "'sr_vgg' trained again" in warnings[0] and "fresh = True" in warnings[0]


@pytest.mark.data
@pytest.mark.filterwarnings("ignore")
def test_the_plan_agrees_with_what_the_trainer_then_does(data_dir, tmp_path):
    from srlib.training import train_stage

    config = dataclasses.replace(CONFIG, val_images=1, progress=False)
    train = [data_dir / "train" / "T91"]
    plan = plan_stage("paper", "mse", tmp_path, config, 2)
    trainer = train_stage("paper", "mse", train, tmp_path, 2, config, restart=plan.restart)
    assert trainer.current_step == 2
    assert plan_stage("paper", "mse", tmp_path, config, 2).action == "done"
    plan = plan_stage("paper", "mse", tmp_path, dataclasses.replace(config, blocks=1), 2, fresh=True)
    trainer = train_stage("paper", "mse", train, tmp_path, 2, dataclasses.replace(config, blocks=1),
                          restart=plan.restart)
    assert trainer.generator.architecture["blocks"] == 1 and list(tmp_path.glob("mse.replaced-*"))


# ---- the notebooks: an exercise of each training chapter, in the smoke profile ------------------------


@pytest.mark.parametrize("name, network", [("02_pretrain_sr_vgg", "generator"),
                                           ("03_pretrain_discriminator", "discriminator")])
def test_chapters_2_and_3_show_their_network_as_code_and_diagram_not_as_a_keras_summary(name, network):
    notebook = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert ".summary(" not in code
    assert f'networks.builder_source("{network}")' in code and f"networks.draw_{network}(network" in code
    assert "networks.parameter_table(network)" in code  # the compact table stays


@pytest.mark.parametrize("name", ["01_data_prep", "02_pretrain_sr_vgg", "03_pretrain_discriminator"])
def test_every_exercise_names_a_parameter_of_its_chapter(name):
    import re

    import papermill

    path = ROOT / "notebooks" / f"{name}.ipynb"
    notebook = nbformat.read(path, as_version=4)
    exercises = next(c.source for c in notebook.cells if c.cell_type == "markdown" and "## Exercises" in c.source)
    exercises = exercises[exercises.index("## Exercises"):]
    items = re.findall(r"^\d+\. (.*?)(?=^\d+\. |\Z)", exercises, re.M | re.S)
    assert 2 <= len(items) <= 4
    declared = set(papermill.inspect_notebook(str(path)))
    for item in items:
        named = re.findall(r"\*\*`(\w+) = [^`]+`\*\*", item)
        assert named and set(named) <= declared, (item[:60], named)


def test_offline_the_demo_trains_with_pixel_mse_and_a_named_vgg_loss_stays_one_parameter_away(monkeypatch):
    import srlib.models
    from srlib.stage_plan import offline_content_loss

    monkeypatch.setitem(srlib.models._resolved, "vgg16", None)  # as if ImageNet's weights could not be loaded
    monkeypatch.setitem(srlib.models._resolved, "vgg19", None)
    auto = dataclasses.replace(CONFIG, vgg_weights="auto")
    for recipe, stage, own in (("report", "sr_vgg", "vgg16_22"), ("report", "full", "vgg16_53"), ("paper", "gan", "vgg54")):
        config, note = offline_content_loss(recipe, stage, auto)
        assert config.content_loss == "mse" and f'`content_loss = "{own}"`' in note, (recipe, stage)
    assert offline_content_loss("paper", "mse", auto) == (auto, None)  # pixel MSE already
    named = dataclasses.replace(auto, content_loss="vgg16_22")  # the exercise: random VGG, asked for by name
    assert offline_content_loss("report", "sr_vgg", named) == (named, None)
    assert offline_content_loss("report", "sr_vgg", CONFIG) == (CONFIG, None)  # vgg_weights given: not "auto"
    monkeypatch.setitem(srlib.models._resolved, "vgg16", "imagenet")  # online: the recipe as it is
    assert offline_content_loss("report", "sr_vgg", auto) == (auto, None)
