"""The model card: the JSON sidecar beside every generator's ``.weights.h5``.

``generator.weights.h5`` has ``generator.json`` beside it, which says what network the weights are for
(so that they can be loaded without knowing it) and how they were made: recipe and stage, steps,
training data, what the run started from, the learning rates and precisions it used, which VGG weights its content
loss used, and, for a shipped model, the figures measured when it was shipped. ``ModelCard`` writes and
reads it, and checks what it reads: a malformed card is a clear error naming the file.

The weights file holds a copy of its card too (the HDF5 attribute ``srlib_model_card``, written into the file
before it replaces the old one: ``srlib.models.save_generator``), so that the pair cannot disagree unnoticed: a
process killed between writing the two files leaves a sidecar that describes other weights, and ``ModelCard.read``
refuses it, naming both files. Files saved before that copy existed (or by Keras alone) load as before.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SrlibError, short_repr
from .files import write_json

SCALES = (2, 4, 8)
EMBEDDED = "srlib_model_card"  # the attribute of a .weights.h5 that holds its card, as JSON
MAX_BLOCKS, MAX_FILTERS = 128, 1024  # far beyond any SRResNet; larger is a corrupt card, not a network


def card_path(weights_path: str | Path) -> Path:
    """``generator.weights.h5`` -> ``generator.json``."""
    weights_path = Path(weights_path)
    name = weights_path.name
    stem = name[: -len(".weights.h5")] if name.endswith(".weights.h5") else weights_path.stem
    return weights_path.with_name(stem + ".json")


def stage_weights(run_dir: str | Path, stage: str, network: str = "generator") -> Path:
    """``<run_dir>/<stage>/<network>.weights.h5``: the ``network`` ("generator" or "discriminator") a stage of
    a run exported, with its card beside it."""
    return Path(run_dir) / stage / f"{network}.weights.h5"


@dataclass
class ModelCard:
    """What a generator's weights are and how they were made."""

    architecture: dict  # the arguments of srlib.models.generator: scale, blocks, filters, batch_norm
    name: str | None = None  # a shipped model's name, e.g. "srresnet-x4"
    recipe: str | None = None
    stage: str | None = None
    steps: int | None = None
    training_data: dict | None = None  # {"name": "T91+BSD200", "images": 290, ...}
    initialised_from: dict | None = None  # the weights the run started from, and their card's summary
    vgg_weights: str | None = None  # "imagenet", a file, "random", or None when no VGG loss was used
    config: dict | None = None  # the TrainConfig of the run
    learning_rates: list | None = None  # [{"from_step": 1, "rate": 2e-4}, ...], "warmup_steps" in the first if any
    precisions: list | None = None  # what the steps computed in: [{"from_step": 1, "precision": "bfloat16"}, ...]
    emas: list | None = None  # the EMA decay exported, when one was used: [{"from_step": 1, "ema": None}, {.., 0.999}]
    benchmark: dict | None = None  # {set: {"psnr", "ssim", "n", ...}} measured when shipped
    extra: dict = field(default_factory=dict)  # anything else the card holds (kept, not interpreted)

    @property
    def random_vgg(self) -> bool:
        """True when this network, or one it started from, was trained against random VGG features."""
        return self.vgg_weights == "random" or bool((self.initialised_from or {}).get("random_vgg"))

    @property
    def generator_steps(self) -> int:
        """The steps that trained this generator: its stage's own and those of the weights it started from (a
        stage that keeps the generator frozen, such as the report's discriminator warm-up, adds none)."""
        from .recipes import RECIPES

        stage = RECIPES.get(self.recipe or "", {}).get(self.stage or "")
        own = 0 if stage is not None and not stage.train_generator else (self.steps or 0)
        earlier = (self.initialised_from or {}).get("steps")
        return own + (earlier if isinstance(earlier, int) else 0)

    def provenance(self) -> str:
        """How the network was trained, in words: "paper/mse, 4500 steps with batch norm + 7500 without on BSD200+T91"."""
        steps = f"{self.steps} steps" if self.steps is not None else ""
        start = self.initialised_from or {}
        if steps and start.get("steps"):
            steps = (f"{start['steps']} steps with batch norm + {self.steps} without"
                     if start.get("batch_norm_folded") else f"{start['steps']} + {self.steps} steps")
        parts = [f"{self.recipe}/{self.stage}" if self.recipe and self.stage else "", steps]
        text = ", ".join(p for p in parts if p)
        if self.training_data:
            text += f" on {self.training_data.get('name')}"
        if self.random_vgg:
            text += "; trained against RANDOM VGG features (no ImageNet weights)"
        return text

    def to_dict(self) -> dict:
        data = {k: v for k, v in dataclasses.asdict(self).items() if k != "extra" and v is not None}
        return {**data, **self.extra}

    def write(self, weights_path: str | Path) -> Path:
        """Write the card beside ``weights_path`` (atomically); returns its path."""
        path = card_path(weights_path)
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, data, source: str = "model card") -> "ModelCard":
        """A card from parsed JSON, checked; ``source`` names the file in errors."""
        if not isinstance(data, dict):
            raise SrlibError(f"{source} is not a model card: it holds {short_repr(data)}, not a JSON object")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in data.items() if k in names}
        if "architecture" not in known:
            raise SrlibError(f"{source} has no architecture (scale, blocks, filters, batch_norm)")
        known["architecture"] = check_architecture(known["architecture"], source)
        for key, kind in (("steps", int), ("recipe", str), ("stage", str), ("name", str), ("vgg_weights", str),
                          ("training_data", dict), ("initialised_from", dict), ("config", dict),
                          ("learning_rates", list), ("precisions", list), ("emas", list), ("benchmark", dict)):
            value = known.get(key)
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise SrlibError(f"{source}: {key} should be {_KIND[kind]}, not {short_repr(value)}")
        return cls(**known, extra={k: v for k, v in data.items() if k not in names})

    @classmethod
    def read(cls, weights_path: str | Path) -> "ModelCard | None":
        """The card beside ``weights_path``, or None when there is none; a malformed card is an error."""
        path = card_path(weights_path)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise SrlibError(f"{path} is not valid JSON: {error}") from None
        except RecursionError:
            raise SrlibError(f"{path} is not a model card: its JSON is nested too deeply") from None
        card = cls.from_dict(data, str(path))
        _check_pair(data, Path(weights_path), path)
        return card


def embed(weights_path: str | Path, card: ModelCard) -> None:
    """Store ``card`` in the Keras weights file ``weights_path`` (an HDF5 attribute, beside the arrays)."""
    import h5py  # not on `import srlib`

    with h5py.File(weights_path, "r+") as file:
        file.attrs[EMBEDDED] = json.dumps(card.to_dict())


def embedded_card(weights_path: str | Path) -> dict | None:
    """The card stored in ``weights_path`` (``embed``), as a dict; None for a file without one (saved before srlib
    stored it, or by Keras alone) or that is not an HDF5 file (its loader says so)."""
    import h5py

    try:
        with h5py.File(weights_path, "r") as file:
            text = file.attrs.get(EMBEDDED)
    except OSError:
        return None
    if text is None:
        return None
    try:
        data = json.loads(text)
    except (TypeError, ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise SrlibError(f"{weights_path}: its stored model card ({EMBEDDED}) is damaged")
    return data


def _check_pair(card: dict, weights_path: Path, path: Path) -> None:
    """An error naming both files when the weights file holds a card (``embed``) other than ``card``, read from
    the sidecar ``path``."""
    stored = embedded_card(weights_path) if weights_path.is_file() else None
    if stored is None or stored == card:
        return
    if stored.get("architecture") != card.get("architecture"):  # worded as srlib.models.load_generator words it
        raise SrlibError(f"{weights_path} does not fit this generator: its card {path} says "
                         f"{card.get('architecture')}, but the file holds a generator with {stored.get('architecture')}")
    keys = sorted(set(card) | set(stored), key=lambda k: (k != "steps", k))
    differ = [k for k in keys if card.get(k) != stored.get(k)]
    raise SrlibError(
        f"{path} does not describe {weights_path}: the card says "
        f"{'; '.join(f'{k} {short_repr(card.get(k))}' for k in differ[:2])}, but the weights were saved with "
        f"{'; '.join(f'{k} {short_repr(stored.get(k))}' for k in differ[:2])} (a save was interrupted between the two "
        "files, or one was replaced without the other): export them again, or copy both files together")


def check_architecture(architecture, source: str = "model card") -> dict:
    """``architecture`` checked: scale 2/4/8, blocks 1..128, filters 1..1024, batch_norm true/false."""
    if not isinstance(architecture, dict):
        raise SrlibError(f"{source}: architecture should be an object, not {short_repr(architecture)}")
    checked = {}
    for key, allowed in (("scale", SCALES), ("blocks", range(1, MAX_BLOCKS + 1)), ("filters", range(1, MAX_FILTERS + 1))):
        value = architecture.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
            raise SrlibError(f"{source}: architecture {key} should be an integer in "
                             f"{list(allowed) if key == 'scale' else f'{allowed.start}..{allowed.stop - 1}'}, "
                             f"not {short_repr(value)}")
        checked[key] = value
    batch_norm = architecture.get("batch_norm", False)
    if not isinstance(batch_norm, bool):
        raise SrlibError(f"{source}: architecture batch_norm should be true or false, not {short_repr(batch_norm)}")
    checked["batch_norm"] = batch_norm
    return checked


_KIND = {int: "an integer", str: "a string", dict: "an object", list: "a list"}
