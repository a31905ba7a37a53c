"""What a training run does: the recipes and their stages, and the settings of a run.

A setting has one name everywhere: the ``TrainConfig`` field, the CLI flag (``learning_rate`` is
``--learning-rate``), the notebook parameter and the profile key. ``train_config(params)`` turns a
notebook's or a profile's parameters into a ``TrainConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import SrlibError
from .precision import DEFAULT_PRECISION
from .settings import check as check_setting, check_scale_fit

# The content losses of Ledig et al. 2017 (Table 1) and of the course report: None is pixel MSE
# ("SRGAN-MSE"), otherwise (VGG network, layer) whose feature maps are compared. "vgg22" and "vgg54" are
# the paper's VGG19 layers (the feature map of the 2nd conv before the 2nd / 4th conv before the 5th
# max-pooling); the report used VGG16's block2_conv2 and block5_conv3.
CONTENT_LOSSES: dict[str, tuple[str, str] | None] = {
    "mse": None,
    "vgg22": ("vgg19", "block2_conv2"),
    "vgg54": ("vgg19", "block5_conv4"),
    "vgg16_22": ("vgg16", "block2_conv2"),
    "vgg16_53": ("vgg16", "block5_conv3"),
}
CONTENT_NAMES = {"mse": "pixel MSE", "vgg22": "VGG19 block2_conv2 (VGG22)", "vgg54": "VGG19 block5_conv4 (VGG54)",
                 "vgg16_22": "VGG16 block2_conv2", "vgg16_53": "VGG16 block5_conv3"}


@dataclass(frozen=True)
class Stage:
    """One stage of a recipe: which networks learn and the loss of each."""

    name: str
    role: str  # which networks learn, and from what; the losses are said by ``summary``
    train_generator: bool = True
    train_discriminator: bool = False
    previous: str | None = None  # the stage whose networks this one starts from
    content_loss: str | None = None  # a key of CONTENT_LOSSES; None: no content term (discriminator warm-up)
    feature_scale: float = 1 / 12.75  # VGG features are multiplied by this (the paper's rescaling)
    tv_weight: float = 0.0
    adversarial_weight: float = 0.0
    label_smoothing: float = 0.0
    label_flip: float = 0.0
    learning_rate: float = 1e-4
    decay_at: float | None = None  # fraction of the stage's steps after which the rate drops 10x

    @property
    def summary(self) -> str:
        """One line: the role and the generator's loss terms, from this stage's own settings (a run's
        ``content_loss`` shows here, not the recipe's default)."""
        if not self.train_generator or self.content_loss is None:
            return self.role
        terms = [f"{CONTENT_NAMES[self.content_loss]} content"]
        terms += [f"{self.tv_weight:g} total variation"] if self.tv_weight else []
        terms += [f"{self.adversarial_weight:g} adversarial"] if self.adversarial_weight else []
        return f"{self.role}: {' + '.join(terms)}"

    @property
    def uses_discriminator(self) -> bool:
        return self.train_discriminator or self.adversarial_weight > 0

    @property
    def vgg(self) -> tuple[str, str] | None:
        """(network, layer) of the VGG content loss, or None when the stage needs no VGG."""
        return CONTENT_LOSSES[self.content_loss] if self.content_loss else None


RECIPES: dict[str, dict[str, Stage]] = {
    # The course report: perceptual pretraining, then a discriminator warm-up, then the GAN.
    "report": {
        "sr_vgg": Stage(
            "sr_vgg",
            "the generator alone (no discriminator)",
            content_loss="vgg16_22", tv_weight=1e-3,
        ),
        "discriminator": Stage(
            "discriminator",
            "generator frozen; discriminator learns real HR from SR with binary cross-entropy only",
            train_generator=False, train_discriminator=True, previous="sr_vgg",
            label_smoothing=0.1, label_flip=0.05,
        ),
        "full": Stage(
            "full",
            "generator + discriminator",
            train_discriminator=True, previous="discriminator",
            content_loss="vgg16_53", tv_weight=1e-3, adversarial_weight=1e-3, label_smoothing=0.1, label_flip=0.05,
        ),
    },
    # Ledig et al. 2017: SRResNet with pixel MSE, then SRGAN with VGG54 content + 1e-3 adversarial.
    "paper": {
        "mse": Stage("mse", "SRResNet, the PSNR-oriented network", content_loss="mse"),
        "gan": Stage(
            "gan",
            "SRGAN, from the MSE network",
            train_discriminator=True, previous="mse", content_loss="vgg54", adversarial_weight=1e-3, decay_at=0.5,
        ),
    },
}

# The settings of a stage that a run may change (None in a TrainConfig keeps the stage's own value).
STAGE_SETTINGS = ("content_loss", "tv_weight", "adversarial_weight", "label_smoothing", "label_flip", "learning_rate")


def get_stage(recipe: str, stage: str) -> Stage:
    """The ``Stage`` named ``stage`` of ``recipe``; a clear error for unknown names."""
    if recipe not in RECIPES:
        raise SrlibError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    if stage not in RECIPES[recipe]:
        raise SrlibError(f"recipe {recipe!r} has no stage {stage!r}; its stages: {', '.join(RECIPES[recipe])}")
    return RECIPES[recipe][stage]


def stage_names(recipe: str) -> list[str]:
    """A recipe's stages in the order they run."""
    if recipe not in RECIPES:
        raise SrlibError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    return list(RECIPES[recipe])


def stage_for(recipe: str, part: str) -> str | None:
    """The stage of ``recipe`` that plays ``part`` of the course: "pretrain" (its first stage), "discriminator"
    (a warm-up of the discriminator alone, None when the recipe has none) or "gan" (its last stage)."""
    stages = RECIPES[recipe] if recipe in RECIPES else get_stage(recipe, "")  # the error names the recipes
    if part == "pretrain":
        return next(iter(stages))
    if part == "gan":
        return list(stages)[-1]
    if part == "discriminator":
        return next((name for name, s in stages.items() if s.train_discriminator and not s.train_generator), None)
    raise SrlibError(f"unknown part {part!r}; choose pretrain, discriminator or gan")


@dataclass
class TrainConfig:
    """Everything about a run that is not fixed by its stage; None keeps the stage's own value."""

    # the generator (its architecture) and the data
    scale: int = 4
    blocks: int = 16
    filters: int = 64
    batch_norm: bool = True
    batch_size: int = 16
    patch_size: int = 96
    seed: int = 0
    degradation: str = "bicubic"  # how LR patches are made: bicubic (MATLAB's) or realistic (srlib.realistic)
    # the losses and the optimizer
    content_loss: str | None = None  # mse, vgg22, vgg54 (the paper's), vgg16_22, vgg16_53 (the report's)
    vgg_weights: str | None = "imagenet"  # "imagenet", a local .h5 file, None (random: tests only), "auto"
    tv_weight: float | None = None
    adversarial_weight: float | None = None
    label_smoothing: float | None = None
    label_flip: float | None = None
    learning_rate: float | None = None
    ema: float | None = None  # e.g. 0.999: validate and export an exponential moving average of the generator
    warmup_steps: int = 0  # raise the learning rate linearly over the stage's first steps (srlib.stage_model.StageSchedule)
    # how the run goes
    precision: str = DEFAULT_PRECISION  # float32, bfloat16 (float32 where the hardware lacks it), mixed_float16
    xla: bool | str = "auto"  # compile the step with XLA: True, False or auto (srlib.stage_model.use_xla)
    checkpoint_every: int = 500
    validate_every: int = 500  # validation PSNR/SSIM and a sample image
    val_images: int = 5
    progress: bool = True

    def __post_init__(self):
        if self.vgg_weights == "none":
            self.vgg_weights = None
        for item in dataclasses.fields(self):  # each setting's type and range: srlib.settings
            check_setting(item.name, getattr(self, item.name))
        check_scale_fit(self.patch_size, self.scale)

    def stage(self, stage: Stage) -> Stage:
        """``stage`` with this config's settings in place of its own."""
        changes = {k: getattr(self, k) for k in STAGE_SETTINGS if getattr(self, k) is not None}
        if stage.content_loss is None:  # a stage without a content term (the discriminator warm-up) keeps none
            changes.pop("content_loss", None)
        return dataclasses.replace(stage, **changes)


def train_config(params: dict) -> TrainConfig:
    """A ``TrainConfig`` from notebook or profile parameters: the keys named like its fields; others are ignored."""
    names = {field.name for field in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in params.items() if k in names})
