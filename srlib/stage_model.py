"""The networks and optimizers of one stage, built for a ``tf.distribute`` strategy: ``StageModel``.

``StageModel`` holds the stage's ``SRGAN`` (generator, discriminator, frozen VGG; ``srlib.srgan``), its Adam
optimizers (the generator's with a moving average of its weights), the ``tf.train.Checkpoint`` of all that and
the step, and the learning-rate schedule; ``srlib.training.Trainer`` trains it.
"""

from __future__ import annotations

import contextlib
import logging

import keras
import numpy as np
import tensorflow as tf

from ._quiet import warn_once
from .cluster import is_multi_worker
from .models import discriminator, generator, vgg_feature_extractor
from .precision import effective as effective_precision, policy as precision_policy
from .recipes import Stage, TrainConfig
from .srgan import SRGAN

log = logging.getLogger(__name__)


class StageSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A stage's learning rate at each of its steps: ``rate``, raised linearly over the first ``warmup_steps``
    (``rate / warmup_steps`` at the first), and ``rate / 10`` from step ``boundary`` on.

    The tenfold drop is the SRGAN paper's schedule for its GAN; ``boundary`` is a variable because it depends on
    the stage's step count, which ``fit`` learns, and stays beyond any step for a stage that does not decay. The
    warm-up is for a stage that starts from trained weights: Adam's first updates move every weight by about the
    full rate whatever its gradient (its second-moment estimate has seen one gradient): from the then-shipped
    SRResNet-16 at 1e-4 they cost 0.8 dB on Set5 by step 500, which 500 steps of warm-up avoided
    (``snapshots/warmup_x4``). The rate depends on the optimizer's own step count, so a resumed stage goes on
    with its warm-up.
    """

    def __init__(self, rate: float, warmup_steps: int = 0):
        self.rate, self.warmup_steps = rate, warmup_steps
        self.boundary = tf.Variable(np.iinfo(np.int64).max, dtype=tf.int64, trainable=False, name="decay_boundary")

    def __call__(self, step):
        rate = self.target(step)
        if self.warmup_steps:
            rate = rate * tf.minimum(1.0, tf.cast(step + 1, rate.dtype) / self.warmup_steps)
        return rate

    def target(self, step):
        """The rate at ``step`` without the warm-up's ramp: what the history and the model card record."""
        return tf.where(tf.cast(step, tf.int64) >= self.boundary, self.rate / 10, self.rate)

    def get_config(self):
        return {"rate": self.rate, "warmup_steps": self.warmup_steps}


def use_xla(xla: bool | str, precision: str, discriminator: bool, replicas: int = 1, multi_worker: bool = False) -> bool:
    """Whether a step is compiled with XLA, for the ``xla`` setting (True, False or "auto"), the precision the step
    computes in, whether it runs a discriminator, the strategy's number of replicas and whether it spans several
    workers. "auto" is on where there is a GPU and for mixed_float16; on a CPU it is otherwise on only for a float32
    step with a discriminator on one replica (XLA cannot compile a step whose variables live on several CPU
    devices). A multi-worker job's step (``Trainer``'s ``strategy.run`` loop) is never compiled: an explicit True
    says so once.

    On the CPUs with AVX-512 measured, XLA made the float32 step up to 1.4 times slower (benchmarks/bench_train_step.py
    --compare-xla) and its compiler does not use the bfloat16 instructions; but oneDNN's float32 kernels round the
    discriminator's sums differently from one process to the next, which the adversarial game amplifies (0.1-0.3
    dB between equal runs), and XLA's float32 code does not vary. bfloat16 repeats without XLA
    (tests/test_training.py). On the AVX2-only CPU measured (AMD EPYC Zen 3) XLA made the float32 step faster
    (figures/bench_train_xla_avx2.md); "auto" does not guess from the CPU's flags, and the README tells such users
    to pass ``--xla``.
    """
    if multi_worker:
        if xla is True:
            warn_once(log, "--xla is not used in a multi-worker job: its strategy.run loop is not compiled with XLA")
        return False
    if xla != "auto":
        return xla
    if tf.config.list_physical_devices("GPU"):
        return True
    # float16 is for GPUs; on a CPU (a GPU profile's dry run) it is emulated, and faster under XLA
    return (precision == "mixed_float16" or precision == "float32" and discriminator) and replicas == 1


class StageModel:
    """The ``SRGAN`` of ``stage`` with ``config``'s networks and optimizers, built under ``strategy``; the same
    seed gives the same initial weights (and random VGG)."""

    def __init__(self, stage: Stage, config: TrainConfig, strategy: tf.distribute.Strategy):
        self.stage, self.config = stage, config
        self.precision = effective_precision(config.precision)  # bfloat16 falls back to float32 without the hardware
        keras.utils.set_random_seed(config.seed)
        self.schedules: list[StageSchedule] = []  # each optimizer's, where the stage decays or warms up
        c, s = config, stage
        with strategy.scope(), precision_policy(self.precision):
            self.model = SRGAN(s, generator(c.scale, c.blocks, c.filters, c.batch_norm),
                               discriminator(c.patch_size) if s.uses_discriminator else None,
                               vgg_feature_extractor(*s.vgg, c.vgg_weights) if s.vgg else None, seed=c.seed)
            g_optimizer = self._optimizer(ema=True) if s.train_generator else None
            d_optimizer = self._optimizer(ema=False) if s.train_discriminator else None
            for optimizer, network in ((g_optimizer, self.model.generator), (d_optimizer, self.model.discriminator)):
                if optimizer is not None:
                    optimizer.build(network.trainable_variables)
            self.xla = use_xla(c.xla, self.precision, s.uses_discriminator, strategy.num_replicas_in_sync,
                               is_multi_worker(strategy))
            self.model.compile(g_optimizer, d_optimizer, jit_compile=self.xla)
        tracked = {"step": self.model.step, "generator": self.model.generator,
                   "discriminator": self.model.discriminator, "g_optimizer": g_optimizer, "d_optimizer": d_optimizer}
        self.checkpoint = tf.train.Checkpoint(**{k: v for k, v in tracked.items() if v is not None})

    def _optimizer(self, ema: bool):
        """Adam (beta_1 0.9, as in the paper) at the stage's rate: a ``StageSchedule`` for a stage that decays or
        warms up, else a number (the optimizer then holds it in a variable, which its checkpoints keep).

        The generator's optimizer always keeps a moving average of the weights, so that its checkpoints have
        one layout and an EMA can be switched on when a run resumes; ``config.ema`` sets its decay and
        whether validation and exports use it.
        """
        rate = self.stage.learning_rate
        if self.stage.decay_at or self.config.warmup_steps:
            rate = StageSchedule(rate, self.config.warmup_steps)
            self.schedules.append(rate)
        optimizer = keras.optimizers.Adam(rate, beta_1=0.9, use_ema=ema, ema_momentum=self.config.ema or 0.999)
        return keras.optimizers.LossScaleOptimizer(optimizer) if self.precision == "mixed_float16" else optimizer

    @property
    def optimizers(self) -> list:
        """The stage's optimizers (the generator's first), those it has."""
        return [o for o in (self.model.g_optimizer, self.model.d_optimizer) if o is not None]

    @property
    def current_step(self) -> int:
        """Steps this stage has done."""
        return int(self.model.step.numpy())

    def learning_rate(self) -> float:
        """The stage's rate for the next step, before a warm-up's ramp (``StageSchedule.target``)."""
        optimizer = self.optimizers[0]
        rate = self.schedules[0].target(optimizer.iterations) if self.schedules else optimizer.learning_rate
        return float(keras.ops.convert_to_numpy(rate))

    def set_learning_rate(self, rate: float) -> None:
        """Train on at ``rate`` (a resumed stage's checkpoint holds the rate it was trained with); for a stage
        without a schedule."""
        for optimizer in self.optimizers:
            optimizer.learning_rate = rate

    def ema(self) -> list | None:
        """The optimizer's moving averages of the generator's trainable weights, or None without an EMA."""
        optimizer = getattr(self.model.g_optimizer, "inner_optimizer", self.model.g_optimizer)
        # Keras keeps them in this attribute (its SwapEMAWeights callback reads it too)
        return optimizer._model_variables_moving_average if optimizer is not None and self.config.ema else None

    def reset_ema(self) -> None:
        """Start the average at the generator's current weights."""
        for average, variable in zip(self.ema() or [], self.model.generator.trainable_variables):
            average.assign(variable)

    @contextlib.contextmanager
    def inference_weights(self):
        """Within the block the generator holds the weights to evaluate and export: the EMA when there is one."""
        averages, network = self.ema(), self.model.generator
        if averages is None:
            yield network
            return
        variables = network.trainable_variables
        trained = [variable.numpy() for variable in variables]
        try:
            for variable, average in zip(variables, averages):
                variable.assign(average)
            yield network
        finally:
            for variable, value in zip(variables, trained):
                variable.assign(value)

    def variables(self, optimizers: bool = True) -> list:
        """The variables a checkpoint holds: the networks' weights, and the optimizers' state (``optimizers``)."""
        networks = [n for n in (self.model.generator, self.model.discriminator) if n is not None]
        variables = [v for network in networks for v in network.weights]
        return variables + ([v for o in self.optimizers for v in o.variables] if optimizers else [])
