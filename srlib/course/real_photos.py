"""Chapter 7 (real photos): the shipped models to compare, the mixture's samples, the input pipeline against the
step's demand, and the verdicts of the models for real photos."""

from __future__ import annotations

import numpy as np

from ..benchmark import model_upscaler
from ..model_card import ModelCard
from ..realistic import DEGRADATION_SETTINGS, DegradationSettings, degradation_steps
from ..reporting import SHIPPED_LABELS
from ..upscale import SHIPPED
from ..verdict import Verdict, judge_real_photos


def shipped_models(scale: int) -> tuple[dict, dict]:
    """The shipped models of ``scale`` in this copy of srlib, each loaded once: ({label: upscaler}, {label:
    (weights file, "float32")}, the second for ``benchmark.ResultCache``, whose entries ``make results`` wrote)."""
    upscalers, cached = {}, {}
    for name, label in SHIPPED_LABELS.items():
        if SHIPPED[name].is_file() and ModelCard.read(SHIPPED[name]).architecture["scale"] == scale:
            upscalers[label] = model_upscaler(name, scale)[0]
            cached[label] = (SHIPPED[name], "float32")
    return upscalers, cached


def sample_kind(steps: list[dict]) -> str:
    """What ``degradation_steps`` did to a sample: "clean bicubic", "bicubic + JPEG <quality>" or "the chain"."""
    names = [step["step"] for step in steps]
    if "bicubic" not in names:
        return "the chain"
    jpeg = next((step for step in steps if step["step"] == "JPEG"), None)
    return f"bicubic + JPEG {jpeg['detail'].removeprefix('quality ')}" if jpeg else "clean bicubic"


def mixture_examples(hr: np.ndarray, scale: int, seed: int, count: int = 8,
                     settings: DegradationSettings | str = "mixed") -> list[tuple[str, np.ndarray]]:
    """LR images of ``count`` training samples of a run with ``seed``, each made from ``hr`` (uint8) by ``settings``
    (a DegradationSettings or a name of ``srlib.realistic.DEGRADATION_SETTINGS``), with what was done to it:
    [("sample k: <kind>", uint8 LR image)], in the order of k. Samples are taken in order, except that the
    first of each kind the mixture can make is included (seed 0's first eight may lack one)."""
    settings = DEGRADATION_SETTINGS[settings] if isinstance(settings, str) else settings
    families = {"the chain"} | ({"clean bicubic"} if settings.bicubic_prob else set()) | (
        {"bicubic + JPEG"} if settings.bicubic_jpeg_prob else set())
    samples = []  # (family, title, LR image) of samples 0, 1, ...
    while len(samples) < count or not families <= {family for family, _, _ in samples}:
        k = len(samples)
        steps = degradation_steps(hr, scale, (seed, k), settings)
        kind = sample_kind(steps)
        samples.append((kind.rpartition(" ")[0] if kind.startswith("bicubic + JPEG") else kind,
                        f"sample {k}: {kind}", steps[-1]["image"]))
    firsts = {next(k for k, s in enumerate(samples) if s[0] == family) for family in families}
    kept = sorted(firsts | set([k for k in range(len(samples)) if k not in firsts][:max(0, count - len(firsts))]))
    return [samples[k][1:] for k in kept]


def step_demand(history: list[dict], batch_size: int) -> tuple[float, float]:
    """(patches per second, seconds per step) the training step consumed: the batch size over the median
    ``sec_per_step`` of ``history`` (a run's rows); NaN without such rows."""
    seconds = float(np.median([r["sec_per_step"] for r in history if "sec_per_step" in r] or [float("nan")]))
    return batch_size / seconds, seconds


def real_photo_verdicts(measured: dict[str, dict[str, dict]], sets: list[str], models: list[str]
                        ) -> list[tuple[str, str, Verdict]]:
    """[(model, set, verdict)] of ``models`` (labels in ``measured``: {degradation: {label: report}}, with
    "bicubic" and "realistic" among its degradations) against the shipped bicubic-trained ones measured beside
    them (``verdict.judge_real_photos``); empty when those are not measured."""
    labels = next(iter(measured.values()))
    bicubic_trained = [SHIPPED_LABELS[n] for n in ("srresnet-x4", "srgan-mse-x4") if SHIPPED_LABELS[n] in labels]
    if not bicubic_trained:
        return []
    return [(model, name, judge_real_photos(psnr_by_degradation(measured, name), model, bicubic_trained))
            for model in models if model in labels for name in sets]


def psnr_by_degradation(measured: dict[str, dict[str, dict]], set_name: str) -> dict[str, dict[str, float]]:
    """{degradation: {label: PSNR}} on ``set_name`` from ``measured`` ({degradation: {label: benchmark report}})."""
    return {degradation: {label: report["results"][set_name]["psnr"] for label, report in by_label.items()}
            for degradation, by_label in measured.items()}
