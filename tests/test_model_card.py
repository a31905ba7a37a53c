"""The model card beside each .weights.h5: malformed cards, missing cards, cards that lie about the weights,
and the random-VGG flag carried into later stages."""

import json
import re
from pathlib import Path

import pytest

from srlib.errors import SrlibError
from srlib.model_card import ModelCard, card_path
from srlib.models import generator, load_generator, load_weights, save_generator
from srlib.training import Trainer, TrainConfig
from tiny_runs import TINY, batches, write_train_folder


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_train_folder(tmp_path_factory.mktemp("train"))


@pytest.fixture
def bn_weights(tmp_path):
    """A batch-norm generator's weights (x2, 1 block, 8 filters) with an honest card."""
    path = tmp_path / "bn.weights.h5"
    save_generator(generator(2, 1, 8, batch_norm=True), path, ModelCard(architecture={}, recipe="paper", stage="mse"))
    return path


def _lie(path, **architecture):
    card = json.loads(card_path(path).read_text())
    card["architecture"].update(architecture)
    card_path(path).write_text(json.dumps(card))


def test_a_card_round_trips_and_keeps_what_it_does_not_know(tmp_path):
    path = tmp_path / "g.weights.h5"
    card = ModelCard(architecture={"scale": 4, "blocks": 16, "filters": 64, "batch_norm": False}, steps=7,
                     vgg_weights="imagenet", extra={"note": "kept"})
    assert card.write(path) == tmp_path / "g.json"
    assert ModelCard.read(path) == card
    assert ModelCard.read(tmp_path / "none.weights.h5") is None


MALFORMED = [
    ("[1, 2]", "is not a model card: it holds [1, 2], not a JSON object"),
    ('{"steps": 3}', "has no architecture"),
    ('{"architecture": [4, 16]}', "architecture should be an object"),
    ('{"architecture": {"scale": "4", "blocks": 16, "filters": 64}}', "architecture scale should be an integer in [2, 4, 8], not '4'"),
    ('{"architecture": {"scale": 4, "blocks": 20000, "filters": 64}}', "architecture blocks should be an integer in 1..128, not 20000"),
    ('{"architecture": {"scale": 4, "blocks": 16, "filters": 64.0}}', "architecture filters should be an integer"),
    ('{"architecture": {"scale": 4, "blocks": 16, "filters": 64, "batch_norm": "no"}}', "batch_norm should be true or false"),
    ('{"architecture": {"scale": 4, "blocks": 16, "filters": 64}, "steps": "5"}', "steps should be an integer, not '5'"),
    ('{"architecture": {"scale": 4, "blocks": 16, "filters": 64}, "initialised_from": "x"}', "initialised_from should be an object"),
    ('{"architecture": {"scale": 4, "blocks": 16', "is not valid JSON"),
    ("[" * 100_000, "nested too deeply"),
]


@pytest.mark.parametrize("text, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_a_malformed_card_is_an_error_naming_the_file(bn_weights, text, message):
    card_path(bn_weights).write_text(text)
    for read in (ModelCard.read, load_generator):
        with pytest.raises(SrlibError, match=re.escape(str(card_path(bn_weights))) + ".*" + re.escape(message)) as error:
            read(bn_weights)
        assert "\n" not in str(error.value)


def test_a_card_that_lies_about_a_huge_network_fails_before_building_it(bn_weights, monkeypatch):
    import srlib.models as models

    _lie(bn_weights, blocks=128, filters=1024)  # valid numbers; building it would take gigabytes

    def no_build(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(models, "generator", no_build)
    with pytest.raises(SrlibError, match="does not fit this generator: its card .*bn.json says .*'blocks': 128"):
        load_generator(bn_weights)


def test_batch_norm_weights_without_their_card_are_refused(bn_weights, tmp_path):
    card_path(bn_weights).unlink()
    with pytest.raises(SrlibError, match=re.escape(f"{tmp_path / 'bn.json'} is missing")):
        load_generator(bn_weights)
    config = TrainConfig(**{**TINY, "batch_norm": False})
    with pytest.raises(SrlibError, match=re.escape(f"{bn_weights} has no model card (bn.json) beside it")):
        Trainer("paper", "mse", tmp_path / "run", config, init_generator=bn_weights)
    Trainer("paper", "mse", tmp_path / "run", config).close()  # the run folder was released


@pytest.mark.parametrize("lie", [{"batch_norm": False}, {"blocks": 2}, {"filters": 16}])
def test_a_card_that_lies_about_its_weights_is_an_error_naming_them(bn_weights, tmp_path, lie):
    _lie(bn_weights, **lie)
    with pytest.raises(SrlibError, match=re.escape(f"{bn_weights} does not fit this generator: its card")):
        load_generator(bn_weights)
    for run in ({**TINY, **lie}, TINY):  # a run built as the card says, and one built as the weights really are
        with pytest.raises(SrlibError, match=re.escape(f"{bn_weights} does not fit this generator: its card")):
            Trainer("paper", "mse", tmp_path / "run", TrainConfig(**run), init_generator=bn_weights)


@pytest.mark.parametrize("stored, built", [(dict(batch_norm=True), dict(batch_norm=False)),
                                           (dict(blocks=1), dict(blocks=2)),
                                           (dict(blocks=2), dict(blocks=6, batch_norm=False))])  # as many arrays
def test_load_weights_refuses_the_weights_of_another_network(tmp_path, stored, built):
    path = tmp_path / "g.weights.h5"
    generator(**{"scale": 2, "blocks": 1, "filters": 8, **stored}).save_weights(path)
    model = generator(**{"scale": 2, "blocks": 1, "filters": 8, **built})
    with pytest.raises(SrlibError, match=re.escape(str(path)) + " (holds .* weights of another network|does not fit)"):
        load_weights(model, path)


def test_the_random_vgg_flag_survives_into_later_stages(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=100)
    Trainer("report", "sr_vgg", tmp_path / "report", config).fit(batches(train_folder, config), steps=1)
    source = tmp_path / "report" / "generator.weights.h5"
    assert ModelCard.read(source).vgg_weights == "random"
    gan = TrainConfig(**TINY, checkpoint_every=100, content_loss="mse")  # no VGG of its own
    Trainer("paper", "gan", tmp_path / "gan", gan, init_generator=source).fit(batches(train_folder, gan), steps=1)
    card = ModelCard.read(tmp_path / "gan" / "generator.weights.h5")
    assert card.vgg_weights is None and card.initialised_from["random_vgg"] is True
    assert card.random_vgg and "RANDOM VGG" in card.provenance()


def test_random_vgg_comes_from_the_card_or_what_it_started_from():
    architecture = {"scale": 4, "blocks": 16, "filters": 64, "batch_norm": False}
    assert ModelCard(architecture, vgg_weights="random").random_vgg
    assert ModelCard(architecture, initialised_from={"random_vgg": True}).random_vgg
    assert not ModelCard(architecture, vgg_weights="imagenet", initialised_from={"random_vgg": False}).random_vgg


def test_generator_steps_count_the_stages_that_trained_it():
    from srlib.model_card import ModelCard

    architecture = {"scale": 4, "blocks": 1, "filters": 4, "batch_norm": True}
    warm_up = ModelCard(architecture, recipe="report", stage="discriminator", steps=100,
                        initialised_from={"recipe": "report", "stage": "sr_vgg", "steps": 1000})
    assert warm_up.generator_steps == 1000  # the generator was frozen for those 100 steps
    gan = ModelCard(architecture, recipe="report", stage="full", steps=60, initialised_from={"steps": 1000})
    assert gan.generator_steps == 1060 and gan.provenance() == "report/full, 1000 + 60 steps"


def test_a_card_left_beside_other_weights_is_refused_by_every_loader(tmp_path, monkeypatch, capsys):
    """A save killed between the weights and their card leaves the step-5 card beside the step-10 weights."""
    import dataclasses
    import importlib.util

    import numpy as np
    from PIL import Image

    from srlib.benchmark import model_upscaler
    from srlib.cli import main
    from srlib.stage_plan import plan_stage
    from srlib.upscale import upscale

    run = tmp_path / "run"
    path = run / "mse" / "generator.weights.h5"  # as stage mse exported it
    path.parent.mkdir(parents=True)
    model = generator(2, 1, 8, batch_norm=True)
    card = ModelCard(architecture={}, recipe="paper", stage="mse", steps=5)
    save_generator(model, path, card)

    def killed(self, weights_path):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(ModelCard, "write", killed)
        with pytest.raises(KeyboardInterrupt):
            save_generator(model, path, dataclasses.replace(card, steps=10))
    assert json.loads(card_path(path).read_text())["steps"] == 5
    both = (re.escape(f"{card_path(path)} does not describe {path}: the card says steps 5") +
            ".*but the weights were saved with steps 10")
    gan = TrainConfig(**TINY, content_loss="mse")
    loaders = {"ModelCard.read": lambda: ModelCard.read(path), "load_generator": lambda: load_generator(path),
               "load_weights": lambda: load_weights(generator(2, 1, 8, batch_norm=True), path),
               "upscale": lambda: upscale(np.zeros((8, 8, 3), np.uint8), path),
               "benchmark": lambda: model_upscaler(path, 2),
               "init_generator": lambda: Trainer("paper", "mse", tmp_path / "other", TrainConfig(**TINY),
                                                 init_generator=path),
               "previous stage": lambda: Trainer("paper", "gan", run, gan),
               "stage_plan": lambda: plan_stage("paper", "gan", run, gan, steps=2)}
    for name, load in loaders.items():
        with pytest.raises(SrlibError, match=both) as error:
            load()
        assert "\n" not in str(error.value), name
    image = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(image)
    assert main(["upscale", str(image), "--weights", str(path), "-o", str(tmp_path / "out")]) == 2
    spec = importlib.util.spec_from_file_location("ship_model", Path(__file__).parent.parent / "tools" / "ship_model.py")
    ship_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship_model)
    assert ship_model.main([str(path), "--data", str(tmp_path)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 2 and all(line.startswith("error: ") and re.search(both, line) for line in errors)
    assert not any((tmp_path / "out").glob("*.png"))

    save_generator(model, path, dataclasses.replace(card, steps=10))  # the next export: a matching pair again
    assert ModelCard.read(path).steps == 10 and load_generator(path).architecture == model.architecture
    model.save_weights(path)  # a file without the stored card (saved before it existed, or by Keras) loads as before
    assert ModelCard.read(path).steps == 10 and load_generator(path).architecture == model.architecture


def test_a_card_for_a_file_without_generator_layers_fails_before_building(tmp_path, monkeypatch):
    import keras

    import srlib.models as models

    path = tmp_path / "d.weights.h5"  # e.g. a discriminator's weights, 10 numbers
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]).save_weights(path)
    ModelCard(architecture={"scale": 4, "blocks": 128, "filters": 1024, "batch_norm": False}).write(path)

    def no_build(*args, **kwargs):
        raise AssertionError("the network was built")

    monkeypatch.setattr(models, "generator", no_build)
    with pytest.raises(SrlibError, match=re.escape(f"{path} holds no generator saved by srlib")):
        load_generator(path)
