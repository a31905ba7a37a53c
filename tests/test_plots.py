"""Loss curves, summaries and comparison figures from a run's history."""

import numpy as np
import pytest
from PIL import Image

from srlib.plots import (busiest_box, comparison_figure, image_grid, loss_shares, plot_discriminator,
                         plot_generator_losses, plot_loss_shares, plot_validation, save_figure, series, smooth,
                         stages_in, summary, summary_markdown)

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
    assert "| content | 10 |" in markdown and "| val_psnr | 1 | 24 |" in markdown


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
    assert ax.get_title() == "gan: share of the generator loss: content (pixel MSE or VGG), total variation, adversarial"
    assert "%" in ax.get_ylabel() and ax.get_xlabel() == "step"
    outline = ax.collections[-1].get_paths()[0].vertices  # the top layer: its upper edge is the sum of the shares
    assert len(ax.collections) == 3 and np.isclose(outline[:, 1], 100).sum() >= len(GAN_HISTORY)
    empty = plot_loss_shares(HISTORY, "discriminator")
    assert "does not learn here" in empty.axes[0].texts[0].get_text()


def test_generator_loss_panels_are_named_in_words():
    figure = plot_generator_losses(GAN_HISTORY, "gan")
    assert [ax.get_title() for ax in figure.axes] == ["content (pixel MSE or VGG)", "total variation", "adversarial",
                                                      "generator loss (sum)"]


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
    from srlib.plots import sample_strips

    assert sample_strips(tmp_path, "mse") is None
    for step in (100, 200, 300, 400, 500, 600):
        write_image(tmp_path / "mse" / "samples" / f"step_{step:07d}.png", np.full((8, 24, 3), step // 3, np.uint8))
    figure = sample_strips(tmp_path, "mse", count=3)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == [f"step_{s:07d}: bicubic | SR | HR" for s in (100, 300, 600)]
    assert busiest_box(np.zeros((1, 5, 3), np.uint8), 4) == (0, 0, 1, 1)


def test_crops_figure_shows_the_same_region_of_every_panel_one_scene_per_row():
    from srlib.plots import crops_figure

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
