"""The run folder: one process at a time, checkpoints that survive anything, the history, the exports.

A run folder holds every stage of one recipe::

    <run-dir>/history.jsonl                 one JSON line per step (and per validation), all stages
    <run-dir>/generator.weights.h5 (+.json) the latest generator and its model card, from the last stage run
    <run-dir>/tensorboard/<stage>/          TensorBoard event files: `tensorboard --logdir <run-dir>/tensorboard`
    <run-dir>/<stage>/checkpoints/          tf.train.CheckpointManager: networks, optimizers, step
    <run-dir>/<stage>/config.json           the settings the stage was started with
    <run-dir>/<stage>/generator.weights.h5  this stage's generator (for before/after comparisons)
    <run-dir>/<stage>/samples/step_*.png    bicubic | SR | HR of the first validation image

Rerunning the same command continues a stage where it stopped, even after ``kill -9``: the networks,
optimizers and step come back from the newest readable checkpoint (a damaged one is moved aside to
``checkpoints/damaged/`` and the one before it used), the data continue from that step
(``srlib.data``), and history lines written after that checkpoint are dropped, so that every step
appears once. A stage that holds checkpoints is never started again from scratch unless asked
(``restart``). Keras's ``BackupAndRestore`` resumes only at epoch boundaries, not at any step, hence this.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path

import tensorflow as tf

from .errors import SrlibError
from .files import write_json, write_text

log = logging.getLogger(__name__)

# Settings that change what a checkpoint holds or what a step computes: a stage resumes only with the same
# values (the learning rate may change, and is recorded step by step; an EMA may be added).
RESUME_FIXED = ("scale", "blocks", "filters", "batch_norm", "patch_size", "mixed_precision", "batch_size", "seed",
                "vgg_weights", "content_loss", "tv_weight", "adversarial_weight", "label_smoothing", "label_flip")


class RunFolderBusy(SrlibError):
    """Another process is training in this run folder."""


class HistoryLog:
    """``history.jsonl``: appended and flushed line by line; rows past a restored step can be dropped."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def rows(self) -> list[dict]:
        """The rows: JSON objects with a stage name and an integer step. Other lines (torn by ``kill -9``,
        edited by hand, not UTF-8) are skipped, with one warning naming the file and the first such line."""
        if not self.path.exists():
            return []
        rows, bad = [], []
        for number, line in enumerate(self.path.read_bytes().decode("utf-8", "replace").splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict) and isinstance(row.get("stage"), str) and type(row.get("step")) is int:
                rows.append(row)
            elif line.strip():
                bad.append(number)
        if len(bad) > 1 or (bad and bad[0] != number):  # a torn last line is the normal trace of kill -9
            log.warning("%s: skipped %d line(s) that are not history rows (first: line %d)", self.path, len(bad), bad[0])
        return rows

    def truncate(self, stage: str, step: int) -> None:
        """Keep other stages' rows and this stage's rows up to ``step``."""
        kept = [r for r in self.rows() if r["stage"] != stage or r["step"] <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def learning_rates(self, stage: str) -> list[dict]:
        """The rates a stage has used, as ``[{"from_step": 1, "rate": 2e-4}, ...]``: a resumed run may change it."""
        segments = []
        for row in self.rows():
            if row["stage"] == stage and isinstance(row.get("lr"), (int, float)):
                rate = float(f"{row['lr']:.4g}")  # the float32 rate, without its float32 noise
                if not segments or segments[-1]["rate"] != rate:
                    segments.append({"from_step": row["step"], "rate": rate})
        return segments

    def append(self, row: dict) -> None:
        if self._file is None:
            self._file = open(self.path, "a")
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RunFolder:
    """The files of one stage of a run; holds the folder's lock while it exists (``close`` releases it)."""

    def __init__(self, run_dir: str | os.PathLike, stage: str):
        self.run_dir = Path(run_dir)
        self.stage = stage
        self.stage_dir = self.run_dir / stage
        self.checkpoint_dir = self.stage_dir / "checkpoints"
        self.samples_dir = self.stage_dir / "samples"
        self.tensorboard_dir = self.run_dir / "tensorboard" / stage
        try:
            self.stage_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SrlibError(f"cannot make the run folder {self.stage_dir}: {error.strerror}") from None
        self._lock = self._take_lock()
        self.history = HistoryLog(self.run_dir / "history.jsonl")
        self._remove_leftovers()

    # --- one process per run folder -------------------------------------------------------------
    def _take_lock(self):
        """An exclusive ``flock`` on ``<run-dir>/.lock``; the kernel drops it when the process dies, so a
        run killed with ``kill -9`` leaves nothing that blocks the next one."""
        path = self.run_dir / ".lock"
        handle = open(path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderBusy(f"{self.run_dir} is in use by {holder}: wait for it to finish or stop it "
                                "(two runs in one folder would write over each other)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} (started {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        return handle

    def close(self) -> None:
        self.history.close()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _remove_leftovers(self) -> None:
        """Remove what a killed save left behind: half-written checkpoints and temporary weight files."""
        for leftover in self.checkpoint_dir.glob("*_temp*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        for folder in (self.run_dir, self.stage_dir):
            for leftover in folder.glob(".*.weights.h5.*"):
                leftover.unlink(missing_ok=True)

    # --- settings --------------------------------------------------------------------------------
    def check_config(self, config) -> None:
        """Refuse to resume a stage with settings that differ from those it was started with; then record them."""
        path = self.stage_dir / "config.json"
        now = dataclasses.asdict(config)
        before = _read_object(path) if path.is_file() and self.checkpoints() else {}
        changed = [f"{k}: {before[k]} -> {now[k]}" for k in RESUME_FIXED if k in before and before[k] != now[k]]
        if before.get("ema") and not now["ema"]:  # the average would be dropped silently
            changed.append(f"ema: {before['ema']} -> None")
        if changed:
            raise SrlibError(f"{self.stage_dir} was trained with other settings ({'; '.join(changed)}): resume with "
                             "the same settings, or train in a new run folder")
        self.ema_added = bool(before) and not before.get("ema") and bool(now["ema"])
        write_json(path, now)

    # --- checkpoints -----------------------------------------------------------------------------
    def checkpoints(self) -> list[Path]:
        """The checkpoint prefixes in the folder (``.../ckpt-N``), newest first, found from their files, so
        that a lost or damaged ``checkpoint`` state file loses nothing."""
        found = []
        for index in self.checkpoint_dir.glob("ckpt-*.index"):
            match = re.fullmatch(r"ckpt-(\d+)\.index", index.name)
            if match:
                found.append((int(match.group(1)), index.with_suffix("")))
        return [prefix for _, prefix in sorted(found, reverse=True)]

    def restore(self, checkpoint: tf.train.Checkpoint) -> Path | None:
        """Restore the newest readable checkpoint into ``checkpoint``; returns its prefix, or None when the
        stage has none. A damaged one is moved to ``checkpoints/damaged/`` and the next one tried."""
        found = self.checkpoints()
        for prefix in found:
            try:
                status = checkpoint.restore(str(prefix))
                status.assert_existing_objects_matched()
            except (AssertionError, ValueError) as error:
                raise SrlibError(f"the checkpoint {prefix} does not fit this run's networks (were other settings "
                                 f"used?): {str(error).splitlines()[0][:300]}") from None
            except (tf.errors.OpError, IndexError, OSError) as error:
                aside = self._move_aside(prefix)
                log.warning("checkpoint %s is damaged (%s): moved to %s; trying the one before it", prefix,
                            _first_line(error), aside)
                continue
            if prefix != found[0] or not (self.checkpoint_dir / "checkpoint").is_file():
                log.warning("%s resumes from %s", self.stage_dir, prefix.name)
            return prefix
        if found:
            raise SrlibError(f"no checkpoint in {self.checkpoint_dir} could be read (the damaged ones are in "
                             f"{self.checkpoint_dir / 'damaged'}); to train this stage again from the start, "
                             "pass --restart")
        return None

    def _move_aside(self, prefix: Path) -> Path:
        damaged = self.checkpoint_dir / "damaged"
        damaged.mkdir(exist_ok=True)
        for part in self.checkpoint_dir.glob(prefix.name + ".*"):
            os.replace(part, damaged / part.name)
        return damaged

    def save(self, checkpoint: tf.train.Checkpoint, step: int) -> None:
        """Write checkpoint ``ckpt-<step>``, keeping the two newest; a failed save is a one-line error."""
        manager = tf.train.CheckpointManager(checkpoint, self.checkpoint_dir, max_to_keep=2)
        try:
            manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as error:
            raise SrlibError(f"could not save a checkpoint in {self.checkpoint_dir} ({_first_line(error)}); "
                             "the previous checkpoint is intact") from None

    def restart(self) -> Path | None:
        """Move this stage's folder aside (``<stage>.replaced-<time>``, with its history rows) so that the
        stage starts again from scratch; returns where it went."""
        if not any(self.stage_dir.iterdir()):
            return None
        aside = self.run_dir / f"{self.stage}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        os.replace(self.stage_dir, aside)
        rows = [r for r in self.history.rows() if r["stage"] == self.stage]
        write_text(aside / "history.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
        self.history.truncate(self.stage, 0)
        self.stage_dir.mkdir()
        log.warning("%s restarts from scratch; its earlier files are in %s", self.stage_dir, aside)
        return aside

    # --- what the stage started from --------------------------------------------------------------
    @property
    def initialised_from(self) -> dict | None:
        path = self.stage_dir / "initialised_from.json"
        return _read_object(path) if path.is_file() else None

    @initialised_from.setter
    def initialised_from(self, value: dict) -> None:
        write_json(self.stage_dir / "initialised_from.json", value)

    def weights(self, network: str, stage: str | None = None) -> Path:
        """``<run-dir>/<stage>/<network>.weights.h5`` (this stage unless another is named)."""
        return self.run_dir / (stage or self.stage) / f"{network}.weights.h5"


def _read_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SrlibError(f"{path} is not valid JSON ({error}); restore it or train in a new run folder") from None
    if not isinstance(value, dict):
        raise SrlibError(f"{path} should hold a JSON object, not {type(value).__name__}")
    return value


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
