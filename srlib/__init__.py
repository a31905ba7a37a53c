"""srlib: the helper library of the SRGAN course project.

One module per concern: ``images`` (reading and writing), ``degradation`` (modcrop, MATLAB bicubic),
``realistic`` (Real-ESRGAN's random blur, resize, noise and JPEG chain, for real photos), ``metrics`` (PSNR / SSIM on Y), ``benchmark`` (the standard test sets), ``download`` (getting data sets),
``data`` (the training pipeline), ``models``, ``losses``, ``training`` (recipes and the trainer),
``plots`` (a run's training curves), ``figures`` (image grids, zoomed crops, ``save_figure``),
``course`` (what each course chapter computes and draws beside the runs), ``upscale`` (any image, tile by tile; ``srlib.upscale`` itself is
the function), ``pipeline`` (the notebooks under papermill), ``cli`` (``python -m srlib``).
"""

from . import _quiet

_quiet.install()  # before anything imports TensorFlow

from .degradation import bicubic_downscale, bicubic_upscale, imresize, modcrop
from .errors import DataError, ImageReadError, SrlibError
from .images import read_image, read_image_folder, write_image
from .metrics import psnr_y, rgb_to_y, ssim_y
from .upscale import upscale, upscale_files  # note: `srlib.upscale` is then this function, not the module

__version__ = "0.1.0"
