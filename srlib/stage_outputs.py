"""What a training stage writes besides its history: validation rows and sample images, checkpoints, the exported
networks and their model card. ``StageOutputs`` is the part of ``srlib.training.Trainer`` that does it."""

from __future__ import annotations

import dataclasses
import logging

import keras
import numpy as np

from .benchmark import evaluate_image
from .callbacks import TrainingError, where_a_rerun_resumes
from .degradation import bicubic_downscale, bicubic_upscale
from .images import write_image
from .model_card import ModelCard
from .models import generator, nonfinite_weight, save_generator, save_weights, upscale_with
from .precision import policy as precision_policy

log = logging.getLogger(__name__)


class StageOutputs:
    """Validation, checkpoints and exports of a ``Trainer`` (which has ``recipe``, ``stage``, ``config``,
    ``folder``, ``networks``, ``validation``, ``training_data`` and ``cluster``); only the chief of a multi-worker
    job exports (the others checkpoint into their temporary folder, as TensorFlow's multi-worker guide says)."""

    def validate(self, step: int) -> tuple[dict, np.ndarray]:
        """Mean PSNR / SSIM on the validation images (the benchmark protocol), appended to the history, and
        the sample image (bicubic | SR | HR of the first), saved as ``samples/step_N.png``."""
        scale = self.config.scale
        with self.networks.inference_weights() as network:
            upscale = upscale_with(self._float32(network))
            results = [evaluate_image(hr, upscale, scale) for _, hr in self.validation]
        row = {"stage": self.stage.name, "step": step, "val_psnr": round(float(np.mean([r[0] for r in results])), 4),
               "val_ssim": round(float(np.mean([r[1] for r in results])), 5)}
        self.folder.history.append(row)
        log.info("step %d: validation PSNR %.2f dB, SSIM %.4f", step, row["val_psnr"], row["val_ssim"])
        sr = results[0][2]
        hr = self.validation[0][1][: sr.shape[0], : sr.shape[1]]
        sample = np.concatenate([bicubic_upscale(bicubic_downscale(hr, scale), scale), sr, hr], axis=1)
        write_image(self.folder.samples_dir / f"step_{step:07d}.png", sample)
        return row, sample

    def _float32(self, network: keras.Model) -> keras.Model:
        """``network``, or under a mixed precision a float32 copy of it: validation measures the weights, as the
        benchmark does, whatever the training computes in."""
        if self.precision == "float32":
            return network
        if getattr(self, "_validation_generator", None) is None:
            with precision_policy("float32"):
                self._validation_generator = generator(**network.architecture)
        self._validation_generator.set_weights(network.get_weights())
        return self._validation_generator

    def save(self) -> None:
        """Checkpoint, then export this stage's networks (and the run's latest generator). Weights or optimizer
        state holding NaN or Inf are never saved: ``TrainingError``, naming the last checkpoint with finite ones."""
        self._refuse_nonfinite(self.networks.variables())
        self.folder.save(self.networks.checkpoint, self.current_step)
        if self.cluster.chief:
            self.export(checked=True)

    def _refuse_nonfinite(self, variables) -> None:
        """``TrainingError`` when ``variables`` hold NaN or Inf."""
        bad = nonfinite_weight(variables)
        if bad is not None:
            raise TrainingError(
                f"the weights became NaN or Inf at step {self.current_step} of stage {self.recipe}/{self.stage.name} "
                f"({bad}): nothing from this step was saved; {where_a_rerun_resumes(self.folder)}. Lower the "
                "learning rate (a resumed stage may change it) or check the data.")

    def model_card(self) -> ModelCard:
        """The card of the generator this stage exports now: what it is, and what trained it step by step."""
        history, name, segments = self.folder.history, self.stage.name, self.folder.provenance()
        emas = _changes(segments, "ema") if self.stage.train_generator else []
        return ModelCard(
            architecture=dict(self.generator.architecture), recipe=self.recipe, stage=name,
            steps=self.current_step, training_data=self._training_data(segments),
            initialised_from=self.folder.initialised_from,
            vgg_weights=(self.config.vgg_weights or "random") if self.features is not None else None,
            config=dataclasses.asdict(self.config),
            learning_rates=history.learning_rates(name, self.config.warmup_steps) if self.stage.train_generator else None,
            precisions=history.precisions(name) or None,
            emas=emas if any(segment["ema"] for segment in emas) else None)

    def _training_data(self, segments: list[dict]) -> dict | None:
        """What the stage's steps were trained on: the data's summary, or when a resumed run was given other data,
        each in order ({"name": "T91, then BSD200+T91 from step 501", "segments": [...]})."""
        parts = _changes([s for s in segments if isinstance(s.get("training_data"), dict)], "training_data")
        if len(parts) < 2:
            return self.training_data
        name = ", then ".join(f"{p['training_data'].get('name')}" + (f" from step {p['from_step']}" if i else "")
                              for i, p in enumerate(parts))
        return {"name": name, "segments": [{"from_step": p["from_step"], **p["training_data"]} for p in parts]}

    def export(self, checked: bool = False) -> None:
        """The generator (its EMA when there is one) with its model card, and the discriminator, in the stage's
        folder and as the run's latest; weights holding NaN or Inf are refused (``TrainingError``), unless
        ``checked`` says ``save`` has just looked."""
        if not checked:
            self._refuse_nonfinite(self.networks.variables(optimizers=False))
        card = self.model_card()
        with self.networks.inference_weights() as network:
            for path in (self.folder.weights("generator"), self.folder.run_dir / "generator.weights.h5"):
                save_generator(network, path, card)
        if self.discriminator is not None:
            for path in (self.folder.weights("discriminator"), self.folder.run_dir / "discriminator.weights.h5"):
                save_weights(self.discriminator, path)


def _changes(segments: list[dict], key: str) -> list[dict]:
    """``[{"from_step", key}]``: where the value of ``key`` changes along the stage's ``segments`` (``RunFolder.provenance``)."""
    changes = []
    for segment in segments:
        if not changes or changes[-1][key] != segment.get(key):
            changes.append({"from_step": segment["from_step"], key: segment.get(key)})
    return changes
