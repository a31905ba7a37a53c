"""PSNR and SSIM measured the way the super-resolution literature measures them.

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
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

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
    return float(
        structural_similarity(
            a, b, data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, K1=0.01, K2=0.03
        )
    )
