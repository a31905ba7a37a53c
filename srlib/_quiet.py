"""Quiet TensorFlow: no C++ log lines in the terminal or the notebooks, only the project's own output, each
warning once (``warn_once``).

TensorFlow's C++ core writes notes to the process's stderr while it is imported (oneDNN, "Could not find
cuda drivers"), before any log level applies, so ``TF_CPP_MIN_LOG_LEVEL`` cannot stop them; later messages
(cuInit errors on CPU machines, XLA notes) do follow it. ``install()`` sets that level (unless the user
set one) and makes the first ``import tensorflow`` run with file descriptor 2 pointed at /dev/null.
Errors still arrive: as Python exceptions, printed after the import.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import logging
import importlib.util
import os
import sys


@contextlib.contextmanager
def stderr_silenced():
    """Within the block, whatever the process writes to file descriptor 2 (C and C++ code too) is dropped."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once, and not for the lookup below
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            load = spec.loader.exec_module

            def exec_module(module):
                with stderr_silenced():
                    load(module)

            spec.loader.exec_module = exec_module
        return spec


def install() -> None:
    """Quiet TensorFlow's import and its later C++ logging (called when srlib is imported)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


_warned: set[tuple[str, str]] = set()


def warn_once(logger: logging.Logger, message: str) -> None:
    """Log ``message`` as a warning on ``logger`` the first time this process meets it (a run builds VGG more
    than once; a chapter may read a training folder twice)."""
    if (logger.name, message) not in _warned:
        _warned.add((logger.name, message))
        logger.warning(message)
