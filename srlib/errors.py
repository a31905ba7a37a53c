"""The errors srlib raises on purpose; the command line prints them as one line, not a traceback."""

import re
import signal


def short_repr(value) -> str:
    """``repr(value)``, cut to one short line for an error message."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


class SrlibError(Exception):
    """Base class: something the user can fix (bad file, missing folder, wrong option)."""


class ImageReadError(SrlibError, ValueError):
    """An image file could not be read. The message names the file and says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}")


class DataError(SrlibError):
    """A data folder or benchmark set is missing, empty or holds nothing usable."""


class Stopped(SrlibError):
    """Work was stopped by a signal (Ctrl-C, ``kill``) with what it had done kept; ``exit_code`` is the shell's for
    that signal (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int):
        self.signum, self.exit_code = signum, 128 + signum
        super().__init__(message)


class TrainingStopped(Stopped):
    """Training was stopped by a signal after a checkpoint at the current step was written."""

    def __init__(self, step: int, signum: int):
        self.step = step
        super().__init__(f"stopped at step {step} by {signal.Signals(signum).name}, saved; rerun the same command "
                         "to continue", signum)

    @staticmethod
    def step_in(text: str) -> int | None:
        """The step a ``TrainingStopped`` message names (e.g. a notebook's error, as text), or None."""
        said = re.match(r"stopped at step (\d+) by \w+, saved", text)
        return int(said[1]) if said else None
