import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real data folder (holding benchmark/ and train/), from SRLIB_DATA; skips when not given."""
    value = os.environ.get("SRLIB_DATA", "")
    if not value:
        pytest.skip("no data folder given: run `make test DATA=../shared/data` (or set SRLIB_DATA) for this test")
    path = Path(value)
    if not (path / "benchmark").is_dir():
        pytest.fail(f"SRLIB_DATA={value} has no benchmark/ folder")
    return path
