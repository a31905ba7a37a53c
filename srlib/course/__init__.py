"""What the course chapters compute and draw beside the real runs: one module per chapter, named as the chapter.

* ``data_prep`` — chapter 1, ``01_data_prep``: how an LR image is made and what a mismatch costs;
* ``pretrain`` — chapter 2, ``02_pretrain_sr_vgg``: the shuffle, a residual block, the receptive field, the
  losses on one patch, the moving average of weights;
* ``discriminator`` — chapter 3, ``03_pretrain_discriminator``: its loss, labels and verdicts;
* ``benchmarks`` — chapter 6, ``06_benchmarks``: what the detail ratio measures;
* ``networks`` — chapters 2 and 3 alike: the generator's and the discriminator's Keras code, a diagram of each,
  their parameters by part.

Each chapter module holds both the chapter's small computations (numbers and arrays from a few images or a
network) and the figures that draw them, so that a reader of chapter N who wonders what a call does opens one
file, the one named after the chapter, and finds it whole. The networks have a module of their own because two
chapters show them the same way. Chapters 4 and 5 have none: everything they draw is drawn by the library's
general figures too, the training curves of a run (``srlib.plots``, which ``tools/plot_history.py`` draws) and
image grids, zoomed crops and curves of a small computation (``srlib.figures``, which ``python -m srlib benchmark
--crops`` draws); those stay outside this package, so that the CLI and the tools never import the course.
"""
