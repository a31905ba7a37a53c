import os
from pathlib import Path

import pytest

# pytest-xdist runs one worker per core: one TensorFlow thread each keeps them from oversubscribing the cores
# (set before TensorFlow loads; the notebook kernels the tests start inherit it)
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")


@pytest.fixture(autouse=True)
def _close_figures():
    """Every test's matplotlib figures are closed after it (figures a test does not close would pile up)."""
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


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


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)`` mounts a tmpfs of ``size`` (e.g. "1m") under ``tmp_path`` and returns its folder;
    each is unmounted after the test. Skips where mounting is impossible (not root, no permission)."""
    import subprocess

    mounted = []

    def mount(size: str = "1m") -> Path:
        folder = tmp_path / f"disk{len(mounted)}"
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root (CI runs as root)")
        try:
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                    capture_output=True, text=True)
        except FileNotFoundError:
            pytest.skip("no mount command to make a small disk with")
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)
