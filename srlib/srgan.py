"""SRGAN's training step (Ledig et al. 2017) as a Keras model: ``fit`` runs it, callbacks do the rest.

The generator G makes a super-resolved batch I^SR = G(I^LR). Its loss is the paper's perceptual loss,
with the course report's total variation term as an option:

    l^SR = l_X^SR  +  w_TV * l_TV  +  w_Gen * l_Gen^SR,     l_Gen^SR = -log D(G(I^LR))

where the content loss l_X^SR is the pixel MSE or the MSE of VGG feature maps (``srlib.losses``). The
discriminator D learns real HR patches from generated ones by binary cross-entropy,

    l_D = -log D(I^HR) - log(1 - D(G(I^LR))),

with one-sided label smoothing and random label flips as settings. A stage decides which terms are
on and which networks learn (``srlib.recipes``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from . import losses
from .recipes import Stage


class SRGAN(keras.Model):
    """The generator, the discriminator and the frozen VGG of one stage; ``fit`` trains them."""

    def __init__(self, stage: Stage, generator: keras.Model, discriminator: keras.Model | None = None,
                 features: keras.Model | None = None, seed: int = 0):
        super().__init__(name="srgan")
        self.stage, self.seed = stage, seed
        self.generator, self.discriminator, self.features = generator, discriminator, features
        self.step = keras.Variable(0, dtype="int64", trainable=False, name="step", aggregation="only_first_replica")
        self.built = True

    def compile(self, g_optimizer=None, d_optimizer=None, jit_compile: bool = False):
        super().compile(optimizer=None, jit_compile=jit_compile)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    def train_step(self, data):
        lr, hr = data
        s = self.stage
        with tf.GradientTape(persistent=True) as tape:
            sr = self.generator(lr, training=s.train_generator)
            terms = {}  # the generator's loss, term by term, each with its weight
            if s.content_loss:
                terms["content"] = tf.reduce_mean(self.content_loss(hr, sr))
            if s.tv_weight:
                terms["tv"] = s.tv_weight * tf.reduce_mean(losses.total_variation(sr))
            if self.discriminator is not None:
                real = self.discriminator(hr, training=s.train_discriminator)
                fake = self.discriminator(sr, training=s.train_discriminator)
                if s.adversarial_weight:
                    terms["adversarial"] = s.adversarial_weight * tf.reduce_mean(losses.generator_adversarial_loss(fake))
                d_loss = tf.reduce_mean(losses.discriminator_loss(
                    real, fake, s.label_smoothing, s.label_flip, noise=self.label_noise(tf.shape(hr)[0])))
            g_loss = sum(terms.values())
        logs = {"step": self.step + 1, **terms}
        if s.train_generator:
            logs["g_loss"] = g_loss
            logs["g_grad_norm"] = self.update(self.g_optimizer, tape, g_loss, self.generator)
        if self.discriminator is not None:
            accuracy_real, accuracy_fake = losses.discriminator_accuracy(real, fake)
            logs.update(d_loss=d_loss, d_acc_real=tf.reduce_mean(accuracy_real), d_acc_fake=tf.reduce_mean(accuracy_fake))
        if s.train_discriminator:
            logs["d_grad_norm"] = self.update(self.d_optimizer, tape, d_loss, self.discriminator)
        self.step.assign_add(1)
        return logs

    def content_loss(self, hr, sr):
        """l_X^SR per example: pixel MSE, or the MSE of the VGG feature maps (scaled as in the paper)."""
        if self.features is None:
            return losses.pixel_mse(hr, sr)
        return losses.content_loss(self.features, hr, sr, self.stage.feature_scale)

    def update(self, optimizer, tape, loss, network: keras.Model):
        """One optimizer step of ``network`` on ``loss``; returns the norm of the gradients.

        Each device computes ``loss`` on its share of the batch and the optimizer sums the devices'
        gradients, so each share counts 1 / replicas; with mixed precision the loss is scaled up so that
        float16 gradients do not underflow (the optimizer scales them back). Both enter as the seed of
        the backward pass, which equals differentiating the scaled loss.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        scale = tf.cast(optimizer.scale_loss(1.0), loss.dtype) / replicas
        variables = network.trainable_variables
        gradients = tape.gradient(loss, variables, output_gradients=scale)
        optimizer.apply_gradients(zip(gradients, variables))
        return tf.linalg.global_norm(gradients) / scale  # with several devices, the mean of each one's norm

    def label_noise(self, batch_size):
        """Uniform numbers that decide this step's label flips, (2, batch_size): drawn for the global batch from
        the run's seed and the step (stateless, so a run repeats exactly, also under XLA and after a resume),
        and this device's share of them taken, so that several devices flip what one device would."""
        replica = tf.distribute.get_replica_context()
        replicas, index = replica.num_replicas_in_sync, replica.replica_id_in_sync_group
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(self.step, tf.int64)])
        noise = tf.random.stateless_uniform((2, batch_size * replicas), seed=seed)
        return noise[:, index * batch_size:(index + 1) * batch_size]
