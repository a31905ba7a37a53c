"""The errors srlib raises on purpose; the command line prints them as one line, not a traceback."""


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
