"""Generator, discriminator and VGG feature extractor."""

import keras
import numpy as np
import pytest

from srlib.errors import SrlibError
from srlib.models import (SubpixelUpsampling, discriminator, generator, load_generator, load_weights,
                          save_generator, vgg_feature_extractor)
from srlib.model_card import card_path


def test_srresnet_16_has_about_1_55_million_parameters():
    model = generator(scale=4, blocks=16, filters=64)
    assert model.count_params() == 1_554_883  # 1.55 M, as in the paper's SRResNet
    assert model.architecture == {"scale": 4, "blocks": 16, "filters": 64, "batch_norm": True}


@pytest.mark.parametrize("scale", [2, 4, 8])
@pytest.mark.parametrize("size", [(7, 5), (16, 16)])
def test_generator_is_fully_convolutional_for_each_scale(scale, size):
    model = generator(scale=scale, blocks=2, filters=8)
    out = model(np.zeros((2, *size, 3), np.float32), training=False)
    assert tuple(out.shape) == (2, size[0] * scale, size[1] * scale, 3)
    assert sum(isinstance(layer, SubpixelUpsampling) for layer in model.layers) == int(np.log2(scale))
    assert not any("UpSampling2D" in type(layer).__name__ for layer in model.layers)


def test_generator_options_and_bad_scale():
    assert generator(2, blocks=3, filters=8, batch_norm=False).architecture == {
        "scale": 2, "blocks": 3, "filters": 8, "batch_norm": False}
    with pytest.raises(SrlibError, match="scale must be one of"):
        generator(scale=3)


def test_inference_does_not_use_batch_statistics():
    # At test time an image's SR must not depend on the other images in the batch.
    model = generator(scale=2, blocks=2, filters=8)
    rng = np.random.default_rng(0)
    batch = rng.uniform(size=(4, 12, 12, 3)).astype(np.float32)
    model(batch, training=True)  # move the BN statistics away from their initial values
    alone = model(batch[:1], training=False).numpy()
    together = model(batch, training=False).numpy()[:1]
    np.testing.assert_allclose(alone, together, atol=1e-5)
    trained = model(batch, training=True).numpy()[:1]
    assert np.abs(trained - together).max() > 1e-4  # training mode does use the batch


def test_upscale_with_runs_inference_mode_and_returns_uint8():
    from srlib.models import upscale_with

    model = generator(scale=2, blocks=1, filters=8)
    rng = np.random.default_rng(4)
    model(rng.uniform(size=(4, 8, 8, 3)).astype(np.float32), training=True)  # move the BN statistics
    lr = rng.integers(0, 256, size=(9, 7, 3), dtype=np.uint8)
    sr = upscale_with(model)(lr)
    assert sr.dtype == np.uint8 and sr.shape == (18, 14, 3)
    expected = model(lr[None].astype(np.float32) / 255.0, training=False).numpy()[0]
    np.testing.assert_array_equal(sr, np.clip(np.round(expected * 255), 0, 255).astype(np.uint8))


def test_a_chapters_many_upscalers_do_not_warn_of_retracing():
    import io
    import logging

    import tensorflow as tf

    from srlib.models import upscale_with

    model = generator(scale=2, blocks=1, filters=4)
    written = io.StringIO()
    handler = logging.StreamHandler(written)
    tf.get_logger().addHandler(handler)  # TensorFlow's own Python logger, which the notebooks show
    try:
        for _ in range(8):  # each is traced once, as a chapter makes one per model, stage and moving average
            upscale_with(model)(np.zeros((6, 6, 3), np.uint8))
    finally:
        tf.get_logger().removeHandler(handler)
    assert "retracing" not in written.getvalue()


@pytest.mark.parametrize("size", [96, 64])
def test_discriminator_gives_one_logit_per_image(size):
    model = discriminator(size)
    assert tuple(model(np.zeros((3, size, size, 3), np.float32)).shape) == (3, 1)
    convs = [layer for layer in model.layers if type(layer).__name__ == "Conv2D"]
    assert [c.filters for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.strides[0] for c in convs] == [1, 2, 1, 2, 1, 2, 1, 2]


def test_vgg_extractor_is_frozen_and_warns_once_about_random_weights(caplog, monkeypatch):
    import srlib._quiet

    monkeypatch.setattr(srlib._quiet, "_warned", set())
    extractor = vgg_feature_extractor("vgg16", "block2_conv2", None)
    vgg_feature_extractor("vgg16", "block2_conv2", None)
    assert [r.levelname for r in caplog.records if "RANDOM weights" in r.getMessage()] == ["WARNING"]  # once
    assert extractor.trainable_weights == []
    assert tuple(extractor(np.zeros((1, 32, 32, 3), np.float32)).shape) == (1, 16, 16, 128)


def test_vgg_extractor_does_imagenet_preprocessing_in_the_graph():
    import keras

    extractor = vgg_feature_extractor("vgg19", "block1_conv1", "none")
    trunk = extractor.layers[-1]
    rgb = np.random.default_rng(1).uniform(size=(1, 8, 8, 3)).astype(np.float32)
    bgr_centred = rgb[..., ::-1] * 255.0 - np.array([103.939, 116.779, 123.68], np.float32)
    np.testing.assert_allclose(extractor(rgb).numpy(), trunk(bgr_centred).numpy(), rtol=1e-4, atol=1e-3)
    assert isinstance(trunk, keras.Model)


def test_vgg_weights_from_a_local_file(tmp_path):
    import keras

    source = keras.applications.VGG16(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg16_notop.weights.h5"
    source.save_weights(path)
    extractor = vgg_feature_extractor("vgg16", "block1_conv2", str(path))
    x = np.random.default_rng(2).uniform(size=(1, 8, 8, 3)).astype(np.float32)
    expected = keras.Model(source.input, source.get_layer("block1_conv2").output)(
        keras.applications.vgg16.preprocess_input(x * 255.0))
    np.testing.assert_allclose(extractor(x).numpy(), expected.numpy(), rtol=1e-5, atol=1e-4)


def test_vgg_bad_weights_and_layers_are_clear_errors(tmp_path):
    with pytest.raises(SrlibError, match="does not exist"):
        vgg_feature_extractor("vgg16", "block2_conv2", str(tmp_path / "missing.h5"))
    wrong = tmp_path / "wrong.weights.h5"
    generator(2, blocks=1, filters=8).save_weights(wrong)
    with pytest.raises(SrlibError, match="could not load vgg16 weights"):
        vgg_feature_extractor("vgg16", "block2_conv2", str(wrong))
    with pytest.raises(SrlibError, match="no layer 'block9_conv9'"):
        vgg_feature_extractor("vgg16", "block9_conv9", None)
    with pytest.raises(SrlibError, match="unknown VGG network"):
        vgg_feature_extractor("vgg11", "block1_conv1", None)


def test_generator_weights_round_trip_with_sidecar(tmp_path):
    model = generator(2, blocks=2, filters=8)
    path = tmp_path / "g.weights.h5"
    save_generator(model, path, {"recipe": "paper"})
    assert card_path(path).name == "g.json"
    loaded = load_generator(path)
    for saved, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    x = np.random.default_rng(3).uniform(size=(1, 6, 6, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x, training=False).numpy(), model(x, training=False).numpy())
    with pytest.raises(SrlibError, match="does not fit this generator"):
        load_generator(path, filters=16)
    with pytest.raises(SrlibError, match="do not exist"):
        load_generator(tmp_path / "nope.weights.h5")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_weights_holding_nan_or_inf_are_never_saved_nor_used(tmp_path, capsys, value):
    import json
    import re

    from PIL import Image

    from srlib.cli import main

    model = generator(2, blocks=1, filters=8, batch_norm=False)
    path = tmp_path / "g.weights.h5"
    save_generator(model, path, {"steps": 1})
    before = path.read_bytes()
    conv = model.get_layer("block0_conv2")
    kernel, bias = conv.get_weights()
    kernel[0, 0, 0, 0] = value  # as a diverged training leaves them
    conv.set_weights([kernel, bias])
    with pytest.raises(SrlibError, match=re.escape(f"not saving {path}") + ".*block0_conv2"):
        save_generator(model, path, {"steps": 2})
    assert path.read_bytes() == before and json.loads(card_path(path).read_text())["steps"] == 1
    model.save_weights(path)  # as srlib exported them before
    named = re.escape(f"{path} holds NaN or Inf weights (layer block0_conv2)")
    with pytest.raises(SrlibError, match=named):
        load_generator(path)
    with pytest.raises(SrlibError, match=named):
        load_weights(generator(2, blocks=1, filters=8, batch_norm=False), path)
    image = tmp_path / "in.png"
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(image)
    assert main(["upscale", str(image), "--weights", str(path), "-o", str(tmp_path / "out")]) == 2  # not a black image
    assert re.fullmatch("error: " + named + ".*\n", capsys.readouterr().err)
    assert not any((tmp_path / "out").glob("*.png"))


def test_auto_vgg_weights_fall_back_to_random_loudly(monkeypatch, caplog, capsys):
    import srlib._quiet
    import srlib.models as models

    attempts = []

    def offline(**kwargs):
        attempts.append(kwargs)
        print("Downloading data from https://storage.googleapis.com/...")  # as Keras does
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setitem(models._VGG, "vgg16", (offline, models._VGG["vgg16"][1]))
    monkeypatch.setattr(srlib._quiet, "_warned", set())
    monkeypatch.setattr(models, "_resolved", {})
    assert models.resolve_vgg_weights("auto", "vgg16") is None
    assert any("RANDOM vgg16 weights" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert models.resolve_vgg_weights("auto", "vgg16") is None and len(attempts) == 1  # tried once per process
    assert "Downloading" not in capsys.readouterr().out  # no Keras line in a chapter's output
    assert models.resolve_vgg_weights("imagenet", "vgg16") == "imagenet"  # other values pass through
    assert models.resolve_vgg_weights(None, "vgg16") is None


def test_folding_batch_norm_keeps_the_inference_function():
    from srlib.models import fold_batch_norm, generator

    model = generator(scale=4, blocks=2, filters=8)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # statistics and affine parameters far from their initial 0 / 1
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.5, 8), rng.normal(0, 0.5, 8), rng.uniform(0.2, 3, 8)])
    folded = fold_batch_norm(model)
    assert folded.architecture == {"scale": 4, "blocks": 2, "filters": 8, "batch_norm": False}
    x = rng.uniform(0, 1, (2, 11, 13, 3)).astype("float32")
    np.testing.assert_allclose(folded(x, training=False), model(x, training=False), atol=1e-5)
    with pytest.raises(SrlibError, match="no batch norm"):
        fold_batch_norm(folded)


def test_shifting_the_colour_moves_every_output_pixel_by_that_many_grey_levels():
    from srlib.models import shift_colour

    model = generator(scale=2, blocks=1, filters=4, batch_norm=False)
    x = np.random.default_rng(0).uniform(0, 1, (1, 9, 7, 3)).astype("float32")
    before = model(x, training=False).numpy()
    assert shift_colour(model, [3.0, -1.5, 0.25]) is model
    moved = (model(x, training=False).numpy() - before) * 255
    np.testing.assert_allclose(moved, np.broadcast_to([3.0, -1.5, 0.25], moved.shape), atol=1e-3)
    with pytest.raises(SrlibError, match="three numbers"):
        shift_colour(model, 2.0)


def test_the_tail_conv_is_a_9x9_conv_in_its_result_its_gradients_and_its_weights():
    import keras
    import tensorflow as tf

    from srlib.models import tail_conv

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(2, 10, 14, 6)).astype(np.float32))
    plain, tail = keras.layers.Conv2D(3, 9, padding="same"), tail_conv()
    plain.build(x.shape), tail.build(x.shape)
    weights = [rng.normal(size=w.shape).astype(np.float32) for w in plain.get_weights()]
    plain.set_weights(weights), tail.set_weights(weights)  # the same variables, shapes and names as a Conv2D
    assert [v.path.split("/")[-1] for v in tail.weights] == [v.path.split("/")[-1] for v in plain.weights]
    # a linear loss (a fixed random projection), so that both layers' gradients start from the same numbers: a
    # nonlinear one such as sum(y cos y) amplified the sums' rounding by |y| (about 30) before the backward pass
    # and failed on an AVX2-only CPU whose kernels sum in yet another order
    results = [_values_and_gradients(layer, x) for layer in (plain, tail)]
    for a, b in zip(*results):  # float32 sums in another order: equal to 1e-5 of their largest value
        assert np.abs(b - a).max() <= 1e-5 * np.abs(a).max()


def _values_and_gradients(layer, x, training=None):
    """``layer(x)``, and the gradients of a random projection of it with respect to x and the layer's trainable
    variables, all as float32 NumPy arrays."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=training) if training is not None else layer(x)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.random.stateless_normal(y.shape, (1, 2)))
    gradients = tape.gradient(loss, [x, *layer.trainable_variables])
    return [np.asarray(tf.cast(v, tf.float32)) for v in (y, *gradients)]


@pytest.mark.parametrize("trainable", [True, False])
def test_the_fused_batch_norm_computes_what_keras_batch_norm_does(trainable):
    """In bfloat16: outputs, gradients and moving statistics as Keras's layer computes them (to bfloat16 rounding),
    in training and at inference, and no update of the statistics when the layer is frozen."""
    import keras
    import tensorflow as tf

    from srlib.models import fused_batch_norm
    from srlib.precision import policy

    rng = np.random.default_rng(0)
    x = tf.cast(rng.normal(3.0, 2.0, size=(4, 6, 10, 16)), tf.bfloat16)
    with policy("bfloat16"):
        keras_bn = keras.layers.BatchNormalization(momentum=0.9)
        fused = fused_batch_norm(keras.layers.BatchNormalization(momentum=0.9))
    weights = [rng.uniform(0.5, 1.5, 16), rng.normal(size=16), rng.normal(size=16), rng.uniform(0.5, 2.0, 16)]
    for layer in (keras_bn, fused):
        layer.build(x.shape)
        layer.set_weights([w.astype(np.float32) for w in weights])
        layer.trainable = trainable
    for training in (True, False):
        expected, got = _values_and_gradients(keras_bn, x, training), _values_and_gradients(fused, x, training)
        assert got[0].dtype == expected[0].dtype
        for e, g in zip(expected, got):  # each a bfloat16 value or a float32 sum of them: a few bfloat16 steps
            np.testing.assert_allclose(g, e, atol=2 ** -6 * max(1.0, np.abs(e).max()))
        np.testing.assert_allclose(fused.moving_mean.numpy(), keras_bn.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fused.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-5)
    moved = not np.allclose(fused.moving_mean.numpy(), weights[2])
    assert moved == trainable  # a frozen layer normalises with its moving statistics and keeps them
    assert fused.moving_mean.dtype == fused.gamma.dtype == "float32"


def test_the_fused_batch_norm_leaves_float32_to_keras():
    import keras
    import tensorflow as tf

    from srlib.models import fused_batch_norm

    x = tf.random.stateless_normal((2, 5, 5, 8), (3, 4))
    keras_bn, fused = keras.layers.BatchNormalization(), fused_batch_norm(keras.layers.BatchNormalization())
    for a, b in zip(_values_and_gradients(keras_bn, x, True), _values_and_gradients(fused, x, True)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(keras_bn.moving_variance.numpy(), fused.moving_variance.numpy())


def test_the_bfloat16_generator_trains_with_the_fused_batch_norm_and_our_prelu():
    """The layers compared with Keras's here are the ones the generator's training step computes with: TensorFlow's
    fused batch norm, and no ReLU (Keras's PReLU is relu(x) - alpha * relu(-x))."""
    import tensorflow as tf

    from srlib.precision import policy

    with policy("bfloat16"):
        network = generator(scale=4, blocks=1, filters=8, batch_norm=True)

    @tf.function
    def gradients(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(network(x, training=True), tf.float32))
        return tape.gradient(loss, network.trainable_variables)

    ops = {op.type for op in gradients.get_concrete_function(tf.zeros((1, 8, 8, 3))).graph.get_operations()}
    assert {"FusedBatchNormV3", "FusedBatchNormGradV3"} <= ops and not ops & {"Relu", "ReluGrad"}


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_the_prelu_computes_what_keras_prelu_does(precision):
    import keras
    import tensorflow as tf

    from srlib.models import prelu
    from srlib.precision import policy

    rng = np.random.default_rng(1)
    with policy(precision):
        keras_prelu, ours = keras.layers.PReLU(shared_axes=[1, 2]), prelu("p")
    x = tf.cast(rng.normal(size=(3, 7, 9, 5)), keras_prelu.compute_dtype)
    alpha = rng.uniform(-0.5, 1.5, size=(1, 1, 5)).astype(np.float32)  # slopes of both signs, and above 1
    for layer in (keras_prelu, ours):
        layer.build(x.shape)
        layer.set_weights([alpha])
    expected, got = _values_and_gradients(keras_prelu, x), _values_and_gradients(ours, x)
    np.testing.assert_array_equal(got[0], expected[0])  # the products are the same, and negation is exact
    np.testing.assert_array_equal(got[1], expected[1])
    # the slope's gradient: a sum over 189 pixels per channel, in another order
    np.testing.assert_allclose(got[2], expected[2], rtol=2 ** -7 if precision == "bfloat16" else 1e-5)
    assert ours.alpha.dtype == "float32" and got[2].shape == alpha.shape
