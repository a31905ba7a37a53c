"""Loss terms. Each returns one value per example (shape (batch,)); the training step averages them.

Images are float RGB in [0, 1]; discriminator outputs are logits.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _per_example_mean(x):
    return tf.reduce_mean(tf.reshape(x, (tf.shape(x)[0], -1)), axis=1)


def pixel_mse(hr, sr):
    """Mean squared error of the pixels (the SRResNet loss), on the [-1, 1] range as in Ledig et al. (so 4x the
    MSE of [0, 1] images); the range matters once the MSE is weighed against the adversarial term."""
    return _per_example_mean(tf.square(2.0 * (tf.cast(hr, tf.float32) - tf.cast(sr, tf.float32))))


def content_loss(feature_extractor: keras.Model, hr, sr, feature_scale: float = 1.0):
    """MSE between VGG feature maps of HR and SR (Ledig et al.'s VGG loss).

    ``feature_scale``: features are multiplied by this before the MSE; the paper used 1/12.75 so that
    the VGG loss has about the magnitude of the pixel MSE.
    """
    real = tf.cast(feature_extractor(hr, training=False), tf.float32) * feature_scale
    fake = tf.cast(feature_extractor(sr, training=False), tf.float32) * feature_scale
    return _per_example_mean(tf.square(real - fake))


def total_variation(sr):
    """Anisotropic total variation, as a mean absolute difference of neighbouring pixels.

    A mean rather than ``tf.image.total_variation``'s sum, so that its weight does not depend on the
    patch size.
    """
    sr = tf.cast(sr, tf.float32)
    dy = tf.abs(sr[:, 1:, :, :] - sr[:, :-1, :, :])
    dx = tf.abs(sr[:, :, 1:, :] - sr[:, :, :-1, :])
    return _per_example_mean(dy) + _per_example_mean(dx)


def generator_adversarial_loss(fake_logits):
    """-log D(G(lr)): binary cross-entropy of the discriminator's verdict on SR against 'real'."""
    fake_logits = tf.reshape(tf.cast(fake_logits, tf.float32), (-1,))
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.ones_like(fake_logits), logits=fake_logits)


def discriminator_loss(real_logits, fake_logits, label_smoothing: float = 0.0, label_flip: float = 0.0,
                       noise=None):
    """Binary cross-entropy of the discriminator on real (HR) and fake (SR) images, per example.

    ``label_smoothing``: real images are labelled ``1 - label_smoothing`` (one-sided smoothing).
    ``label_flip``: each label is swapped with this probability (noisy labels); the course report used
    both tricks to keep the discriminator from winning too early. ``noise``, uniform numbers in [0, 1) of
    shape (2, batch), decides which labels flip (a real label where ``noise[0] < label_flip``, a fake one where
    ``noise[1] < label_flip``); without it they are drawn here.
    """
    real_logits = tf.reshape(tf.cast(real_logits, tf.float32), (-1,))
    fake_logits = tf.reshape(tf.cast(fake_logits, tf.float32), (-1,))
    real_labels = tf.fill(tf.shape(real_logits), 1.0 - label_smoothing)
    fake_labels = tf.zeros_like(fake_logits)
    if label_flip > 0:
        noise = tf.random.uniform((2, tf.shape(real_logits)[0])) if noise is None else noise
        real_labels = tf.where(noise[0] < label_flip, 0.0, real_labels)
        fake_labels = tf.where(noise[1] < label_flip, 1.0 - label_smoothing, fake_labels)
    real = tf.nn.sigmoid_cross_entropy_with_logits(labels=real_labels, logits=real_logits)
    fake = tf.nn.sigmoid_cross_entropy_with_logits(labels=fake_labels, logits=fake_logits)
    return real + fake


def discriminator_accuracy(real_logits, fake_logits):
    """Share of real images called real, and of fake images called fake (per example, 0 or 1)."""
    real = tf.cast(tf.reshape(real_logits, (-1,)) > 0, tf.float32)
    fake = tf.cast(tf.reshape(fake_logits, (-1,)) < 0, tf.float32)
    return real, fake
