"""PSNR and SSIM measured the way the super-resolution literature measures them, and two checks PSNR cannot
make: how much fine detail the SR image has (``detail_ratio``) and whether its colours stay true (``colour_shift``).

The protocol (as in the MATLAB scripts behind the SRCNN, VDSR, LapSRN and SRGAN tables):
both images uint8 RGB of the same size (the SR output rounded to uint8 first), converted to the
Y channel of BT.601 YCbCr with MATLAB's uint8 ``rgb2ycbcr`` (Y in [16, 235], rounded), ``scale``
pixels shaved from every border, then PSNR with peak 255 and SSIM as in Wang et al.'s
``ssim_index.m`` (gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03, mean over the valid region).

scikit-image computes both exactly this way with the arguments used below;
``tests/test_metrics.py`` checks it against a direct transcription of Wang's MATLAB code.
"""

from __future__ import annotations

import numpy as np

# BT.601 luma for 8-bit RGB, as MATLAB's rgb2ycbcr: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """Y channel of a uint8 RGB image as MATLAB's ``rgb2ycbcr`` gives it: rounded, in [16, 235], float64.

    A 2-D (grayscale) image is taken as R = G = B.
    """
    if image.dtype != np.uint8:
        raise TypeError(f"rgb_to_y expects a uint8 image, got {image.dtype}")
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    y = 16.0 + image[..., :3].astype(np.float64) @ _Y_WEIGHTS
    return np.floor(y + 0.5)  # MATLAB rounds halves up


def shave(image: np.ndarray, border: int) -> np.ndarray:
    """Remove ``border`` pixels from each edge."""
    if border <= 0:
        return image
    return image[border:-border, border:-border]


def _y_pair(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR differ in shape: {sr.shape} vs {hr.shape}")
    return shave(rgb_to_y(sr), border), shave(rgb_to_y(hr), border)


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """PSNR in dB on the Y channel after shaving ``border`` pixels (usually the scale)."""
    from skimage.metrics import peak_signal_noise_ratio  # here, as skimage.metrics imports scipy.stats: 0.7 s

    sr_y, hr_y = _y_pair(sr, hr, border)
    return float(peak_signal_noise_ratio(hr_y, sr_y, data_range=255))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int) -> float:
    """SSIM (Wang et al. 2004, gaussian 11x11, sigma 1.5) on the Y channel after shaving ``border``."""
    sr_y, hr_y = _y_pair(sr, hr, border)
    return ssim(sr_y, hr_y)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two single-channel images with values in [0, 255], exactly as Wang's ``ssim_index.m``.

    ``use_sample_covariance=False`` matches MATLAB's normalised gaussian window; scikit-image's
    reflect padding only touches the 5-pixel rim that it then crops, leaving MATLAB's 'valid' region.
    """
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03
        )
    )


def power_spectrum(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The power spectrum of a single-channel image, per pixel, with a Hann window so the image's edges add none;
    and the frequency of each entry in cycles per pixel, the larger of |fy| and |fx|. Both have ``y``'s shape."""
    power = np.abs(np.fft.fft2(_windowed(y))) ** 2 / y.size
    frequency = np.maximum(np.abs(np.fft.fftfreq(y.shape[0]))[:, None], np.abs(np.fft.fftfreq(y.shape[1]))[None, :])
    return power, frequency


def _windowed(y: np.ndarray) -> np.ndarray:
    from scipy.signal.windows import hann  # here, not at the top: importing scipy.signal takes 0.8 s

    return (y - y.mean()) * np.outer(hann(y.shape[0], sym=False), hann(y.shape[1], sym=False))


def high_frequency_power(y: np.ndarray, scale: int) -> float:
    """Power of a single-channel image above 1/(2 * scale) cycles per pixel (the frequencies an image ``scale``
    times smaller cannot hold, along either axis), per pixel (``power_spectrum``)."""
    # the sum over power_spectrum's whole plane, from the half plane rfft2 computes (2.7x faster): a real image's
    # spectrum has |F(k, l)| = |F(-k, -l)| and the mask is even in both frequencies, so each column but the first
    # (and, for an even width, the last) stands for its mirror image too
    power = np.abs(np.fft.rfft2(_windowed(y))) ** 2 / y.size
    frequency = np.maximum(np.abs(np.fft.fftfreq(y.shape[0]))[:, None], np.fft.rfftfreq(y.shape[1])[None, :])
    columns = np.full(power.shape[1], 2.0)
    columns[0] = 1.0
    if y.shape[1] % 2 == 0:
        columns[-1] = 1.0
    return float((power * columns)[frequency > 1 / (2 * scale)].sum())


def detail_ratio(sr: np.ndarray, hr: np.ndarray, scale: int) -> float:
    """Fine detail of a uint8 SR image relative to its HR image: the power of the Y channel (as ``psnr_y``, shave
    ``scale``) above the LR image's Nyquist frequency, SR over HR; NaN when the HR image has none there.

    1.0 is as much fine detail as HR; a PSNR-trained network is over-smooth (well below 1), bicubic lower still,
    noise goes above 1. Only the frequencies the LR input cannot hold count, as those are what an SR network must
    invent: a mean squared gradient also counts the coarse edges every method gets from the LR image, which
    pulls all methods towards 1 (bicubic scores about 0.25 on Set5 with it, 0.05 with this). It measures how
    much detail there is, not whether it is the right detail (PSNR/SSIM say that).
    """
    sr_y, hr_y = _y_pair(sr, hr, scale)
    reference = high_frequency_power(hr_y, scale)
    return high_frequency_power(sr_y, scale) / reference if reference > 0 else float("nan")


def colour_shift(sr: np.ndarray, hr: np.ndarray, border: int = 0) -> np.ndarray:
    """Mean of SR minus mean of HR per channel (R, G, B) in grey levels (uint8 scale), after shaving ``border``;
    a 2-D (grayscale) image is taken as R = G = B."""
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR differ in shape: {sr.shape} vs {hr.shape}")
    means = [np.atleast_3d(shave(image, border)).astype(np.float64).mean(axis=(0, 1)) for image in (sr, hr)]
    shift = means[0] - means[1]
    return np.repeat(shift, 3) if shift.size == 1 else shift[:3]
