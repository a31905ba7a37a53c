"""How low-resolution images are made: modcrop and MATLAB-compatible bicubic resizing.

The super-resolution literature makes its test inputs with MATLAB's ``imresize(hr, 1/scale,
'bicubic')`` and uses ``imresize(lr, scale, 'bicubic')`` as the baseline. That function is written by
hand here because no library reproduces it: ``tf.image.resize`` (bicubic, antialias or not),
Pillow's ``BICUBIC`` and OpenCV's ``INTER_CUBIC`` all differ from MATLAB in the kernel (a=-0.75 in
OpenCV), in the antialiasing when shrinking, or in the edge handling (MATLAB mirrors the image
symmetrically). A PSNR measured on LR images from any of them is not comparable with published
figures, which is part of how the course report this project reproduces ended up ~8 dB below bicubic.
"""

from __future__ import annotations

import re

import numpy as np

# How a run makes its training LR patches (``TrainConfig.degradation``, ``--degradation``): MATLAB bicubic here,
# or Real-ESRGAN's random chain of blur, resize, noise and JPEG (``srlib.realistic``).
DEGRADATIONS = ("bicubic", "realistic", "mixed")  # mixed: realistic, clean bicubic and bicubic + JPEG (srlib.realistic.MIXED)
# How the benchmark makes its LR inputs: those two (the realistic one with a fixed seed per image), or bicubic then
# JPEG at quality Q ("jpeg50", "jpeg75": the most common real case).
EVALUATION_DEGRADATIONS = (*DEGRADATIONS, "jpeg50", "jpeg75")


def parse_degradation(name: str) -> tuple[str, int | None]:
    """("bicubic" | "realistic" | "mixed" | "jpeg", quality or None) of an evaluation degradation name such as "jpeg50";
    a ``ValueError`` naming the choices for any other."""
    found = re.fullmatch(r"jpeg(\d{1,3})", name) if isinstance(name, str) else None
    if name in DEGRADATIONS:
        return name, None
    if found and 1 <= int(found.group(1)) <= 100:
        return "jpeg", int(found.group(1))
    raise ValueError(f"unknown degradation {name!r}: choose {', '.join(DEGRADATIONS)} or jpeg<quality 1-100> "
                     f"(e.g. {', '.join(EVALUATION_DEGRADATIONS[len(DEGRADATIONS):])})")


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom and right edges so that height and width are multiples of ``scale``."""
    height, width = image.shape[:2]
    if height < scale or width < scale:
        raise ValueError(f"image of size {width}x{height} is smaller than the scale {scale}")
    return image[: height - height % scale, : width - width % scale]


def round_half_up(x):
    """Round as MATLAB does, halves away from zero (numpy's ``round`` sends halves to even).

    Only used on values that are then clipped to [0, 255], where floor(x + 0.5) gives the same result.
    """
    return np.floor(np.asarray(x) + 0.5)


def cubic_kernel(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel; a = -0.5 is MATLAB's imresize (OpenCV's INTER_CUBIC uses -0.75)."""
    absx = np.abs(x)
    absx2 = absx**2
    absx3 = absx**3
    return ((a + 2) * absx3 - (a + 3) * absx2 + 1) * (absx <= 1) + (
        a * absx3 - 5 * a * absx2 + 8 * a * absx - 4 * a
    ) * ((absx > 1) & (absx <= 2))


def resize_weights(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB imresize's ``contributions``: weights and 0-based source indices, each (out_length, taps).

    When shrinking (scale < 1) the kernel is stretched by 1/scale, which is MATLAB's antialiasing.
    Source indices that fall outside the image are mirrored (MATLAB's symmetric padding), and taps
    whose weight is zero for every output pixel are dropped, as MATLAB does.
    """
    kernel_width = 4.0
    antialias = scale < 1
    if antialias:
        kernel_width /= scale

    x = np.arange(1, out_length + 1, dtype=np.float64)  # 1-based output coordinates, as MATLAB
    u = x / scale + 0.5 * (1 - 1 / scale)  # where each output pixel centre lands in the input
    left = np.floor(u - kernel_width / 2)
    taps = int(np.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based
    distance = u[:, None] - indices
    weights = scale * cubic_kernel(distance * scale) if antialias else cubic_kernel(distance)
    weights /= weights.sum(axis=1, keepdims=True)

    mirrored = np.concatenate([np.arange(in_length), np.arange(in_length)[::-1]])
    indices = mirrored[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]

    used = np.any(weights != 0, axis=0)
    return weights[:, used], indices[:, used]


def _resize_axis(image: np.ndarray, axis: int, out_length: int, scale: float) -> np.ndarray:
    weights, indices = resize_weights(image.shape[axis], out_length, scale)
    source = np.ascontiguousarray(np.moveaxis(image, axis, 0), dtype=np.float64)  # gathers rows 1.3x faster
    out = np.zeros((out_length,) + source.shape[1:], dtype=np.float64)
    extra_dims = (1,) * (source.ndim - 1)
    for tap in range(weights.shape[1]):  # a handful of taps; every pixel is handled at once
        out += weights[:, tap].reshape((-1,) + extra_dims) * source[indices[:, tap]]
    return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, scale: float | None = None, output_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Resize like MATLAB's ``imresize(image, scale, 'bicubic')`` (antialiased when shrinking).

    ``image`` is (H, W) or (H, W, C). Give ``scale`` (output size is ``ceil(scale * size)``) or
    ``output_shape`` (height, width). A uint8 image comes back as uint8, rounded and clipped after
    each of the two passes (rows first, then columns), exactly as MATLAB's uint8 path; any other
    dtype is computed and returned in float64.
    """
    if (scale is None) == (output_shape is None):
        raise ValueError("give exactly one of scale and output_shape")
    in_h, in_w = image.shape[:2]
    if scale is not None:
        if scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        scales = (float(scale), float(scale))
        out_h, out_w = int(np.ceil(scale * in_h)), int(np.ceil(scale * in_w))
    else:
        out_h, out_w = (int(n) for n in output_shape)
        if out_h <= 0 or out_w <= 0:
            raise ValueError(f"output_shape must be positive, got {output_shape}")
        scales = (out_h / in_h, out_w / in_w)

    is_uint8 = image.dtype == np.uint8
    result = image
    # MATLAB resizes the dimension with the smaller scale first (rows when the scales are equal).
    order = (0, 1) if scales[0] <= scales[1] else (1, 0)
    for axis in order:
        out_length = (out_h, out_w)[axis]
        result = _resize_axis(result, axis, out_length, scales[axis])
        if is_uint8:
            result = np.clip(round_half_up(result), 0, 255)
    return result.astype(np.uint8) if is_uint8 else result


def bicubic_downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """The literature's LR input: MATLAB bicubic ``imresize(hr, 1/scale)`` of a modcropped HR image."""
    return imresize(modcrop(hr, scale), 1.0 / scale)


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: MATLAB bicubic ``imresize(lr, scale)``."""
    return imresize(lr, float(scale))


def resize_matrix(in_length: int, out_length: int, scale: float) -> np.ndarray:
    """MATLAB bicubic resizing along one axis as a dense (out_length, in_length) matrix."""
    weights, indices = resize_weights(in_length, out_length, scale)
    matrix = np.zeros((out_length, in_length))
    np.add.at(matrix, (np.repeat(np.arange(out_length), weights.shape[1]), indices.ravel()), weights.ravel())
    return matrix


def bicubic_downscale_tf(hr, scale: int):
    """In-graph ``bicubic_downscale`` for a batch of HR patches (B, H, W, C) with values 0..255.

    Same arithmetic as the numpy uint8 path (two passes, each rounded and clipped), done as two small
    matrix products so that it runs inside tf.data or a tf.function. H and W must be static and
    multiples of ``scale``. Returns float32 values 0..255.
    """
    import tensorflow as tf  # here, so that evaluation alone never has to import TensorFlow

    height, width = int(hr.shape[1]), int(hr.shape[2])
    if height % scale or width % scale:
        raise ValueError(f"patch {height}x{width} is not a multiple of the scale {scale}")
    # float64 like the numpy path, so that both round every value the same way
    rows = tf.constant(resize_matrix(height, height // scale, 1.0 / scale), tf.float64)
    cols = tf.constant(resize_matrix(width, width // scale, 1.0 / scale), tf.float64)
    x = tf.einsum("oh,bhwc->bowc", rows, tf.cast(hr, tf.float64))
    x = tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0)  # round_half_up, as the numpy path
    x = tf.einsum("pw,bowc->bopc", cols, x)
    return tf.cast(tf.clip_by_value(tf.floor(x + 0.5), 0.0, 255.0), tf.float32)
