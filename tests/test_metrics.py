"""PSNR / SSIM on Y: known pairs, and scikit-image's SSIM against Wang's MATLAB code; the detail ratio and the
colour shift."""

import numpy as np
import pytest
from scipy.signal import convolve2d

from srlib.metrics import colour_shift, detail_ratio, high_frequency_power, psnr_y, rgb_to_y, shave, ssim, ssim_y


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


def _textured(shape=(96, 80), seed=0) -> np.ndarray:
    """An HR-like uint8 RGB image: smooth shading plus fine texture at every frequency."""
    rng = np.random.default_rng(seed)
    h, w = shape
    base = 120 + 60 * np.add.outer(np.sin(np.arange(h) / 9), np.cos(np.arange(w) / 7))
    texture = rng.normal(0, 1, (h, w))
    texture = 25 * (texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) / 3  # some correlation, all bands
    image = np.dstack([base + texture, 0.9 * base + texture, 1.1 * base - texture])
    return np.clip(image, 0, 255).round().astype(np.uint8)


def test_high_frequency_power_counts_only_what_the_lr_image_cannot_hold():
    i, j = np.indices((64, 64))
    low = 100 + 50 * np.cos(2 * np.pi * j * 6 / 64)  # 0.094 cycles/pixel: below 1/8
    high = 100 + 50 * np.cos(2 * np.pi * i * 12 / 64)  # 0.19 cycles/pixel: above 1/8
    assert high_frequency_power(low, 4) < 1e-6 * high_frequency_power(high, 4)
    assert high_frequency_power(high, 2) < 1e-6 * high_frequency_power(high, 4)  # at x2 only above 1/4 counts


def test_detail_ratio_bicubic_is_well_below_one_hr_is_one_noise_is_above():
    from srlib.degradation import bicubic_downscale, bicubic_upscale

    hr = _textured()
    bicubic = bicubic_upscale(bicubic_downscale(hr, 4), 4)
    noisy = np.clip(hr + np.random.default_rng(1).normal(0, 8, hr.shape), 0, 255).round().astype(np.uint8)
    assert detail_ratio(hr, hr, 4) == 1.0
    assert detail_ratio(bicubic, hr, 4) < 0.1
    assert detail_ratio(noisy, hr, 4) > 1.1
    flat = np.full((40, 40, 3), 90, np.uint8)
    assert np.isnan(detail_ratio(flat, flat, 4))  # no fine detail in HR: no ratio
    with pytest.raises(ValueError, match="differ in shape"):
        detail_ratio(hr[:-4], hr, 4)


def test_detail_ratio_shaves_the_border_and_reads_y():
    hr = _textured(seed=2)
    sr = hr.copy()
    sr[:4] = np.random.default_rng(3).integers(0, 256, sr[:4].shape)  # noise only inside the shaved border
    assert detail_ratio(sr, hr, 4) == 1.0
    swapped = hr[..., ::-1].copy()  # R and B carry opposite texture: the mean of R, G, B keeps it, Y does not
    assert detail_ratio(swapped, hr, 4) < 0.5


def test_colour_shift_is_the_mean_difference_per_channel_in_grey_levels():
    hr = _textured(seed=4)
    sr = hr.astype(int)
    sr[..., 0] += 3
    sr[..., 2] -= 1
    sr = np.clip(sr, 0, 255).astype(np.uint8)
    clipped = [np.clip(hr[..., c].astype(int) + d, 0, 255).mean() - hr[..., c].mean() for c, d in ((0, 3), (2, -1))]
    np.testing.assert_allclose(colour_shift(sr, hr), [clipped[0], 0.0, clipped[1]], atol=1e-12)
    sr[:2] = 255  # only inside the shaved border
    np.testing.assert_allclose(colour_shift(sr, hr, border=2)[1], 0.0, atol=1e-12)
    assert colour_shift(sr, hr)[1] > 1
    gray = np.full((10, 10), 50, np.uint8)
    np.testing.assert_allclose(colour_shift(gray + 2, gray), [2, 2, 2])


@pytest.mark.data
def test_the_shipped_psnr_network_has_more_detail_than_bicubic_and_less_than_hr(data_dir):
    from srlib.benchmark import model_upscaler
    from srlib.degradation import bicubic_downscale, bicubic_upscale, modcrop
    from srlib.images import read_image

    hr = modcrop(read_image(data_dir / "benchmark" / "Set5" / "bird.png"), 4)  # 288x288: quick on a CPU
    lr = bicubic_downscale(hr, 4)
    upscale, _ = model_upscaler("srresnet-x4", 4)
    sr = np.asarray(upscale(lr))
    bicubic, srresnet = detail_ratio(bicubic_upscale(lr, 4), hr, 4), detail_ratio(sr, hr, 4)
    assert bicubic < 0.2 and bicubic + 0.2 < srresnet < 0.9  # over-smooth, as a PSNR-trained network is
    assert np.abs(colour_shift(sr, hr, 4)).max() < 1


def test_the_power_spectrum_puts_a_stripe_pattern_at_its_frequency():
    from srlib.metrics import high_frequency_power, power_spectrum

    x = np.arange(64)
    stripes = np.tile(100 * np.sin(2 * np.pi * 12 / 64 * x), (64, 1))  # 0.1875 cycles per pixel along x
    power, frequency = power_spectrum(stripes)
    assert power.shape == frequency.shape == (64, 64)
    assert frequency.flat[np.argmax(power)] == 12 / 64
    # all of it lies above an x4 LR image's Nyquist frequency (1/8), none above an x2's (1/4)
    assert high_frequency_power(stripes, 4) > 0.999 * power.sum()
    assert high_frequency_power(stripes, 2) < 1e-9 * power.sum()


@pytest.mark.parametrize("shape", [(7, 8), (8, 7), (7, 7), (8, 8), (1, 5), (5, 1), (2, 2), (33, 48)])
def test_the_high_frequency_power_is_the_whole_spectrums_for_odd_and_even_sizes(shape):
    from srlib.metrics import high_frequency_power, power_spectrum

    y = np.random.default_rng(sum(shape)).uniform(16, 235, shape)
    power, frequency = power_spectrum(y)
    for scale in (1, 2, 3, 4):
        assert high_frequency_power(y, scale) == pytest.approx(power[frequency > 1 / (2 * scale)].sum(), rel=1e-12)
