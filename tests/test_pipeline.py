"""The course notebooks and the papermill pipeline that runs them."""

import ast
import csv
import json
import re
from pathlib import Path

import nbformat
import papermill
import pytest

from notebook_outputs import read_executed
from srlib.errors import SrlibError
from srlib.pipeline import (NOTEBOOK_STAGES, NOTEBOOKS, PROFILES, ROOT, STAGE_SECTIONS, PipelineError, notebook_parameters,
                            profile_parameters, run_pipeline)
from srlib.recipes import RECIPES

NOTEBOOK_DIR = ROOT / "notebooks"
# A chapter's own settings for a student to try, which no profile sets: their defaults hold in every profile
COURSE_SETTINGS = {"01_data_prep": {"example", "linear_train_images"},
                   "02_pretrain_sr_vgg": {"content_loss", "tv_weight", "fresh"},
                   "03_pretrain_discriminator": {"label_smoothing", "label_flip", "fresh", "verdict_set", "verdict_patches"},
                   "04_full_train": {"init_generator", "fresh"}, "05_loss_plots": {"smoothing", "compare_with"},
                   "06_benchmarks": {"crop_images", "crop", "shipped"},
                   "07_real_photos": {"example_index", "second_order", "fresh", "shipped"}}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_notebook_is_a_chapter_without_outputs(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    first = notebook.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), "a chapter starts with its heading"
    assert len(first.source) > 300, "and says what it does and why"
    tagged = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, "notebooks are stored without outputs"
            assert "def " not in cell.source and "class " not in cell.source, "logic belongs in srlib"
            if "parameters" not in cell.metadata.get("tags", []):
                assert len(cell.source.splitlines()) <= 20, "short cells"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_each_chapter_ends_with_a_summary_exercises_with_their_answers_and_references(name):
    *_, summary, exercises, references = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4).cells
    assert summary.cell_type == "markdown" and summary.source.startswith("## Summary\n")
    assert exercises.source.startswith("## Exercises\n")
    items = re.split(r"^\d+\. ", exercises.source, flags=re.M)[1:]
    assert items
    for item in items:  # each answer folded, for the student to unfold after trying
        answers = re.findall(r"^ {3}<details><summary>Expected answer</summary>\n\n(.+?)\n\n {3}</details>$", item,
                             re.M | re.S)
        assert len(answers) == 1, item[:60]
        assert not re.search(r"\d dB", answers[0]), "qualitative: no figure that a run has to produce"
    assert references.cell_type == "markdown" and references.source.startswith("## References\n")
    entries = re.findall(r"^\* (.+)$", references.source, re.M)
    assert entries and all(re.search(r"\]\(https://(arxiv\.org/abs/\d{4}\.\d{4,5}|doi\.org/\S+)\)", e) for e in entries)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_papermill_sees_every_name_the_parameters_cell_sets(name):
    notebook = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    assigned = {node.id for statement in ast.parse(cell.source).body for target in getattr(statement, "targets", [])
                for node in ast.walk(target) if isinstance(node, ast.Name)}
    # papermill only overrides names it recognises (one plain assignment per line)
    assert assigned == set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb")))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_setting_reaches_a_notebook(profile):
    declared = {n: set(papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{n}.ipynb"))) for n in NOTEBOOKS}
    common = {k for k in PROFILES[profile] if k not in STAGE_SECTIONS}
    assert common <= set().union(*declared.values())
    for notebook, section in NOTEBOOK_STAGES.items():  # a stage's settings reach its own notebook
        assert set(PROFILES[profile][section]) <= declared[notebook], notebook


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("recipe", RECIPES)
def test_a_profile_sets_every_notebook_parameter(profile, recipe, tmp_path):
    params = profile_parameters(profile, recipe, data_dir=tmp_path / "d", out_dir=tmp_path / "o")
    for name in NOTEBOOKS:
        declared = papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
        missing = set(declared) - set(notebook_parameters(params, name)) - COURSE_SETTINGS.get(name, set())
        assert not missing, f"{name} declares {missing}, which the {profile} profile does not set"
    assert params["run_dir"] == str((tmp_path / "o" / "train").resolve())
    assert Path(params["figures_dir"]).is_absolute() and recipe in params["figures_dir"]


def test_the_notebook_parameters_name_every_setting_as_the_training_config_does(tmp_path):
    from srlib.recipes import TrainConfig, train_config

    params = profile_parameters("cpu", "paper", data_dir=tmp_path, gan={"steps": 2, "content_loss": "mse"})
    gan = notebook_parameters(params, "04_full_train")
    assert gan["steps"] == 2 and gan["learning_rate"] == PROFILES["cpu"]["gan"]["learning_rate"]
    config = train_config(gan)
    assert (config.content_loss, config.blocks, config.xla) == ("mse", PROFILES["cpu"]["gan"]["blocks"], "auto")
    pretrain = train_config(notebook_parameters(params, "02_pretrain_sr_vgg"))
    assert pretrain.ema == PROFILES["cpu"]["pretrain"]["ema"] and pretrain.xla == "auto"
    assert TrainConfig().xla == "auto" and PROFILES["gpu"]["xla"] == "auto"


def test_bad_profile_recipe_and_parameter_are_clear_errors():
    with pytest.raises(SrlibError, match="unknown profile 'huge'"):
        profile_parameters("huge")
    with pytest.raises(SrlibError, match="unknown recipe 'mine'"):
        profile_parameters("smoke", "mine")
    with pytest.raises(SrlibError, match=r"unknown parameters \['stepz'\]"):
        profile_parameters("smoke", stepz=3)
    with pytest.raises(SrlibError, match="no notebook matches"):
        run_pipeline("smoke", notebooks=["99"])


def test_a_failing_notebook_stops_the_pipeline_naming_it_and_the_cell(tmp_path):
    (tmp_path / "empty_mirror").mkdir()
    with pytest.raises(PipelineError, match=r"01_data_prep.ipynb failed in cell \d+ .*starting `folders = get_data.*DownloadError: the mirror .*has no benchmark/Set5") as error:
        run_pipeline("smoke", "report", data_dir=tmp_path / "data", source_dir=tmp_path / "empty_mirror",
                     out_dir=tmp_path / "out", progress=False)
    executed = tmp_path / "out" / "01_data_prep.ipynb"
    assert str(executed) in str(error.value) and executed.is_file()
    assert not (tmp_path / "out" / "02_pretrain_sr_vgg.ipynb").exists()  # nothing after the failure ran


def _table(figures: Path) -> list[dict]:
    with open(figures / "benchmark_x4.csv") as file:
        return list(csv.DictReader(file))


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_smoke_pipeline_runs_every_notebook_and_writes_the_figures(data_dir, tmp_path):
    # the report recipe, its data copied from a mirror, with chapter 3's exercise 1 (no label smoothing); the paper
    # recipe's chapters 1-6 run on a filled data folder, 4-6 with exercise settings, in tests/test_chapters_4_6.py
    # (chapter 7 takes no recipe: its fine-tune is the paper's mse stage whichever recipe the course follows)
    recipe, chosen = "report", NOTEBOOKS
    trained = [s for s, stage in RECIPES[recipe].items() if stage.train_generator]
    for name in (NOTEBOOKS[0], NOTEBOOKS[-1]):
        assert "recipe" not in papermill.inspect_notebook(str(NOTEBOOK_DIR / f"{name}.ipynb"))
    figures = tmp_path / "figures"
    executed = run_pipeline("smoke", recipe, data_dir=tmp_path / "data", source_dir=data_dir,
                            out_dir=tmp_path / "out", progress=False, figures_dir=str(figures),
                            vgg_weights="none",  # random VGG even where ImageNet weights could be had
                            publish_dir=tmp_path / "course", notebooks=[name[:2] for name in chosen],
                            discriminator={"label_smoothing": 0.0})  # chapter 3, exercise 1
    assert [p.stem for p in executed] == list(chosen)
    published = sorted((tmp_path / "course").glob("*.ipynb"))
    assert [p.stem for p in published] == list(chosen)
    assert all(str(ROOT) not in p.read_text() for p in published)  # readable anywhere: no paths of this checkout
    for path in executed:
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.execution_count is not None for c in code), f"{path.name}: every cell ran"
        assert not [o for c in code for o in c.outputs if o.output_type == "error"]
        text = "".join(o.get("text", "") for c in code for o in c.outputs if o.output_type == "stream")
        assert not re.search(r"^[IWEF]\d{4} |^WARNING:(tensorflow|absl):|oneDNN|cuInit|cuda drivers|XLA service|"
                             r"IProgress", text, re.M), \
            f"{path.name}: TensorFlow's C++ or Python log, or a missing-widget note, in the outputs"
    chapter3, _ = read_executed(executed[2])
    assert "real patches: " in chapter3 and "labelled 1" in chapter3 and "labelled 0.9" not in chapter3  # no smoothing
    assert "mean P(real) after the warm-up" in chapter3
    for name in ["data_samples.png", "degradation_mismatch.png", "samples_sr_vgg.png", "showcase_sr_vgg.png",
                 "discriminator_verdicts.png", "validation_psnr.png", "comparison.png", "loss_summary.md",
                 "benchmark_x4.md"]:
        assert (figures / name).stat().st_size > 0, name
    for stage in trained:
        assert (figures / f"loss_{stage}.png").is_file()
        report = json.loads((figures / f"benchmark_{recipe}_{stage}.json").read_text())
        assert report["results"]["Set5"]["n"] == 5
    rows = {row["method"].removesuffix(" (shipped)").split(" (")[0]: row for row in _table(figures)}
    assert 28.3 < float(rows["bicubic"]["Set5_psnr"]) < 28.5
    shipped = json.loads((ROOT / "srlib" / "weights" / "srresnet_x4.json").read_text())["benchmark"]["Set5"]["psnr"]
    assert float(rows["SRResNet-16"]["Set5_psnr"]) == pytest.approx(shipped, abs=0.005)  # srlib/weights/results, its card's
    for stage in trained:
        row = rows[f"{recipe}/{stage}"]
        assert 5 < float(row["Set5_psnr"]) < 60 and 0 < float(row["Set14_ssim"]) <= 1
    # offline, the VGG stages trained against random features, and the table says so
    assert "RANDOM" in rows[f"{recipe}/{trained[-1]}"]["note"]
    assert "random weights" in (figures / "benchmark_x4.md").read_text()
    # a learning rate changed for a finished stage cannot take effect: the notebook stops, says what to do and
    # leaves the run as it was (its executed chapter 2 is replaced by the stopped one; figures go elsewhere)
    run = tmp_path / "out" / "train"
    config = (run / "sr_vgg" / "config.json").read_text()
    with pytest.raises(PipelineError, match=r"StageChange: stage 'sr_vgg' has done all its 8 steps.*fresh = True"):
        run_pipeline("smoke", recipe, data_dir=tmp_path / "data", out_dir=tmp_path / "out", progress=False,
                     figures_dir=str(tmp_path / "figures_rerun"), vgg_weights="none", notebooks=["02"],
                     pretrain={"learning_rate": 1e-4})
    assert (run / "sr_vgg" / "config.json").read_text() == config
    assert [json.loads(line)["step"] for line in (run / "history.jsonl").read_text().splitlines()
            if json.loads(line)["stage"] == "sr_vgg"][-1] == 8
    assert "StageChange" in (tmp_path / "out" / "02_pretrain_sr_vgg.ipynb").read_text()


def test_published_chapters_store_photographs_as_jpeg_and_plots_as_png():
    import base64
    import io

    import nbformat
    import numpy as np
    from PIL import Image

    from srlib.pipeline import ROOT, publishable

    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, "PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")

    y, x = np.mgrid[:400, :400]
    photo = np.clip(120 + 60 * np.sin(y / 9)[..., None] + np.random.default_rng(0).normal(0, 20, (400, 400, 3)),
                    0, 255).astype(np.uint8)
    rgba = np.dstack([photo, np.full((400, 400), 255, np.uint8)])  # as matplotlib writes figures
    sharp = np.where(np.random.default_rng(1).random((1000, 1000, 1)) < 0.5, 0, 255).repeat(3, -1).astype(np.uint8)
    assert len(base64.b64decode(png(sharp))) > 100_000  # large, but JPEG would not halve it
    figure = {"text/plain": "<Figure>"}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("show()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": png(rgba), **figure},
                               metadata={"image/png": {"width": 400}}),
        nbformat.v4.new_output("display_data", data={"image/png": png(sharp), **figure}),
        nbformat.v4.new_output("stream", text=f"saved to {ROOT}/figures/x.png from {ROOT.parent}/shared/data, "
                                              f"and {ROOT}2/x\n")])])
    published = publishable(nbformat.writes(notebook))
    nbformat.validate(nbformat.reads(published, as_version=4))
    first, second, text = nbformat.reads(published, as_version=4).cells[0].outputs
    assert set(first.data) == {"image/jpeg", "text/plain"} and first.metadata == {"image/jpeg": {"width": 400}}
    assert set(second.data) == {"image/png", "text/plain"} and second.data["image/png"] == png(sharp)
    jpeg = base64.b64decode(first.data["image/jpeg"])
    assert len(jpeg) * 2 < len(base64.b64decode(png(rgba)))
    blocks = lambda a: np.asarray(a, float).reshape(50, 8, 50, 8, 3).mean(axis=(1, 3))  # JPEG drops the grain
    assert np.abs(blocks(Image.open(io.BytesIO(jpeg))) - blocks(photo)).mean() < 1.5  # the same picture
    # a folder beside the checkout whose name starts with the checkout's is beside it, not inside
    assert text.text == f"saved to ../figures/x.png from ../../shared/data, and ../../{ROOT.name}2/x\n"


def test_a_published_progress_bar_shows_its_final_state_as_text():
    import nbformat

    from srlib.pipeline import publishable

    view = {"model_id": "bar", "version_major": 2, "version_minor": 0}
    state = {"bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_left", "IPY_MODEL_fill", "IPY_MODEL_right"]}},
             "left": {"model_name": "HTMLModel", "state": {"value": "report/sr_vgg: 100%"}},
             "fill": {"model_name": "FloatProgressModel", "state": {"value": 1000.0, "max": 1000.0}},
             "right": {"model_name": "HTMLModel", "state": {"value": " 1000/1000 [01:02&lt;00:00,  5.11step/s]"}}}
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("train()", outputs=[
        nbformat.v4.new_output("display_data", data={"application/vnd.jupyter.widget-view+json": view,
                                                     "text/plain": "report/sr_vgg:   0%|          | 0/1000"})])])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state, "version_major": 2,
                                                                                  "version_minor": 0}}
    output = nbformat.reads(publishable(nbformat.writes(notebook)), as_version=4).cells[0].outputs[0]
    assert output.data["text/plain"] == "report/sr_vgg: 100% |██████████| 1000/1000 [01:02<00:00,  5.11step/s]"
