"""Training: the two recipes, their stages, and one resumable trainer that runs any stage.

A run folder holds every stage of one recipe::

    <run-dir>/history.jsonl                 one JSON line per step (and per validation), all stages
    <run-dir>/generator.weights.h5 (+.json) the latest generator, from whichever stage ran last
    <run-dir>/<stage>/checkpoints/          tf.train.CheckpointManager: networks, optimizers, step
    <run-dir>/<stage>/generator.weights.h5  this stage's generator (for before/after comparisons)
    <run-dir>/<stage>/samples/step_*.png    bicubic | SR | HR of the first validation image

Rerunning the same command continues a stage where it stopped, even after ``kill -9``: the networks,
optimizers and step come back from the last checkpoint, the data continue from that step (see
``srlib.data``), and history lines written after that checkpoint are dropped so that every step
appears once. A new stage starts from the generator (and discriminator) that the previous stage of the
recipe left in the run folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from . import losses
from .benchmark import evaluate_image
from .degradation import bicubic_downscale, bicubic_upscale
from .errors import DataError, SrlibError
from .files import atomic_path, read_jsonl, write_json, write_text
from .images import write_image
from .data import PatchSource, training_dataset, validation_images
from .models import (discriminator, fold_batch_norm, generator, load_generator, load_weights, read_sidecar,
                     resolve_vgg_weights, save_generator, upscale_with, vgg_feature_extractor)

log = logging.getLogger(__name__)


class TrainingError(SrlibError):
    """Training cannot go on (e.g. a loss became NaN); the last good checkpoint is intact."""


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: which networks learn and the weight of each loss term."""

    name: str
    summary: str
    train_generator: bool = True
    train_discriminator: bool = False
    previous: str | None = None  # the stage whose networks this one starts from
    pixel_weight: float = 0.0
    content_network: str | None = None  # "vgg16" or "vgg19"
    content_layer: str | None = None
    content_weight: float = 0.0
    feature_scale: float = 1 / 12.75
    tv_weight: float = 0.0
    adversarial_weight: float = 0.0
    label_smoothing: float = 0.0
    label_flip: float = 0.0
    learning_rate: float = 1e-4
    decay_at: float | None = None  # fraction of the stage's steps after which the rate drops 10x

    @property
    def uses_discriminator(self) -> bool:
        return self.train_discriminator or self.adversarial_weight > 0


RECIPES: dict[str, dict[str, Stage]] = {
    # The course report: perceptual pretraining, then a discriminator warm-up, then the GAN.
    "report": {
        "sr_vgg": Stage(
            "sr_vgg",
            "SRResNet + frozen VGG16: content loss at block2_conv2 + total variation; no MSE, no discriminator",
            content_network="vgg16", content_layer="block2_conv2", content_weight=1.0, tv_weight=1e-3,
        ),
        "discriminator": Stage(
            "discriminator",
            "generator frozen; discriminator learns real HR from SR with binary cross-entropy only",
            train_generator=False, train_discriminator=True, previous="sr_vgg",
            label_smoothing=0.1, label_flip=0.05,
        ),
        "full": Stage(
            "full",
            "generator + discriminator: VGG16 block5_conv3 content + total variation + 1e-3 adversarial",
            train_discriminator=True, previous="discriminator",
            content_network="vgg16", content_layer="block5_conv3", content_weight=1.0, tv_weight=1e-3,
            adversarial_weight=1e-3, label_smoothing=0.1, label_flip=0.05,
        ),
    },
    # Ledig et al. 2017: SRResNet with pixel MSE, then SRGAN with VGG54 content + 1e-3 adversarial.
    "paper": {
        "mse": Stage("mse", "SRResNet with pixel MSE (the PSNR-oriented network)", pixel_weight=1.0),
        "gan": Stage(
            "gan",
            "SRGAN: VGG19 block5_conv4 content (features / 12.75) + 1e-3 adversarial, from the MSE network",
            train_discriminator=True, previous="mse",
            content_network="vgg19", content_layer="block5_conv4", content_weight=1.0,
            adversarial_weight=1e-3, decay_at=0.5,
        ),
    },
}


def get_stage(recipe: str, stage: str) -> Stage:
    if recipe not in RECIPES:
        raise SrlibError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if stage not in RECIPES[recipe]:
        raise SrlibError(f"recipe {recipe!r} has no stage {stage!r}; its stages: {', '.join(RECIPES[recipe])}")
    return RECIPES[recipe][stage]


@dataclass
class TrainConfig:
    """Everything about a run that is not the stage's loss recipe."""

    scale: int = 4
    blocks: int = 16
    filters: int = 64
    batch_norm: bool = True
    batch_size: int = 16
    patch_size: int = 96
    vgg_weights: str | None = "imagenet"
    learning_rate: float | None = None  # None: the stage's default
    checkpoint_every: int = 500
    validate_every: int = 500
    sample_every: int = 500
    ema_decay: float | None = None  # e.g. 0.999 keeps an exponential moving average of the generator
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    progress: bool = True


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


class HistoryLog:
    """``history.jsonl``: appended and flushed line by line; rows past a restored step are dropped."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def rows(self) -> list[dict]:
        return read_jsonl(self.path)

    def truncate(self, stage: str, step: int) -> None:
        """Keep other stages' rows and this stage's rows up to ``step``."""
        kept = [r for r in self.rows() if r.get("stage") != stage or r.get("step", 0) <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def learning_rates(self, stage: str) -> list[dict]:
        """The rates a stage has used, as ``[{"from_step": 1, "rate": 2e-4}, ...]``: a resumed run may change it."""
        segments = []
        for row in self.rows():
            if row.get("stage") == stage and "lr" in row:
                rate = float(f"{row['lr']:.4g}")  # the float32 rate, without its float32 noise
                if not segments or segments[-1]["rate"] != rate:
                    segments.append({"from_step": row["step"], "rate": rate})
        return segments

    def append(self, row: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _strategy() -> tf.distribute.Strategy:
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


class Trainer:
    """Runs one stage of a recipe in a run folder; ``fit`` continues from the last checkpoint."""

    def __init__(self, recipe: str, stage: str, run_dir: str | os.PathLike, config: TrainConfig | None = None,
                 strategy: tf.distribute.Strategy | None = None, validation: list | None = None,
                 init_generator: str | os.PathLike | None = None, from_scratch: bool = False,
                 training_data: dict | None = None):
        self.recipe = recipe
        self.training_data = training_data  # recorded in the exported generator's sidecar
        self.stage = get_stage(recipe, stage)
        self.config = config or TrainConfig()
        if self.config.vgg_weights == "auto" and self.stage.content_weight:
            self.config = dataclasses.replace(
                self.config, vgg_weights=resolve_vgg_weights("auto", self.stage.content_network))
        self.run_dir = Path(run_dir)
        self.stage_dir = self.run_dir / self.stage.name
        self.stage_dir.mkdir(parents=True, exist_ok=True)
        self.strategy = strategy or _strategy()
        self.validation = validation or []
        self.history = HistoryLog(self.run_dir / "history.jsonl")
        started = self.stage_dir / "initialised_from.json"  # what a resumed stage first started from
        self.initialised_from = json.loads(started.read_text()) if started.is_file() else None
        # process-wide in Keras: set it either way, so that an earlier mixed-precision run does not leak in
        keras.mixed_precision.set_dtype_policy("mixed_float16" if self.config.mixed_precision else "float32")
        self._build()
        self._restore_or_initialise(init_generator, from_scratch)
        self._train_step = tf.function(self._distributed_step, jit_compile=self.config.jit_compile)

    # --- networks, optimizers, checkpoint -------------------------------------------------------
    def _optimizer(self):
        rate = self.config.learning_rate or self.stage.learning_rate
        if self.stage.decay_at:
            rate = TenfoldDecay(rate)
            self._schedules.append(rate)
        optimizer = keras.optimizers.Adam(learning_rate=rate, beta_1=0.9)
        if self.config.mixed_precision:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        return optimizer

    def _build(self) -> None:
        c, s = self.config, self.stage
        self._schedules = []  # TenfoldDecay schedules, whose boundary fit() sets
        with self.strategy.scope():
            self.generator = generator(c.scale, c.blocks, c.filters, c.batch_norm)
            self.discriminator = discriminator(c.patch_size) if s.uses_discriminator else None
            self.features = (
                vgg_feature_extractor(s.content_network, s.content_layer, c.vgg_weights)
                if s.content_weight > 0 else None
            )
            self.ema = None
            if c.ema_decay and s.train_generator:
                self.ema = generator(c.scale, c.blocks, c.filters, c.batch_norm, name="generator_ema")
                self.ema.set_weights(self.generator.get_weights())
            self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
            self.g_optimizer = self._optimizer() if s.train_generator else None
            self.d_optimizer = self._optimizer() if s.train_discriminator else None
            if self.g_optimizer is not None:
                self.g_optimizer.build(self.generator.trainable_variables)
            if self.d_optimizer is not None:
                self.d_optimizer.build(self.discriminator.trainable_variables)
        tracked = {"step": self.step, "generator": self.generator}
        for name in ("discriminator", "ema", "g_optimizer", "d_optimizer"):
            if getattr(self, name) is not None:
                tracked[name] = getattr(self, name)
        self._tracked = tracked
        self.checkpoint = tf.train.Checkpoint(**tracked)
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.stage_dir / "checkpoints", max_to_keep=2)

    # Options that change what a checkpoint holds; resuming with other values cannot work.
    _CHECKPOINT_SHAPING = ("scale", "blocks", "filters", "batch_norm", "patch_size", "mixed_precision")

    def _restore_or_initialise(self, init_generator, from_scratch: bool) -> None:
        saved_config = self.stage_dir / "config.json"
        if self.manager.latest_checkpoint:
            before = json.loads(saved_config.read_text()) if saved_config.is_file() else {}
            now = dataclasses.asdict(self.config)
            changed = [f"{k}: {before[k]} -> {now[k]}" for k in self._CHECKPOINT_SHAPING
                       if k in before and before[k] != now[k]]
            if before.get("ema_decay") and not now["ema_decay"]:  # the average would be dropped silently
                changed.append(f"ema_decay: {before['ema_decay']} -> None")
            if changed:
                raise SrlibError(f"{self.stage_dir} was trained with other options ({'; '.join(changed)}): "
                                 "resume with the same options, or use a new --run-dir")
            adding_ema = self.ema is not None and "ema_decay" in before and not before["ema_decay"]
            checkpoint = (tf.train.Checkpoint(**{k: v for k, v in self._tracked.items() if k != "ema"})
                          if adding_ema else self.checkpoint)
            try:
                checkpoint.restore(self.manager.latest_checkpoint).assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise SrlibError(f"the checkpoint {self.manager.latest_checkpoint} does not fit this run's networks "
                                 f"(were other options used?): {error}") from None
            log.info("resuming %s/%s at step %d from %s", self.recipe, self.stage.name, self.current_step, self.manager.latest_checkpoint)
            if not self.stage.decay_at:  # the checkpoint restored the old rate; a resumed run may set another
                rate = self.config.learning_rate or self.stage.learning_rate
                for optimizer in (self.g_optimizer, self.d_optimizer):
                    if optimizer is not None:
                        optimizer.learning_rate.assign(rate)
                earlier = before.get("learning_rate") or self.stage.learning_rate
                if earlier != rate:
                    log.info("the learning rate changes from %g to %g at step %d", earlier, rate, self.current_step)
            if adding_ema:
                self.ema.set_weights(self.generator.get_weights())  # an average added to a running stage
                log.info("the EMA of the generator starts at step %d", self.current_step)
        else:
            self._initialise(init_generator, from_scratch)
        # every step appears once: drop lines written after the checkpoint (all of them if there is none)
        self.history.truncate(self.stage.name, self.current_step)
        write_json(saved_config, dataclasses.asdict(self.config))

    def _initialise(self, init_generator, from_scratch: bool) -> None:
        if init_generator is not None:
            source = Path(init_generator)
            if not source.is_file():
                raise SrlibError(f"--init-generator {source} does not exist")
        elif self.stage.previous:
            source = self.run_dir / self.stage.previous / "generator.weights.h5"
            if not source.is_file() and not from_scratch:
                raise SrlibError(
                    f"stage {self.stage.name!r} starts from the generator of stage {self.stage.previous!r}, but "
                    f"{source} does not exist: run that stage first in this --run-dir, give --init-generator PATH, "
                    "or pass --from-scratch to start from random weights")
        else:
            source = None
        if source is not None and source.is_file():
            self._load_initial_generator(source)
            if self.ema is not None:
                self.ema.set_weights(self.generator.get_weights())
            log.info("%s starts from the generator in %s", self.stage.name, source)
        elif self.stage.previous:
            log.warning("%s starts from random weights (--from-scratch)", self.stage.name)
        if self.discriminator is not None and self.stage.previous:
            previous_d = self.run_dir / self.stage.previous / "discriminator.weights.h5"
            if previous_d.is_file():
                self._load_weights(self.discriminator, previous_d)
                log.info("%s starts from the discriminator in %s", self.stage.name, previous_d)

    def _load_initial_generator(self, source: Path) -> None:
        """Start from ``source``; a generator with batch norm starting one without has its BN folded in."""
        metadata = read_sidecar(source)
        fold = bool(metadata.get("architecture", {}).get("batch_norm")) and not self.config.batch_norm
        if fold:
            self.generator.set_weights(fold_batch_norm(load_generator(source)).get_weights())
            log.info("the batch norm of %s is folded into its convs", source)
        else:
            self._load_weights(self.generator, source)
        self.initialised_from = {"weights": str(source), "batch_norm_folded": fold,
                                 **{k: metadata[k] for k in ("recipe", "stage", "steps", "architecture") if k in metadata}}
        write_json(self.stage_dir / "initialised_from.json", self.initialised_from)

    @staticmethod
    def _load_weights(model: keras.Model, path: Path) -> None:
        try:
            load_weights(model, path)
        except Exception as error:
            raise SrlibError(f"{path} does not fit this run's {model.name} (check --blocks/--filters/--scale): {error}") from None

    # --- one step -------------------------------------------------------------------------------
    def _replica_step(self, lr, hr):
        s, global_batch = self.stage, self.config.batch_size
        average = lambda per_example: tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)  # noqa: E731
        metrics = {}
        with tf.GradientTape(persistent=True) as tape:
            sr = self.generator(lr, training=s.train_generator)
            if not s.train_generator:
                sr = tf.stop_gradient(sr)
            g_loss = 0.0
            if s.pixel_weight:
                metrics["pixel"] = average(losses.pixel_mse(hr, sr))
                g_loss += s.pixel_weight * metrics["pixel"]
            if s.content_weight:
                metrics["content"] = average(losses.content_loss(self.features, hr, sr, s.feature_scale))
                g_loss += s.content_weight * metrics["content"]
            if s.tv_weight:
                metrics["tv"] = average(losses.total_variation(sr))
                g_loss += s.tv_weight * metrics["tv"]
            if self.discriminator is not None:
                real_logits = self.discriminator(hr, training=s.train_discriminator)
                fake_logits = self.discriminator(sr, training=s.train_discriminator)
                if s.adversarial_weight:
                    metrics["adversarial"] = average(losses.generator_adversarial_loss(fake_logits))
                    g_loss += s.adversarial_weight * metrics["adversarial"]
                d_loss = average(losses.discriminator_loss(real_logits, fake_logits, s.label_smoothing, s.label_flip))
                real_acc, fake_acc = losses.discriminator_accuracy(real_logits, fake_logits)
                metrics.update(d_loss=d_loss, d_acc_real=average(real_acc), d_acc_fake=average(fake_acc))
            if s.train_generator:
                metrics["g_loss"] = g_loss
                g_scaled = self._scaled(self.g_optimizer, g_loss)  # inside the tape, for mixed precision
            if s.train_discriminator:
                d_scaled = self._scaled(self.d_optimizer, d_loss)
        # With mixed precision the loss-scale optimizer skips steps whose scaled gradients overflow, so
        # their norm is only reported without it.
        if s.train_generator:
            norm = self._apply(self.g_optimizer, tape, g_scaled, self.generator)
            if not self.config.mixed_precision:
                metrics["g_grad_norm"] = norm / self.strategy.num_replicas_in_sync
        if s.train_discriminator:
            norm = self._apply(self.d_optimizer, tape, d_scaled, self.discriminator)
            if not self.config.mixed_precision:
                metrics["d_grad_norm"] = norm / self.strategy.num_replicas_in_sync
        del tape
        return metrics

    def _scaled(self, optimizer, loss):
        return optimizer.scale_loss(loss) if self.config.mixed_precision else loss

    def _apply(self, optimizer, tape, loss, model):
        """Apply the gradients; returns their global norm (a NaN there stops the run before any save)."""
        variables = model.trainable_variables
        gradients = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(gradients, variables))
        return tf.linalg.global_norm(gradients)

    def _distributed_step(self, lr, hr):
        per_replica = self.strategy.run(self._replica_step, args=(lr, hr))
        metrics = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
        if self.ema is not None:
            decay = self.config.ema_decay
            for averaged, current in zip(self.ema.weights, self.generator.weights):
                averaged.assign(decay * averaged + (1 - decay) * current if averaged.trainable else current)
        self.step.assign_add(1)
        return metrics

    # --- the loop -------------------------------------------------------------------------------
    def fit(self, dataset_for, steps: int) -> dict:
        """Train until the stage has done ``steps`` steps; ``dataset_for(start_step)`` gives the batches.

        Returns the last history row. Raises ``TrainingError`` on a non-finite loss.
        """
        for schedule in self._schedules:
            schedule.boundary.assign(int(steps * self.stage.decay_at))
        start = self.current_step
        last = {}
        if start >= steps:
            log.info("%s/%s already has %d of %d steps", self.recipe, self.stage.name, start, steps)
            self.export()
            return last
        dataset = dataset_for(start)
        batch = dataset.element_spec[0].shape[0]
        if batch is not None and batch != self.config.batch_size:
            raise SrlibError(f"the data come in batches of {batch}, but the run's batch size is {self.config.batch_size}")
        batches = iter(self.strategy.experimental_distribute_dataset(dataset))
        bar = tqdm(total=steps, initial=start, desc=f"{self.recipe}/{self.stage.name}", unit="step",
                   disable=None if self.config.progress else True, dynamic_ncols=True)
        try:
            for _ in range(start, steps):
                tick = time.perf_counter()
                rate = self._learning_rate()  # the rate this step uses
                try:
                    values = self._train_step(*next(batches))
                except tf.errors.OpError as error:  # e.g. a DataError raised inside the input pipeline
                    if "DataError" in error.message:
                        raise DataError(error.message.split("DataError:")[-1].strip().splitlines()[0]) from None
                    raise
                values = {k: float(v) for k, v in values.items()}
                step = self.current_step
                if not all(math.isfinite(v) for v in values.values()):
                    raise TrainingError(
                        f"non-finite loss at step {step} of stage {self.recipe}/{self.stage.name}: {values}. "
                        f"Nothing from this step was saved; the last good checkpoint is "
                        f"{self.manager.latest_checkpoint or '(none yet)'}. Lower the learning rate or check the data."
                    )
                last = {"stage": self.stage.name, "step": step, **values, "lr": rate,
                        "sec_per_step": round(time.perf_counter() - tick, 4), "time": round(time.time(), 3)}
                self.history.append(last)
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in values.items() if k in ("g_loss", "d_loss", "pixel", "content")})
                # validate first: a run killed while validating repeats the step after resuming
                if self.validation and (step % self.config.validate_every == 0 or step == steps):
                    self.validate(step)
                if step % self.config.checkpoint_every == 0 or step == steps:
                    self.save()
                if self.validation and (step % self.config.sample_every == 0 or step == steps):
                    self.save_sample(step)
        finally:
            bar.close()
            self.history.close()
        return last

    @property
    def current_step(self) -> int:
        """Steps this stage has done (the step variable may be mirrored across devices)."""
        return int(self.step.numpy())

    def _learning_rate(self) -> float:
        optimizer = self.g_optimizer or self.d_optimizer
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    def _upscaler(self):
        if getattr(self, "_upscale", None) is None:
            self._upscale = upscale_with(self.inference_generator())
        return self._upscale

    def inference_generator(self) -> keras.Model:
        return self.ema if self.ema is not None else self.generator

    def save(self) -> None:
        """Checkpoint, then export this stage's networks (and the run's latest generator)."""
        self.manager.save(checkpoint_number=self.current_step)
        self.export()

    def export(self) -> None:
        metadata = {"recipe": self.recipe, "stage": self.stage.name, "steps": self.current_step,
                    "vgg_weights": (self.config.vgg_weights or "random") if self.features is not None else None,
                    "config": dataclasses.asdict(self.config)}
        if self.training_data:
            metadata["training_data"] = self.training_data
        if self.initialised_from:
            metadata["initialised_from"] = self.initialised_from
        if self.g_optimizer is not None:
            metadata["learning_rates"] = self.history.learning_rates(self.stage.name)
        for path in (self.stage_dir / "generator.weights.h5", self.run_dir / "generator.weights.h5"):
            save_generator(self.inference_generator(), path, metadata)
        if self.discriminator is not None:
            for path in (self.stage_dir / "discriminator.weights.h5", self.run_dir / "discriminator.weights.h5"):
                with atomic_path(path) as tmp:
                    self.discriminator.save_weights(tmp)

    def validate(self, step: int) -> dict:
        """Mean PSNR / SSIM on the validation images (the benchmark protocol), appended to the history."""
        results = [evaluate_image(hr, self._upscaler(), self.config.scale) for _, hr in self.validation]
        self._first_sr = (step, results[0][2])  # reused by save_sample at the same step
        row = {"stage": self.stage.name, "step": step, "val_psnr": round(float(np.mean([r[0] for r in results])), 4),
               "val_ssim": round(float(np.mean([r[1] for r in results])), 5)}
        self.history.append(row)
        log.info("step %d: validation PSNR %.2f dB, SSIM %.4f", step, row["val_psnr"], row["val_ssim"])
        return row

    def save_sample(self, step: int) -> Path:
        """bicubic | SR | HR of the first validation image, side by side."""
        _, hr = self.validation[0]
        cached_step, sr = getattr(self, "_first_sr", (None, None))
        if cached_step != step:  # not validated at this step
            _, _, sr = evaluate_image(hr, self._upscaler(), self.config.scale)
        hr = hr[: sr.shape[0], : sr.shape[1]]
        bicubic = bicubic_upscale(bicubic_downscale(hr, self.config.scale), self.config.scale)
        path = self.stage_dir / "samples" / f"step_{step:07d}.png"
        write_image(path, np.concatenate([bicubic, sr, hr], axis=1))
        return path


def train_stage(recipe: str, stage: str, data, run_dir: str | os.PathLike, steps: int,
                config: TrainConfig | None = None, val_data: str | os.PathLike | None = None, val_images: int = 5,
                init_generator: str | os.PathLike | None = None, from_scratch: bool = False) -> Trainer:
    """Train one stage on the images in ``data`` (a folder or a list of folders) until it has done ``steps``
    steps, resuming from the run folder's last checkpoint; returns the trainer (its networks are trained)."""
    config = config or TrainConfig()
    validation = validation_images(val_data, limit=val_images) if val_data else []
    source = PatchSource([data] if isinstance(data, (str, os.PathLike)) else list(data),
                         patch_size=config.patch_size, seed=config.seed)
    trainer = Trainer(recipe, stage, run_dir, config, validation=validation, init_generator=init_generator,
                      from_scratch=from_scratch, training_data=source.summary())
    trainer.fit(lambda start: training_dataset(source, config.scale, config.batch_size, start), steps)
    return trainer


def stage_names(recipe: str) -> list[str]:
    """A recipe's stages in the order they run."""
    if recipe not in RECIPES:
        raise SrlibError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return list(RECIPES[recipe])


def stage_generators(run_dir: str | os.PathLike, recipe: str) -> list[dict]:
    """The generator each stage of ``recipe`` trained in ``run_dir``, in order: {"stage", "path", "metadata",
    "random_vgg"}; ``random_vgg`` is true when this stage or an earlier one trained against VGG features
    with random weights (so its perceptual training meant little). Stages not run yet, and stages that
    keep the generator frozen (the report's discriminator warm-up), are left out."""
    found, random_vgg = [], False
    for name in stage_names(recipe):
        path = Path(run_dir) / name / "generator.weights.h5"
        if not path.is_file() or not RECIPES[recipe][name].train_generator:
            continue
        metadata = read_sidecar(path)
        random_vgg = random_vgg or metadata.get("vgg_weights") == "random"
        found.append({"stage": name, "path": path, "metadata": metadata, "random_vgg": random_vgg})
    return found
