"""Loss curves, summaries and comparison figures from a run's history."""

import numpy as np
import pytest
from PIL import Image

from srlib.figures import busiest_box, comparison_figure, image_grid, save_figure
from srlib.plots import (loss_shares, plot_discriminator, plot_generator_losses, plot_loss_shares, plot_validation,
                         series, smooth, stages_in, summary, summary_markdown)

HISTORY = (
    [{"stage": "sr_vgg", "step": s, "content": 1.0 / s, "tv": 0.5, "g_loss": 1.0 / s + 0.5} for s in range(1, 11)]
    + [{"stage": "sr_vgg", "step": 10, "val_psnr": 24.0, "val_ssim": 0.7}]
    + [{"stage": "discriminator", "step": s, "d_loss": 0.7 - s / 100, "d_acc_real": 0.5, "d_acc_fake": 1.0}
       for s in range(1, 6)]
)


def test_series_and_stages_follow_the_history():
    steps, values = series(HISTORY, "sr_vgg", "content")
    assert steps.tolist() == list(range(1, 11)) and values[0] == 1.0
    assert series(HISTORY, "sr_vgg", "d_loss")[0].size == 0
    assert stages_in(HISTORY) == ["sr_vgg", "discriminator"]


def test_summary_gives_mean_std_min_of_each_term():
    table = {row["term"]: row for row in summary(HISTORY, "discriminator")}
    assert set(table) == {"d_loss", "d_acc_real", "d_acc_fake"}
    assert table["d_loss"]["mean"] == pytest.approx(0.67) and table["d_loss"]["min"] == pytest.approx(0.65)
    assert table["d_loss"]["std"] == pytest.approx(np.std([0.69, 0.68, 0.67, 0.66, 0.65]))
    markdown = summary_markdown(summary(HISTORY, "sr_vgg"))
    # each term in words with its history key, not a code name alone
    assert "| content (pixel MSE or VGG) (`content`) | 10 |" in markdown
    assert "| validation PSNR (dB) (`val_psnr`) | 1 | 24 |" in markdown and "| g_loss |" not in markdown


def test_smooth_is_a_trailing_mean():
    assert smooth(np.array([1.0, 3.0, 5.0, 7.0]), 2).tolist() == [1.0, 2.0, 4.0, 6.0]
    assert smooth(np.array([2.0, 4.0]), 1).tolist() == [2.0, 4.0]


# a GAN stage: each term already times its weight, g_loss their sum; the adversarial term grows, content falls
GAN_HISTORY = [{"stage": "gan", "step": s, "content": 1.0 / s, "tv": 0.01, "adversarial": 0.002 * s,
                "g_loss": 1.0 / s + 0.01 + 0.002 * s, "d_loss": 0.6} for s in range(1, 101)]


def test_loss_shares_sum_to_one_and_follow_the_terms():
    steps, shares = loss_shares(GAN_HISTORY + [{"stage": "gan", "step": 100, "val_psnr": 25.0}], "gan")
    assert steps.tolist() == list(range(1, 101)) and list(shares) == ["content", "tv", "adversarial"]
    np.testing.assert_allclose(sum(shares.values()), 1.0, atol=1e-12)
    assert shares["content"][0] == pytest.approx(1.0 / 1.012) and shares["adversarial"][-1] == pytest.approx(0.2 / 0.22)
    assert loss_shares(HISTORY, "discriminator")[1] == {}


def test_the_share_plot_stacks_the_smoothed_shares_to_100_percent_with_named_terms():
    figure = plot_loss_shares(GAN_HISTORY, "gan")
    [ax] = figure.axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["content (pixel MSE or VGG)", "total variation",
                                                                   "adversarial"]
    assert ax.get_title().startswith("Share of each term in the generator loss: GAN training (stage “gan”)")
    assert "%" in ax.get_ylabel() and ax.get_xlabel() == "training step"
    outline = ax.collections[-1].get_paths()[0].vertices  # the top layer: its upper edge is the sum of the shares
    assert len(ax.collections) == 3 and np.isclose(outline[:, 1], 100).sum() >= len(GAN_HISTORY)
    assert plot_loss_shares(HISTORY, "discriminator") is None  # nothing to draw: no placeholder figure


def test_generator_loss_panels_are_named_in_words():
    figure = plot_generator_losses(GAN_HISTORY, "gan")
    titles = [ax.get_title().split("\n") for ax in figure.axes]
    assert [t[0] for t in titles] == ["content (pixel MSE or VGG)", "total variation", "adversarial", "generator loss (sum)"]
    # the report's mean / std / min of each term, on the figure
    adversarial = np.array([r["adversarial"] for r in GAN_HISTORY])
    assert titles[2][1] == f"mean {adversarial.mean():.4g} · std {adversarial.std():.3g} · min {adversarial.min():.4g}"
    assert "GAN training (stage “gan”)" in figure._suptitle.get_text()
    assert all(ax.get_xlabel() == "training step" for ax in figure.axes) and "weight" in figure.axes[0].get_ylabel()
    assert plot_generator_losses(HISTORY, "discriminator") is None


def test_busiest_box_finds_the_detailed_region():
    image = np.zeros((100, 120, 3), np.uint8)
    image[60:80, 20:40] = np.indices((20, 20)).sum(0)[..., None] % 2 * 255  # a checkerboard patch
    top, left, height, width = busiest_box(image, 20)
    assert (height, width) == (20, 20) and abs(top - 60) <= 1 and abs(left - 20) <= 1


def test_figures_are_written_as_png(tmp_path):
    figures = [plot_generator_losses(HISTORY, "sr_vgg"), plot_discriminator(HISTORY, "discriminator"),
               plot_validation(HISTORY, bicubic_psnr=23.0), image_grid([np.zeros((8, 8, 3), np.uint8)] * 3, ["a", "b", "c"]),
               comparison_figure({"LR": np.zeros((10, 10, 3), np.uint8), "HR": np.full((40, 40, 3), 200, np.uint8)}, crop=16)]
    for i, figure in enumerate(figures):
        path = save_figure(figure, tmp_path / "sub" / f"f{i}.png")
        with Image.open(path) as png:
            assert png.format == "PNG" and png.size[0] > 100
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == [f"f{i}.png" for i in range(5)]  # no temp files left


def test_sample_strips_spread_over_the_stage(tmp_path):
    from srlib.images import write_image
    from srlib.metrics import psnr_y
    from srlib.figures import sample_strips

    assert sample_strips(tmp_path, "mse") is None
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for step in (100, 200, 300, 400, 500, 600):  # bicubic | SR | HR, as Trainer.validate saves them
        sr = np.clip(hr.astype(int) + rng.integers(-step // 20, step // 20 + 1, hr.shape), 0, 255).astype(np.uint8)
        write_image(tmp_path / "mse" / "samples" / f"step_{step:07d}.png", np.concatenate([hr // 2, sr, hr], axis=1))
    figure = sample_strips(tmp_path, "mse", count=3, crop=32)
    titles = [ax.get_title().split("\n")[0] for ax in figure.axes]
    assert titles == ["bicubic", "SR at step 100", "SR at step 300", "SR at step 600", "HR (the original)"]
    last = np.concatenate([hr // 2, sr, hr], axis=1)[:, 64:128]  # the SR of step 600
    assert figure.axes[3].get_title().startswith(f"SR at step 600\n{psnr_y(last, hr, 4):.2f} dB, detail ")
    assert all(ax.get_images()[0].get_array().shape == (32, 32, 3) for ax in figure.axes)
    assert busiest_box(np.zeros((1, 5, 3), np.uint8), 4) == (0, 0, 1, 1)


def test_crops_figure_shows_the_same_region_of_every_panel_one_scene_per_row():
    from srlib.figures import crops_figure

    hr = np.zeros((64, 64, 3), np.uint8)
    hr[30:46, 18:34] = np.indices((16, 16)).sum(0)[..., None] % 2 * 255  # detail at an offset not divisible by 4
    lr = hr[::4, ::4]
    label = "SRResNet-16 (shipped) (30.00 dB, detail 0.62)"  # as benchmark.showcase names a model's panel
    figure = crops_figure([("Set5/a", {"LR input": lr, label: hr, "HR": hr}),
                           ("Set5/b", {"LR input": lr, "HR": hr})], crop=16)
    rows = [figure.axes[:3], figure.axes[3:]]
    # a long label is cut before its figures, so that neighbouring titles do not run into each other
    assert [ax.get_title() for ax in rows[0]] == ["LR input", "SRResNet-16 (shipped)\n(30.00 dB, detail 0.62)", "HR"]
    assert rows[0][0].get_ylabel() == "Set5/a" and rows[1][2].get_title() == ""  # the shorter row's spare axis
    shown_lr, shown_hr = (ax.get_images()[0].get_array() for ax in (rows[0][0], rows[0][2]))
    assert shown_hr.shape == (16, 16, 3) and shown_lr.shape == (4, 4, 3)
    np.testing.assert_array_equal(np.asarray(shown_hr)[::4, ::4], shown_lr)  # the LR crop is the HR crop's grid


def test_crops_figure_titles_of_two_lines_stay_clear_of_the_row_above():
    from srlib.figures import crops_figure

    hr = np.random.default_rng(0).integers(0, 255, (96, 96, 3), dtype=np.uint8)
    long = "GAN after 60 steps, random VGG (24.99 dB, detail 0.31)"  # chapter 4's title, two lines at size 3.4
    figure = crops_figure([(f"Set5/{i}", {"LR input": hr[::4, ::4], "pretrained (32.45 dB, detail 0.12)": hr,
                                          long: hr, "HR": hr}) for i in "ab"], crop=96, size=3.4)
    figure.canvas.draw()  # places the square images in their axes
    renderer = figure.canvas.get_renderer()
    upper, lower = figure.axes[:4], figure.axes[4:]
    assert "\n" in lower[2].get_title()
    bottom_of_upper = min(ax.get_window_extent(renderer).y0 for ax in upper)
    assert max(ax.title.get_window_extent(renderer).y1 for ax in lower) < bottom_of_upper


def test_curves_share_one_smoothing_window_with_the_raw_values_faint_behind():
    from srlib.plots import SMOOTHING

    figure = plot_discriminator(GAN_HISTORY, "gan")
    loss_axis = figure.axes[0]
    raw, smoothed = loss_axis.get_lines()[:2]
    assert raw.get_alpha() < 0.5 and smoothed.get_alpha() is None
    values = np.array([r["d_loss"] for r in GAN_HISTORY])
    np.testing.assert_allclose(smoothed.get_ydata(), smooth(values, SMOOTHING))  # the fixed window, not one per curve
    np.testing.assert_allclose(plot_discriminator(GAN_HISTORY, "gan", window=5).axes[0].get_lines()[1].get_ydata(),
                               smooth(values, 5))
    assert f"mean of the last {SMOOTHING} steps" in figure._suptitle.get_text()


def test_discriminator_figure_has_a_chance_line_its_statistics_and_no_code_names():
    figure = plot_discriminator(HISTORY, "discriminator")
    left, right = figure.axes[:2]
    assert left.get_title().split("\n")[1].startswith("mean 0.67 · std ")
    legend = [t.get_text() for t in right.get_legend().get_texts()]
    assert legend == ["on HR (real)", "on SR (fake)", "chance (a coin toss): 0.5"]
    assert right.get_title().split("\n")[1:] == ["on HR (real): mean 0.5 · std 0 · min 0.5",
                                                 "on SR (fake): mean 1 · std 0 · min 1"]
    assert any(list(line.get_ydata()) == [0.5, 0.5] for line in right.get_lines())
    assert "discriminator: discriminator" not in figure._suptitle.get_text()
    assert "discriminator warm-up (stage “discriminator”)" in figure._suptitle.get_text()
    assert left.get_ylabel() and right.get_ylabel() and right.get_xlabel() == "training step"
    assert plot_discriminator(HISTORY, "sr_vgg") is None


def test_a_learning_rate_drop_is_marked():
    rows = [{**r, "lr": 1e-4 if r["step"] <= 50 else 1e-5} for r in GAN_HISTORY]
    figure = plot_generator_losses(rows, "gan")
    marks = [t.get_text() for t in figure.axes[0].texts]
    assert marks == [" learning rate 1e-04 → 1e-05"]


def test_validation_gives_each_stage_its_own_panel_and_axis():
    rows = HISTORY + GAN_HISTORY + [{"stage": "discriminator", "step": 5, "val_psnr": 24.0},
                                    {"stage": "gan", "step": 50, "val_psnr": 23.9},
                                    {"stage": "gan", "step": 100, "val_psnr": 23.5, "val_ssim": 0.6}]
    figure = plot_validation(rows, bicubic_psnr=23.0)
    pretraining, gan = figure.axes  # the warm-up's generator is frozen: no panel
    assert pretraining.get_title().startswith("the report's pretraining (stage “sr_vgg”)\nlast 24.00 dB")
    assert gan.get_title().startswith("GAN training (stage “gan”)\nlast 23.50 dB")
    assert gan.get_xlim()[0] > 40 and gan.get_xlim()[1] < 110  # the GAN's own steps, not the whole run's
    assert gan.get_ylim()[0] < 23.0 < 23.9 < gan.get_ylim()[1]  # bicubic and every point inside the axis
    # a stage validated once is a point with its value written beside it, not a "curve"
    assert [t.get_text() for t in pretraining.texts] == ["24.00 dB"]
    assert [t.get_text() for t in gan.get_legend().get_texts()] == ["bicubic: 23.00 dB"]
    sizes = [t.get_fontsize() for ax in figure.axes for t in [ax.title, *ax.texts, *ax.get_legend().get_texts()]]
    assert min(sizes) >= 10  # no caption smaller than body text

    gan = plot_validation(rows, starts={"gan": 24.4}).axes[1]  # the generator the GAN started from, at step 0
    assert gan.get_xlim()[0] < 0 and gan.get_ylim()[1] > 24.4
    assert [t.get_text() for t in gan.get_legend().get_texts()] == ["start: 24.40 dB"]


def test_two_runs_of_a_stage_side_by_side():
    from srlib.plots import plot_runs

    other = [{**r, "adversarial": 2 * r["adversarial"], "d_acc_fake": 0.9} for r in GAN_HISTORY]
    figure = plot_runs({"this run": GAN_HISTORY, "earlier": other}, "gan", keys=("adversarial", "d_acc_fake", "val_psnr"))
    assert [ax.get_title() for ax in figure.axes] == ["adversarial", "discriminator accuracy on SR (fake)"]
    legend = [t.get_text() for t in figure.axes[1].get_legend().get_texts()]
    assert legend[0].startswith("earlier: mean 0.9") and legend[-1] == "chance: 0.5"
    assert plot_runs({"a": HISTORY}, "gan") is None


def test_small_examples_and_spectra():
    from srlib.course.benchmarks import plot_spectra
    from srlib.figures import plot_curves
    from srlib.plots import last_step, stage_label, stages_with

    assert stage_label("mse") == "pretraining with pixel MSE (stage “mse”)" and stage_label("x") == "stage “x”"
    assert stages_with(HISTORY, "d_loss") == ["discriminator"] and last_step(HISTORY, "sr_vgg") == 10
    assert last_step(HISTORY, "gan") == 0
    x = np.linspace(0.01, 0.99, 9)
    figure = plot_curves(x, {"left": {"a": x, "b": 1 - x}, "right": {"c": x ** 2}}, "D", "loss (nats)", "t",
                         marks={"right": {"half": 0.5}})
    assert [ax.get_title() for ax in figure.axes] == ["left", "right"] and figure.axes[0].get_xlabel() == "D"
    assert [t.get_text() for t in figure.axes[1].texts] == [" half"] and not figure.axes[0].texts
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    smooth_image = np.repeat(np.repeat(hr[::4, ::4], 4, 0), 4, 1)
    figure = plot_spectra({"blocky": smooth_image, "HR": hr}, 4)
    legend = [t.get_text() for t in figure.axes[0].get_legend().get_texts()]
    assert legend[1] == "HR: detail 1.00" and legend[0].startswith("blocky: detail ")
    assert "cycles per HR pixel" in figure.axes[0].get_xlabel()
