"""Training one stage of a recipe in a run folder: ``train_stage`` and the ``Trainer`` behind it.

The path from ``train_stage`` to the paper's step: ``train_stage`` makes a ``Trainer``, which builds the stage's
networks and optimizers for the strategy ``srlib.cluster.choose_strategy`` picks (``srlib.stage_model``), resumes
them from the run folder or starts them from the previous stage (``srlib.stage_start``), and ``Trainer.fit`` runs
``SRGAN.train_step`` (``srlib.srgan``) step after step: through ``Model.fit`` on one machine
(``Trainer._run_fit``), or in a ``strategy.run`` loop across workers (``Trainer._run_loop``), where Keras 3's
``fit`` cannot go. Either way the callbacks of ``srlib.callbacks`` run after each step: history, validation and
samples, checkpoints and exports (``srlib.stage_outputs``), TensorBoard, progress.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import signal
import tempfile

import keras
import numpy as np
import tensorflow as tf

from .callbacks import Checkpoints, HistoryLogger, ProgressBar, StopOnSignal, TensorBoardLogger, TrainingError, Validation
from .cluster import Cluster, broadcast_from_chief, check_same_settings, choose_strategy, is_multi_worker, lost_worker
from .data import PatchSource, training_dataset, validation_images, without_autotuning
from .errors import DataError, SrlibError, TrainingStopped
from .model_card import ModelCard, stage_weights
from .models import resolve_vgg_weights
from .recipes import RECIPES, TrainConfig, get_stage, stage_names
from .run_folder import RunFolder, check_job_lock
from .settings import check as check_setting
from .shards import ShardSource, is_shards
from .stage_model import StageModel
from .stage_outputs import StageOutputs
from .stage_start import resume_or_start

__all__ = ["Trainer", "TrainConfig", "TrainingError", "TrainingStopped", "train_stage", "stage_generators", "RECIPES",
           "stage_names"]

log = logging.getLogger(__name__)
# what a collective op raises on the workers that are left when one of a multi-worker job dies
LOST_WORKER = (tf.errors.UnavailableError, tf.errors.CancelledError, tf.errors.DeadlineExceededError,
               tf.errors.InternalError, tf.errors.AbortedError, tf.errors.FailedPreconditionError)


class Trainer(StageOutputs):
    """One stage of a recipe in a run folder; ``fit`` trains it from where it stopped.

    ``init_generator`` starts a new stage from these weights instead of the previous stage's;
    ``from_scratch`` lets a later stage start from random weights; ``restart`` moves an existing stage's
    files aside and starts it again. The run folder is locked until ``close`` (``fit`` ends with it). In a
    multi-worker job (``TF_CONFIG``) only the chief opens the run folder; the other workers train into a
    temporary folder, removed by ``close``, and take the chief's weights and step when they start.
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
        self.cluster = Cluster.from_env()
        self.strategy = strategy or choose_strategy(self.cluster)
        self.multi_worker = is_multi_worker(self.strategy)
        self.cluster = self.cluster if self.multi_worker else Cluster()
        self.scratch = None if self.cluster.chief else _scratch_folder(self.cluster)
        self.folder = RunFolder(self.scratch or run_dir, self.stage.name, job=self.cluster.job)
        self.closed = False
        try:
            if restart and self.cluster.chief:
                self.folder.restart()
            self.folder.check_not_lost()
            if self.stage.vgg and self.config.vgg_weights == "auto":
                self.config = dataclasses.replace(
                    self.config, vgg_weights=resolve_vgg_weights("auto", self.stage.vgg[0]))
            self.folder.check_config(self.config)
            self.networks = StageModel(self.stage, self.config, self.strategy)
            self.precision, self.model = self.networks.precision, self.networks.model
            resumed = self._start(run_dir, init_generator, from_scratch)
            self.tensorboard = TensorBoardLogger(self.folder.tensorboard_dir, self.current_step if resumed else None)
        except BaseException:
            self._release()
            raise

    def _start(self, run_dir, init_generator, from_scratch: bool) -> bool:
        """Resume or start the stage (``srlib.stage_start``); the workers of a multi-worker job take the chief's
        weights and step. Returns whether the stage resumed."""
        resumed = self.cluster.chief and resume_or_start(self.folder, self.networks, self.recipe, init_generator,
                                                         from_scratch)
        if self.multi_worker:
            try:
                check_same_settings(self.strategy, self.cluster, dataclasses.asdict(self.config))
                features = self.features.weights if self.features is not None else []  # "auto" VGG may differ
                broadcast_from_chief(self.strategy, [self.model.step, *self.networks.variables(), *features])
            except LOST_WORKER as error:
                raise self._lost(error) from None
            if not self.cluster.chief:
                check_job_lock(run_dir, self.cluster.job)
                resumed = self.current_step > 0
                log.info("worker %d of %d: %s/%s starts at step %d with the chief", self.cluster.index,
                         self.cluster.workers, self.recipe, self.stage.name, self.current_step)
        return resumed

    generator = property(lambda self: self.model.generator)
    discriminator = property(lambda self: self.model.discriminator)
    features = property(lambda self: self.model.features)
    current_step = property(lambda self: self.networks.current_step, doc="Steps this stage has done.")

    def inference_weights(self):
        """Within the block the generator holds the weights to evaluate and export: the EMA when there is one."""
        return self.networks.inference_weights()

    # --- the loop ---------------------------------------------------------------------------------
    def fit(self, dataset_for, steps: int) -> dict:
        """Train until the stage has done ``steps`` steps; ``dataset_for(start_step)`` gives the global batches
        (``dataset_for(start_step, shard=(index, count))`` a worker's share), read ``srlib.data.without_autotuning``.

        Returns the last history row. Raises ``TrainingError`` on a non-finite loss, ``TrainingStopped`` after
        saving the current step when SIGINT or SIGTERM arrives, and ``SrlibError`` when a worker of the job is
        lost. Releases the run folder.
        """
        if self.closed:
            raise SrlibError("this Trainer has finished and released its run folder: make a new one to train on")
        try:
            return self._fit(dataset_for, steps)
        finally:
            self.close()

    def _fit(self, dataset_for, steps: int) -> dict:
        check_setting("steps", steps)
        for schedule in self.networks.schedules if self.stage.decay_at else []:
            schedule.boundary.assign(self.folder.decay_step(int(steps * self.stage.decay_at)))
        if self.multi_worker and self.stage.decay_at:  # the chief's schedule.json decides
            broadcast_from_chief(self.strategy, [s.boundary for s in self.networks.schedules])
        start = self.current_step
        if start < steps and self.cluster.chief:
            data = self.training_data and {k: v for k, v in self.training_data.items() if k != "folders"}
            values = {"ema": self.config.ema, "training_data": data}  # folders: the same images may move
            self.folder.record_provenance(start + 1, values, {**values, "ema": None} if self.folder.ema_added else None)
        if start >= steps:
            log.info("%s/%s already has %d of %d steps", self.recipe, self.stage.name, start, steps)
            if self.cluster.chief:
                self.export()
            return {}
        c = self.config
        history = HistoryLogger(self)
        progress = ProgressBar(f"{self.recipe}/{self.stage.name}", start, steps, c.progress and self.cluster.chief)
        stop = StopOnSignal()
        callbacks = [history, Validation(self, c.validate_every, steps), Checkpoints(self, c.checkpoint_every, steps),
                     progress, stop]
        try:
            with stop:
                if self.multi_worker:
                    self._run_loop(dataset_for, start, steps, callbacks, stop)
                else:
                    self._run_fit(without_autotuning(dataset_for(start)), start, steps, callbacks)
            # stopped by a signal: the Checkpoints callback may have saved the step already
            if stop.signum is not None and self.folder.latest_step() != self.current_step:
                self.save()
        except tf.errors.OpError as error:  # e.g. a DataError raised inside the input pipeline
            if "DataError" in error.message:
                raise DataError(error.message.split("DataError:")[-1].strip().splitlines()[0]) from None
            if self.multi_worker and isinstance(error, LOST_WORKER):
                raise self._lost(error) from None
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

    def _run_fit(self, dataset: tf.data.Dataset, start: int, steps: int, callbacks: list) -> None:
        """One machine: ``Model.fit`` runs ``SRGAN.train_step`` on ``dataset``'s batches until step ``steps``."""
        batch = dataset.element_spec[0].shape[0]
        if batch is not None and batch != self.config.batch_size:
            raise SrlibError(f"the data come in batches of {batch}, but the run's batch size is {self.config.batch_size}")
        self.model.fit(dataset, epochs=1, steps_per_epoch=steps - start, shuffle=False, verbose=0, callbacks=callbacks)

    def _run_loop(self, dataset_for, start: int, steps: int, callbacks: list, stop: StopOnSignal) -> None:
        """Several workers: each replica runs ``SRGAN.train_step`` on its share of the global batch
        (``strategy.run``), the losses are averaged over the replicas as ``fit`` does, and the callbacks see each
        step as under ``fit``. A signal to any worker stops every worker after the same step."""
        strategy, model, batch = self.strategy, self.model, self.config.batch_size
        replicas, workers = strategy.num_replicas_in_sync, self.cluster.workers
        if batch % replicas:
            raise SrlibError(f"--batch-size {batch} (the global batch) does not split evenly across the {replicas} "
                             f"replicas of {workers} workers: use a multiple of {replicas}")

        def shard(context: tf.distribute.InputContext) -> tf.data.Dataset:
            local = without_autotuning(dataset_for(start, shard=(context.input_pipeline_id, context.num_input_pipelines)))
            per_replica = context.get_per_replica_batch_size(batch)
            return local if per_replica == batch // workers else local.unbatch().batch(per_replica, drop_remainder=True)

        def replica_step(data, stopping):
            logs = model.train_step(data)
            logs["stop"] = tf.distribute.get_replica_context().all_reduce("SUM", tf.identity(stopping))
            return logs

        @tf.function
        def step(data, stopping):
            logs = strategy.run(replica_step, args=(data, stopping))
            return {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}

        batches = iter(strategy.distribute_datasets_from_function(shard))
        callbacks = keras.callbacks.CallbackList(callbacks, model=model)
        callbacks.on_train_begin()
        for index in range(steps - start):
            callbacks.on_train_batch_begin(index)
            logs = {k: v.numpy() for k, v in step(next(batches), tf.constant(float(stop.signum is not None))).items()}
            stopping = logs.pop("stop") > 0
            callbacks.on_train_batch_end(index, logs)
            if stopping:  # every worker knows after the same step
                stop.signum = stop.signum or signal.SIGTERM
                break
        callbacks.on_train_end()

    def _lost(self, error: tf.errors.OpError) -> SrlibError:
        """The one-line error for ``error`` (a collective op's, after a worker died): ``srlib.cluster.lost_worker``."""
        return lost_worker(error, self.cluster, self.current_step, self.folder.latest_step() if self.cluster.chief else None)

    def close(self) -> None:
        """Release the run folder (and flush the TensorBoard events); a worker's temporary folder is removed."""
        self.closed = True
        try:
            self.tensorboard.close()
        finally:
            self._release()

    def _release(self) -> None:
        """Release the run folder's lock; a worker that is not the chief removes its temporary folder."""
        self.folder.close()
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def on_row(self, row: dict, sample: np.ndarray | None = None) -> None:
        """A history row (and sample image) was made: show it in TensorBoard."""
        self.tensorboard.write(row, sample)


def _scratch_folder(cluster: Cluster) -> str:
    """A new temporary folder for a worker that is not the chief, named after its job and index, so that what a
    killed run of the same worker left there is removed when it restarts."""
    path = os.path.join(tempfile.gettempdir(), f"srlib-job{cluster.job}-worker{cluster.index}")
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)
    return path


def train_stage(recipe: str, stage: str, data, run_dir: str | os.PathLike, steps: int,
                config: TrainConfig | None = None, val_data: str | os.PathLike | None = None,
                init_generator: str | os.PathLike | None = None, from_scratch: bool = False,
                restart: bool = False) -> Trainer:
    """Train one stage on the images in ``data`` (a folder or a list of folders, or TFRecord shards) until it has done ``steps``
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
        trainer.validation = validation_images(val_data, config.val_images, config.scale) if (
            val_data and trainer.cluster.chief) else []  # the chief alone validates
        items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
        source = (ShardSource(items, patch_size=config.patch_size, seed=config.seed) if all(map(is_shards, items))
                  else PatchSource(items, patch_size=config.patch_size, seed=config.seed))
        trainer.training_data = source.summary()
        if config.degradation != "bicubic":  # the card says which chain made its LR patches
            from .realistic import DEGRADATION_SETTINGS, settings_record

            trainer.training_data["degradation"] = {config.degradation: settings_record(DEGRADATION_SETTINGS[config.degradation])}
    except BaseException:
        trainer.close()
        raise
    trainer.fit(lambda start, shard=(0, 1): training_dataset(source, config.scale, config.batch_size, start,
                                                             degradation=config.degradation, shard=shard), steps)
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
