"""MATLAB-compatible bicubic imresize, checked against values worked out by hand.

Keys' cubic kernel (a = -0.5) at the distances that matter here:
  k(0) = 1, k(1) = k(2) = 0, k(1/4) = 0.8671875, k(3/4) = 0.2265625, k(5/4) = -0.0703125,
  k(7/4) = -0.0234375, k(1/3) = 7/9, k(2/3) = 1/3, k(4/3) = -2/27, k(5/3) = -1/27.
Output pixel x (1-based) sits at u = x / s + (1 - 1 / s) / 2 in the input, and pixels outside the
image are mirrored (MATLAB's symmetric padding: ... b a | a b c ... z | z y ...).
"""

import numpy as np
import pytest

from srlib.degradation import bicubic_downscale, bicubic_upscale, imresize, modcrop, round_half_up


def test_upscale_by_2_of_two_pixels_matches_hand_computation():
    # u = 0.75, 1.25, 1.75, 2.25. For u = 0.75 the taps at input positions -1, 0, 1, 2 have
    # distances 1.75, 0.75, -0.25, -1.25 and mirror to pixels 2, 1, 1, 2:
    # -0.0234375 * 100 + 0.2265625 * 0 + 0.8671875 * 0 - 0.0703125 * 100 = -9.375.
    # For u = 1.25 the taps 0, 1, 2, 3 (mirrored 1, 1, 2, 2) give 0.2265625 * 100 - 0.0234375 * 100.
    row = np.array([[0.0, 100.0]])
    out = imresize(row, 2)
    assert out.shape == (2, 4)
    np.testing.assert_allclose(out, [[-9.375, 20.3125, 79.6875, 109.375]] * 2, atol=1e-12)


def test_upscale_by_3_matches_hand_computation_on_odd_sizes():
    # At s = 3, output pixel x = 2 sits exactly on input pixel 1 (u = 1), so every third output
    # pixel starting at the second reproduces the input; output 1 (u = 2/3) is
    # a * (k(1/3) + k(2/3)) + b * (k(4/3) + k(5/3)) = 28/27 a - 1/9 b (b mirrored in for position -1).
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, size=(5, 7))
    out = imresize(image, 3)
    assert out.shape == (15, 21)
    np.testing.assert_allclose(out[1::3, 1::3], image, atol=1e-9)
    column = np.array([[0.0], [27.0], [54.0]])
    out = imresize(column, output_shape=(9, 1))
    np.testing.assert_allclose(out[0, 0], 28 / 27 * 0 - 27 / 9, atol=1e-12)
    np.testing.assert_allclose(out[1, 0], 0.0, atol=1e-12)


def test_downscale_by_2_antialiases_with_the_stretched_kernel():
    # Shrinking by 2 stretches the kernel: weights 0.5 * k(d / 2). For output 1 (u = 1.5) the eight
    # taps at positions -2..5 mirror to pixels 3, 2, 1, 1, 2, 3, 4, 4 of [0, 10, 20, 30], giving
    # 0.546875 * 0 + 0.3984375 * 10 + 0.1015625 * 20 - 0.046875 * 30 = 4.609375.
    row = np.array([[0.0, 10.0, 20.0, 30.0]] * 2)
    out = imresize(row, 0.5)
    assert out.shape == (1, 2)
    np.testing.assert_allclose(out, [[4.609375, 25.390625]], atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_constant_image_stays_constant_and_sizes_round_up(scale):
    image = np.full((13, 11, 3), 77, dtype=np.uint8)
    small = imresize(image, 1 / scale)
    assert small.shape == (int(np.ceil(13 / scale)), int(np.ceil(11 / scale)), 3)
    assert small.dtype == np.uint8 and np.all(small == 77)
    big = imresize(image, scale)
    assert big.shape == (13 * scale, 11 * scale, 3) and np.all(big == 77)


def _reference_imresize(image, scale):
    """A per-pixel transcription of MATLAB's imresize (float in, float out) to check vectorisation."""

    def cubic(x):
        x = abs(x)
        if x <= 1:
            return 1.5 * x**3 - 2.5 * x**2 + 1
        if x <= 2:
            return -0.5 * x**3 + 2.5 * x**2 - 4 * x + 2
        return 0.0

    def resize_1d(values, out_len):
        n = len(values)
        width = 4 / scale if scale < 1 else 4
        out = []
        for x in range(1, out_len + 1):
            u = x / scale + 0.5 * (1 - 1 / scale)
            left = int(np.floor(u - width / 2))
            taps = []
            for j in range(left, left + int(np.ceil(width)) + 2):
                w = scale * cubic((u - j) * scale) if scale < 1 else cubic(u - j)
                k = (j - 1) % (2 * n)
                taps.append((w, k if k < n else 2 * n - 1 - k))
            total = sum(w for w, _ in taps)
            out.append(sum(w * values[k] for w, k in taps) / total)
        return np.array(out)

    h, w = image.shape
    out_h, out_w = int(np.ceil(h * scale)), int(np.ceil(w * scale))
    rows_done = np.stack([resize_1d(image[:, c], out_h) for c in range(w)], axis=1)
    return np.stack([resize_1d(rows_done[r, :], out_w) for r in range(out_h)], axis=0)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4])
def test_vectorised_imresize_equals_per_pixel_reference(scale):
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 255, size=(17, 9))
    np.testing.assert_allclose(imresize(image, scale), _reference_imresize(image, scale), atol=1e-9)


def test_uint8_is_rounded_after_each_pass_like_matlab():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(12, 12, 3), dtype=np.uint8)
    out = imresize(image, 0.5)
    assert out.dtype == np.uint8
    rows = np.clip(round_half_up(imresize(image.astype(np.float64), output_shape=(6, 12))), 0, 255)
    both = np.clip(round_half_up(imresize(rows, output_shape=(6, 6))), 0, 255)
    np.testing.assert_array_equal(out, both)


def test_halves_round_up_as_in_matlab_not_to_even():
    np.testing.assert_array_equal(round_half_up([0.5, 1.5, 2.5, 254.5, 3.4999]), [1, 2, 3, 255, 3])
    # x2 upscale of [a, b]: output 2 (u = 1.25) takes pixels 1, 1, 2, 2 with weights -0.0703125,
    # 0.8671875, 0.2265625, -0.0234375, i.e. (51 a + 13 b) / 64; for [0, 32] that is exactly 6.5.
    row = np.array([[0, 32]], dtype=np.uint8)
    assert imresize(row.astype(float), 2)[0, 1] == 6.5
    assert imresize(row, 2)[0, 1] == 7  # numpy's round would give 6


def test_the_dimension_with_the_smaller_scale_is_resized_first():
    # Shrinking rows by 2 and growing columns by 2: MATLAB does the rows (smaller scale) first,
    # rounding in between, which shows in the uint8 result.
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(16, 9), dtype=np.uint8)
    out = imresize(image, output_shape=(8, 18))
    rows_first = imresize(imresize(image, output_shape=(8, 9)), output_shape=(8, 18))
    cols_first = imresize(imresize(image, output_shape=(16, 18)), output_shape=(8, 18))
    np.testing.assert_array_equal(out, rows_first)
    assert not np.array_equal(out, cols_first)
    wide = image.T.copy()  # and columns first when they have the smaller scale
    np.testing.assert_array_equal(imresize(wide, output_shape=(18, 8)), out.T)


def test_downscale_by_3_of_an_odd_length_impulse_matches_hand_computation():
    # Shrinking 7 pixels by 3: weights (1/3) k(d / 3), output x at u = 3x - 1. Pixel 1 = 81, others 0.
    # Output 1 (u = 2): pixel 1 is tap j = 1 (d = 1, k(1/3) = 7/9) and, mirrored, j = 0 (d = 2,
    # k(2/3) = 1/3): 81 / 3 * (7/9 + 1/3) = 30. Output 2 (u = 5): j = 1 (d = 4, k(4/3) = -2/27) and
    # j = 0 (d = 5, k(5/3) = -1/27): 81 / 3 * (-3/27) = -3. Output 3 (u = 8) does not reach pixel 1.
    row = np.zeros((1, 7))
    row[0, 0] = 81
    np.testing.assert_allclose(imresize(row, 1 / 3), [[30.0, -3.0, 0.0]], atol=1e-12)


def test_modcrop_and_lr_pipeline_shapes():
    image = np.arange(103 * 98 * 3).reshape(103, 98, 3)
    np.testing.assert_array_equal(modcrop(image, 4), image[:100, :96])  # keeps the top-left corner
    image = np.zeros((103, 98, 3), dtype=np.uint8)
    assert modcrop(image, 4).shape == (100, 96, 3)
    assert modcrop(image, 3).shape == (102, 96, 3)
    lr = bicubic_downscale(image, 4)
    assert lr.shape == (25, 24, 3)
    assert bicubic_upscale(lr, 4).shape == (100, 96, 3)
    with pytest.raises(ValueError, match="smaller than the scale"):
        modcrop(np.zeros((3, 3)), 4)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)))
    with pytest.raises(ValueError):
        imresize(np.zeros((4, 4)), scale=-1)
