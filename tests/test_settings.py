"""Settings are checked where they are made (srlib.settings): the command line, TrainConfig, the profiles and the
notebooks' parameters each refuse a bad value in one line naming the setting, its value and what is allowed."""

import math
from pathlib import Path

import papermill
import pytest

from srlib import cli
from srlib.errors import SrlibError
from srlib.pipeline import PROFILES, profile_parameters
from srlib.recipes import TrainConfig, train_config
from srlib.settings import SETTINGS, SettingError, check, check_parameters

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"

# (flag and value, what the one-line error says); each was accepted before, or ended in a Keras traceback
BAD_FLAGS = [
    (["--learning-rate", "-1"], "--learning-rate -1.0: must be a finite number above 0"),
    (["--learning-rate", "nan"], "--learning-rate nan: must be a finite number above 0"),
    (["--blocks", "0"], "--blocks 0: must be an integer from 1 to 128"),
    (["--filters", "0"], "--filters 0: must be an integer from 1 to 1024"),
    (["--filters", "4096"], "--filters 4096: must be an integer from 1 to 1024"),
    (["--label-flip", "2"], "--label-flip 2.0: must be a number in [0, 1]"),
    (["--label-smoothing", "5"], "--label-smoothing 5.0: must be a number in [0, 1]"),
    (["--tv-weight", "-0.1"], "--tv-weight -0.1: must be a finite number of at least 0"),
    (["--adversarial-weight", "inf"], "--adversarial-weight inf: must be a finite number of at least 0"),
    (["--ema", "1"], "--ema 1.0: must be a number in (0, 1)"),
    (["--patch-size", "30"], "--patch-size 30: must be a multiple of scale (4), e.g. 28"),
    (["--val-images", "0"], "--val-images 0: must be an integer of at least 1"),
    (["--seed", "-1"], "--seed -1: must be an integer of at least 0"),
]


@pytest.mark.parametrize("flag, said", BAD_FLAGS, ids=[" ".join(f) for f, _ in BAD_FLAGS])
def test_a_bad_training_flag_is_one_line_naming_it_and_nothing_is_written(flag, said, tmp_path, capsys):
    run_dir = tmp_path / "run"
    code = cli.main(["train", "--recipe", "paper", "--stage", "mse", "--data", str(tmp_path), "--steps", "10",
                     "--run-dir", str(run_dir), "--vgg-weights", "none", *flag])
    err = capsys.readouterr().err
    assert code == 2 and err == f"error: {said}\n"
    assert not run_dir.exists()  # refused before the run folder is made


@pytest.mark.parametrize("params, said", [
    ({"scale": "four"}, "scale = 'four': must be one of 2, 4, 8"),
    ({"scale": 4.0}, "scale = 4.0: must be one of 2, 4, 8"),
    ({"scale": 3}, "scale = 3: must be one of 2, 4, 8"),
    ({"blocks": True}, "blocks = True: must be an integer from 1 to 128"),
    ({"batch_norm": "yes"}, "batch_norm = 'yes': must be True or False"),
    ({"learning_rate": math.inf}, "learning_rate = inf: must be a finite number above 0"),
    ({"learning_rate": "1e-4"}, "learning_rate = '1e-4': must be a finite number above 0"),
    ({"content_loss": "vgg55"}, "content_loss = 'vgg55': must be one of 'mse', 'vgg22', 'vgg54'"),
    ({"precision": "float16"}, "precision = 'float16': must be one of 'float32', 'bfloat16', 'mixed_float16'"),
    ({"ema": 0}, "ema = 0: must be a number in (0, 1)"),
    ({"xla": "on"}, "xla = 'on': must be True, False or 'auto'"),
    ({"batch_size": 0}, "batch_size = 0: must be an integer of at least 1"),
    ({"checkpoint_every": 2.5}, "checkpoint_every = 2.5: must be an integer of at least 1"),
])
def test_notebook_parameters_make_a_train_config_only_when_each_is_allowed(params, said):
    with pytest.raises(SettingError) as error:
        train_config({"patch_size": 64, **params})
    assert str(error.value).startswith(said)


def test_allowed_values_pass_unchanged():
    config = TrainConfig(learning_rate=1e-4, ema=0.999, label_smoothing=0.0, label_flip=1.0, tv_weight=0.0,
                         content_loss="vgg54", vgg_weights="none", scale=2, patch_size=34)
    assert (config.learning_rate, config.vgg_weights, config.patch_size) == (1e-4, None, 34)
    assert [TrainConfig(xla=value).xla for value in (True, False, "auto")] == [True, False, "auto"]
    import numpy as np
    assert check("blocks", np.int64(16)) == 16  # numpy integers (e.g. from a sweep) are integers


def test_every_notebook_parameter_has_a_check():
    declared = set().union(*(papermill.inspect_notebook(str(path)) for path in NOTEBOOK_DIR.glob("0*.ipynb")))
    assert declared <= set(SETTINGS), sorted(declared - set(SETTINGS))


def test_a_bare_string_where_a_list_belongs_names_the_fix():
    with pytest.raises(SettingError, match=r"benchmark_sets = 'Set5': must be a list of names, e.g. \['Set5'\]"):
        check_parameters({"benchmark_sets": "Set5", "Path": Path})  # other names (imports) are left alone


@pytest.mark.parametrize("path", sorted(NOTEBOOK_DIR.glob("0*.ipynb")), ids=lambda path: path.stem)
def test_every_chapter_checks_its_parameters_before_anything_but_imports(path):
    import ast

    import nbformat

    cells = [c.source for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])]
    statements = [statement for source in cells for statement in ast.parse(source).body]
    first = next((i for i, s in enumerate(statements) if ast.unparse(s) == "check_parameters(globals())"), None)
    assert first is not None, f"{path.name} never calls check_parameters(globals())"
    assert all(isinstance(s, (ast.Import, ast.ImportFrom)) for s in statements[:first])


@pytest.mark.parametrize("override, said", [
    ({"gan": {"steps": 0}}, "profile smoke, section gan: steps = 0: must be an integer of at least 1"),
    ({"pretrain": {"learning_rate": -1}}, "profile smoke, section pretrain: learning_rate = -1: must be a finite"),
    ({"scale": "four"}, "profile smoke: scale = 'four': must be one of 2, 4, 8"),
    ({"patch_size": 30}, "profile smoke: patch_size = 30: must be a multiple of scale (4)"),
])
def test_a_profile_override_is_checked_before_any_notebook_runs(override, said):
    with pytest.raises(SrlibError) as error:
        profile_parameters("smoke", "report", **override)
    assert str(error.value).startswith(said)


def test_every_profile_passes_its_own_checks():
    for profile in PROFILES:
        for recipe in ("report", "paper"):
            assert profile_parameters(profile, recipe)["profile"] == profile


@pytest.mark.data
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
# (papermill -p benchmark_sets Set5, a string, made an empty table: check_parameters refuses it, and every chapter
# calls it first: test_a_bare_string_where_a_list_belongs_names_the_fix and
# test_every_chapter_checks_its_parameters_before_anything_but_imports)
@pytest.mark.parametrize("sets, said", [
    (["Set5", "Set15"], "benchmark set 'Set15' not found in"),  # it was dropped from the table in silence
])
def test_chapter_6_refuses_a_set_it_cannot_measure(sets, said, data_dir, tmp_path):
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(NOTEBOOK_DIR / "06_benchmarks.ipynb"), str(tmp_path / "06.ipynb"),
                                   parameters={"data_dir": str(Path(data_dir).resolve()), "benchmark_sets": sets,
                                               "run_dir": str(tmp_path / "run"), "figures_dir": str(tmp_path)},
                                   kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False)
    assert said in str(error.value)
    assert not list(tmp_path.glob("benchmark_*"))  # no table of the sets it could find


def test_a_stage_summary_names_the_losses_of_this_run():
    from srlib.recipes import get_stage

    full = get_stage("report", "full")
    assert full.summary == ("generator + discriminator: VGG16 block5_conv3 content + 0.001 total variation "
                            "+ 0.001 adversarial")
    assert TrainConfig(content_loss="mse", tv_weight=0.0).stage(full).summary.startswith(
        "generator + discriminator: pixel MSE content + 0.001 adversarial")
    assert get_stage("report", "discriminator").summary.startswith("generator frozen")
