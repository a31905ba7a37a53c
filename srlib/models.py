"""The networks: SRResNet generator, SRGAN discriminator and the frozen VGG feature extractor.

Images enter and leave every network as float RGB in [0, 1]; each network does its own input scaling
inside the graph, so callers never normalise by hand. (The Keras implementation behind the course report
rescaled each input image by its own min and max, so the network saw different colours for the same
pixel in different images; that is not repeated here.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import logging
import math
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import h5py
import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ._quiet import warn_once
from .errors import SrlibError
from .files import write_bytes
from .model_card import EMBEDDED, SCALES, ModelCard, card_path, check_architecture

log = logging.getLogger(__name__)

@keras.saving.register_keras_serializable(package="srlib")
class SubpixelUpsampling(layers.Layer):
    """Sub-pixel convolution's shuffle (Shi et al. 2016): (H, W, C * f^2) -> (H f, W f, C)."""

    def __init__(self, factor: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.factor)

    def compute_output_shape(self, input_shape):
        height, width, channels = input_shape[1:]
        scaled = lambda n: None if n is None else n * self.factor  # noqa: E731
        return (input_shape[0], scaled(height), scaled(width), channels // self.factor**2)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def pre_shuffle_index(size: int, channels: int, outputs: int) -> np.ndarray:
    """Where a ``size`` x ``size`` conv (``channels`` -> ``outputs``) applied after a x2 depth-to-space finds
    each weight of the same function applied before it: a (2R + 1) x (2R + 1) conv, R = (size//2 + 1)//2,
    of 4 ``channels`` -> 4 ``outputs``, followed by a x2 depth-to-space of its output. Returns, for each
    weight of that conv, its index in the flattened ``size`` x ``size`` kernel, or the kernel's size for a zero.

    Depth-to-space puts pre-shuffle channel (2p + q) C + c of pixel (i, j) at (2i + p, 2j + q). Output pixel
    (2i + a, 2j + b) reads input (2i + a + dy, 2j + b + dx) for |dy|, |dx| <= r = size//2, which is pre-shuffle
    pixel (i + m, j + n) with 2m + p = a + dy, 2n + q = b + dx; so |m|, |n| <= R and
    new[m + R, n + R, (2p + q) C + c, (2a + b) O + o] = kernel[2m + p - a + r, 2n + q - b + r, c, o]
    where that index is in range. Zero padding agrees too: a pixel is outside the image exactly when its
    pre-shuffle pixel is.
    """
    r = size // 2
    big_r = (r + 1) // 2
    flat = np.arange(size * size * channels * outputs).reshape(size, size, channels, outputs)
    index = np.full((2 * big_r + 1, 2 * big_r + 1, 4 * channels, 4 * outputs), flat.size, np.int32)
    for a, b, p, q in np.ndindex(2, 2, 2, 2):
        for m, n in np.ndindex(2 * big_r + 1, 2 * big_r + 1):
            dy, dx = 2 * (m - big_r) + p - a, 2 * (n - big_r) + q - b
            if abs(dy) <= r and abs(dx) <= r:
                index[m, n, (2 * p + q) * channels:(2 * p + q + 1) * channels,
                      (2 * a + b) * outputs:(2 * a + b + 1) * outputs] = flat[dy + r, dx + r]
    return index


def pre_shuffle_kernel(kernel):
    """The kernel of ``pre_shuffle_index``'s conv for ``kernel`` (size x size x C x O; NumPy or TensorFlow, and
    differentiable in it): a conv with it on the pre-shuffle features, then a x2 depth-to-space, computes what
    ``kernel`` computes after the shuffle."""
    size, _, channels, outputs = kernel.shape
    flat = tf.concat([tf.reshape(kernel, [-1]), tf.zeros([1], kernel.dtype)], axis=0)
    return tf.gather(flat, pre_shuffle_index(size, channels, outputs))


def tail_conv(size: int = 9, name: str = "tail_conv") -> layers.Conv2D:
    """The generator's last conv (``size`` x ``size``, to RGB), which follows a x2 shuffle: a Keras ``Conv2D``
    whose convolution is computed as ``pre_shuffle_kernel``'s conv on the pre-shuffle layout of its input
    (space-to-depth), then a depth-to-space. Same weights, same result. A conv with 3 output channels at full
    resolution runs at a fifth of the CPU's speed for other convs (oneDNN, in float32 and bfloat16 alike); the
    5x5 conv to 12 channels on a quarter of the pixels runs near it: the tail's forward and backward pass about
    2.5x as fast (SRResNet-16, batch 16, HR 96). Height and width must be even, as they are after a shuffle."""
    conv = layers.Conv2D(3, size, padding="same", name=name)

    def call(inputs):
        # the bias too is added before the shuffle (each of the 12 channels takes its RGB channel's bias), where
        # oneDNN fuses it into the conv and its gradient into the kernel's: in bfloat16, a separate bias gradient
        # over the 3 output channels took a twentieth of the cpu profile's step
        shuffled = tf.nn.conv2d(tf.nn.space_to_depth(inputs, 2), pre_shuffle_kernel(conv.kernel), 1, "SAME")
        return tf.nn.depth_to_space(tf.nn.bias_add(shuffled, tf.tile(conv.bias, [4])), 2)

    # the instance's method, not a subclass: a .weights.h5 file names each layer's weights after its class
    # (layers/conv2d_17), so a class of our own would no longer read the files written so far
    conv.call = call
    return conv


def fused_batch_norm(bn: layers.BatchNormalization) -> layers.BatchNormalization:
    """``bn`` (a Keras ``BatchNormalization`` over the last axis of NHWC images), changed in place so that under a
    bfloat16 compute dtype it computes with TensorFlow's fused kernel (``FusedBatchNormV3``: bfloat16 in and out,
    float32 statistics and arithmetic inside, one pass forward and one backward). Keras's own layer casts a
    bfloat16 input to float32 and computes moments, normalisation and their gradients as a dozen separate ops,
    which took a fifth of the bfloat16 step of SRResNet-16 with batch norm (benchmarks/bench_train_step.py
    --compare-precision, the gpu-full profile's network). The results are Keras's up to bfloat16 rounding: the same moving
    averages (of the biased batch variance, as Keras keeps them), the same ``training and trainable`` rule. Other
    dtypes, masks and synchronised statistics (several devices) take Keras's path unchanged. Returns ``bn``."""
    keras_call = bn.call

    def call(inputs, training=None, mask=None):
        if (inputs.dtype != tf.bfloat16 or mask is not None or bn.synchronized or bn.axis not in (-1, 3)
                or len(inputs.shape) != 4 or not (bn.scale and bn.center) or bn.renorm):
            return keras_call(inputs, training=training, mask=mask)
        train = bool(training and bn.trainable)
        y, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=bn.gamma.value, offset=bn.beta.value,
            mean=bn.moving_mean.value if not train else tf.constant([], tf.float32),
            variance=bn.moving_variance.value if not train else tf.constant([], tf.float32),
            epsilon=bn.epsilon, data_format="NHWC", is_training=train)
        if train:
            # the kernel returns the unbiased (n - 1) batch variance; Keras averages the biased one
            n = tf.cast(tf.size(inputs) // tf.shape(inputs)[-1], tf.float32)
            momentum = bn.momentum
            bn.moving_mean.assign(bn.moving_mean * momentum + mean * (1.0 - momentum))
            bn.moving_variance.assign(bn.moving_variance * momentum + variance * ((n - 1.0) / n) * (1.0 - momentum))
        return y

    # the instance's method, not a subclass: weights files name a layer's weights after its class (see tail_conv)
    bn.call = call
    return bn


def prelu(name: str) -> layers.PReLU:
    """Keras's ``PReLU`` with one slope per channel (shared over height and width), whose ``call`` computes
    ``x * (1 if x > 0 else alpha)`` with a gradient of our own: a comparison, a choice of slope and a product
    forward, and for the gradients two products, a minimum and the slope's sum, where Keras's
    ``relu(x) - alpha * relu(-x)`` takes five ops forward and about eight back (ReLUs, negations and their
    gradients); in a bfloat16 step of the cpu profile's network that saves about a tenth of the time. The same
    values (the products and negations are exact; TensorFlow sums bfloat16 in float32), but for the gradient
    with respect to an input of exactly 0: ``alpha`` here, 0 in Keras's (either is a subgradient)."""
    layer = layers.PReLU(shared_axes=[1, 2], name=name)

    def call(inputs):
        @tf.custom_gradient
        def forward(x, alpha):
            slope = tf.where(x > 0, tf.ones_like(alpha), alpha)

            def gradient(upstream):
                return upstream * slope, tf.reduce_sum(upstream * tf.minimum(x, 0), axis=[0, 1, 2])[None, None]

            return x * slope, gradient

        return forward(inputs, tf.cast(layer.alpha, inputs.dtype))

    # the instance's method, not a subclass: weights files name a layer's weights after its class (see tail_conv)
    layer.call = call
    return layer


def _batch_norm(name: str) -> layers.Layer:
    # Under a multi-device strategy, synchronise so that the statistics are those of the global batch,
    # not each replica's; on one device that would only add an all-reduce to every layer.
    strategy = tf.distribute.get_strategy()
    return fused_batch_norm(
        layers.BatchNormalization(momentum=0.99, synchronized=strategy.num_replicas_in_sync > 1, name=name))


def generator(scale: int = 4, blocks: int = 16, filters: int = 64, batch_norm: bool = True, name: str = "generator") -> keras.Model:
    """SRResNet (Ledig et al. 2017, fig. 4): fully convolutional, LR [0, 1] in, SR [0, 1] out.

    9x9 conv + PReLU; ``blocks`` residual blocks (conv3x3-BN-PReLU-conv3x3-BN + skip); conv3x3-BN and
    the long skip; per factor 2 a conv3x3 to 4x the filters, a sub-pixel shuffle and PReLU; a 9x9 conv
    to RGB. Call it with ``training=False`` at test time so batch norm uses its moving averages.
    """
    if scale not in SCALES:
        raise SrlibError(f"scale must be one of {SCALES}, got {scale}")
    lr = keras.Input(shape=(None, None, 3), name="lr")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(lr)  # work in [-1, 1], centred on grey
    x = layers.Conv2D(filters, 9, padding="same", name="head_conv")(x)
    x = head = prelu("head_prelu")(x)
    for i in range(blocks):
        y = layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv1")(x)
        if batch_norm:
            y = _batch_norm(f"block{i}_bn1")(y)
        y = prelu(f"block{i}_prelu")(y)
        y = layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv2")(y)
        if batch_norm:
            y = _batch_norm(f"block{i}_bn2")(y)
        x = layers.Add(name=f"block{i}_add")([x, y])
    x = layers.Conv2D(filters, 3, padding="same", name="body_conv")(x)
    if batch_norm:
        x = _batch_norm("body_bn")(x)
    x = layers.Add(name="long_skip")([head, x])
    for i in range(int(math.log2(scale))):
        x = layers.Conv2D(filters * 4, 3, padding="same", name=f"up{i}_conv")(x)
        x = SubpixelUpsampling(2, name=f"up{i}_shuffle")(x)
        x = prelu(f"up{i}_prelu")(x)
    # under a mixed precision the tail conv computes in it too; its output, rounded to bfloat16 (at most half a
    # grey level), is rescaled in float32. Validation and exports compute it in float32 (srlib.precision).
    x = tail_conv()(x)
    sr = layers.Rescaling(0.5, offset=0.5, dtype="float32", name="from_pm1")(x)  # an untrained net starts at grey
    model = keras.Model(lr, sr, name=name)
    model.architecture = {"scale": scale, "blocks": blocks, "filters": filters, "batch_norm": batch_norm}
    return model


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """The same generator without batch norm: each BN layer (inference mode) folded into the conv before it.

    In inference mode BN is a per-channel affine map, ``gamma * (x - mean) / sqrt(var + eps) + beta``, so
    the conv's kernel and bias can absorb it exactly; the result computes what ``model(x, training=False)``
    does. Fine-tuning the folded network trains the function that inference uses (BN's train/test gap gone).
    """
    config = model.architecture
    if not config["batch_norm"]:
        raise SrlibError("this generator has no batch norm to fold")
    folded = generator(config["scale"], config["blocks"], config["filters"], batch_norm=False, name=model.name)
    bn_after = {f"block{i}_conv{j}": f"block{i}_bn{j}" for i in range(config["blocks"]) for j in (1, 2)}
    bn_after["body_conv"] = "body_bn"
    for layer in folded.layers:
        if not layer.weights:
            continue
        weights = model.get_layer(layer.name).get_weights()
        if layer.name in bn_after:
            bn = model.get_layer(bn_after[layer.name])
            gamma, beta, mean, variance = bn.get_weights()
            factor = gamma / np.sqrt(variance + bn.epsilon)
            kernel, bias = weights
            weights = [kernel * factor, (bias - mean) * factor + beta]
        layer.set_weights(weights)
    return folded


def shift_colour(model: keras.Model, shift: Sequence[float]) -> keras.Model:
    """Add ``shift`` (R, G, B, in grey levels of uint8) to every output pixel of ``model``, a generator of this
    module, through the bias of its last conv (``sr = 0.5 * tail_conv + 0.5``, linear in that bias); returns
    ``model``, changed in place. With the other weights fixed and no pixel clipped, ``shift_colour(model,
    -offset)``, where ``offset`` is the mean over some images of SR - HR (``benchmark.colour_offset``), gives
    the bias with the least pixel MSE on them, each image weighted alike."""
    shift = np.asarray(shift, np.float32)
    if shift.shape != (3,):
        raise SrlibError(f"a colour shift is three numbers (R, G, B), got {shift.tolist()}")
    tail = model.get_layer("tail_conv")
    kernel, bias = tail.get_weights()
    tail.set_weights([kernel, bias + 2.0 * shift / 255.0])
    return model


def discriminator(patch_size: int = 96, name: str = "discriminator") -> keras.Model:
    """The SRGAN discriminator: eight 3x3 convs (64 to 512, stride 2 every other), dense 1024, one logit."""
    image = keras.Input(shape=(patch_size, patch_size, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0, name="to_pm1")(image)  # [0, 1] -> [-1, 1]
    for i, (filters, stride) in enumerate([(64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2)]):
        x = layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"conv{i}")(x)
        if i > 0:
            x = _batch_norm(f"bn{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"lrelu{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(1024, name="dense")(x)
    x = layers.LeakyReLU(0.2, name="dense_lrelu")(x)
    logit = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(image, logit, name=name)


_VGG = {
    "vgg16": (keras.applications.VGG16, keras.applications.vgg16.preprocess_input),
    "vgg19": (keras.applications.VGG19, keras.applications.vgg19.preprocess_input),
}


def vgg_feature_extractor(network: str = "vgg16", layer: str = "block5_conv3", weights: str | None = "imagenet") -> keras.Model:
    """A frozen VGG cut at ``layer`` (after its ReLU), taking RGB in [0, 1].

    ``weights``: "imagenet" (Keras downloads and caches the file), a local ``.h5`` path, or
    None / "none" for random weights, which make the content loss meaningless except for tests.
    The ImageNet preprocessing (RGB to BGR, mean subtraction) is part of the returned model.
    """
    if network not in _VGG:
        raise SrlibError(f"unknown VGG network {network!r}; use one of {sorted(_VGG)}")
    build, preprocess = _VGG[network]
    if weights in (None, "none"):
        warn_once(log, f"{network} has RANDOM weights: the VGG content loss will not measure perceptual similarity. "
                   "Use --vgg-weights imagenet (or a local .h5 file) for real training.")
        weights = None
    elif weights != "imagenet":
        path = Path(weights)
        if not path.is_file():
            raise SrlibError(f"VGG weights file {path} does not exist")
        weights = str(path)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Skipping nested container")  # see load_weights
            base = build(include_top=False, weights=weights, input_shape=(None, None, 3))
    except Exception as error:  # a wrong file fails deep inside h5py / Keras with a shape message
        raise SrlibError(
            f"could not load {network} weights from {weights}: {error}. Expected Keras' "
            f"{network}_weights_tf_dim_ordering_tf_kernels_notop.h5 (include_top=False)."
        ) from None
    try:
        features = base.get_layer(layer).output
    except ValueError:
        names = [l.name for l in base.layers if "conv" in l.name]
        raise SrlibError(f"{network} has no layer {layer!r}; choose one of {', '.join(names)}") from None
    trunk = keras.Model(base.input, features, name=f"{network}_{layer}")
    trunk.trainable = False
    rgb = keras.Input(shape=(None, None, 3), name="rgb")
    outputs = trunk(preprocess(rgb * 255.0))
    extractor = keras.Model(rgb, outputs, name=f"{network}_{layer}_features")
    extractor.trainable = False
    return extractor


def resolve_vgg_weights(weights: str | None, network: str = "vgg16") -> str | None:
    """``"auto"`` becomes "imagenet" when Keras can load (download or find cached) ImageNet weights for
    ``network``, else None (random weights) with a loud warning; any other value is returned as it is."""
    if weights != "auto":
        return weights
    if network not in _VGG:
        raise SrlibError(f"unknown VGG network {network!r}; use one of {sorted(_VGG)}")
    if network not in _resolved:  # once per process: a notebook plans, then trains, and each asks
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Downloading data from ..." itself
                _VGG[network][0](include_top=False, weights="imagenet", input_shape=(None, None, 3))
            _resolved[network] = "imagenet"
        except Exception as error:  # Keras raises a bare Exception when the download fails
            warn_once(log, f"ImageNet weights for {network} could not be loaded ({str(error).splitlines()[0][:200]}); "
                       f"continuing with RANDOM {network} weights: VGG content losses and everything trained with "
                       "them mean little. On a machine with internet, or with the weights file, they will be used.")
            _resolved[network] = None
    return _resolved[network]


_resolved: dict[str, str | None] = {}  # resolve_vgg_weights("auto", network) of this process


def save_generator(model: keras.Model, path: str | Path, card: ModelCard | dict | None = None) -> None:
    """Save the weights (no pickled code) with their model card (a ``ModelCard`` or its fields as a dict) stored
    inside the file, then the card beside it, each atomically; the card's architecture is the one ``model`` was
    built with. Non-finite weights are an error, and nothing is written."""
    if not isinstance(card, ModelCard):
        card = ModelCard.from_dict({**(card or {}), "architecture": dict(model.architecture)}, str(card_path(path)))
    card = dataclasses.replace(card, architecture=dict(model.architecture))
    bad = nonfinite_weight(model.weights)
    if bad:
        raise SrlibError(f"not saving {path}: its weights hold NaN or Inf (layer {bad}); the file is left as it was")
    # the card the weights were saved with, in their own file (srlib.model_card)
    save_weights(model, path, attrs={EMBEDDED: json.dumps(card.to_dict())})
    card.write(path)


def nonfinite_weight(variables) -> str | None:
    """The path (``layer/name``) of the first of ``variables`` (Keras or TF variables) holding NaN or Inf, or None."""
    for variable in variables:
        value = np.asarray(keras.ops.convert_to_numpy(variable))
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return getattr(variable, "path", None) or variable.name
    return None


def _stored_layers(path: Path) -> dict:
    """{(Keras's key, layer name): [shapes of its arrays]} of a Keras 3 weights file, read without loading them."""
    try:
        with h5py.File(path, "r") as file:
            layers = {}
            file.visititems(lambda name, item: layers.setdefault((item.parent.parent.name, item.parent.attrs.get(
                "name")), []).append(item.shape) if isinstance(item, h5py.Dataset) else None)
    except OSError as error:
        raise SrlibError(f"{path} is not a Keras weights file: {error}") from None
    return layers


class _WeightsBuffer(io.BytesIO):
    """An in-memory ``.weights.h5`` file: Keras's ``save_weights`` checks the name's ending, then writes to a
    ``BytesIO`` as it does into a ``.keras`` archive."""

    def __str__(self):
        return "in-memory.weights.h5"


def save_weights(model: keras.Model, path: str | Path, attrs: dict | None = None) -> None:
    """``model.save_weights(path)``, atomically and safe on a full disk, with ``attrs`` (if any) as attributes of
    the file's root: HDF5 writes the file in memory and Python writes its bytes, so a full disk is one
    ``OSError`` (ENOSPC) naming ``path`` (``srlib.files``). HDF5 writing to the disk itself prints a wall of
    errors when a write fails and can then crash the process while closing the file (h5py issues 914, 2160)."""
    buffer = _WeightsBuffer()
    model.save_weights(buffer)
    if attrs:
        with h5py.File(buffer, "r+") as file:
            file.attrs.update(attrs)
    write_bytes(path, buffer.getbuffer())


def load_generator(path: str | Path, **architecture) -> keras.Model:
    """Rebuild a generator from ``path`` and its model card; ``architecture`` overrides the card.

    The card is checked against the card stored in the file (``ModelCard.read``) and against the layers the
    file holds before the network is built, so that a card that lies (another ``blocks``, ``batch_norm``, ...,
    or a step count of other weights) is a clear error naming both files, and a network is never built larger
    than the file; weights holding NaN or Inf are refused (``load_weights``).
    """
    path = Path(path)
    if not path.is_file():
        raise SrlibError(f"generator weights {path} do not exist")
    card = ModelCard.read(path)
    if card is None and not architecture:
        raise SrlibError(f"{card_path(path)} is missing: give the architecture (scale, blocks, filters) of {path}")
    config = check_architecture({**(card.architecture if card else {}), **architecture}, str(card_path(path)))
    layers = _stored_layers(path)
    names = {str(name): shapes for (_, name), shapes in layers.items()}
    if "head_conv" not in names:  # its architecture cannot be read from it, and building first could take gigabytes
        raise SrlibError(f"{path} holds no generator saved by srlib (it has no head_conv layer)")
    stored = {"scale": 2 ** sum(1 for n in names if re.fullmatch(r"up\d+_conv", n)),
              "blocks": sum(1 for n in names if re.fullmatch(r"block\d+_conv1", n)),
              "filters": max(shape[-1] for shape in names["head_conv"]),
              # by Keras's key, which names the layer's class (early srlib left batch norm layers unnamed)
              "batch_norm": any("batch_normalization" in key.rsplit("/", 1)[-1] for key, _ in layers)}
    if stored != config:
        given = f"its card {card_path(path)} says" if card and not architecture else "the architecture asked for is"
        raise SrlibError(f"{path} does not fit this generator: {given} {config}, but the file holds a "
                         f"generator with {stored}")
    model = generator(**config)
    load_weights(model, path, check_card=False)  # the card was checked above
    return model


def load_weights(model: keras.Model, path: str | Path, check_card: bool = True) -> None:
    """``model.load_weights``, checked: every array in the file must go to a weight of ``model`` and every
    weight must get one (Keras alone skips a batch-norm file's extra arrays without a word), none may hold NaN
    or Inf, and a model card beside the file must be the one stored in it (``ModelCard.read``; ``check_card=False``
    when the caller has just read it)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as file:
            stored, nonfinite = [], []

            def visit(name, item):
                if isinstance(item, h5py.Dataset):
                    stored.append(name)
                    if not nonfinite and item.dtype.kind == "f" and not np.isfinite(item[()]).all():
                        nonfinite.append(item.parent.attrs.get("name") or name)
            file.visititems(visit)
    except OSError as error:
        raise SrlibError(f"{path} is not a Keras weights file: {error}") from None
    described = f" ({model.architecture})" if hasattr(model, "architecture") else ""
    if len(stored) != len(model.weights):
        raise SrlibError(f"{path} holds {len(stored)} weight arrays but this {model.name}{described} has "
                         f"{len(model.weights)}: they are weights of another network (batch norm or size differ)")
    if nonfinite:
        raise SrlibError(f"{path} holds NaN or Inf weights (layer {nonfinite[0]}), as training that diverged "
                         "leaves them: use an earlier export or checkpoint")
    if check_card and card_path(path).is_file():
        ModelCard.read(path)  # an error when the card beside the file is not the one stored in it
    try:
        with warnings.catch_warnings():  # Keras 3's spurious "Skipping nested container" for functional models
            warnings.filterwarnings("ignore", message="Skipping nested container")
            model.load_weights(path)
    except Exception as error:  # a shape mismatch, deep inside Keras
        raise SrlibError(f"{path} does not fit this {model.name}{described}: "
                         f"{' '.join(str(error).split())[:300]}") from None


def _infer(model: keras.Model, lr):
    return model(lr, training=False)


def upscale_with(model: keras.Model):
    """An upscaler (uint8 LR in, uint8 SR out) running ``model`` in inference mode."""
    # no autograph: nothing to convert, and converting the same code for a second model warns of a closure mismatch.
    # A partial, not a closure: tf.function counts traces per code object, so the one trace of each of a chapter's
    # upscalers added up to its "triggered tf.function retracing" warning; a partial is counted on its own.
    run = tf.function(functools.partial(_infer, model), input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32)],
                      autograph=False)

    def upscale(lr: np.ndarray) -> np.ndarray:
        sr = run(tf.constant(lr[None].astype(np.float32) / 255.0))[0].numpy()
        return np.clip(np.round(sr * 255.0), 0, 255).astype(np.uint8)

    return upscale
