"""Every profile's exact settings run: two steps of each stage on the CPU, so a setting no one has run cannot ship broken."""

import dataclasses
from pathlib import Path

import pytest

from srlib.download import ARCHIVES
from srlib.pipeline import NOTEBOOK_STAGES, PROFILES, STAGE_SECTIONS, notebook_parameters, profile_parameters
from srlib.recipes import RECIPES, stage_for, train_config
from srlib.training import train_stage

import tensorflow as tf

# the profiles and the recipes each is for. Smoke runs whole, notebooks and all: the report recipe in test_pipeline.py,
# the paper recipe's chapters 1-6 in test_chapters_4_6.py (its GAN from the shipped SRResNet-16 with the pixel loss,
# chapter 4's exercises; the paper GAN's VGG54 step runs in the cpu and gpu dry runs below)
DRY_RUNS = [(profile, recipe) for profile in PROFILES if profile != "smoke" for recipe in RECIPES
            if not (profile == "gpu" and recipe == "report")]
# gpu-full is the gpu profile's network, XLA and float16 with batch norm and from scratch: its report run trains
# batch norm under them, and gpu/paper trains the paper's stages under them, so gpu-full/paper's steps (the
# costliest dry run, minutes on 2 cores) would run no code those two do not; its settings are still checked
SETTINGS_ONLY = {("gpu-full", "paper")}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_training_set_of_a_profile_can_be_had(profile):
    known = set(ARCHIVES) | {"T91", "BSD200"}  # downloadable archives, or the classic sets of a mirror
    assert set(PROFILES[profile]["training_sets"]) <= known


# what may differ between a dry run left out and the one that trains its recipe's stages in its stead: what its
# profile's own trained run covers (batch norm, from scratch, and so without the warm-up of a fine-tune), and step
# counts and where figures go
TWIN_MAY_DIFFER = {"batch_norm", "validate_every", "figures_dir", "pretrain.init_generator", "pretrain.warmup_steps",
                   *(f"{section}.steps" for section in STAGE_SECTIONS)}


def _flat(profile):
    settings = PROFILES[profile]
    return {**{k: v for k, v in settings.items() if k not in STAGE_SECTIONS},
            **{f"{section}.{k}": v for section in STAGE_SECTIONS for k, v in settings[section].items()}}


@pytest.mark.parametrize("profile, recipe", sorted(SETTINGS_ONLY))
def test_a_dry_run_left_out_runs_nothing_the_trained_ones_do_not(profile, recipe):
    trained = [run for run in DRY_RUNS if run not in SETTINGS_ONLY]
    assert any(p == profile for p, _ in trained), "its profile trains another recipe"
    twins = [p for p, r in trained if r == recipe and set(_flat(p)) == set(_flat(profile)) and
             {k for k in _flat(p) if _flat(p)[k] != _flat(profile)[k]} <= TWIN_MAY_DIFFER]
    assert twins, f"no trained dry run of {recipe} has {profile}'s settings but for {sorted(TWIN_MAY_DIFFER)}"


def _dry_run_parameters(profile, recipe, data_dir, out_dir) -> dict:
    """A profile's parameters for its dry run: two steps of each stage, validation on one image, batches of 2
    and, unless the profile starts from a shipped generator, 2 residual blocks: neither count is a code path of its
    own, and the GPU profiles' float16 is emulated on a CPU, slowly (XLA compiles the 16 blocks of gpu-full in about
    a minute); a stage whose section names its own network (the cpu GAN, from the shipped SRResNet-16) keeps it;
    every other setting is the profile's own."""
    blocks = PROFILES[profile]["blocks"] if PROFILES[profile]["pretrain"]["init_generator"] else 2
    return profile_parameters(profile, recipe, data_dir=data_dir, out_dir=out_dir, val_images=1, batch_size=2,
                              blocks=blocks, **{section: {"steps": 2} for section in STAGE_SECTIONS})


def _stages(recipe):
    """(notebook, profile section, recipe, stage) of each stage a pipeline of ``recipe`` trains."""
    for notebook, part in NOTEBOOK_STAGES.items():
        # chapter 7 fine-tunes with the pixel loss (the paper's mse stage) whichever recipe the course follows
        stage_recipe, stage = ("paper", "mse") if part == "real" else (recipe, stage_for(recipe, part))
        if stage is not None:
            yield notebook, part, stage_recipe, stage


def _trained_by_an_earlier_dry_run() -> set:
    """(profile, recipe, section) of each stage whose code earlier dry runs run: the same step (recipe stage,
    initial generator and settings; its steps, where it writes and when it validates and checkpoints may differ,
    as in two steps it validates and checkpoints at the end either way, and so may its degradation, as the input
    pipeline makes float32 batches of one shape whatever the step computes in) and the same input pipeline (its
    degradation, patch size, scale, batch size and seed), each in some earlier stage. Every dry run trains on T91
    and validates on Set5, so the data are no part of the key. Chapter 7's fine-tune takes no recipe, and in both
    gpu profiles it is gpu/paper's pretraining step (the paper's mse stage from the shipped SRResNet-16) on the
    cpu profile's mixed degradation. Its settings are still checked."""
    steps, pipelines, repeats = set(), set(), set()
    for profile, recipe in DRY_RUNS:
        if (profile, recipe) in SETTINGS_ONLY:
            continue
        params = _dry_run_parameters(profile, recipe, Path("data"), Path("out"))
        for notebook, part, stage_recipe, stage in _stages(recipe):
            given = notebook_parameters(params, notebook)
            config = dataclasses.asdict(train_config(given))
            step = (stage_recipe, stage, given.get("init_generator"), repr(
                {k: v for k, v in config.items() if k not in ("validate_every", "checkpoint_every", "degradation")}))
            pipeline = tuple(config[k] for k in ("degradation", "patch_size", "scale", "batch_size", "seed"))
            if step in steps and pipeline in pipelines:
                repeats.add((profile, recipe, part))
            steps.add(step)
            pipelines.add(pipeline)
    return repeats


TRAINED_ELSEWHERE = _trained_by_an_earlier_dry_run()


def test_the_dry_runs_leave_out_only_chapter_7s_fine_tunes_whose_step_and_data_others_train():
    assert TRAINED_ELSEWHERE == {("cpu", "paper", "real"), ("gpu", "paper", "real"), ("gpu-full", "report", "real")}


@pytest.mark.data
@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("profile, recipe", DRY_RUNS)
def test_a_profile_trains_two_steps_of_each_stage_with_its_exact_settings(data_dir, tmp_path, profile, recipe):
    params = _dry_run_parameters(profile, recipe, data_dir, tmp_path)
    blocks = params["blocks"]
    for notebook, part, stage_recipe, stage in _stages(recipe):
        given = notebook_parameters(params, notebook)
        config = train_config(given)
        assert (config.blocks, config.patch_size, config.xla, config.precision) == (
            PROFILES[profile][part].get("blocks", blocks), PROFILES[profile][part].get("patch_size",
                                                                                      PROFILES[profile]["patch_size"]),
            "auto", PROFILES[profile]["precision"])
        if (profile, recipe) in SETTINGS_ONLY or (profile, recipe, part) in TRAINED_ELSEWHERE:
            continue
        # the profile's data are DIV2K or the 291 images; two steps of the 291 stand in for either
        trainer = train_stage(stage_recipe, stage, [data_dir / "train" / "T91"], given["run_dir"], given["steps"], config,
                              val_data=data_dir / "benchmark" / "Set5", init_generator=given.get("init_generator"))
        assert trainer.current_step == 2
        on_gpu = bool(tf.config.list_physical_devices("GPU"))
        assert trainer.networks.xla is (on_gpu or PROFILES[profile]["precision"] == "mixed_float16" or  # the GPU's step
                                        (trainer.precision == "float32" and trainer.networks.stage.uses_discriminator))
