"""The benchmark command: JSON shape, saved images, clear errors, the published bicubic figures, and the detail
ratio and colour shift beside PSNR / SSIM."""

import json
import os
import time

import numpy as np
import pytest
from PIL import Image

from srlib.benchmark import bicubic_upscaler, run_benchmark
from srlib.cli import main
from srlib.degradation import bicubic_downscale, bicubic_upscale, modcrop
from srlib.images import read_image
from srlib.metrics import colour_shift, detail_ratio, psnr_y, ssim_y


@pytest.fixture
def tiny_sets(tmp_path):
    """Two small benchmark sets of smooth synthetic images (one grayscale, one odd-sized)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "benchmark"
    for name, sizes in {"Set5": [(48, 40), (37, 53)], "Set14": [(64, 64)]}.items():
        (root / name).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            base = np.add.outer(np.sin(np.arange(h) / 4), np.cos(np.arange(w) / 5))
            image = np.dstack([base + rng.normal(0, 0.05, (h, w)) for _ in range(3)])
            image = ((image - image.min()) / np.ptp(image) * 255).astype(np.uint8)
            Image.fromarray(image[..., 0] if i == 1 else image).save(root / name / f"img{i}.png")
    return tmp_path


def test_cli_writes_the_documented_json_and_the_sr_images(tiny_sets, tmp_path, capsys):
    killed = tmp_path / "sr" / "Set5" / ".img0.png.tmp-0123456789ab.png"  # a PNG a killed earlier run half wrote
    killed.parent.mkdir(parents=True)
    killed.write_bytes(b"half")
    os.utime(killed, (time.time() - 3600, time.time() - 3600))
    out = tmp_path / "result.json"
    code = main(["benchmark", "--model", "bicubic", "--data", str(tiny_sets), "--sets", "Set5", "Set14",
                 "--scale", "4", "--out", str(out), "--save-images", str(tmp_path / "sr")])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["model"] == "bicubic" and report["scale"] == 4
    assert list(report["results"]) == ["Set5", "Set14"]
    assert not killed.exists()
    for name, n in [("Set5", 2), ("Set14", 1)]:
        row = report["results"][name]
        assert row["n"] == n
        assert 15 < row["psnr"] < 60 and 0 < row["ssim"] <= 1
        assert 0 < row["detail"] < 1 and 0 <= row["colour"] < 5
        assert [sorted(image) for image in row["images"]] == [["colour", "detail", "image", "psnr", "ssim"]] * n
    printed = capsys.readouterr().out
    assert "Set5" in printed and f"{report['results']['Set5']['psnr']:.2f}" in printed
    assert f"{report['results']['Set5']['detail']:.3f}" in printed and "colour" in printed
    saved = read_image(tmp_path / "sr" / "Set5" / "img1.png")
    assert saved.shape == (36, 52, 3)  # modcropped 37x53 at x4


def test_set_score_is_the_mean_of_image_scores(tiny_sets):
    report = run_benchmark(bicubic_upscaler(2), tiny_sets, ["Set5"], 2, model_name="bicubic", progress=False)
    row = report["results"]["Set5"]
    expected = []
    for name in ["img0", "img1"]:  # scored here directly: modcrop, MATLAB LR, bicubic SR, Y, shave 2
        hr = modcrop(read_image(tiny_sets / "benchmark" / "Set5" / f"{name}.png"), 2)
        sr = bicubic_upscale(bicubic_downscale(hr, 2), 2)
        expected.append((psnr_y(sr, hr, 2), ssim_y(sr, hr, 2), detail_ratio(sr, hr, 2), colour_shift(sr, hr, 2)))
    assert row["psnr"] == pytest.approx(np.mean([e[0] for e in expected]), abs=1e-3)
    assert row["ssim"] == pytest.approx(np.mean([e[1] for e in expected]), abs=1e-4)
    assert row["detail"] == pytest.approx(np.mean([e[2] for e in expected]), abs=1e-3)
    assert row["colour"] == pytest.approx(np.mean([np.abs(e[3]).max() for e in expected]), abs=1e-3)  # largest channel
    np.testing.assert_allclose(row["images"][1]["colour"], expected[1][3], atol=1e-3)
    x2 = row["psnr"]
    x4 = run_benchmark(bicubic_upscaler(4), tiny_sets, ["Set5"], 4, "bicubic", progress=False)["results"]["Set5"]["psnr"]
    assert x2 > x4  # a smaller factor is easier


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sets", "Set6"], "benchmark set 'Set6' not found"),
        (["--sets", "Empty"], "holds no images"),
        (["--data", "/no/such/folder"], "does not exist"),
        (["--scale", "1"], "--scale must be 2 or more"),
    ],
)
def test_cli_errors_are_one_clear_line(tiny_sets, capsys, args, message):
    (tiny_sets / "benchmark" / "Empty").mkdir()
    argv = ["benchmark", "--data", str(tiny_sets)] + args
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_subfolders_of_a_set_are_not_part_of_it(tiny_sets, tmp_path):
    lr_dir = tiny_sets / "benchmark" / "Set14" / "LR_bicubic" / "X4"
    lr_dir.mkdir(parents=True)
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(lr_dir / "img0.png")
    report = run_benchmark(bicubic_upscaler(4), tiny_sets, ["Set14"], 4, "bicubic", progress=False)
    assert report["results"]["Set14"]["n"] == 1


@pytest.mark.parametrize("size", [8, 14, 22])
def test_too_small_benchmark_image_is_a_clear_error(tiny_sets, capsys, size):
    small = tiny_sets / "benchmark" / "Set14" / "small.png"
    Image.fromarray(np.full((size, size, 3), 100, np.uint8)).save(small)
    assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set14"]) == 2
    err = capsys.readouterr().err
    assert str(small) in err and "too small" in err


def test_unwritable_outputs_are_clear_errors(tiny_sets, tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    for extra in (["--out", str(tmp_path)], ["--save-images", str(tmp_path / "a_file")]):
        assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set14", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "Traceback" not in err


def test_identical_images_give_null_psnr_in_valid_json(tmp_path):
    from srlib.files import write_json

    write_json(tmp_path / "r.json", {"psnr": float("inf"), "ssim": 1.0})
    assert json.loads((tmp_path / "r.json").read_text()) == {"psnr": None, "ssim": 1.0}


def test_unreadable_benchmark_image_is_an_error_naming_it(tiny_sets, capsys):
    bad = tiny_sets / "benchmark" / "Set14" / "zzz.png"
    bad.write_bytes(b"\x89PNG broken")
    assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set14"]) == 2
    assert str(bad) in capsys.readouterr().err


# Published x4 bicubic figures (PSNR dB, SSIM), Y channel, shave 4. Set14: the copy in the shared data
# differs slightly from the one behind the published 26.00 / 0.7027 (see shared/data/SOURCES.md).
PUBLISHED_BICUBIC_X4 = {
    "Set5": (28.42, 0.8104),
    "Set14": (26.09, 0.704),
    "BSD100": (25.96, 0.6675),
    "Urban100": (23.14, 0.6577),
}


@pytest.mark.data
def test_bicubic_reproduces_the_published_x4_figures(data_dir, tmp_path):
    out = tmp_path / "bicubic.json"
    code = main(["benchmark", "--model", "bicubic", "--data", str(data_dir / "benchmark"),
                 "--sets", *PUBLISHED_BICUBIC_X4, "--scale", "4", "--out", str(out)])
    assert code == 0
    results = json.loads(out.read_text())["results"]
    for name, (psnr, ssim) in PUBLISHED_BICUBIC_X4.items():
        assert results[name]["psnr"] == pytest.approx(psnr, abs=0.02), name
        assert results[name]["ssim"] == pytest.approx(ssim, abs=0.002), name
    assert [results[s]["n"] for s in PUBLISHED_BICUBIC_X4] == [5, 14, 100, 100]


def test_comparison_table_puts_measured_rows_before_published_ones():
    from srlib.reporting import comparison_csv, comparison_markdown, comparison_rows

    measured = {"bicubic": {"results": {"Set5": {"psnr": 28.4165, "ssim": 0.81008}}},
                "paper/mse (10 steps)": {"results": {"Set5": {"psnr": 29.5, "ssim": 0.83}}}}
    rows = comparison_rows(measured, notes={"paper/mse (10 steps)": "a note"})
    assert [r["method"] for r in rows[:2]] == ["bicubic", "paper/mse (10 steps)"]
    assert all(r["source"] == "published" for r in rows[2:])
    markdown = comparison_markdown(rows, ["Set5", "Urban100"])
    assert "| bicubic | 28.42 / 0.8101 | – | measured here |" in markdown
    assert "| paper/mse (10 steps) | 29.50 / 0.8300 | – | measured here: a note |" in markdown
    assert "| course report (SRGAN, as reported) | 19.93 | – | published |" in markdown
    assert "| SRCNN (Dong et al. 2014) | 30.48 / 0.8628 | 24.52 / 0.7221 | published |" in markdown
    lines = comparison_csv(rows, ["Set5"]).splitlines()
    assert lines[0] == "method,source,note,Set5_psnr,Set5_ssim,Set5_detail,Set5_colour"
    assert lines[1] == "bicubic,measured here,,28.4165,0.81008,,"  # a report from before detail was measured
    assert "\"course report (SRGAN, as reported)\",published,,19.9300,,," in lines  # quoted: it holds a comma


def test_detail_and_colour_are_tabled_where_measured():
    from srlib.reporting import (comparison_csv, comparison_detail_markdown, comparison_rows, comparison_table,
                                 format_table, markdown_table)

    old = {"model": "bicubic", "scale": 4, "results": {"Set5": {"n": 5, "psnr": 28.4165, "ssim": 0.81008}}}
    new = {"model": "srresnet-x4", "scale": 4,
           "results": {"Set5": {"n": 5, "psnr": 31.06, "ssim": 0.878, "detail": 0.6234, "colour": 0.215}}}
    assert markdown_table(old).splitlines()[0] == "| set | images | PSNR (dB) | SSIM | published |"  # as before
    assert markdown_table(new).splitlines()[2] == "| Set5 | 5 | 31.06 | 0.8780 | 0.62 | 0.21 |"
    assert "detail" not in format_table(old) and format_table(new).splitlines()[2].split()[-2:] == ["0.623", "0.21"]
    rows = comparison_rows({"bicubic": old, "SRResNet": new})
    detail = comparison_detail_markdown(rows, ["Set5", "Set14"]).splitlines()
    assert detail[2:] == ["| method | Set5 | Set14 |", "|---|---|---|", "| SRResNet | 0.62 / 0.21 | – |"]
    assert comparison_detail_markdown(rows[:1], ["Set5"]) == ""
    assert comparison_csv(rows, ["Set5"]).splitlines()[2] == "SRResNet,measured here,,31.0600,0.87800,0.6234,0.215"
    table = comparison_table({"bicubic": old, "SRResNet": new}, {}, ["Set5"], 4)
    assert table.startswith("| method | Set5 | source |") and table.endswith("| SRResNet | 0.62 / 0.21 |")


@pytest.fixture
def small_generator(tmp_path):
    from srlib.models import generator, save_generator

    path = tmp_path / "mine.weights.h5"
    save_generator(generator(scale=4, blocks=1, filters=4), path,
                   {"recipe": "paper", "stage": "mse", "steps": 7, "training_data": {"name": "T91+BSD200"}})
    return path


def test_several_models_give_one_table_beside_the_published_figures_and_a_crops_figure(
        tiny_sets, small_generator, tmp_path, capsys):
    table, crops = tmp_path / "results.md", tmp_path / "crops.png"
    assert main(["benchmark", "--model", "bicubic", "--weights", str(small_generator), "--data", str(tiny_sets),
                 "--sets", "Set5", "Set14", "--table", str(table), "--crops", str(crops),
                 "--crop-images", "Set5/img1", "Set14/img0.png"]) == 0
    reports = json.loads(table.with_suffix(".json").read_text())["reports"]
    assert [r["model"] for r in reports] == ["bicubic", str(small_generator)]
    lines = table.read_text().splitlines()
    assert lines[0] == "| method | Set5 | Set14 | source |"
    bicubic = reports[0]["results"]
    assert lines[2] == (f"| bicubic | {bicubic['Set5']['psnr']:.2f} / {bicubic['Set5']['ssim']:.4f} | "
                        f"{bicubic['Set14']['psnr']:.2f} / {bicubic['Set14']['ssim']:.4f} | measured here |")
    assert lines[3].startswith(f"| {small_generator} |") and "paper/mse, 7 steps on T91+BSD200" in lines[3]
    assert any(line.startswith("| SRCNN (Dong et al. 2014) | 30.48 / 0.8628 | 27.50 / 0.7513 |") for line in lines)
    assert "course report" in table.read_text()
    detail_rows = [line for line in lines[lines.index("| method | Set5 | Set14 |", 1):] if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in detail_rows[1:]] == ["| bicubic", f"| {small_generator}"]
    assert detail_rows[1].endswith(f"| {bicubic['Set5']['detail']:.2f} / {bicubic['Set5']['colour']:.2f} | "
                                   f"{bicubic['Set14']['detail']:.2f} / {bicubic['Set14']['colour']:.2f} |")
    assert table.with_suffix(".csv").read_text().count("\n") == 1 + 2 + 4  # header, 2 measured, 4 published
    with Image.open(crops) as figure:
        assert figure.format == "PNG"
    assert "(Set5/img1, Set14/img0)" in capsys.readouterr().out


def test_a_table_at_another_scale_says_so_and_has_no_published_rows(tiny_sets, tmp_path):
    table = tmp_path / "x2.md"
    assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set5", "--scale", "2", "--table", str(table)]) == 0
    text = table.read_text()
    assert text.startswith("x2 (the published rows are x4 figures") and "SRCNN" not in text and "| bicubic |" in text


def test_showcase_panels_are_lr_each_model_and_hr_with_the_image_psnr_and_detail(tiny_sets):
    from srlib.benchmark import find_image, showcase

    path = find_image(tiny_sets, "Set5/img0")
    assert path == find_image(tiny_sets / "benchmark", "Set5/img0.png") == tiny_sets / "benchmark" / "Set5" / "img0.png"
    [(title, panels)] = showcase([path], {"bicubic": bicubic_upscaler(4)}, 4)
    report = run_benchmark(bicubic_upscaler(4), tiny_sets, ["Set5"], 4, "bicubic", progress=False)
    image = report["results"]["Set5"]["images"][0]
    assert title == "Set5/img0"
    assert list(panels) == ["LR input", f"bicubic ({image['psnr']:.2f} dB, detail {image['detail']:.2f})", "HR"]
    assert panels["LR input"].shape == (12, 10, 3) and panels["HR"].shape == (48, 40, 3)


@pytest.mark.parametrize("args, message", [
    (["--crops", "c.png", "--crop-images", "Set5/nope"], "no image 'nope' in benchmark set Set5"),
    (["--crops", "c.png", "--crop-images", "comic"], "give benchmark images as SET/NAME"),
    (["--crop-images", "Set5/img0"], "give --crops PNG too"),
    (["--model", "bicubic", "--model", "bicubic"], "a model is named twice"),
    (["--model", "bicubic", "--weights", "w.weights.h5", "--out", "r.json"], "--out takes one model"),
    (["--model", "srresnet-x4"], "srresnet-x4 weights are not in this copy of srlib"),
])
def test_bad_benchmark_requests_fail_before_any_work(tiny_sets, tmp_path, capsys, monkeypatch, args, message):
    import importlib

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setitem(importlib.import_module("srlib.upscale").SHIPPED, "srresnet-x4", tmp_path / "absent.weights.h5")
    assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set5", *args]) == 2
    assert message in capsys.readouterr().err
    assert list(work.iterdir()) == []  # nothing written


def test_the_default_crop_images_are_the_first_of_each_set(tiny_sets, tmp_path, capsys):
    assert main(["benchmark", "--data", str(tiny_sets), "--sets", "Set5", "Set14", "--crops", str(tmp_path / "c.png")]) == 0
    assert "(Set5/img0, Set14/img0)" in capsys.readouterr().out and (tmp_path / "c.png").is_file()


def test_the_source_note_counts_the_steps_of_the_run_a_model_started_from():
    from srlib.model_card import ModelCard

    card = dict(architecture={"scale": 4, "blocks": 1, "filters": 4, "batch_norm": False}, recipe="paper", stage="mse",
                steps=2750, training_data={"name": "BSD200+T91"})
    assert ModelCard(**card).provenance() == "paper/mse, 2750 steps on BSD200+T91"
    folded = ModelCard(**card, initialised_from={"steps": 4500, "batch_norm_folded": True})
    assert folded.provenance() == "paper/mse, 4500 steps with batch norm + 2750 without on BSD200+T91"
    assert ModelCard(**card, initialised_from={"steps": 100}).provenance() == "paper/mse, 100 + 2750 steps on BSD200+T91"
    assert ModelCard(**card, vgg_weights="random").provenance().endswith("RANDOM VGG features (no ImageNet weights)")


def test_a_model_already_scored_on_a_set_is_not_run_again(tiny_sets, small_generator, tmp_path, capsys):
    from srlib.benchmark import ResultCache, model_upscaler, run_benchmarks

    upscale, _ = model_upscaler(small_generator, 4)
    calls = []

    def counted(lr):
        calls.append(lr.shape)
        return upscale(lr)

    cache = tmp_path / "results"
    first = run_benchmarks({"mine": counted}, tiny_sets, ["Set5", "Set14"], 4,
                           cache=ResultCache(cache, {"mine": (small_generator, "float32")}))
    assert len(calls) == 3 and len(list(cache.glob("*-float32.json"))) == 1
    again = run_benchmarks({"mine": counted}, tiny_sets, ["Set5", "Set14"], 4,
                           cache=ResultCache(cache, {"mine": (small_generator, "float32")}))
    assert len(calls) == 3 and again == first  # nothing run, the same report
    # another image in a set, another precision or other weights: measured again
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tiny_sets / "benchmark" / "Set14" / "img9.png")
    run_benchmarks({"mine": counted}, tiny_sets, ["Set5", "Set14"], 4,
                   cache=ResultCache(cache, {"mine": (small_generator, "float32")}))
    assert len(calls) == 3 + 2  # Set14 only
    run_benchmarks({"mine": counted}, tiny_sets, ["Set5"], 4,
                   cache=ResultCache(cache, {"mine": (small_generator, "bfloat16")}))
    assert len(calls) == 5 + 2
    small_generator.write_bytes(small_generator.read_bytes() + b"\0")
    run_benchmarks({"mine": counted}, tiny_sets, ["Set5"], 4, cache=ResultCache(cache, {"mine": (small_generator, "float32")}))
    assert len(calls) == 7 + 2
    # the command line: --results-cache reuses what is there (bicubic is always run)
    out = tmp_path / "cli.json"
    assert main(["benchmark", "--weights", str(small_generator), "--data", str(tiny_sets), "--sets", "Set5",
                 "--results-cache", str(cache), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["results"]["Set5"]["n"] == 2
    # a cache only read (chapter 6 reading the shipped models' results) keeps nothing new
    before = sorted(p.read_bytes() for p in cache.iterdir())
    run_benchmarks({"mine": counted}, tiny_sets, ["Set5"], 4,
                   cache=ResultCache(cache, {"mine": (small_generator, "bfloat16x")}, write=False))
    assert sorted(p.read_bytes() for p in cache.iterdir()) == before
