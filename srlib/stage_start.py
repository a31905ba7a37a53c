"""Starting or resuming a stage: from the run folder's last checkpoint, or from the previous stage's networks,
a given generator (``init_generator``) or scratch. ``resume_or_start`` is what ``srlib.training.Trainer`` calls."""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import SrlibError
from .model_card import ModelCard, card_path
from .models import fold_batch_norm, load_generator, load_weights, nonfinite_weight
from .run_folder import RunFolder
from .stage_model import StageModel

log = logging.getLogger(__name__)


def resume_or_start(folder: RunFolder, networks: StageModel, recipe: str, init_generator: Path | None,
                    from_scratch: bool) -> bool:
    """Resume ``networks`` from ``folder`` (True), or start them from the previous stage, ``init_generator`` or
    scratch (False); errors name what is missing and the flag that decides."""
    stage, model = networks.stage, networks.model
    restored = folder.restore(networks.checkpoint, lambda: nonfinite_weight(networks.variables()))
    if restored is not None:
        if not networks.schedules:  # the checkpoint holds the old rate; a resumed run may be given a new one
            networks.set_learning_rate(stage.learning_rate)
        if folder.ema_added:
            networks.reset_ema()
        folder.history.truncate(stage.name, networks.current_step)
        log.info("%s/%s resumes at step %d", recipe, stage.name, networks.current_step)
        if init_generator is not None:
            log.warning("%s resumes its own training; the starting weights %s (init_generator) are not used",
                        stage.name, init_generator)
        return True
    folder.history.truncate(stage.name, 0)
    folder.initialised_from = None  # an interrupted earlier start may have left its own
    if init_generator is not None:
        source = Path(init_generator)
        if not source.is_file():
            raise SrlibError(f"--init-generator {source} does not exist")
    elif stage.previous:
        source = folder.weights("generator", stage.previous)
        if not source.is_file() and not from_scratch:
            raise SrlibError(
                f"stage {stage.name!r} starts from the generator of stage {stage.previous!r}, but "
                f"{source} does not exist: run that stage first in this run folder, give --init-generator "
                "PATH, or pass --from-scratch to start from random weights")
    else:
        source = None
    if source is not None and source.is_file():
        load_initial_generator(folder, networks, source)
        log.info("%s starts from the generator in %s", stage.name, source)
    elif stage.previous:
        log.warning("%s starts from random weights (--from-scratch)", stage.name)
    previous_d = folder.weights("discriminator", stage.previous) if stage.previous else None
    if model.discriminator is not None and previous_d is not None and previous_d.is_file():
        load_weights(model.discriminator, previous_d)
        log.info("%s starts from the discriminator in %s", stage.name, previous_d)
    networks.reset_ema()
    return False


def load_initial_generator(folder: RunFolder, networks: StageModel, source: Path) -> None:
    """Start ``networks``' generator from ``source``, checked against its model card (``load_generator``); a
    generator with batch norm starting one without has its BN folded in. Recorded in ``folder``."""
    config, own = networks.config, networks.model.generator
    card = ModelCard.read(source)
    if card is None:
        raise SrlibError(f"{source} has no model card ({card_path(source).name}) beside it, so its "
                         "architecture is unknown: copy the card along with the weights")
    network = load_generator(source)  # a card that does not match the file is an error naming both
    fold = card.architecture["batch_norm"] and not config.batch_norm
    if {**card.architecture, "batch_norm": config.batch_norm} != own.architecture or (
            config.batch_norm and not card.architecture["batch_norm"]):
        raise SrlibError(f"{source} is a generator with {card.architecture}, but this run builds "
                         f"{own.architecture} (check --blocks/--filters/--scale/--no-batch-norm)")
    if fold:
        own.set_weights(fold_batch_norm(network).get_weights())
        log.info("the batch norm of %s is folded into its convs", source)
    else:
        own.set_weights(network.get_weights())
    folder.initialised_from = {
        "weights": str(source), "batch_norm_folded": bool(fold), "random_vgg": card.random_vgg,
        **{k: v for k, v in (("recipe", card.recipe), ("stage", card.stage), ("steps", card.generator_steps),
                             ("architecture", card.architecture)) if v is not None}}
