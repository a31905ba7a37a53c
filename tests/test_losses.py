"""Loss terms on inputs whose values are known."""

import math

import numpy as np
import pytest
import tensorflow as tf

from srlib import losses


def test_pixel_mse_is_per_example():
    hr = np.zeros((2, 4, 4, 3), np.float32)
    sr = hr.copy()
    sr[1] += 0.5
    np.testing.assert_allclose(losses.pixel_mse(hr, sr).numpy(), [0.0, 1.0])  # 0.5 on [0, 1] is 1 on [-1, 1]


def test_total_variation_of_a_vertical_edge():
    image = np.zeros((1, 4, 5, 3), np.float32)
    image[:, :, 2:] = 1.0  # one step of 1 between columns 1 and 2, on every row
    # horizontal differences: 4 rows x 4 pairs x 3 channels, 4 x 3 of them equal to 1: mean 1/4
    np.testing.assert_allclose(losses.total_variation(image).numpy(), [0.25])


def test_content_loss_uses_scaled_features():
    doubler = tf.keras.layers.Lambda(lambda x: 2.0 * x)
    hr = np.zeros((1, 2, 2, 3), np.float32)
    sr = np.ones((1, 2, 2, 3), np.float32)
    np.testing.assert_allclose(losses.content_loss(doubler, hr, sr).numpy(), [4.0])
    np.testing.assert_allclose(losses.content_loss(doubler, hr, sr, feature_scale=0.5).numpy(), [1.0])


def test_adversarial_losses_and_label_smoothing():
    zero = np.zeros((3, 1), np.float32)
    np.testing.assert_allclose(losses.generator_adversarial_loss(zero).numpy(), [math.log(2)] * 3, rtol=1e-6)
    np.testing.assert_allclose(losses.discriminator_loss(zero, zero).numpy(), [2 * math.log(2)] * 3, rtol=1e-6)
    confident = np.full((1, 1), 20.0, np.float32)
    plain = losses.discriminator_loss(confident, -confident).numpy()[0]
    smoothed = losses.discriminator_loss(confident, -confident, label_smoothing=0.1).numpy()[0]
    assert plain < 1e-6 and smoothed == pytest.approx(0.1 * 20, rel=1e-3)  # smoothing punishes certainty


def test_label_flips_swap_the_targets():
    real, fake = np.full((4096, 1), 20.0, np.float32), np.full((4096, 1), -20.0, np.float32)
    flipped = losses.discriminator_loss(real, fake, label_flip=1.0).numpy()
    np.testing.assert_allclose(flipped, 40.0, rtol=1e-3)  # every verdict is now exactly wrong
    partly = losses.discriminator_loss(real, fake, label_flip=0.5).numpy()
    # a pair escapes both flips with probability 1/4 (std of the share here: 0.007)
    assert np.mean(partly > 1) == pytest.approx(0.75, abs=0.04)


def test_discriminator_accuracy():
    real_acc, fake_acc = losses.discriminator_accuracy(np.array([[1.0], [-1.0]]), np.array([[-1.0], [-2.0]]))
    np.testing.assert_array_equal(real_acc.numpy(), [1, 0])
    np.testing.assert_array_equal(fake_acc.numpy(), [1, 1])
