"""Every setting of a run and of the course's notebooks, checked where it is made.

A setting has one name everywhere: the ``TrainConfig`` field, the CLI flag (``learning_rate`` is
``--learning-rate``), the notebook parameter and the profile key. ``check(name, value)`` raises
``SettingError`` naming the setting, its value and what is allowed, in one line, before any work starts:
``TrainConfig`` checks its fields, a profile checks its keys, and each notebook checks its parameters
(``check_parameters(globals())``), so that ``scale = "four"`` or ``benchmark_sets = Set5`` (a string, not a
list) fails at once instead of training nothing or drawing an empty table.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping

from .degradation import DEGRADATIONS
from .errors import SrlibError, short_repr
from .model_card import MAX_BLOCKS, MAX_FILTERS, SCALES


class SettingError(SrlibError, ValueError):
    """A setting's value is not allowed; ``name``, ``value`` and ``allowed`` say which, what and what is."""

    def __init__(self, name: str, value, allowed: str):
        self.name, self.value, self.allowed = name, value, allowed
        super().__init__(f"{name} = {short_repr(value)}: {allowed}")

    def as_flag(self) -> str:
        """The message as a command-line user reads it: ``--learning-rate -1.0: must be ...``."""
        return f"--{self.name.replace('_', '-')} {short_repr(self.value)}: {self.allowed}"


# A check returns the reason a value is refused ("must be ..."), or None when it is allowed.
Check = Callable[[object], "str | None"]


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def integer(low: int, high: int | None = None) -> Check:
    allowed = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"

    def check(value):
        if not _is_integer(value) or value < low or (high is not None and value > high):
            return f"must be {allowed}"
    return check


def number(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False) -> Check:
    """A finite real number in the interval from ``low`` to ``high`` (open at either end when asked)."""
    left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
    allowed = (f"a finite number above {low:g}" if low_open else f"a finite number of at least {low:g}"
               ) if high == math.inf else f"a number in {left}{low:g}, {high:g}{right}"

    def check(value):
        if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
            return f"must be {allowed}"
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            return f"must be {allowed}"
    return check


def one_of(options: Callable[[], list] | list) -> Check:
    """One of ``options`` (or of what the callable returns, for lists defined in modules that import this one)."""
    def check(value):
        allowed = list(options() if callable(options) else options)
        if isinstance(value, bool) or value not in allowed or type(value) is not type(allowed[0]) and not (
                _is_integer(value) and _is_integer(allowed[0])):
            return "must be one of " + ", ".join(repr(o) for o in allowed)
    return check


def boolean(value):
    if not isinstance(value, bool):
        return "must be True or False"


def boolean_or_auto(value):
    if not isinstance(value, bool) and value != "auto":
        return "must be True, False or 'auto'"


def text(value):
    if not isinstance(value, str) or not value:
        return "must be a non-empty string (in quotes)"


def text_list(value):
    if isinstance(value, str):
        return f"must be a list of names, e.g. [{value!r}], not a bare string"
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        return "must be a non-empty list of names (strings in quotes)"


def optional(check: Check) -> Check:
    """``check``, or None (which keeps a default, e.g. the recipe stage's own value)."""
    return lambda value: None if value is None else check(value)


def _recipes():
    from .recipes import RECIPES
    return list(RECIPES)


def _content_losses():
    from .recipes import CONTENT_LOSSES
    return list(CONTENT_LOSSES)


def _precisions():
    from .precision import PRECISIONS
    return list(PRECISIONS)


def _profiles():
    from .pipeline import PROFILES
    return list(PROFILES)


SETTINGS: dict[str, Check] = {
    # the generator and the data
    "scale": one_of(list(SCALES)),
    "blocks": integer(1, MAX_BLOCKS),  # the limits a model card may hold (srlib.model_card)
    "filters": integer(1, MAX_FILTERS),
    "batch_norm": boolean,
    "batch_size": integer(1),
    "patch_size": integer(2),
    "seed": integer(0),
    "training_sets": text_list,
    "degradation": one_of(list(DEGRADATIONS)),
    "images_per_shard": integer(1),  # python -m srlib data shard
    "min_size": integer(1),
    # the losses and the optimizer
    "content_loss": optional(one_of(_content_losses)),
    "vgg_weights": optional(text),  # "imagenet", "auto", "none" or a file (whose loading names it when missing)
    "tv_weight": optional(number(0)),
    "adversarial_weight": optional(number(0)),
    "label_smoothing": optional(number(0, 1)),
    "label_flip": optional(number(0, 1)),
    "learning_rate": optional(number(0, low_open=True)),
    "ema": optional(number(0, 1, low_open=True, high_open=True)),
    "warmup_steps": integer(0),
    # how a run goes
    "recipe": one_of(_recipes),
    "profile": one_of(_profiles),
    "steps": integer(1),
    "precision": one_of(_precisions),
    "xla": boolean_or_auto,
    "checkpoint_every": integer(1),
    "validate_every": integer(1),
    "val_images": integer(1),
    "progress": boolean,
    "fresh": boolean,
    "init_generator": optional(text),
    # where things are
    "data_dir": text,
    "source_dir": optional(text),
    "run_dir": text,
    "figures_dir": text,
    "compare_with": optional(text),
    # what the chapters show
    "benchmark_sets": text_list,
    "showcase": text,
    "example": text,
    "crop_images": text_list,
    "crop": integer(8),
    "example_index": integer(0),
    "second_order": boolean,
    "shipped": boolean,
    "smoothing": integer(1),
    "linear_train_images": integer(1),
    "verdict_set": text,
    "verdict_patches": integer(1),
}


def check(name: str, value):
    """``value`` if it is allowed for setting ``name``; else ``SettingError``. Unknown names are a ``KeyError``."""
    reason = SETTINGS[name](value)
    if reason:
        raise SettingError(name, value, reason)
    return value


def check_scale_fit(patch_size: int, scale: int) -> None:
    """A training HR patch must hold a whole number of LR pixels: ``patch_size`` a multiple of ``scale``."""
    if patch_size % scale:
        raise SettingError("patch_size", patch_size, f"must be a multiple of scale ({scale}), e.g. "
                                                     f"{max(scale, patch_size - patch_size % scale)}")


def check_parameters(namespace: Mapping) -> None:
    """Check every setting found in ``namespace`` (a notebook's ``globals()`` right after its parameters cell, or a
    profile's parameters) and that its patch size fits its scale; other names are left alone."""
    for name, value in namespace.items():
        if name in SETTINGS:
            check(name, value)
    if "patch_size" in namespace and "scale" in namespace:
        check_scale_fit(namespace["patch_size"], namespace["scale"])
