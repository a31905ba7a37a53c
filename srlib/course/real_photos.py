"""Chapter 7 (real photos): the mixture's samples, and the table of one model against the others by degradation."""

from __future__ import annotations

import numpy as np

from ..realistic import SETTINGS, DegradationSettings, degradation_steps


def sample_kind(steps: list[dict]) -> str:
    """What ``degradation_steps`` did to a sample: "clean bicubic", "bicubic + JPEG <q>" or "the chain"."""
    names = [step["step"] for step in steps]
    if "bicubic" not in names:
        return "the chain"
    jpeg = next((step for step in steps if step["step"] == "JPEG"), None)
    return f"bicubic + JPEG {jpeg['detail'].split()[-1]}" if jpeg else "clean bicubic"


def mixture_examples(hr: np.ndarray, scale: int, seed: int, count: int,
                     settings: DegradationSettings | str = "mixed") -> list[tuple[str, np.ndarray]]:
    """The LR images of training samples 0 .. ``count`` - 1 of a run with ``seed``, each made from ``hr`` (uint8)
    by ``settings`` (a DegradationSettings or a name of ``srlib.realistic.SETTINGS``), with what was done to it:
    [(title, uint8 LR image)]."""
    settings = SETTINGS[settings] if isinstance(settings, str) else settings
    examples = []
    for k in range(count):
        steps = degradation_steps(hr, scale, (seed, k), settings)
        examples.append((f"sample {k}: {sample_kind(steps)}", steps[-1]["image"]))
    return examples


def psnr_by_degradation(measured: dict[str, dict[str, dict]], set_name: str) -> dict[str, dict[str, float]]:
    """{degradation: {label: PSNR}} on ``set_name`` from ``measured`` ({degradation: {label: benchmark report}})."""
    return {degradation: {label: report["results"][set_name]["psnr"] for label, report in by_label.items()}
            for degradation, by_label in measured.items()}
