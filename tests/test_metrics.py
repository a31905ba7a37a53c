"""PSNR / SSIM on Y: known pairs, and scikit-image's SSIM against Wang's MATLAB code."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from srlib.metrics import psnr_y, rgb_to_y, shave, ssim, ssim_y


def test_rgb_to_y_matches_matlab_rgb2ycbcr_uint8():
    pixels = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    # 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded: 16, 235, 81.481, 144.553, 40.966
    np.testing.assert_array_equal(rgb_to_y(pixels), [[16, 235, 81, 145, 41]])
    gray = np.array([[128]], dtype=np.uint8)
    assert rgb_to_y(gray)[0, 0] == 126  # 16 + 219 * 128 / 255 = 125.93
    with pytest.raises(TypeError):
        rgb_to_y(pixels.astype(np.float32))


def test_psnr_of_a_known_pair_and_the_border_is_shaved():
    hr = np.full((20, 20, 3), 128, dtype=np.uint8)  # Y = 126
    sr = np.full((20, 20, 3), 130, dtype=np.uint8)  # Y = round(127.65) = 128
    sr[:4, :] = 0  # damage only inside the 4-pixel border
    sr[:, -4:] = 255
    # Y differs by 2 everywhere that is scored: MSE 4, PSNR = 10 log10(255^2 / 4)
    assert psnr_y(sr, hr, border=4) == pytest.approx(10 * np.log10(255**2 / 4), abs=1e-9)
    assert psnr_y(sr, hr, border=0) < 20
    assert shave(np.zeros((20, 20)), 4).shape == (12, 12)


def test_ssim_of_known_pairs():
    a = np.full((32, 32), 100.0)
    b = np.full((32, 32), 110.0)
    c1 = (0.01 * 255) ** 2
    # constant images: variances are zero, SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (40, 40))
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-12)
    assert ssim(x, 255 - x) < 0  # anti-correlated structure


def _wang_ssim_index(img1, img2):
    """A direct transcription of Wang et al.'s ssim_index.m (2003) with its default arguments."""
    radius, sigma = 5, 1.5
    grid = np.arange(-radius, radius + 1)
    window = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / (2 * sigma**2))
    window /= window.sum()  # fspecial('gaussian', 11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filter2(img):  # filter2(window, img, 'valid'); the window is symmetric
        return convolve2d(img, window, mode="valid")

    mu1, mu2 = filter2(img1), filter2(img2)
    sigma1_sq = filter2(img1 * img1) - mu1**2
    sigma2_sq = filter2(img2 * img2) - mu2**2
    sigma12 = filter2(img1 * img2) - mu1 * mu2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * sigma12 + c2)) / ((mu1**2 + mu2**2 + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean()


@pytest.mark.parametrize("shape", [(11, 11), (24, 37), (64, 48)])
def test_scikit_image_ssim_equals_wang_matlab_code(shape):
    rng = np.random.default_rng(sum(shape))
    hr = rng.integers(16, 236, size=shape).astype(np.float64)
    sr = np.clip(hr + rng.normal(0, 12, size=shape).round(), 16, 235)
    assert ssim(sr, hr) == pytest.approx(_wang_ssim_index(sr, hr), abs=1e-10)
    smooth = np.add.outer(np.arange(shape[0]), np.arange(shape[1])) * 2.0
    assert ssim(smooth, hr) == pytest.approx(_wang_ssim_index(smooth, hr), abs=1e-10)


def test_ssim_y_uses_y_and_shave():
    rng = np.random.default_rng(3)
    hr = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
    sr = hr.copy()
    sr[:4] = 0
    assert ssim_y(sr, hr, border=4) == pytest.approx(1.0, abs=1e-12)
    assert ssim_y(sr, hr, border=0) < 1.0
    with pytest.raises(ValueError, match="differ in shape"):
        ssim_y(sr[:-1], hr, border=4)
