"""How photos actually lose detail: Real-ESRGAN's randomised second-order degradation, in TensorFlow.

A model trained on clean bicubic LR (``srlib.degradation``) sharpens JPEG blocks and sensor noise into
artefacts. Real-ESRGAN (Wang et al. 2021, "Training Real-World Blind Super-Resolution with Pure Synthetic
Data") trains on LR images made by a random chain instead, applied twice (the *second-order* model):

    blur -> resize (up, down or keep) -> noise (Gaussian or Poisson) -> JPEG      first order
    blur -> resize -> noise -> [resize to LR size + sinc filter, JPEG] in random order   second order

then rounds to uint8, as a real LR image is. Every step and its ranges are named in ``DegradationSettings``,
whose defaults are Real-ESRGAN's published configuration (``options/train_realesrnet_x4plus.yml``); the
unsharp-masked HR target and the batch-level queue of the original are left out.

Every random number of sample ``k`` comes from stateless ops seeded by ``(seed, k)``, and every draw is
made whether or not its step is taken, so the LR patch is a pure function of ``(seed, k)`` (a resumed run
sees the same data) and the step-by-step pictures of ``degradation_steps`` end in exactly the LR image
``degrade`` makes. JPEG goes through TensorFlow's own codec (libjpeg-turbo); blur, resize and noise are
``tf.nn`` / ``tf.signal`` / ``tf.image`` / ``tf.random`` ops; nothing is hand-written but the kernels' formulas.

Where this differs from the original: every choice is drawn per sample (it draws the resize mode and the
noise type once per batch, and shuffles samples through a queue to compensate); JPEG is the real codec (it
uses DiffJPEG, a differentiable re-implementation); images are mirrored with the edge pixel repeated (it
reflects), so that a 21-tap kernel works on an image shrunk to a few pixels; and the training patch itself is
degraded (it degrades a 400-pixel crop, then crops 256), so a large kernel sees mirrored pixels near its borders.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .degradation import bicubic_downscale, modcrop, parse_degradation
from .settings import SettingError

KERNEL_KINDS = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
RESIZE_METHODS = ("area", "bilinear", "bicubic")
RESIZE_DIRECTIONS = ("up", "down", "keep")

# The seed of the fixed degraded copies of the benchmark sets: image NAME of set SET gets the stateless seed
# (EVALUATION_SEED, crc32("SET/NAME")), whatever the order or the machine.
EVALUATION_SEED = 24


@dataclass(frozen=True)
class Order:
    """One pass of the chain: blur, resize, noise and JPEG, with the probability and range of each.

    ``resize_range`` is a factor of the current size in the first pass and of the LR size in the second, as in
    Real-ESRGAN; noise sigmas are in grey levels (0-255).
    """

    blur_prob: float = 1.0
    kernel_probs: tuple[float, ...] = (0.45, 0.25, 0.12, 0.03, 0.12, 0.03)  # of KERNEL_KINDS
    sigma_range: tuple[float, float] = (0.2, 3.0)  # Gaussian sigma in pixels, each axis for anisotropic kernels
    generalized_beta_range: tuple[float, float] = (0.5, 4.0)
    plateau_beta_range: tuple[float, float] = (1.0, 2.0)
    sinc_prob: float = 0.1  # a sinc kernel instead of the blur kernel
    resize_probs: tuple[float, float, float] = (0.2, 0.7, 0.1)  # of RESIZE_DIRECTIONS
    resize_range: tuple[float, float] = (0.15, 1.5)  # down draws from [low, 1], up from [1, high]
    gaussian_noise_prob: float = 0.5  # Gaussian noise, else Poisson
    noise_sigma_range: tuple[float, float] = (1.0, 30.0)
    poisson_scale_range: tuple[float, float] = (0.05, 3.0)
    grey_noise_prob: float = 0.4  # the same noise in the three channels
    jpeg_range: tuple[int, int] = (30, 95)

    def check(self, name: str) -> None:
        """Raise ``SettingError`` naming the first value out of range (``name``: "first" or "second")."""
        for field in ("blur_prob", "sinc_prob", "gaussian_noise_prob", "grey_noise_prob"):
            _check_probability(f"{name}.{field}", getattr(self, field))
        _check_distribution(f"{name}.kernel_probs", self.kernel_probs, len(KERNEL_KINDS))
        _check_distribution(f"{name}.resize_probs", self.resize_probs, len(RESIZE_DIRECTIONS))
        _check_range(f"{name}.sigma_range", self.sigma_range, 1e-3)
        _check_range(f"{name}.generalized_beta_range", self.generalized_beta_range, 1e-3, 1.0)
        _check_range(f"{name}.plateau_beta_range", self.plateau_beta_range, 1e-3, 1.0)
        _check_range(f"{name}.resize_range", self.resize_range, 1e-3, 1.0)
        _check_range(f"{name}.noise_sigma_range", self.noise_sigma_range, 0.0)
        _check_range(f"{name}.poisson_scale_range", self.poisson_scale_range, 0.0)
        _check_range(f"{name}.jpeg_range", self.jpeg_range, 1, high_limit=100)


SECOND_ORDER = Order(blur_prob=0.8, sigma_range=(0.2, 1.5), resize_probs=(0.3, 0.4, 0.3), resize_range=(0.3, 1.2),
                     noise_sigma_range=(1.0, 25.0), poisson_scale_range=(0.05, 2.5))


@dataclass(frozen=True)
class DegradationSettings:
    """The whole chain: the two passes (``second=None`` for a first-order chain), the blur kernels' sizes,
    the resize methods and the final sinc filter. The defaults are Real-ESRGAN's x4 configuration."""

    first: Order = Order()
    second: Order | None = SECOND_ORDER
    kernel_sizes: tuple[int, ...] = (7, 9, 11, 13, 15, 17, 19, 21)  # odd, drawn uniformly per kernel
    resize_methods: tuple[str, ...] = RESIZE_METHODS  # drawn uniformly per resize
    sinc_cutoff_range: tuple[float, float] = (math.pi / 3, math.pi)  # radians per pixel, kernels under 13 taps
    large_sinc_cutoff_range: tuple[float, float] = (math.pi / 5, math.pi)  # kernels of 13 taps or more
    final_sinc_prob: float = 0.8
    final_sinc_cutoff_range: tuple[float, float] = (math.pi / 3, math.pi)
    # instead of the chain, for this share of the samples: MATLAB bicubic alone, or MATLAB bicubic then JPEG at a
    # quality from bicubic_jpeg_range (0 and 0 in Real-ESRGAN; MIXED uses them so that a model for real photos
    # still sees clean inputs, and inputs whose only loss is compression)
    bicubic_prob: float = 0.0
    bicubic_jpeg_prob: float = 0.0
    bicubic_jpeg_range: tuple[int, int] = (30, 95)

    def __post_init__(self):
        self.first.check("first")
        if self.second is not None:
            self.second.check("second")
        if not self.kernel_sizes or any(not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.kernel_sizes):
            raise SettingError("kernel_sizes", self.kernel_sizes, "must be odd positive integers")
        if not self.resize_methods or any(m not in RESIZE_METHODS for m in self.resize_methods):
            raise SettingError("resize_methods", self.resize_methods, "must be some of " + ", ".join(RESIZE_METHODS))
        for name in ("sinc_cutoff_range", "large_sinc_cutoff_range", "final_sinc_cutoff_range"):
            _check_range(name, getattr(self, name), 1e-3, high_limit=math.pi)
        _check_probability("final_sinc_prob", self.final_sinc_prob)
        _check_probability("bicubic_prob", self.bicubic_prob)
        _check_probability("bicubic_jpeg_prob", self.bicubic_jpeg_prob)
        if self.bicubic_prob + self.bicubic_jpeg_prob > 1 + 1e-9:
            raise SettingError("bicubic_prob + bicubic_jpeg_prob", self.bicubic_prob + self.bicubic_jpeg_prob,
                               "must be at most 1")
        _check_range("bicubic_jpeg_range", self.bicubic_jpeg_range, 1, high_limit=100)



def _check_probability(name, value):
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise SettingError(name, value, "must be a probability from 0 to 1")


def _check_distribution(name, values, count):
    if len(values) != count or any(not 0 <= p <= 1 for p in values) or abs(sum(values) - 1) > 1e-6:
        raise SettingError(name, values, f"must be {count} probabilities adding up to 1")


def _check_range(name, values, low_limit, one=None, high_limit=math.inf):
    """(low, high) with low_limit <= low <= high <= high_limit (and low <= one <= high when ``one`` is given:
    a range split at 1, such as the resize factors)."""
    ok = (len(values) == 2 and low_limit <= values[0] <= values[1] <= high_limit
          and (one is None or values[0] <= one <= values[1]))
    if not ok:
        within = f"from {low_limit:g}" + (f" to {high_limit:g}" if high_limit != math.inf else "")
        raise SettingError(name, values, f"must be (low, high) with low <= high, {within}"
                           + (f", and low <= {one:g} <= high" if one is not None else ""))


REAL_ESRGAN = DegradationSettings()
# What srresnet-real-x4 was trained on: the chain for 60% of the samples, clean bicubic for 20% and bicubic + JPEG
# for 20%. The chain alone teaches a network that every input is blurred and noisy, and it then over-sharpens and
# smooths away the detail of a clean image.
MIXED = DegradationSettings(bicubic_prob=0.2, bicubic_jpeg_prob=0.2)
DEGRADATION_SETTINGS = {"realistic": REAL_ESRGAN, "mixed": MIXED}  # the --degradation names other than bicubic


# -- the steps: each takes and returns a float32 image (H, W, C) with values 0..1 --------------------------


def _mirror(length, radius):
    """Indices of a row of ``length`` pixels extended by ``radius`` on both sides, mirrored (edge repeated) as
    often as needed: a 21-tap kernel still works on an image shrunk to a few pixels."""
    i = tf.math.floormod(tf.range(-radius, length + radius), 2 * length)
    return tf.where(i >= length, 2 * length - 1 - i, i)


def blur(image, kernel):
    """``image`` convolved with ``kernel`` ((k, k), k odd, summing to 1) in each channel, mirrored at the edges.

    Kernels of 13 taps or more go through the FFT (``tf.signal``), 3-4 times faster than a direct convolution of a
    21-tap kernel on 2 cores; smaller ones through ``tf.nn.depthwise_conv2d``. Both agree within float rounding."""
    image = tf.convert_to_tensor(image, tf.float32)
    kernel = tf.convert_to_tensor(kernel, tf.float32)
    size = tf.shape(kernel)[0]
    radius = size // 2
    shape = tf.shape(image)
    padded = tf.gather(tf.gather(image, _mirror(shape[0], radius), axis=0), _mirror(shape[1], radius), axis=1)
    channels = image.shape[-1]

    def direct():
        filters = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
        return tf.nn.depthwise_conv2d(padded[None], filters, [1, 1, 1, 1], "VALID")[0]

    def fft():
        padded_size = shape[:2] + 2 * radius
        planes = tf.transpose(padded, [2, 0, 1])
        # the kernel flipped, so that the FFT's convolution is the correlation depthwise_conv2d computes
        flipped = tf.pad(kernel[::-1, ::-1], [[0, padded_size[0] - size], [0, padded_size[1] - size]])
        product = tf.signal.rfft2d(planes) * tf.signal.rfft2d(flipped)[None]
        full = tf.signal.irfft2d(product, fft_length=padded_size)  # circular: the valid part starts at 2 * radius
        return tf.transpose(full[:, 2 * radius:, 2 * radius:], [1, 2, 0])
    return tf.ensure_shape(tf.cond(size >= 13, fft, direct), image.shape)


def _grid(size):
    axis = tf.cast(tf.range(size), tf.float32) - tf.cast(size - 1, tf.float32) / 2
    return tf.meshgrid(axis, axis)  # x (columns), y (rows)


def blur_kernel(size, sigma_x, sigma_y, angle, beta=1.0, plateau=False):
    """A (size, size) kernel summing to 1: with ``q`` the squared Mahalanobis distance for the covariance of
    standard deviations ``sigma_x``, ``sigma_y`` rotated by ``angle`` radians, ``exp(-q**beta / 2)`` (beta 1:
    Gaussian, otherwise generalised Gaussian) or, when ``plateau``, ``1 / (1 + q**beta)``."""
    x, y = _grid(size)
    cos, sin = tf.cos(angle), tf.sin(angle)
    u, v = cos * x + sin * y, -sin * x + cos * y  # coordinates along the kernel's own axes
    q = (u / sigma_x) ** 2 + (v / sigma_y) ** 2
    qb = tf.pow(q, beta)
    kernel = tf.where(plateau, 1 / (1 + qb), tf.exp(-qb / 2))
    return kernel / tf.reduce_sum(kernel)


def sinc_kernel(size, cutoff):
    """A (size, size) circular low-pass kernel passing frequencies below ``cutoff`` (radians per pixel; pi is
    Nyquist), summing to 1: the ringing and overshoot of sharpening and of some resamplers."""
    x, y = _grid(size)
    cutoff = tf.cast(cutoff, tf.float32)
    radius = tf.sqrt(x**2 + y**2)
    safe = tf.where(radius > 0, radius, 1.0)
    kernel = tf.where(radius > 0, cutoff * tf.math.special.bessel_j1(cutoff * safe) / (2 * math.pi * safe),
                      cutoff**2 / (4 * math.pi))
    return kernel / tf.reduce_sum(kernel)


def resize(image, size, method):
    """``image`` resized to ``size`` (height, width) by ``method`` (a name of RESIZE_METHODS or its index),
    without antialiasing, as PyTorch's ``interpolate`` in Real-ESRGAN; the same size returns it unchanged."""
    image = tf.convert_to_tensor(image, tf.float32)
    size = tf.convert_to_tensor(size, tf.int32)
    index = tf.convert_to_tensor(RESIZE_METHODS.index(method) if isinstance(method, str) else method, tf.int32)

    def resized():
        branches = [lambda m=m: tf.image.resize(image, size, method=m) for m in RESIZE_METHODS]
        return tf.ensure_shape(tf.switch_case(index, branches), [None, None, image.shape[-1]])
    return tf.cond(tf.reduce_all(size == tf.shape(image)[:2]), lambda: image, resized)


def gaussian_noise(image, sigma, grey, seed):
    """``image`` plus Gaussian noise of standard deviation ``sigma`` grey levels, the same in every channel when
    ``grey``, clipped to 0..1; ``seed`` is a stateless seed (2 integers)."""
    image = tf.convert_to_tensor(image, tf.float32)
    noise = tf.random.stateless_normal(tf.shape(image), seed)
    noise = tf.where(grey, tf.broadcast_to(noise[..., :1], tf.shape(image)), noise)
    return tf.clip_by_value(image + noise * tf.cast(sigma, tf.float32) / 255, 0.0, 1.0)


def poisson_noise(image, scale, grey, seed):
    """``image`` plus ``scale`` times Poisson (shot) noise, clipped to 0..1: as Real-ESRGAN, the image is taken as
    photon counts of ``2**ceil(log2(distinct grey levels))`` per unit; ``grey`` draws the noise from the
    luminance and adds it to every channel."""
    image = tf.convert_to_tensor(image, tf.float32)
    levels = tf.round(tf.clip_by_value(image, 0.0, 1.0) * 255)

    def shot(source):  # sampling is the costly part (~60 ns a value): one plane for grey noise, not three
        distinct = tf.cast(tf.size(tf.unique(tf.reshape(tf.cast(source, tf.int32), [-1]))[0]), tf.float32)
        counts = 2 ** tf.math.ceil(tf.math.log(distinct) / math.log(2.0))
        clean = source / 255
        return tf.random.stateless_poisson(tf.shape(source), seed, clean * counts, tf.float32) / counts - clean
    noise = tf.cond(grey, lambda: tf.broadcast_to(shot(tf.round(tf.image.rgb_to_grayscale(levels))), tf.shape(image)),
                    lambda: shot(levels))
    return tf.clip_by_value(image + noise * tf.cast(scale, tf.float32), 0.0, 1.0)


def to_uint8(image):
    """A 0..1 image as uint8, rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round(tf.convert_to_tensor(image, tf.float32) * 255), 0, 255), tf.uint8)


def jpeg(image, quality):
    """``image`` (0..1) rounded to uint8, JPEG-compressed at ``quality`` (1-100) and decoded, by TensorFlow's codec."""
    coded = tf.image.adjust_jpeg_quality(to_uint8(image), tf.cast(quality, tf.int32))
    return tf.cast(coded, tf.float32) / 255


# -- the chain --------------------------------------------------------------------------------------------


class _Draws:
    """Random numbers from stateless ops: ``seed`` is split into one seed for a vector of uniform numbers, handed
    out in the order the code asks for them, and one seed per noise field; so a draw's value depends on ``seed``
    and its place in the code only (one vector keeps the graph small: it is traced once per dataset)."""

    UNIFORMS, SEEDS = 64, 8

    def __init__(self, seed):
        seeds = tf.random.experimental.stateless_split(tf.cast(tf.convert_to_tensor(seed), tf.int64), 1 + self.SEEDS)
        self.values = tf.unstack(tf.random.stateless_uniform([self.UNIFORMS], seeds[0]))
        self.seeds = tf.unstack(seeds[1:])
        self.count = self.seed_count = 0

    def seed_(self):
        self.seed_count += 1
        if self.seed_count > self.SEEDS:
            raise RuntimeError(f"the chain asks for more than _Draws.SEEDS = {self.SEEDS} noise seeds: raise it")
        return self.seeds[self.seed_count - 1]

    def uniform(self, low, high):
        self.count += 1
        if self.count > self.UNIFORMS:
            raise RuntimeError(f"the chain asks for more than _Draws.UNIFORMS = {self.UNIFORMS} numbers: raise it")
        return float(low) + (float(high) - float(low)) * self.values[self.count - 1]

    def chance(self, probability):
        return self.uniform(0, 1) < probability

    def choice(self, probabilities):
        """An index drawn with ``probabilities`` (int32 scalar)."""
        edges = tf.constant(np.cumsum(probabilities)[:-1], tf.float32)
        return tf.reduce_sum(tf.cast(self.uniform(0, 1) >= edges, tf.int32))

    def pick(self, values):
        """One of ``values`` (a list of integers), drawn uniformly (int32 scalar)."""
        index = tf.minimum(tf.cast(self.uniform(0, len(values)), tf.int32), len(values) - 1)
        return tf.gather(tf.constant(values, tf.int32), index)

    def split_range(self, low, high):
        """Half the time from [low, 1], else from [1, high] (Real-ESRGAN's draw of the resize factors and betas)."""
        return tf.where(self.chance(0.5), self.uniform(low, min(1.0, high)), self.uniform(max(1.0, low), high))


def _kernel(draws: _Draws, order: Order, settings: DegradationSettings):
    """One pass's blur kernel and, for the step-by-step pictures, its description."""
    size = draws.pick(settings.kernel_sizes)
    kind = draws.choice(order.kernel_probs)
    sigma_x, sigma_y = draws.uniform(*order.sigma_range), draws.uniform(*order.sigma_range)
    angle = draws.uniform(-math.pi, math.pi)
    beta_generalized = draws.split_range(*order.generalized_beta_range)
    beta_plateau = draws.split_range(*order.plateau_beta_range)
    use_sinc = draws.chance(order.sinc_prob)
    cutoff = tf.where(size < 13, draws.uniform(*settings.sinc_cutoff_range),
                      draws.uniform(*settings.large_sinc_cutoff_range))

    isotropic = kind % 2 == 0  # KERNEL_KINDS alternates iso, aniso
    sigma_y = tf.where(isotropic, sigma_x, sigma_y)
    angle = tf.where(isotropic, 0.0, angle)
    family = kind // 2  # 0 Gaussian, 1 generalised Gaussian, 2 plateau
    beta = tf.gather(tf.stack([1.0, beta_generalized, beta_plateau]), family)
    kernel = tf.cond(use_sinc, lambda: sinc_kernel(size, cutoff),
                     lambda: blur_kernel(size, sigma_x, sigma_y, angle, beta, family == 2))

    def describe():
        n = int(size)
        if bool(use_sinc):
            return f"sinc {n}x{n}, cutoff {float(cutoff) / math.pi:.2f}π"
        text = f"{KERNEL_KINDS[int(kind)]} {n}x{n}, σ {float(sigma_x):.2f}"
        if not bool(isotropic):
            text += f"/{float(sigma_y):.2f} at {math.degrees(float(angle)):.0f}°"
        return text + (f", β {float(beta):.2f}" if int(family) else "")
    return kernel, describe


def _resize_draw(draws: _Draws, order: Order, settings: DegradationSettings):
    direction = draws.choice(order.resize_probs)
    factor = tf.gather(tf.stack([draws.uniform(1.0, order.resize_range[1]), draws.uniform(order.resize_range[0], 1.0),
                                 tf.constant(1.0)]), direction)
    return factor, _method_draw(draws, settings), direction


def _method_draw(draws: _Draws, settings: DegradationSettings):
    """A resize method drawn uniformly from ``settings.resize_methods``, as an index of RESIZE_METHODS."""
    return draws.pick([RESIZE_METHODS.index(m) for m in settings.resize_methods])


def _noise(image, draws: _Draws, order: Order, record):
    use_gaussian = draws.chance(order.gaussian_noise_prob)
    grey = draws.chance(order.grey_noise_prob)
    sigma = draws.uniform(*order.noise_sigma_range)
    scale = draws.uniform(*order.poisson_scale_range)
    gaussian_seed, poisson_seed = draws.seed_(), draws.seed_()
    image = tf.cond(use_gaussian, lambda: gaussian_noise(image, sigma, grey, gaussian_seed),
                    lambda: poisson_noise(image, scale, grey, poisson_seed))
    if record:
        colour = "grey" if bool(grey) else "colour"
        record("noise", image, f"Gaussian σ {float(sigma):.1f}, {colour}" if bool(use_gaussian)
               else f"Poisson ×{float(scale):.2f}, {colour}")
    return image


def _jpeg_quality(draws: _Draws, order: Order):
    return tf.cast(tf.round(draws.uniform(order.jpeg_range[0], order.jpeg_range[1])), tf.int32)


def _jpeg(image, quality, record):
    image = jpeg(image, quality)
    if record:
        record("JPEG", image, f"quality {int(quality)}")
    return image


def degrade(hr, scale: int, seed, settings: DegradationSettings = REAL_ESRGAN, record=None):
    """The LR image of ``hr`` (uint8 (H, W, 3), H and W multiples of ``scale``) through ``settings``' random chain,
    as uint8 (H / scale, W / scale, 3). ``seed`` is a stateless seed (2 integers, e.g. ``(run seed, k)``): the same
    seed gives the same LR image. Runs eagerly or in a graph (tf.data); ``record(step, image, text)``, when
    given (eagerly only), is called after every step.

    With ``settings.bicubic_prob`` or ``bicubic_jpeg_prob``, a draw of its own (so that the chain's draws, and the fixed
    degraded benchmark sets, stay what they are) picks the chain, clean bicubic, or bicubic then JPEG."""
    hr = tf.convert_to_tensor(hr)
    if not (settings.bicubic_prob or settings.bicubic_jpeg_prob):
        return _chain(hr, scale, seed, settings, record)
    if None in hr.shape[:2]:
        raise ValueError("the bicubic branches of a mixture need the image's height and width known when the graph "
                         "is built (a fixed patch size, as in training, or an eager call)")
    mix = tf.random.stateless_uniform([2], tf.random.experimental.stateless_fold_in(
        tf.cast(tf.convert_to_tensor(seed), tf.int64), 1))
    kind = tf.reduce_sum(tf.cast(mix[0] >= tf.constant([1 - settings.bicubic_prob - settings.bicubic_jpeg_prob,
                                                         1 - settings.bicubic_jpeg_prob]), tf.int32))
    low, high = settings.bicubic_jpeg_range
    quality = tf.cast(tf.round(low + (high - low) * mix[1]), tf.int32)

    def bicubic():
        from .degradation import bicubic_downscale_tf

        image = bicubic_downscale_tf(hr[None], scale)[0] / 255
        if record:
            record("HR", tf.cast(hr, tf.float32) / 255, "the clean image")
            record("bicubic", image, "MATLAB bicubic to LR size, nothing else")
        return to_uint8(image)

    def compressed():
        lr = bicubic()
        image = jpeg(tf.cast(lr, tf.float32) / 255, quality)
        if record:
            record("JPEG", image, f"quality {int(quality)}")
        return to_uint8(image)

    branches = [lambda: _chain(hr, scale, seed, settings, record), bicubic, compressed]
    if record:  # eagerly: only the branch taken, and the LR image at its end as the chain records it
        lr = branches[int(kind)]()
        if int(kind):
            record("LR", tf.cast(lr, tf.float32) / 255, "rounded to uint8")
        return lr
    return tf.switch_case(kind, branches)


def _chain(hr, scale, seed, settings, record):
    """``degrade`` through the random chain itself."""
    lr_size = tf.shape(hr)[:2] // scale
    draws = _Draws(seed)
    image = tf.cast(hr, tf.float32) / 255
    if record:
        record("HR", image, "the clean image")
    for number, order in ((1, settings.first), (2, settings.second)):
        if order is None:
            continue
        kernel, describe = _kernel(draws, order, settings)
        use_blur = draws.chance(order.blur_prob)
        factor, method, direction = _resize_draw(draws, order, settings)
        image = tf.cond(use_blur, lambda: blur(image, kernel), lambda: image)
        if record:
            record(f"blur {number}", image, describe() if bool(use_blur) else "none")
        base = tf.shape(image)[:2] if number == 1 else lr_size  # the second pass resizes relative to the LR size
        size = tf.maximum(tf.cast(tf.cast(base, tf.float32) * factor, tf.int32), 1)
        image = resize(image, size, method)
        if record:
            how = RESIZE_METHODS[int(method)]
            record(f"resize {number}", image, f"LR size ×{float(factor):.2f}, {how}" if number == 2 else "keep"
                   if int(direction) == 2 else f"{RESIZE_DIRECTIONS[int(direction)]} ×{float(factor):.2f}, {how}")
        image = _noise(image, draws, order, record)
        if number == 1:  # the second pass's JPEG comes with the last steps
            image = _jpeg(image, _jpeg_quality(draws, order), record)

    # the last steps: back to the LR size and the sinc filter (ringing), and the second pass's JPEG, in random order
    method = _method_draw(draws, settings)
    use_sinc = draws.chance(settings.final_sinc_prob)
    size = draws.pick(settings.kernel_sizes)
    cutoff = draws.uniform(*settings.final_sinc_cutoff_range)
    jpeg_first = draws.chance(0.5)
    second = settings.second

    def final_resize(image, record):
        image = resize(image, lr_size, method)
        if record:
            record("resize to LR", image, RESIZE_METHODS[int(method)])
        image = tf.cond(use_sinc, lambda: blur(image, sinc_kernel(size, cutoff)), lambda: image)
        if record:
            record("sinc", image, f"{int(size)}x{int(size)}, cutoff {float(cutoff) / math.pi:.2f}π" if bool(use_sinc)
                   else "none")
        return image

    if second is None:
        image = final_resize(image, record)
    else:
        quality = _jpeg_quality(draws, second)
        if record:  # eagerly: only the order taken, so that the steps are recorded in the order they happen
            image = (final_resize(_jpeg(image, quality, record), record) if bool(jpeg_first)
                     else _jpeg(final_resize(image, record), quality, record))
        else:
            image = tf.cond(jpeg_first, lambda: final_resize(_jpeg(image, quality, None), None),
                            lambda: _jpeg(final_resize(image, None), quality, None))
    lr = to_uint8(image)
    if record:
        record("LR", tf.cast(lr, tf.float32) / 255, "rounded to uint8")
    return lr


def degradation_steps(hr: np.ndarray, scale: int, seed, settings: DegradationSettings = REAL_ESRGAN) -> list[dict]:
    """Every intermediate image of ``degrade(hr, scale, seed, settings)``, for pictures: a list of {"step": name,
    "detail": what was drawn, "image": uint8 array}, from the HR image to the LR image (the same as ``degrade``
    returns). ``hr`` is modcropped to ``scale`` first."""
    steps = []

    def record(step, image, detail):
        steps.append({"step": step, "detail": detail, "image": to_uint8(image).numpy()})
    degrade(modcrop(np.asarray(hr), scale), scale, seed, settings, record)
    return steps


def settings_record(settings: DegradationSettings = REAL_ESRGAN) -> dict:
    """``settings`` as plain JSON values, for a model card or a report: every step's probability and range."""
    return json.loads(json.dumps(dataclasses.asdict(settings)))


def sample_seed(seed, k):
    """The stateless seed of training sample ``k`` of a run with ``seed``: (seed, k) as int64."""
    return tf.stack([tf.cast(seed, tf.int64), tf.cast(k, tf.int64)])


def evaluation_seed(name: str) -> tuple[int, int]:
    """The fixed seed of benchmark image ``name`` ("SET/IMAGE") in the degraded copies of the sets."""
    return EVALUATION_SEED, zlib.crc32(name.encode())


def degraded_lr(hr: np.ndarray, scale: int, degradation: str, name: str) -> np.ndarray:
    """The LR input of benchmark image ``name`` ("SET/IMAGE") with HR pixels ``hr`` (uint8, modcropped) under
    ``degradation``: "bicubic" (the literature's), "realistic" or "mixed" (``degrade`` with REAL_ESRGAN or MIXED and
    the image's fixed seed) or "jpeg<Q>" (bicubic, then JPEG at quality Q). Returns uint8 (H / scale, W / scale, 3)."""
    kind, quality = parse_degradation(degradation)
    if kind in DEGRADATION_SETTINGS:
        return degrade(hr, scale, evaluation_seed(name), DEGRADATION_SETTINGS[kind]).numpy()
    lr = bicubic_downscale(hr, scale)
    if kind == "jpeg":
        return to_uint8(jpeg(lr.astype(np.float32) / 255, quality)).numpy()
    return lr
