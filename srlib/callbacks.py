"""What happens around each training step, as Keras callbacks of ``SRGAN.fit``.

In the order ``Trainer.fit`` runs them after a step:

* ``HistoryLogger``: one ``history.jsonl`` row per step, and the NaN stop;
* ``Validation``: PSNR / SSIM on the validation images and a sample image, every ``validate_every`` steps;
* ``Checkpoints``: a checkpoint and the exported weights every ``checkpoint_every`` steps;
* ``ProgressBar``: step, losses and time left (tqdm, which also draws in notebooks, rather than Keras's
  progress bar);
* ``StopOnSignal``: Ctrl-C or ``kill`` ends the run after the current step, which is then saved;

and ``TensorBoardLogger`` writes every history row and sample image as TensorBoard summaries.

The step number is the stage's own (``SRGAN.step``), not ``fit``'s batch index, which restarts at 0 when a
run resumes.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import shutil
import signal
import struct
import threading
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .errors import SrlibError
from .files import atomic_path

log = logging.getLogger(__name__)


class TrainingError(SrlibError):
    """Training cannot go on (e.g. a loss or the weights became NaN); the checkpoints with finite weights are intact."""


def where_a_rerun_resumes(folder) -> str:
    """Where a rerun of the stage of ``folder`` (a ``RunFolder``) stopped by NaN or Inf resumes, in words: "the last
    checkpoint with finite weights is .../ckpt-2 (step 2), where a rerun resumes"."""
    prefix = folder.last_finite_checkpoint()
    if prefix is None:
        return "no checkpoint with finite weights was saved before, so a rerun starts the stage again"
    return f"the last checkpoint with finite weights is {prefix} (step {prefix.name.split('-')[-1]}), where a rerun resumes"


class StopOnSignal(keras.callbacks.Callback):
    """SIGINT and SIGTERM end ``fit`` after the step that is running, instead of killing the process with the
    steps since the last checkpoint: within the block, the first such signal is noted (``signum``) and the
    usual handlers come back, so a second Ctrl-C interrupts as it always does. Outside the main thread, where
    Python cannot take signals, it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.signum: int | None = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._note) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        self._restore()

    def _note(self, signum, frame):
        self.signum = signum
        self._restore()
        log.warning("%s: stopping after this step and saving it (again to interrupt at once)",
                    signal.Signals(signum).name)

    def _restore(self):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous = {}

    def on_train_batch_end(self, batch, logs=None):
        if self.signum is not None:
            self.model.stop_training = True


class HistoryLogger(keras.callbacks.Callback):
    """Appends each step's losses, learning rate and timing to the history; stops on a non-finite value.

    Keras's ``TerminateOnNaN`` only watches a ``loss`` key and ends ``fit`` quietly; here any loss term or
    gradient norm that is NaN or infinite raises ``TrainingError`` before the step can be checkpointed.
    """

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer
        self.last: dict = {}

    def on_train_batch_begin(self, batch, logs=None):
        self._tick = time.perf_counter()
        self._rate = self.trainer.networks.learning_rate()  # the rate this step uses (before a warm-up's ramp)

    def on_train_batch_end(self, batch, logs=None):
        values = {k: float(v) for k, v in logs.items() if k != "step"}
        step = int(logs["step"])
        # under mixed precision an overflowing step is skipped by design, and its gradient norm is inf
        checked = {k: v for k, v in values.items()
                   if not (self.trainer.precision == "mixed_float16" and k.endswith("grad_norm"))}
        if not all(math.isfinite(v) for v in checked.values()):
            raise TrainingError(
                f"non-finite loss at step {step} of stage {self.trainer.recipe}/{self.trainer.stage.name}: {values}. "
                f"Nothing from this step was saved; {where_a_rerun_resumes(self.trainer.folder)}. Lower the "
                "learning rate (a resumed stage may change it) or check the data.")
        self.last = {"stage": self.trainer.stage.name, "step": step, **values, "lr": self._rate,
                     "precision": self.trainer.precision,
                     "sec_per_step": round(time.perf_counter() - self._tick, 4), "time": round(time.time(), 3)}
        self.trainer.folder.history.append(self.last)
        self.trainer.on_row(self.last)


class Validation(keras.callbacks.Callback):
    """Every ``every`` steps and at the last: validation PSNR / SSIM (the benchmark protocol) as a history row,
    and bicubic | SR | HR of the first validation image as ``samples/step_N.png``."""

    def __init__(self, trainer, every: int, last_step: int):
        super().__init__()
        self.trainer, self.every, self.last_step = trainer, every, last_step

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        if self.trainer.validation and (step % self.every == 0 or step == self.last_step):
            row, sample = self.trainer.validate(step)
            self.trainer.on_row(row, sample)


class Checkpoints(keras.callbacks.Callback):
    """Every ``every`` steps and at the last: a checkpoint, then the exported weights and model card."""

    def __init__(self, trainer, every: int, last_step: int):
        super().__init__()
        self.trainer, self.every, self.last_step = trainer, every, last_step

    def on_train_batch_end(self, batch, logs=None):
        step = int(logs["step"])
        if step % self.every == 0 or step == self.last_step:
            self.trainer.save()


class TensorBoardLogger:
    """History rows and sample images as TensorBoard summaries in ``folder``, at the stage's own steps.

    Not ``keras.callbacks.TensorBoard``: that one counts steps from 0 again in every ``fit`` (so a resumed
    run would draw over its start) and has no images. Not a callback either: ``Trainer.on_row`` feeds it the
    rows the callbacks make.
    """

    SKIP = ("stage", "step", "time")

    def __init__(self, folder, resumed_at: int | None = None):
        if resumed_at is not None:
            drop_events_after(folder, resumed_at)
        before = set(Path(folder).glob("events.out.tfevents.*"))
        self.writer = tf.summary.create_file_writer(str(folder))
        # the file this writer made: (its path, where its whole records end, how many it holds)
        self._file = next(((path, *_whole_records(path)) for path in Path(folder).glob("events.out.tfevents.*")
                           if path not in before), None)
        self._expected = self._file[2] if self._file else 0

    def write(self, row: dict, sample: np.ndarray | None = None) -> None:
        """Write ``row``'s numbers (and ``sample``) at its step; an ``OSError`` (ENOSPC when the disk is full)
        naming the events file when they could not all be written."""
        with self.writer.as_default(step=row["step"]):
            for key, value in row.items():
                if key not in self.SKIP and isinstance(value, (int, float)):
                    self._expected += bool(tf.summary.scalar(key, value))
            if sample is not None:
                self._expected += bool(tf.summary.image("sample: bicubic | SR | HR", sample[None], max_outputs=1))
        self.writer.flush()
        self._check()

    def _check(self) -> None:
        """TensorFlow's event writer drops what a full disk does not take without a word, leaving its file cut
        short, possibly inside a record: count the whole records written since the last check."""
        if self._file is None or not self._file[0].exists():  # no file found, or deleted by hand: nothing to check
            return
        path, offset, count = self._file
        offset, count = _whole_records(path, offset, count)
        self._file = (path, offset, count)
        if count < self._expected:
            full = shutil.disk_usage(path.parent).free < 1 << 20
            raise OSError(errno.ENOSPC if full else errno.EIO, os.strerror(errno.ENOSPC) if full else
                          f"TensorFlow wrote {count} of {self._expected} events", str(path))

    def close(self) -> None:
        self.writer.close()


def _whole_records(path: Path, offset: int = 0, count: int = 0) -> tuple[int, int]:
    """Walk the TFRecord framing of ``path`` (each record: 8-byte length, 4-byte CRC, data, 4-byte CRC) from a
    record boundary at ``offset``, where ``count`` records lie before: (where the whole records end, how many
    records there are). The data are not read, so this costs little."""
    size = path.stat().st_size
    with open(path, "rb") as file:
        while offset + 8 <= size:
            file.seek(offset)
            end = offset + 16 + struct.unpack("<Q", file.read(8))[0]
            if end > size:
                break
            offset, count = end, count + 1
    return offset, count


def drop_events_after(folder, step: int) -> None:
    """Rewrite the TensorBoard event files in ``folder`` without their events after ``step``: a run interrupted
    after its last checkpoint wrote them, and the resumed run writes those steps again. (TensorBoard's own
    remedy, a "session start" event, depends on the order of the files and is not written by TF2's API.)"""
    for path in sorted(Path(folder).glob("events.out.tfevents.*")):
        records, torn = [], False
        try:
            for record in tf.data.TFRecordDataset(str(path)):
                records.append(record.numpy())
        except tf.errors.DataLossError:  # a record torn by kill -9: the ones before it are kept
            torn = True
        kept = [r for r in records if tf.compat.v1.Event.FromString(r).step <= step]
        if torn or len(kept) < len(records):
            with atomic_path(path) as tmp:
                with tf.io.TFRecordWriter(str(tmp)) as writer:
                    for record in kept:
                        writer.write(record)


class ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over the stage's steps with the main losses; it starts at the step the run resumed from."""

    SHOWN = ("g_loss", "d_loss", "content", "adversarial", "d_acc_real", "d_acc_fake")

    def __init__(self, description: str, start: int, steps: int, enabled: bool = True):
        super().__init__()
        self.bar = tqdm(total=steps, initial=start, desc=description, unit="step", dynamic_ncols=True,
                        disable=None if enabled else True)

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        self.bar.set_postfix({k: f"{float(logs[k]):.4g}" for k in self.SHOWN if k in logs})

    def on_train_end(self, logs=None):
        self.bar.close()
