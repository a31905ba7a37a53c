"""srlib: the helper library of the SRGAN course project.

One module per concern: ``images`` (reading and writing), ``degradation`` (modcrop, MATLAB bicubic),
``metrics`` (PSNR / SSIM on Y), ``benchmark`` (the standard test sets), ``cli`` (``python -m srlib``).
"""

from .degradation import bicubic_downscale, bicubic_upscale, imresize, modcrop
from .errors import DataError, ImageReadError, SrlibError
from .images import read_image, read_image_folder, write_image
from .metrics import psnr_y, rgb_to_y, ssim_y

__version__ = "0.1.0"
