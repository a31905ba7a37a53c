"""What a training notebook's cell is about to do with its stage, said before it does it.

``train_stage`` continues a stage from its run folder, and refuses settings that change what its checkpoints
hold. Someone working in a notebook changes a parameter and runs the cell again; ``plan_stage`` looks at the
run folder first and says in words what will happen: the stage starts, resumes at step N, trains again from
the start (``fresh = True``), or has nothing left to train. When the new settings cannot take effect in the
existing run it raises ``StageChange`` naming the parameters to set (``fresh``, ``run_dir``, ``steps``,
``blocks``...), rather than the command-line flags the trainer's own errors name, and rather than training
nothing in silence: the settings a checkpoint depends on changed, a learning rate or moving average changed
for a stage with no steps left, or the stage it starts from has not been trained. It warns when the stage
it started from has trained again since (its networks were learned against an older one).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SrlibError
from .model_card import ModelCard, stage_weights
from .recipes import RECIPES, TrainConfig, get_stage, stage_for
from .run_folder import HistoryLog, changed_settings, checkpoint_steps, effective_settings
from .settings import check as check_setting

# the notebook of the course that trains each part of a recipe (srlib.pipeline.NOTEBOOK_STAGES)
_NOTEBOOKS = {"pretrain": "02_pretrain_sr_vgg", "discriminator": "03_pretrain_discriminator", "gan": "04_full_train"}
# settings a resumed stage may change; they act only on the steps still to train
_FOR_NEW_STEPS = ("learning_rate", "ema")


class StageChange(SrlibError):
    """The settings asked for cannot take effect in the run folder as it is; the message names the fix."""


@dataclass
class StagePlan:
    stage: str
    action: str  # "start", "resume", "restart" (fresh = True) or "done" (nothing to train)
    done_steps: int  # steps the stage had when the cell ran
    steps: int
    message: str
    warnings: list[str] = field(default_factory=list)

    @property
    def restart(self) -> bool:
        """Whether ``train_stage`` must be given ``restart=True``."""
        return self.action == "restart"

    def markdown(self) -> str:
        return "\n\n".join([f"**{self.message}**"] + [f"**Warning:** {w}" for w in self.warnings])


def notebook_of(recipe: str, stage: str) -> str:
    """The course notebook that trains ``stage`` of ``recipe`` (e.g. "02_pretrain_sr_vgg")."""
    return next((nb for part, nb in _NOTEBOOKS.items() if stage_for(recipe, part) == stage), "the notebook of " + stage)


def checkpointed_step(run_dir: str | os.PathLike, stage: str) -> int | None:
    """The step of a stage's newest checkpoint (from the files' names, ``ckpt-<step>.index``); None without any."""
    found = checkpoint_steps(Path(run_dir) / stage / "checkpoints")
    return found[0] if found else None


def _stage_times(run_dir: Path, stage: str) -> tuple[float | None, float | None]:
    """Wall-clock time of a stage's first and last training step in the history (None when it has none)."""
    times = [r["time"] for r in HistoryLog(run_dir / "history.jsonl").rows()
             if r["stage"] == stage and isinstance(r.get("time"), (int, float))]
    return (min(times), max(times)) if times else (None, None)


def _clock(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _resolved(config: TrainConfig, stage) -> TrainConfig:
    """``config`` with ``vgg_weights="auto"`` resolved as the trainer resolves it, for stages with a VGG loss."""
    if stage.vgg and config.vgg_weights == "auto":
        from .models import resolve_vgg_weights

        return dataclasses.replace(config, vgg_weights=resolve_vgg_weights("auto", stage.vgg[0]))
    return config


# the content loss a stage trains with when its own compares VGG features and ImageNet's weights cannot be had
OFFLINE_CONTENT_LOSS = "mse"


def offline_content_loss(recipe: str, stage: str, config: TrainConfig) -> tuple[TrainConfig, str | None]:
    """``config`` for ``stage`` of ``recipe``, with pixel MSE in place of a VGG content loss that would compare
    random features, and the sentence that says so (None when nothing changed).

    Only the stage's own content loss (``content_loss`` left at None) with ``vgg_weights="auto"`` is replaced, and
    only when ImageNet's VGG weights cannot be loaded here; a content loss asked for by name is kept, so training
    against random VGG features stays one parameter away."""
    own = get_stage(recipe, stage)
    if config.content_loss is not None or config.vgg_weights != "auto" or not own.vgg:
        return config, None
    models_log = logging.getLogger("srlib.models")
    level = models_log.level
    models_log.setLevel(logging.ERROR)  # no log line saying that VGG is random: the note returned says what follows
    try:
        resolved = _resolved(config, own).vgg_weights
    finally:
        models_log.setLevel(level)
    if resolved is not None:  # ImageNet's weights are here: the recipe as it is
        return config, None
    note = (f"No ImageNet VGG weights here, so this stage trains with the pixel content loss "
            f"(`content_loss = \"{OFFLINE_CONTENT_LOSS}\"`) in place of the recipe's `{own.content_loss}`; "
            f"set `content_loss = \"{own.content_loss}\"` to train against random VGG features instead.")
    return dataclasses.replace(config, content_loss=OFFLINE_CONTENT_LOSS), note


def _check_start(recipe: str, stage, run_dir: Path, config: TrainConfig, init_generator) -> str:
    """What a stage starting now starts from, in words; ``StageChange`` when that cannot be had or does not fit."""
    if init_generator is not None:
        return f"the generator {init_generator}"
    if not stage.previous:
        return "random weights"
    source = stage_weights(run_dir, stage.previous)
    if not source.is_file():
        raise StageChange(
            f"stage {stage.name!r} starts from the generator that stage {stage.previous!r} trained "
            f"({notebook_of(recipe, stage.previous)}.ipynb), but {source} does not exist: run that notebook first "
            f"with the same run_dir ({run_dir})")
    card = ModelCard.read(source)
    wanted = {"scale": config.scale, "blocks": config.blocks, "filters": config.filters,
              "batch_norm": config.batch_norm}
    if card is not None and card.architecture != wanted and not (  # a batch-norm generator may start one without
            card.architecture.get("batch_norm") and {**card.architecture, "batch_norm": False} == wanted):
        keys = [k for k in wanted if card.architecture.get(k) != wanted[k]]
        raise StageChange(
            f"the generator of stage {stage.previous!r} ({source}) was built with "
            f"{', '.join(f'{k} = {card.architecture.get(k)!r}' for k in keys)}, but this notebook's parameters say "
            f"{', '.join(f'{k} = {wanted[k]!r}' for k in keys)}: set the same as in "
            f"{notebook_of(recipe, stage.previous)}.ipynb")
    steps = f" ({card.steps} steps)" if card is not None and card.steps else ""
    return f"the generator of stage {stage.previous!r}{steps}"


def plan_stage(recipe: str, stage: str, run_dir: str | os.PathLike, config: TrainConfig, steps: int,
               fresh: bool = False, init_generator: str | os.PathLike | None = None) -> StagePlan:
    """What training ``stage`` of ``recipe`` in ``run_dir`` up to ``steps`` with ``config`` will do (see the module
    docstring); raises ``StageChange`` when it cannot do what the settings ask. Reads the run folder, writes nothing."""
    run_dir = Path(run_dir)
    spec = config.stage(get_stage(recipe, stage))
    check_setting("steps", steps)
    done = checkpointed_step(run_dir, stage)
    later = [s for s in list(RECIPES[recipe])[list(RECIPES[recipe]).index(stage) + 1:]
             if checkpointed_step(run_dir, s) is not None]
    if fresh:
        start = _check_start(recipe, spec, run_dir, config, init_generator)
        moved = (f" Its {done} steps so far move to {run_dir / stage}.replaced-<date-time> (nothing is deleted); "
                 "set fresh = False again to continue this new run next time." if done is not None else "")
        warnings = [f"the later stage(s) {', '.join(later)} in this run folder were trained from the old {stage}: "
                    "their notebooks will say so, and train them again with fresh = True."] if later else []
        return StagePlan(stage, "restart", done or 0, steps,
                         f"fresh = True: stage {stage!r} trains from step 0 to {steps}, starting from {start}.{moved}",
                         warnings)
    if done is None:
        start = _check_start(recipe, spec, run_dir, config, init_generator)
        return StagePlan(stage, "start", 0, steps, f"Stage {stage!r} starts from {start} and trains {steps} steps.")
    before = _read_config(run_dir / stage / "config.json")
    now = dataclasses.asdict(_resolved(config, spec))
    base = get_stage(recipe, stage)
    old, new = effective_settings(before, base), effective_settings(now, base)
    changed = changed_settings(before, now, base)  # what the run folder would refuse
    if changed:
        what = ", ".join(f"{k} = {value!r} (it was trained with {was!r})" for k, (was, value) in changed.items())
        raise StageChange(
            f"stage {stage!r} in {run_dir} has {done} steps trained with other settings, and a checkpoint can only "
            f"continue with its own: {what}. To train it with the new settings set fresh = True (the old run is "
            f"moved aside, not deleted), or give a new run_dir for a separate run (then run the earlier notebooks "
            f"with it too); to continue the old run, set {', '.join(changed)} back.")
    moved = [k for k in _FOR_NEW_STEPS if k in before and old.get(k) != new.get(k)]
    change = ", ".join(f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in moved)
    warnings = []
    first, _ = _stage_times(run_dir, stage)
    if spec.previous and first is not None:
        _, previous_last = _stage_times(run_dir, spec.previous)
        if previous_last is not None and previous_last > first:
            warnings.append(
                f"stage {spec.previous!r} trained again ({_clock(previous_last)}) after stage {stage!r} started "
                f"({_clock(first)}), so {stage!r} continues from an older {spec.previous!r}. To start it from the "
                "current one, set fresh = True.")
    if done >= steps:
        if moved:
            raise StageChange(
                f"stage {stage!r} has done all its {steps} steps ({done} in {run_dir / stage}), so the new "
                f"{change} would train nothing. Set fresh = True to train it again from step 0 with the new "
                f"settings, or steps above {done} to continue it with them.")
        return StagePlan(stage, "done", done, steps,
                         f"Stage {stage!r} already has {done} of {steps} steps: nothing to train; what follows shows "
                         "it as it is. To train more, raise steps; to train it again from the start, set fresh = True.",
                         warnings)
    note = f" with {change}" if moved else ""
    return StagePlan(stage, "resume", done, steps,
                     f"Stage {stage!r} resumes at step {done} and trains to step {steps}{note}.", warnings)


def _read_config(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
