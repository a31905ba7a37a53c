"""The number format a network computes in: ``precision`` = float32 | bfloat16 | mixed_float16.

- ``float32``: everything in float32.
- ``bfloat16``: Keras's ``mixed_bfloat16`` policy. Convolutions and activations compute in bfloat16, which
  CPUs with AVX512_BF16 or AMX (current Xeons, AMD EPYC Zen 4 and later) and GPUs from Ampere on run at
  about twice the float32 rate; the variables, the optimizer (and its EMA of the weights) stay float32.
  bfloat16 keeps float32's exponent, so gradients neither underflow nor overflow and need no loss scaling.
- ``mixed_float16``: Keras's ``mixed_float16`` policy with a loss-scaling optimizer, for GPUs without bfloat16.

What stays float32 in a network under either mixed policy, and why (``srlib.models``, ``srlib.losses``):
the generator's last conv and output rescaling (an output pixel needs more than bfloat16's 8 significant
bits: 1/255 is a grey level), the discriminator's logit (its sigmoid saturates on rounding), every loss
and its reduction over the batch (sums of many small terms), and the VGG feature maps, cast to float32
before their difference is taken (the VGG convs themselves compute in the mixed type).

``bfloat16`` on a machine without bfloat16 hardware would be emulated, several times slower than
float32: there it falls back to float32 and says so once (``effective``).
"""

from __future__ import annotations

import contextlib
import logging
import platform
from pathlib import Path

from .errors import SrlibError

log = logging.getLogger(__name__)

PRECISIONS = ("float32", "bfloat16", "mixed_float16")
DEFAULT_PRECISION = "bfloat16"
# the Keras dtype policy of each precision
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16", "mixed_float16": "mixed_float16"}
# /proc/cpuinfo flags of CPUs that compute bfloat16 in hardware: x86 (AVX512_BF16, AMX) and Arm (BF16)
BF16_CPU_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}

_warned = False


def check(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``; otherwise an error naming the choices."""
    if precision not in PRECISIONS:
        raise SrlibError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def _cpuinfo_field(keys: tuple[str, ...], cpuinfo: str | Path) -> str:
    """The first value of any of ``keys`` in Linux's ``/proc/cpuinfo`` (``cpuinfo``); "" where unreadable."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in keys:
            return value.strip()
    return ""


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's feature flags as Linux lists them (x86 "flags", Arm "Features"); empty where unreadable."""
    return set(_cpuinfo_field(("flags", "Features"), cpuinfo).split())


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU as a benchmark's caption names it, since the bfloat16 speed-up depends on it: the number of cores,
    the model name and the bfloat16 flags, e.g. "2 cores of Intel(R) Xeon(R) Processor (amx_bf16, avx512_bf16)"."""
    import os

    name = _cpuinfo_field(("model name",), cpuinfo) or platform.processor() or "an unnamed CPU"
    flags = sorted(cpu_flags(cpuinfo) & BF16_CPU_FLAGS)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()  # those we may use
    return f"{cores} cores of {name} ({', '.join(flags) if flags else 'no bfloat16 hardware'})"


def bf16_hardware() -> bool:
    """True when the devices TensorFlow computes on do bfloat16 arithmetic in hardware: every GPU of compute
    capability 8.0 or more (Ampere on) where there are GPUs, else the CPU's flags (``BF16_CPU_FLAGS``)."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return all(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)) >= (8, 0)
                   for gpu in gpus)
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return False  # Apple's CPUs: TensorFlow has no bfloat16 kernels that use their hardware
    return bool(cpu_flags() & BF16_CPU_FLAGS)


def effective(precision: str) -> str:
    """The precision to compute in for ``precision``: ``bfloat16`` becomes ``float32`` on a machine without
    bfloat16 hardware (said once per process); the others are returned as they are."""
    global _warned
    check(precision)
    if precision == "bfloat16" and not bf16_hardware():
        if not _warned:
            _warned = True
            log.warning("this machine has no bfloat16 hardware (AVX512_BF16, AMX, Arm BF16 or an Ampere GPU): "
                        "computing in float32, which is faster here than emulated bfloat16")
        return "float32"
    return precision


@contextlib.contextmanager
def policy(precision: str):
    """Within the block, Keras builds new layers under ``precision``'s dtype policy (it is process-wide);
    afterwards the previous policy is back. ``precision`` is used as given: pass ``effective(...)``."""
    import keras

    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_dtype_policy(POLICIES[check(precision)])
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(before)
