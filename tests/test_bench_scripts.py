"""The benchmark scripts run: their measuring code, which the timed runs alone would exercise, works on a
small input (the figures themselves are printed by the scripts, not asserted here)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _script(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "benchmarks").glob("bench_*.py")))
def test_every_benchmark_script_imports_and_the_code_it_runs_in_child_processes_compiles(name):
    module = _script(name)
    assert callable(module.main)
    if hasattr(module, "CHILD"):
        compile(module.CHILD, f"{name}.CHILD", "exec")


def test_the_upscale_benchmark_measures_a_small_image_in_its_own_process():
    result = _script("bench_upscale").measure("upscale", 64, "srresnet-x4", 2e9)
    assert "error" not in result, result["error"]
    assert result["warm"] > 0 and result["peak_gb"] >= result["base_gb"] > 0.1
