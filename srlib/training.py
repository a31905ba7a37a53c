"""Training one stage of a recipe in a run folder: ``train_stage`` and the ``Trainer`` behind it.

The ``Trainer`` builds the stage's networks (``srlib.models``) into an ``SRGAN`` model whose ``train_step``
is the paper's (``srlib.srgan``), gives it its optimizers, resumes it from the run folder
(``srlib.run_folder``) or starts it from the previous stage's networks, and runs ``fit`` with the callbacks
of ``srlib.callbacks``: history, validation and samples, checkpoints, TensorBoard, progress.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .benchmark import evaluate_image
from .callbacks import (Checkpoints, HistoryLogger, ProgressBar, StopOnSignal, TensorBoardLogger, TrainingError,
                        Validation, where_a_rerun_resumes)
from .data import PatchSource, training_dataset, validation_images
from .degradation import bicubic_downscale, bicubic_upscale
from .errors import DataError, SrlibError, TrainingStopped
from .images import write_image
from .model_card import ModelCard, card_path, stage_weights
from .models import (discriminator, fold_batch_norm, generator, load_generator, load_weights, nonfinite_weight,
                     resolve_vgg_weights, save_generator, save_weights, upscale_with, vgg_feature_extractor)
from .precision import effective as effective_precision, policy as precision_policy
from .recipes import RECIPES, TrainConfig, get_stage, stage_names
from .run_folder import RunFolder
from .settings import check as check_setting
from .srgan import SRGAN

__all__ = ["Trainer", "TrainConfig", "TrainingError", "TrainingStopped", "train_stage", "stage_generators", "RECIPES",
           "stage_names"]

log = logging.getLogger(__name__)


class TenfoldDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The SRGAN paper's schedule: ``rate`` until step ``boundary``, then ``rate / 10``.

    ``boundary`` is a variable because it depends on the stage's step count, which ``fit`` learns.
    """

    def __init__(self, rate: float):
        self.rate = rate
        self.boundary = tf.Variable(np.iinfo(np.int64).max, dtype=tf.int64, trainable=False, name="decay_boundary")

    def __call__(self, step):
        return tf.where(tf.cast(step, tf.int64) >= self.boundary, self.rate / 10, self.rate)

    def get_config(self):
        return {"rate": self.rate}


def _strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


class Trainer:
    """One stage of a recipe in a run folder; ``fit`` trains it from where it stopped.

    ``init_generator`` starts a new stage from these weights instead of the previous stage's;
    ``from_scratch`` lets a later stage start from random weights; ``restart`` moves an existing stage's
    files aside and starts it again. The run folder is locked until ``close`` (``fit`` ends with it).
    """

    def __init__(self, recipe: str, stage: str, run_dir: str | os.PathLike, config: TrainConfig | None = None,
                 strategy: tf.distribute.Strategy | None = None, validation: list | None = None,
                 init_generator: str | os.PathLike | None = None, from_scratch: bool = False,
                 restart: bool = False, training_data: dict | None = None):
        self.recipe = recipe
        self.config = config or TrainConfig()
        self.stage = self.config.stage(get_stage(recipe, stage))
        self.validation = validation or []
        self.training_data = training_data  # recorded in the model card
        self.strategy = strategy or _strategy()
        self.folder = RunFolder(run_dir, self.stage.name)
        self.closed = False
        try:
            if restart:
                self.folder.restart()
            self.folder.check_not_lost()
            if self.stage.vgg and self.config.vgg_weights == "auto":
                self.config = dataclasses.replace(
                    self.config, vgg_weights=resolve_vgg_weights("auto", self.stage.vgg[0]))
            self.folder.check_config(self.config)
            self.model = self._build()
            resumed = self._resume_or_start(init_generator, from_scratch)
            self.tensorboard = TensorBoardLogger(self.folder.tensorboard_dir, self.current_step if resumed else None)
        except BaseException:
            self.folder.close()
            raise

    # --- networks and optimizers ------------------------------------------------------------------
    def _build(self) -> SRGAN:
        c, s = self.config, self.stage
        self.precision = effective_precision(c.precision)  # bfloat16 falls back to float32 without the hardware
        keras.utils.set_random_seed(c.seed)  # the same initial weights (and random VGG) for the same seed
        self._schedules = []
        with self.strategy.scope(), precision_policy(self.precision):
            model = SRGAN(s, generator(c.scale, c.blocks, c.filters, c.batch_norm),
                          discriminator(c.patch_size) if s.uses_discriminator else None,
                          vgg_feature_extractor(*s.vgg, c.vgg_weights) if s.vgg else None, seed=c.seed)
            g_optimizer = self._optimizer(ema=True) if s.train_generator else None
            d_optimizer = self._optimizer(ema=False) if s.train_discriminator else None
            for optimizer, network in ((g_optimizer, model.generator), (d_optimizer, model.discriminator)):
                if optimizer is not None:
                    optimizer.build(network.trainable_variables)
            model.compile(g_optimizer, d_optimizer, jit_compile=c.xla)
        tracked = {"step": model.step, "generator": model.generator, "discriminator": model.discriminator,
                   "g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
        self.checkpoint = tf.train.Checkpoint(**{k: v for k, v in tracked.items() if v is not None})
        return model

    def _optimizer(self, ema: bool):
        """Adam (beta_1 0.9, as in the paper) at the stage's rate.

        The generator's optimizer always keeps a moving average of the weights, so that its checkpoints have
        one layout and an EMA can be switched on when a run resumes; ``config.ema`` sets its decay and
        whether validation and exports use it.
        """
        rate = self.stage.learning_rate
        if self.stage.decay_at:
            rate = TenfoldDecay(rate)
            self._schedules.append(rate)
        optimizer = keras.optimizers.Adam(rate, beta_1=0.9, use_ema=ema, ema_momentum=self.config.ema or 0.999)
        return keras.optimizers.LossScaleOptimizer(optimizer) if self.precision == "mixed_float16" else optimizer

    @property
    def generator(self) -> keras.Model:
        return self.model.generator

    @property
    def discriminator(self) -> keras.Model | None:
        return self.model.discriminator

    @property
    def features(self) -> keras.Model | None:
        return self.model.features

    @property
    def current_step(self) -> int:
        """Steps this stage has done."""
        return int(self.model.step.numpy())

    def learning_rate(self) -> float:
        """The rate the next step uses."""
        optimizer = self.model.g_optimizer or self.model.d_optimizer
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def _ema(self) -> list | None:
        """The optimizer's moving averages of the generator's trainable weights, or None without an EMA."""
        optimizer = getattr(self.model.g_optimizer, "inner_optimizer", self.model.g_optimizer)
        # Keras keeps them in this attribute (its SwapEMAWeights callback reads it too)
        return optimizer._model_variables_moving_average if optimizer is not None and self.config.ema else None

    def _reset_ema(self) -> None:
        """Start the average at the generator's current weights."""
        for average, variable in zip(self._ema() or [], self.generator.trainable_variables):
            average.assign(variable)

    @contextlib.contextmanager
    def inference_weights(self):
        """Within the block the generator holds the weights to evaluate and export: the EMA when there is one."""
        averages = self._ema()
        if averages is None:
            yield self.generator
            return
        variables = self.generator.trainable_variables
        trained = [variable.numpy() for variable in variables]
        try:
            for variable, average in zip(variables, averages):
                variable.assign(average)
            yield self.generator
        finally:
            for variable, value in zip(variables, trained):
                variable.assign(value)

    # --- resume, or start from the previous stage ---------------------------------------------------
    def _resume_or_start(self, init_generator, from_scratch: bool) -> bool:
        """Resume from the run folder (True), or start from the previous stage, ``init_generator`` or scratch."""
        restored = self.folder.restore(self.checkpoint, lambda: nonfinite_weight(self._variables()))
        if restored is not None:
            if not self.stage.decay_at:  # the checkpoint holds the old rate; a resumed run may be given a new one
                for optimizer in (self.model.g_optimizer, self.model.d_optimizer):
                    if optimizer is not None:
                        optimizer.learning_rate = self.stage.learning_rate
            if self.folder.ema_added:
                self._reset_ema()
            self.folder.history.truncate(self.stage.name, self.current_step)
            log.info("%s/%s resumes at step %d", self.recipe, self.stage.name, self.current_step)
            if init_generator is not None:
                log.warning("%s resumes its own training; the starting weights %s (init_generator) are not used",
                            self.stage.name, init_generator)
            return True
        self.folder.history.truncate(self.stage.name, 0)
        self.folder.initialised_from = None  # an interrupted earlier start may have left its own
        if init_generator is not None:
            source = Path(init_generator)
            if not source.is_file():
                raise SrlibError(f"--init-generator {source} does not exist")
        elif self.stage.previous:
            source = self.folder.weights("generator", self.stage.previous)
            if not source.is_file() and not from_scratch:
                raise SrlibError(
                    f"stage {self.stage.name!r} starts from the generator of stage {self.stage.previous!r}, but "
                    f"{source} does not exist: run that stage first in this run folder, give --init-generator "
                    "PATH, or pass --from-scratch to start from random weights")
        else:
            source = None
        if source is not None and source.is_file():
            self._load_initial_generator(source)
            log.info("%s starts from the generator in %s", self.stage.name, source)
        elif self.stage.previous:
            log.warning("%s starts from random weights (--from-scratch)", self.stage.name)
        previous_d = self.folder.weights("discriminator", self.stage.previous) if self.stage.previous else None
        if self.discriminator is not None and previous_d is not None and previous_d.is_file():
            load_weights(self.discriminator, previous_d)
            log.info("%s starts from the discriminator in %s", self.stage.name, previous_d)
        self._reset_ema()
        return False

    def _load_initial_generator(self, source: Path) -> None:
        """Start from ``source``, checked against its model card (``load_generator``); a generator with batch
        norm starting one without has its BN folded in."""
        card = ModelCard.read(source)
        if card is None:
            raise SrlibError(f"{source} has no model card ({card_path(source).name}) beside it, so its "
                             "architecture is unknown: copy the card along with the weights")
        network = load_generator(source)  # a card that does not match the file is an error naming both
        fold = card.architecture["batch_norm"] and not self.config.batch_norm
        if {**card.architecture, "batch_norm": self.config.batch_norm} != self.generator.architecture or (
                self.config.batch_norm and not card.architecture["batch_norm"]):
            raise SrlibError(f"{source} is a generator with {card.architecture}, but this run builds "
                             f"{self.generator.architecture} (check --blocks/--filters/--scale/--no-batch-norm)")
        if fold:
            self.generator.set_weights(fold_batch_norm(network).get_weights())
            log.info("the batch norm of %s is folded into its convs", source)
        else:
            self.generator.set_weights(network.get_weights())
        self.folder.initialised_from = {
            "weights": str(source), "batch_norm_folded": bool(fold), "random_vgg": card.random_vgg,
            **{k: v for k, v in (("recipe", card.recipe), ("stage", card.stage), ("steps", card.generator_steps),
                                 ("architecture", card.architecture)) if v is not None}}

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, dataset_for, steps: int) -> dict:
        """Train until the stage has done ``steps`` steps; ``dataset_for(start_step)`` gives the batches.

        Returns the last history row. Raises ``TrainingError`` on a non-finite loss, and ``TrainingStopped`` after
        saving the current step when SIGINT or SIGTERM arrives. Releases the run folder.
        """
        if self.closed:
            raise SrlibError("this Trainer has finished and released its run folder: make a new one to train on")
        try:
            return self._fit(dataset_for, steps)
        finally:
            self.close()

    def _fit(self, dataset_for, steps: int) -> dict:
        check_setting("steps", steps)
        for schedule in self._schedules:
            schedule.boundary.assign(self.folder.decay_step(int(steps * self.stage.decay_at)))
        start = self.current_step
        if start < steps:
            data = self.training_data and {k: v for k, v in self.training_data.items() if k != "folders"}
            values = {"ema": self.config.ema, "training_data": data}  # folders: the same images may move
            self.folder.record_provenance(start + 1, values, {**values, "ema": None} if self.folder.ema_added else None)
        if start >= steps:
            log.info("%s/%s already has %d of %d steps", self.recipe, self.stage.name, start, steps)
            self.export()
            return {}
        dataset = dataset_for(start)
        batch = dataset.element_spec[0].shape[0]
        if batch is not None and batch != self.config.batch_size:
            raise SrlibError(f"the data come in batches of {batch}, but the run's batch size is {self.config.batch_size}")
        c = self.config
        history = HistoryLogger(self)
        progress = ProgressBar(f"{self.recipe}/{self.stage.name}", start, steps, c.progress)
        stop = StopOnSignal()
        callbacks = [history, Validation(self, c.validate_every, steps), Checkpoints(self, c.checkpoint_every, steps),
                     progress, stop]
        try:
            with stop:
                self.model.fit(dataset, epochs=1, steps_per_epoch=steps - start, shuffle=False, verbose=0,
                               callbacks=callbacks)
            # stopped by a signal: the Checkpoints callback may have saved the step already
            if stop.signum is not None and self.folder.latest_step() != self.current_step:
                self.save()
        except tf.errors.OpError as error:  # e.g. a DataError raised inside the input pipeline
            if "DataError" in error.message:
                raise DataError(error.message.split("DataError:")[-1].strip().splitlines()[0]) from None
            raise
        except OSError as error:  # a full disk (srlib.files names the file): say where the next run starts
            saved = self.folder.latest_step()
            raise SrlibError(f"training stopped at step {self.current_step}: {error}; " + (
                f"the last saved step is {saved} (ckpt-{saved}): rerun the same command to continue from it"
                if saved is not None else "no step was saved yet")) from None
        finally:
            progress.bar.close()
        if stop.signum is not None:
            raise TrainingStopped(self.current_step, stop.signum)
        return history.last

    def close(self) -> None:
        """Release the run folder (and flush the TensorBoard events)."""
        self.closed = True
        try:
            self.tensorboard.close()
        finally:
            self.folder.close()

    def on_row(self, row: dict, sample: np.ndarray | None = None) -> None:
        """A history row (and sample image) was made: show it in TensorBoard."""
        self.tensorboard.write(row, sample)

    # --- validation, checkpoints, exports -----------------------------------------------------------
    def validate(self, step: int) -> tuple[dict, np.ndarray]:
        """Mean PSNR / SSIM on the validation images (the benchmark protocol), appended to the history, and
        the sample image (bicubic | SR | HR of the first), saved as ``samples/step_N.png``."""
        scale = self.config.scale
        with self.inference_weights() as network:
            upscale = upscale_with(self._float32(network))
            results = [evaluate_image(hr, upscale, scale) for _, hr in self.validation]
        row = {"stage": self.stage.name, "step": step, "val_psnr": round(float(np.mean([r[0] for r in results])), 4),
               "val_ssim": round(float(np.mean([r[1] for r in results])), 5)}
        self.folder.history.append(row)
        log.info("step %d: validation PSNR %.2f dB, SSIM %.4f", step, row["val_psnr"], row["val_ssim"])
        sr = results[0][2]
        hr = self.validation[0][1][: sr.shape[0], : sr.shape[1]]
        sample = np.concatenate([bicubic_upscale(bicubic_downscale(hr, scale), scale), sr, hr], axis=1)
        write_image(self.folder.samples_dir / f"step_{step:07d}.png", sample)
        return row, sample

    def _float32(self, network: keras.Model) -> keras.Model:
        """``network``, or under a mixed precision a float32 copy of it: validation measures the weights, as the
        benchmark does, whatever the training computes in."""
        if self.precision == "float32":
            return network
        if getattr(self, "_validation_generator", None) is None:
            with precision_policy("float32"):
                self._validation_generator = generator(**network.architecture)
        self._validation_generator.set_weights(network.get_weights())
        return self._validation_generator

    def save(self) -> None:
        """Checkpoint, then export this stage's networks (and the run's latest generator). Weights or optimizer
        state holding NaN or Inf are never saved: ``TrainingError``, naming the last checkpoint with finite ones."""
        self._refuse_nonfinite(self._variables())
        self.folder.save(self.checkpoint, self.current_step)
        self.export(checked=True)

    def _variables(self, optimizers: bool = True) -> list:
        """The variables a checkpoint holds: the networks' weights, and the optimizers' state (``optimizers``)."""
        networks = [n for n in (self.generator, self.discriminator) if n is not None]
        variables = [v for network in networks for v in network.weights]
        if optimizers:
            variables += [v for o in (self.model.g_optimizer, self.model.d_optimizer) if o is not None for v in o.variables]
        return variables

    def _refuse_nonfinite(self, variables) -> None:
        """``TrainingError`` when ``variables`` hold NaN or Inf."""
        bad = nonfinite_weight(variables)
        if bad is not None:
            raise TrainingError(
                f"the weights became NaN or Inf at step {self.current_step} of stage {self.recipe}/{self.stage.name} "
                f"({bad}): nothing from this step was saved; {where_a_rerun_resumes(self.folder)}. Lower the "
                "learning rate (a resumed stage may change it) or check the data.")

    def model_card(self) -> ModelCard:
        """The card of the generator this stage exports now: what it is, and what trained it step by step."""
        history, name, segments = self.folder.history, self.stage.name, self.folder.provenance()
        emas = _changes(segments, "ema") if self.stage.train_generator else []
        return ModelCard(
            architecture=dict(self.generator.architecture), recipe=self.recipe, stage=name,
            steps=self.current_step, training_data=self._training_data(segments),
            initialised_from=self.folder.initialised_from,
            vgg_weights=(self.config.vgg_weights or "random") if self.features is not None else None,
            config=dataclasses.asdict(self.config),
            learning_rates=history.learning_rates(name) if self.stage.train_generator else None,
            precisions=history.precisions(name) or None,
            emas=emas if any(segment["ema"] for segment in emas) else None)

    def _training_data(self, segments: list[dict]) -> dict | None:
        """What the stage's steps were trained on: the data's summary, or when a resumed run was given other data,
        each in order ({"name": "T91, then BSD200+T91 from step 501", "segments": [...]})."""
        parts = _changes([s for s in segments if isinstance(s.get("training_data"), dict)], "training_data")
        if len(parts) < 2:
            return self.training_data
        name = ", then ".join(f"{p['training_data'].get('name')}" + (f" from step {p['from_step']}" if i else "")
                              for i, p in enumerate(parts))
        return {"name": name, "segments": [{"from_step": p["from_step"], **p["training_data"]} for p in parts]}

    def export(self, checked: bool = False) -> None:
        """The generator (its EMA when there is one) with its model card, and the discriminator, in the stage's
        folder and as the run's latest; weights holding NaN or Inf are refused (``TrainingError``), unless
        ``checked`` says ``save`` has just looked."""
        if not checked:
            self._refuse_nonfinite(self._variables(optimizers=False))
        card = self.model_card()
        with self.inference_weights() as network:
            for path in (self.folder.weights("generator"), self.folder.run_dir / "generator.weights.h5"):
                save_generator(network, path, card)
        if self.discriminator is not None:
            for path in (self.folder.weights("discriminator"), self.folder.run_dir / "discriminator.weights.h5"):
                save_weights(self.discriminator, path)


def _changes(segments: list[dict], key: str) -> list[dict]:
    """``[{"from_step", key}]``: where the value of ``key`` changes along the stage's ``segments`` (``RunFolder.provenance``)."""
    changes = []
    for segment in segments:
        if not changes or changes[-1][key] != segment.get(key):
            changes.append({"from_step": segment["from_step"], key: segment.get(key)})
    return changes


def train_stage(recipe: str, stage: str, data, run_dir: str | os.PathLike, steps: int,
                config: TrainConfig | None = None, val_data: str | os.PathLike | None = None,
                init_generator: str | os.PathLike | None = None, from_scratch: bool = False,
                restart: bool = False) -> Trainer:
    """Train one stage on the images in ``data`` (a folder or a list of folders) until it has done ``steps``
    steps, resuming from the run folder's last checkpoint; returns the trainer (its networks are trained).
    ``init_generator`` (a file, or a shipped model's name such as "srresnet-x4") starts a new stage from it."""
    from .upscale import weights_path  # a shipped model's name, e.g. "srresnet-x4", or a file

    config = config or TrainConfig()
    check_setting("steps", steps)
    init_generator = weights_path(init_generator) if init_generator is not None else None
    # the run folder's lock first: a second process on the folder is refused before any data are loaded
    trainer = Trainer(recipe, stage, run_dir, config, init_generator=init_generator, from_scratch=from_scratch,
                      restart=restart)
    try:
        trainer.validation = validation_images(val_data, config.val_images, config.scale) if val_data else []
        source = PatchSource([data] if isinstance(data, (str, os.PathLike)) else list(data),
                             patch_size=config.patch_size, seed=config.seed)
        trainer.training_data = source.summary()
        if config.degradation == "realistic":  # the card says which chain made its LR patches
            from .realistic import settings_record

            trainer.training_data["degradation"] = {"realistic": settings_record()}
    except BaseException:
        trainer.close()
        raise
    trainer.fit(lambda start: training_dataset(source, config.scale, config.batch_size, start,
                                               degradation=config.degradation), steps)
    return trainer


def stage_generators(run_dir: str | os.PathLike, recipe: str) -> list[dict]:
    """The generator each stage of ``recipe`` trained in ``run_dir``, in order: {"stage", "path", "card",
    "random_vgg"}; ``random_vgg`` is true when this stage or an earlier one trained against VGG features
    with random weights (so its perceptual training meant little). Stages not run yet, and stages that
    keep the generator frozen (the report's discriminator warm-up), are left out."""
    found, random_vgg = [], False
    for name in stage_names(recipe):
        path = stage_weights(run_dir, name)
        if not path.is_file() or not RECIPES[recipe][name].train_generator:
            continue
        card = ModelCard.read(path) or ModelCard(architecture={})
        random_vgg = random_vgg or card.random_vgg
        found.append({"stage": name, "path": path, "card": card, "random_vgg": random_vgg})
    return found
