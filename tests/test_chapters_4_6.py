"""Chapters 4-7 of the course: what each shows and its exercises; and the paper recipe's chapters 1-6 run through
papermill, chapters 4-6 with exercise settings."""

import csv
import json
import re

import nbformat
import numpy as np
import papermill
import pytest

from notebook_outputs import read_executed
from srlib.pipeline import NOTEBOOKS, ROOT, notebook_parameters, profile_parameters, run_pipeline

NOTEBOOK_DIR = ROOT / "notebooks"
CHAPTERS = ("04_full_train", "05_loss_plots", "06_benchmarks", "07_real_photos")


def _cells(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    return notebook, code, markdown


# what each chapter must show (issue 13), as the calls and words that show it
ITEMS = {
    "04_full_train": {
        "the GAN step's code, whole": "inspect.getsource(SRGAN.train_step)",
        "each weighted term's share over training": "plot_loss_shares(",
        "LR | pretrained | GAN | HR crops with PSNR": "crops_figure(showcase_panels(",
        "the detail ratio and colour shift of both generators": "comparison_detail_markdown(",
        "the losses on a small example, with the library's own functions": "losses.discriminator_loss(",
        "why not pixel MSE alone, on a small example": "losses.pixel_mse(",
        "the samples over the stage": "sample_strips(",
        "a fresh start when settings change": "restart=plan.restart",
        "the shipped SRResNet as a start": "init_generator=init_generator",
    },
    "05_loss_plots": {
        "the discriminator's pre-training loss": 'stage_for(recipe, "discriminator")',
        "the generator loss by weighted term": "plot_generator_losses(",
        "PSNR over the whole run": "plot_validation(",
        "discriminator accuracy with a chance line": "plot_discriminator(",
        "one fixed smoothing window": "window=smoothing",
        "mean / std / min as the report printed them": "summary_markdown(",
        "smoothing on a small example": "smooth(coin, smoothing)",
    },
    "06_benchmarks": {
        "the protocol on one image": "psnr_y(sr, hr, 0)",
        "bicubic, each stage and the shipped models": "SHIPPED_LABELS.items()",
        "beside the published rows": "write_comparison(",
        "zoomed crops": "crops_figure(",
        "with benchmark.showcase": "showcase_panels(",
        "what the detail ratio measures": "plot_spectra(",
    },
    "07_real_photos": {  # issue 24
        "why bicubic-trained models fail on JPEGs, shown": "showcase_panels([image], shown, scale, how)",
        "the degradation chain step by step with pictures": "plot_degradation_steps(",
        "the mixture's samples": "mixture_examples(",
        "a brief fine-tune": "train_stage(\"paper\", \"mse\"",
        "the input pipeline against the step's demand": "patches_per_second(",
        "clean, degraded and JPEG sets": '("bicubic", "realistic", "jpeg50", "jpeg75")',
        "side by side": "write_degradation_comparison(",
        "the verdict's criteria": "real_photo_verdicts(",
        "real JPEG photos": "photo_showcase(public_domain_photos()",
    },
}
EQUATIONS = {
    "04_full_train": [r"l^{SR} = l^{SR}_X + w_{TV}\,l_{TV} + w_{Gen}\,l^{SR}_{Gen}", r"l^{SR}_{MSE} =",
                      r"l^{SR}_{VGG/i,j} =", r"l_{TV} =", r"l_D ="],
    "05_loss_plots": [r"l^{SR} =", r"l_D =", r"\bar{x}_t ="],
    "06_benchmarks": [r"\text{PSNR} =", r"\text{SSIM}(x, y) =", r"\text{detail} ="],
    "07_real_photos": [r"I^{LR} = (I^{HR} \ast k_{bic})\downarrow_s", r"D(x) =", r"\ell ="],
}


@pytest.mark.parametrize("name", CHAPTERS)
def test_each_chapter_shows_what_the_issue_lists(name):
    _, code, markdown = _cells(name)
    missing = [item for item, call in ITEMS[name].items() if call not in code]
    assert not missing, f"{name} does not show: {missing}"
    equations = "".join(re.findall(r"\$\$(.*?)\$\$", markdown, re.S))
    assert all(e in equations for e in EQUATIONS[name]), f"{name}: every loss or measure as an equation"
    for code_name in ("g_loss", "d_acc_fake"):  # code names are not titles: the plots name the terms in words
        assert f'title="{code_name}' not in code


@pytest.mark.parametrize("name", CHAPTERS)
def test_the_exercises_name_parameters_of_their_notebook(name):
    notebook, _, _ = _cells(name)
    [exercises] = [c.source for c in notebook.cells if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert notebook.cells[-2].source == exercises, "the chapter ends with its exercises, then its references"
    items = re.split(r"^\d+\. ", exercises, flags=re.M)[1:]
    assert 2 <= len(items) <= 4
    declared = set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")))
    anywhere = set().union(*(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{n}.ipynb")) for n in NOTEBOOKS))
    for item in items:
        named = set(re.findall(r"`(\w+) = [^`]+`", item))
        assert named & declared, f"{name}: an exercise names a parameter of its parameters cell: {item[:60]}"
        assert named <= anywhere, f"{name}: {named - anywhere} are no notebook's parameters"  # e.g. chapter 4's
        assert re.search(r"\b(look|compare|watch|see|does|which|find)\b", item, re.I), "and what to look for"


@pytest.fixture(scope="module")
def shipped_start(data_dir, tmp_path_factory):
    """The paper recipe's course in the smoke profile: chapters 1-3 as they are (chapter 1 on the filled data folder,
    offline; the SRResNet's pixel-MSE pretraining; no discriminator warm-up), then chapter 4 with its exercises 1
    and 2 (SRGAN-MSE from the shipped SRResNet-16). The report
    recipe's smoke pipeline is in tests/test_pipeline.py; the paper GAN's VGG54 step runs in the profiles' dry runs
    (tests/test_profiles.py)."""
    out = tmp_path_factory.mktemp("chapters")
    common = dict(data_dir=data_dir, out_dir=out, figures_dir=str(out / "figures"), benchmark_sets=["Set5"])
    params = profile_parameters("smoke", "paper", **common,
                                gan={"steps": 2, "content_loss": "mse"})  # exercise 1 (few steps: a test)
    executed = run_pipeline("smoke", "paper", notebooks=["01", "02", "03"], progress=False, vgg_weights="none", **common)
    given = {**notebook_parameters(params, "04_full_train"), "validate_every": 1, "val_images": 1,
             # exercise 2: the shipped generator and its architecture
             "init_generator": "srresnet-x4", "blocks": 16, "filters": 64, "batch_norm": False}
    papermill.execute_notebook(str(NOTEBOOK_DIR / "04_full_train.ipynb"), str(out / "04.ipynb"), parameters=given,
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    return out, params, given, executed


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_chapter_1_runs_offline_and_the_paper_recipe_pretrains_with_pixel_mse_without_a_warm_up(shipped_start):
    *_, executed = shipped_start
    chapter1, chapter2, chapter3 = (read_executed(path)[0] for path in executed)
    assert "already here" in chapter1 and "trained on MATLAB bicubic" in chapter1  # nothing fetched: no mirror given
    assert "starts from random weights" in chapter2 and "this run: content loss mse = pixel MSE" in chapter2
    assert "paper/mse: SRResNet, the PSNR-oriented network: pixel MSE content" in chapter2
    assert "mse: validation PSNR " in chapter2
    assert "**vgg19 has RANDOM weights here**" in chapter2  # its VGG loss shown on examples: vgg_weights = "none"
    assert "the paper recipe has no discriminator warm-up: its GAN (gan) trains D from random weights" in chapter3
    assert "mean P(real) as built" in chapter3 and "after the warm-up" not in chapter3


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_chapter_4_starts_from_the_shipped_srresnet_and_says_what_a_changed_setting_needs(shipped_start):
    out, params, given, _ = shipped_start
    text, images = read_executed(out / "04.ipynb")
    assert "Stage 'gan' starts from the generator srresnet-x4 and trains 2 steps." in text  # said before training
    assert "paper/gan: 2 of 2 steps; started from " in text and "srresnet_x4.weights.h5" in text
    assert "def train_step(self, data):" in text  # the step's source, shown whole
    assert "| pretrained | " in text and "The GAN stage changed Set5's PSNR by " in text
    assert "RANDOM" not in text and "random VGG" not in text  # SRGAN-MSE needs no VGG
    assert images == 5  # the losses, MSE against blur, the shares, the crops, the samples
    figures = out / "figures"
    for name in ("loss_shares_gan.png", "crops_gan.png", "samples_gan.png"):
        assert (figures / name).stat().st_size > 10_000, name
    origin = json.loads((out / "train" / "gan" / "initialised_from.json").read_text())
    assert origin["weights"].endswith("srresnet_x4.weights.h5") and origin["architecture"]["blocks"] == 16
    # the same stage with another content loss cannot continue: the notebook says what to set
    with pytest.raises(papermill.PapermillExecutionError, match="set fresh = True") as error:
        papermill.execute_notebook(str(NOTEBOOK_DIR / "04_full_train.ipynb"), str(out / "04_changed.ipynb"),
                                   parameters={**given, "content_loss": "vgg54", "vgg_weights": "none"},
                                   kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    assert "content_loss = 'vgg54' (it was trained with 'mse')" in str(error.value)


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_chapters_5_and_6_read_and_measure_that_run_with_the_shipped_models(shipped_start):
    out, params, *_ = shipped_start
    papermill.execute_notebook(str(NOTEBOOK_DIR / "05_loss_plots.ipynb"), str(out / "05.ipynb"),
                               parameters={**notebook_parameters(params, "05_loss_plots"), "smoothing": 1},
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    text, images = read_executed(out / "05.ipynb")
    assert "The paper recipe has no discriminator warm-up" in text and "GAN training (stage “gan”)" in text
    assert images == 6  # chance alone, the mse stage's loss, the GAN's terms and shares, PSNR, the discriminator
    for name in ("loss_mse.png", "loss_gan.png", "loss_shares_gan.png", "validation_psnr.png", "discriminator_gan.png"):
        assert (out / "figures" / name).is_file(), name
    papermill.execute_notebook(str(NOTEBOOK_DIR / "06_benchmarks.ipynb"), str(out / "06.ipynb"),
                               parameters={**notebook_parameters(params, "06_benchmarks"), "crop": 40},
                               kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    text, images = read_executed(out / "06.ipynb")
    with open(out / "figures" / "benchmark_x4.csv") as file:
        rows = {row["method"]: row for row in csv.DictReader(file)}
    assert {"bicubic", "paper/gan (2 steps)", "SRResNet-16 (shipped)"} <= set(rows)
    assert float(rows["SRResNet-16 (shipped)"]["Set5_psnr"]) > 30.5  # the shipped model's own figure
    assert "**Y, 4 pixels shaved: the protocol**" in text
    for name in ("comparison.png", "crops_x4.png", "spectrum.png", "benchmark_srresnet-x4.json",
                 "benchmark_paper_gan.json"):
        assert (out / "figures" / name).is_file(), name


def test_the_slider_of_chapter_6_stops_at_bicubic_the_model_and_hr_on_the_same_crop():
    from srlib.course.benchmarks import slider_views

    rng = np.random.default_rng(0)
    hr = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    panels = {"LR input": hr[::4, ::4], "bicubic (20.00 dB, detail 0.05)": hr // 2,
              "paper/gan (24.00 dB, detail 0.40)": hr // 3, "HR": hr}
    views = slider_views(panels, "paper/gan", crop=16)
    assert list(views) == ["bicubic", "SR", "HR"]
    assert views["SR"][0] == "paper/gan (24.00 dB, detail 0.40)" and views["bicubic"][0].startswith("bicubic (")
    shapes = {image.shape for _, image in views.values()}
    assert shapes == {(16, 16, 3)}
    assert np.array_equal(views["SR"][1], views["HR"][1] // 3)  # the same region of each image
    with pytest.raises(KeyError, match="no panel 'other'"):
        slider_views(panels, "other", crop=16)
