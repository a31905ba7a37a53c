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
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf

from .errors import SrlibError
from .files import append_whole, disk_full, make_folder, remove_stale_temp_files, write_json, write_text
from .model_card import card_path, stage_weights
from .recipes import CONTENT_LOSSES, RECIPES, STAGE_SETTINGS

log = logging.getLogger(__name__)
# how a user asks for a stage to start again: the CLI flag, the Trainer argument, the chapters' parameter
RESTART_HOW = "--restart (restart=True; fresh = True in a chapter)"

# Settings that change what a checkpoint holds or what a step computes: a stage resumes only with the same
# values (the learning rate may change, and is recorded step by step; an EMA may be added).
RESUME_FIXED = ("scale", "blocks", "filters", "batch_norm", "patch_size", "batch_size", "seed", "degradation",
                "vgg_weights", "content_loss", "tv_weight", "adversarial_weight", "label_smoothing", "label_flip",
                "warmup_steps")
KEEP_CHECKPOINTS = 2


class RunFolderBusy(SrlibError):
    """Another process is training in this run folder."""


class HistoryLog:
    """``history.jsonl``: appended line by line, unbuffered; rows past a restored step can be dropped."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None
        self._warned = False

    def rows(self) -> list[dict]:
        """The rows: JSON objects with a stage name and an integer step. Other lines (``42``, a row without a
        step, bytes that are not UTF-8, lines edited by hand) are skipped, with one warning naming the file;
        a torn last line, the normal trace of ``kill -9``, is skipped silently."""
        if not self.path.exists():
            return []
        text = self.path.read_bytes().decode("utf-8", "replace")
        lines = text.splitlines()
        rows, bad, torn = [], [], False
        for number, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                row = None
                torn = number == len(lines) and not text.endswith("\n")
            if isinstance(row, dict) and isinstance(row.get("stage"), str) and type(row.get("step")) is int:
                rows.append(row)
            elif line.strip() and not torn:
                bad.append(number)
        if bad and not self._warned:
            self._warned = True
            log.warning("%s: skipped %d line(s) that are not history rows (first: line %d)", self.path, len(bad),
                        bad[0])
        return rows

    def truncate(self, stage: str, step: int) -> None:
        """Keep other stages' rows and this stage's rows up to ``step``."""
        self.close()  # the file is replaced: appending must reopen it
        kept = [r for r in self.rows() if r["stage"] != stage or r["step"] <= step]
        write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))

    def learning_rates(self, stage: str, warmup_steps: int = 0) -> list[dict]:
        """The rates a stage has used, as ``[{"from_step": 1, "rate": 2e-4}, ...]``: a resumed run may change it.
        A learning-rate warm-up is named in the first entry, ``{"from_step": 1, "rate": 2e-4, "warmup_steps": 500}``
        (the history records each step's rate before the warm-up's ramp)."""
        segments = self._segments(stage, "lr", "rate", lambda v: float(f"{v:.4g}") if isinstance(v, (int, float)) else None)
        if warmup_steps and segments:
            segments[0]["warmup_steps"] = warmup_steps
        return segments

    def precisions(self, stage: str) -> list[dict]:
        """What a stage's steps computed in, as ``[{"from_step": 1, "precision": "float32"}, ...]``: a resumed run
        may move between float32 and bfloat16 (steps from before the precision was recorded are left out)."""
        return self._segments(stage, "precision", "precision", lambda v: v if isinstance(v, str) else None)

    def _segments(self, stage: str, key: str, name: str, value_of) -> list[dict]:
        segments = []
        for row in self.rows():
            value = value_of(row.get(key)) if row["stage"] == stage else None  # the float32 rate without its noise
            if value is not None and (not segments or segments[-1][name] != value):
                segments.append({"from_step": row["step"], name: value})
        return segments

    def append(self, row: dict) -> None:
        """Append ``row`` as one line, whole or not at all (a full disk leaves the file as it was)."""
        if self._file is None:
            self._file = open(self.path, "ab", buffering=0)
        append_whole(self._file, (json.dumps(row) + "\n").encode(), self.path)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StageCheckpoints:
    """The checkpoints of one stage (``<stage>/checkpoints/``): found by their files, restored newest readable
    first, saved so that a failed save loses nothing. ``RunFolder`` is one; it sets ``stage_dir`` and
    ``checkpoint_dir``."""

    stage_dir: Path
    checkpoint_dir: Path

    def checkpoints(self) -> list[Path]:
        """The checkpoint prefixes in the folder (``.../ckpt-N``), newest first, found from their files, so
        that a lost or damaged ``checkpoint`` state file loses nothing."""
        return [self.checkpoint_dir / f"ckpt-{step}" for step in checkpoint_steps(self.checkpoint_dir)]

    def holds_checkpoints(self) -> bool:
        """Whether the stage has saved a checkpoint: its checkpoint folder holds anything (even only
        damaged ones), so that starting from scratch would throw its training away."""
        return self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir())

    def restore(self, checkpoint: tf.train.Checkpoint, nonfinite=None) -> Path | None:
        """Restore the newest readable checkpoint into ``checkpoint``; returns its prefix, or None when the
        stage has none. A damaged one, or one after whose restore ``nonfinite()`` names a variable holding NaN or
        Inf, is moved to ``checkpoints/damaged/`` and the one before it used, with a warning. A stage whose
        checkpoints are all unusable is an error: it never restarts silently."""
        found = self.checkpoints()
        state = self._state_names()
        damaged = []
        for prefix in found:
            try:
                status = checkpoint.restore(str(prefix))
                status.assert_existing_objects_matched()
                bad = nonfinite() if nonfinite is not None else None
                if bad is not None:  # saved by a diverged run before srlib refused to save such weights
                    damaged.append(f"{prefix.name}: NaN or Inf in {bad}")
                    self._move_aside(prefix)
                    continue
            except (AssertionError, ValueError) as error:
                raise SrlibError(f"the checkpoint {prefix} does not fit this run's networks (were other settings "
                                 f"used?): {_first_line(error)}") from None
            except (tf.errors.OpError, IndexError, OSError) as error:  # a truncated .data file raises IndexError
                damaged.append(f"{prefix.name}: {_first_line(error)}")
                self._move_aside(prefix)
                continue
            if damaged:
                log.warning("%s resumes from %s because the newer checkpoint(s) are damaged or not finite (%s); their "
                            "files are kept in %s", self.stage_dir, prefix.name, "; ".join(damaged),
                            self.checkpoint_dir / "damaged")
            elif state != prefix.name:
                log.warning("%s resumes from %s, the newest checkpoint found by its files (the checkpoint state "
                            "file %s)", self.stage_dir, prefix.name,
                            {None: "is missing", "": "is unreadable"}.get(state, f"names {state}"))
            self._write_state()
            return prefix
        if self.holds_checkpoints():
            what = "; ".join(damaged) or "files: " + ", ".join(sorted(p.name for p in self.checkpoint_dir.iterdir()))
            kept = f"; the damaged files are kept in {self.checkpoint_dir / 'damaged'}" if damaged else ""
            raise SrlibError(f"no checkpoint in {self.checkpoint_dir} could be read ({what}){kept}. To train this "
                             f"stage again from the start, pass {RESTART_HOW}: its files are moved aside, "
                             "not deleted")
        return None

    def _state_names(self) -> str | None:
        """The newest checkpoint that TensorFlow's ``checkpoint`` state file names; None when there is no such
        file, "" when it cannot be read."""
        try:
            text = (self.checkpoint_dir / "checkpoint").read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return ""
        match = re.search(r'^model_checkpoint_path: "([^"\n]+)"$', text, re.M)
        return Path(match.group(1)).name if match else ""

    def _write_state(self) -> None:
        """Write the ``checkpoint`` state file from the checkpoints' files, for TensorFlow's tools and for
        ``tf.train.CheckpointManager``, which cannot start from an unreadable one."""
        found = self.checkpoints()
        path = self.checkpoint_dir / "checkpoint"
        if not found:
            path.unlink(missing_ok=True)
            return
        lines = [f'model_checkpoint_path: "{found[0].name}"'] + [
            f'all_model_checkpoint_paths: "{prefix.name}"' for prefix in reversed(found)]
        write_text(path, "\n".join(lines) + "\n")

    def _move_aside(self, prefix: Path) -> Path:
        """Move the files of checkpoint ``prefix`` to ``checkpoints/damaged/`` (a numbered folder inside it
        when that name is taken, so that nothing is overwritten); returns where they went."""
        damaged = self.checkpoint_dir / "damaged"
        target, n = damaged, 1
        parts = list(self.checkpoint_dir.glob(prefix.name + ".*"))
        while any((target / part.name).exists() for part in parts):
            n += 1
            target = damaged / str(n)
        target.mkdir(parents=True, exist_ok=True)
        for part in parts:
            os.replace(part, target / part.name)
        return target

    def last_finite_checkpoint(self) -> Path | None:
        """The newest checkpoint whose weights (and optimizer state) are all finite and readable, or None."""
        for prefix in self.checkpoints():
            try:
                if finite_checkpoint(prefix):
                    return prefix
            except (tf.errors.OpError, IndexError, OSError):
                continue
        return None

    def latest_step(self) -> int | None:
        """The step of the newest checkpoint, or None when there is none."""
        steps = checkpoint_steps(self.checkpoint_dir)
        return steps[0] if steps else None

    def save(self, checkpoint: tf.train.Checkpoint, step: int) -> None:
        """Write checkpoint ``ckpt-<step>`` and delete all but the newest two; a failed save (a full disk)
        is a one-line error naming the folder and the last step saved, and leaves the previous checkpoints as
        they were: what the failed save wrote is deleted, so the next run resumes from the previous one."""
        previous = self.checkpoints()
        written = False
        try:
            self._write_state()  # the manager reads it first
            manager = tf.train.CheckpointManager(checkpoint, self.checkpoint_dir, max_to_keep=KEEP_CHECKPOINTS)
            manager.save(checkpoint_number=step)
            written = True
            for old in self.checkpoints()[KEEP_CHECKPOINTS:]:  # also those a lost state file no longer listed
                for part in self.checkpoint_dir.glob(old.name + ".*"):
                    part.unlink()
            self._write_state()
        except (tf.errors.OpError, OSError) as error:
            self._discard_failed_save(step, previous)
            reason = "No space left on device" if disk_full(error) else _first_line(error)
            kept = (f"the previous checkpoint {previous[0].name} (step {previous[0].name.removeprefix('ckpt-')}) is "
                    "intact: rerun the same command to continue from it" if previous else "none was saved before")
            raise SrlibError(f"could not save a checkpoint in {self.checkpoint_dir} ({reason}); {kept}") from None
        except KeyboardInterrupt:  # a second Ctrl-C while saving: a half-written newest checkpoint must not stay
            if not written:
                self._discard_failed_save(step, previous)
            raise

    def _discard_failed_save(self, step: int, previous: list[Path]) -> None:
        """Delete what a failed save of ``ckpt-<step>`` left (its files, TensorFlow's ``ckpt-<step>_temp`` and
        state-file temporaries), which would take space and could be a truncated newest checkpoint, and write the
        state file again from the checkpoints that remain (when the disk lets it)."""
        leftovers = [*self.checkpoint_dir.glob(f"ckpt-{step}_temp*"), *self.checkpoint_dir.glob("checkpoint.tmp*")]
        if self.checkpoint_dir / f"ckpt-{step}" not in previous:
            leftovers += self.checkpoint_dir.glob(f"ckpt-{step}.*")
        for leftover in leftovers:
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
        try:
            self._write_state()
        except OSError:
            pass  # a state file naming a checkpoint that is gone is ignored: restore() finds them by their files



class RunFolder(StageCheckpoints):
    """The files of one stage of a run; holds the folder's lock while it exists (``close`` releases it)."""

    def __init__(self, run_dir: str | os.PathLike, stage: str, job: str | None = None):
        self.run_dir = Path(run_dir)
        self.job = job  # the multi-worker job whose chief this is (srlib.cluster): its workers are let in
        self.stage = stage
        self.stage_dir = self.run_dir / stage
        self.checkpoint_dir = self.stage_dir / "checkpoints"
        self.samples_dir = self.stage_dir / "samples"
        self.tensorboard_dir = self.run_dir / "tensorboard" / stage
        self.ema_added = False
        try:
            make_folder(self.stage_dir, "run folder")
        except OSError as error:
            raise SrlibError(f"cannot make the run folder {self.stage_dir}: {error.strerror}") from None
        self._lock = self._take_lock()
        self.history = HistoryLog(self.run_dir / "history.jsonl")
        self._remove_leftovers()

    # --- one process per run folder -------------------------------------------------------------
    def _take_lock(self):
        """An exclusive ``flock`` on ``<run-dir>/.lock``; the kernel drops it when the process dies, so a
        run killed with ``kill -9`` leaves nothing that blocks the next one. The file names the holder."""
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
        job = f", chief of job {self.job}" if self.job else ""
        note = f"process {os.getpid()} ({_command()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}{job})\n"
        try:
            os.ftruncate(handle.fileno(), 0)
            os.write(handle.fileno(), note.encode())  # unbuffered: nothing left to fail again on close
        except OSError:  # a full disk: the lock holds without its note, and the next write says what is wrong
            pass
        return handle

    def close(self) -> None:
        self.history.close()
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _remove_leftovers(self) -> None:
        """Remove what killed saves left behind: TensorFlow's half-written ``ckpt-N_temp`` checkpoints and the
        temporary files of atomic writes (``srlib.files``) anywhere in the run folder, which this process
        now holds alone."""
        remove_stale_temp_files(self.run_dir)
        for leftover in self.checkpoint_dir.glob("*_temp*"):
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            log.info("removed %s, left by an interrupted checkpoint save", leftover)

    # --- settings --------------------------------------------------------------------------------
    def check_config(self, config) -> None:
        """Refuse to resume a stage with settings that differ from those it was started with; then record them.

        A stage setting left at None means the stage's own value, so ``content_loss=None`` and the stage's
        own content loss are the same; ``vgg_weights`` matters only when the content loss uses VGG."""
        path = self.stage_dir / "config.json"
        now = dataclasses.asdict(config)
        before = _read_object(path) if path.is_file() and self.holds_checkpoints() else {}
        if before:
            changed = [f"{k}: {old} -> {new}" for k, (old, new) in
                       changed_settings(before, now, _stage_named(self.stage)).items()]
            if changed:
                raise SrlibError(f"{self.stage_dir} was trained with other settings ({'; '.join(changed)}): resume "
                                 "with the same settings, train in a new run folder, or pass --restart to train "
                                 "this stage again from the start (its files are moved aside)")
        self.ema_added = bool(before) and not before.get("ema") and bool(now["ema"])
        if before and stored_precision(before) != now["precision"]:
            log.warning("%s resumes in %s (it was trained in %s; the history records each step's)", self.stage_dir,
                        now["precision"], stored_precision(before))
        if before and before.get("learning_rate") != now["learning_rate"]:
            log.warning("%s resumes with learning_rate %s (it was %s; None is the stage's own rate)", self.stage_dir,
                        now["learning_rate"], before.get("learning_rate"))
        write_json(path, now)

    def check_not_lost(self) -> None:
        """An error when the stage has no checkpoint files left but holds the generator it exported (its
        checkpoints were deleted): starting again would overwrite what it trained. Called before anything
        in the folder is written."""
        exported = self.weights("generator")
        if exported.is_file() and not self.holds_checkpoints():
            card = card_path(exported)
            steps = _read_object(card).get("steps", "some") if card.is_file() else "some"
            raise SrlibError(f"{self.stage_dir} has no checkpoint left but holds the generator it exported after "
                             f"{steps} steps ({exported.name}); to train this stage again from the start, pass "
                             f"{RESTART_HOW}: its files are moved aside, not deleted")


    def restart(self) -> Path | None:
        """Move this stage's folder aside (``<stage>.replaced-<time>``, with its history rows and TensorBoard
        events) so that the stage starts again from scratch; nothing is deleted. Returns where it went."""
        if not any(self.stage_dir.iterdir()):
            return None
        name = f"{self.stage}.replaced-{time.strftime('%Y%m%d-%H%M%S')}"
        aside, n = self.run_dir / name, 1
        while aside.exists():
            n += 1
            aside = self.run_dir / f"{name}-{n}"
        os.replace(self.stage_dir, aside)
        if self.tensorboard_dir.is_dir():
            os.replace(self.tensorboard_dir, aside / "tensorboard")
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
    def initialised_from(self, value: dict | None) -> None:
        path = self.stage_dir / "initialised_from.json"
        if value is None:
            path.unlink(missing_ok=True)
        else:
            write_json(path, value)

    def provenance(self) -> list[dict]:
        """What trained the stage's steps, beyond its settings and the history: ``[{"from_step": 1, "ema": None,
        "training_data": {...}}, {"from_step": 501, "ema": 0.999, ...}]``, a new entry where a resumed run changed
        one (``record_provenance``)."""
        path = self.stage_dir / "provenance.json"
        segments = _read_object(path).get("segments") if path.is_file() else None
        return [s for s in segments if isinstance(s, dict) and isinstance(s.get("from_step"), int)] \
            if isinstance(segments, list) else []

    def record_provenance(self, first_step: int, values: dict, earlier: dict | None = None) -> None:
        """The stage trains from ``first_step`` with ``values`` (e.g. its EMA decay and training data); what was
        recorded for steps from ``first_step`` on, which a resumed run trains again, is dropped. A stage with no
        record yet (started before srlib kept one) gets ``earlier`` (or ``values``) for its steps before."""
        segments = [s for s in self.provenance() if s["from_step"] < first_step]
        if not self.provenance() and first_step > 1:
            segments = [{"from_step": 1, **(earlier or values)}]
        if not segments or {k: v for k, v in segments[-1].items() if k != "from_step"} != values:
            segments.append({"from_step": first_step, **values})
        write_json(self.stage_dir / "provenance.json", {"segments": segments})

    def decay_step(self, planned: int) -> int:
        """The step at which a decaying stage's learning rate drops: ``planned`` when the stage starts, and the
        same step whenever it resumes, whatever its ``steps`` then (``schedule.json``)."""
        path = self.stage_dir / "schedule.json"
        recorded = _read_object(path).get("decay_at_step") if path.is_file() else None
        if isinstance(recorded, int):
            if recorded != planned:
                log.warning("%s keeps its learning-rate drop at step %d (planned when it started); with these "
                            "steps it would be at %d", self.stage_dir, recorded, planned)
            return recorded
        write_json(path, {"decay_at_step": planned})
        return planned

    def weights(self, network: str, stage: str | None = None) -> Path:
        """``<run-dir>/<stage>/<network>.weights.h5`` (this stage unless another is named)."""
        return stage_weights(self.run_dir, stage or self.stage, network)


def check_job_lock(run_dir: str | os.PathLike, job: str) -> None:
    """For a worker of multi-worker job ``job`` that is not its chief: ``RunFolderBusy`` when the lock of ``run_dir``
    is held by a process other than the job's chief. A folder nobody holds (the chief's is on another machine's
    disk) lets the worker in: it writes nothing there."""
    path = Path(run_dir) / ".lock"
    if not path.is_file():
        return
    with open(path) as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(handle, fcntl.LOCK_UN)
            return
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
    if f"chief of job {job})" not in holder:
        raise RunFolderBusy(f"{run_dir} is in use by {holder}, not by the chief of this job: stop it, or give the "
                            "job another run folder")


def finite_checkpoint(prefix: str | os.PathLike) -> bool:
    """Whether every floating-point variable of checkpoint ``prefix`` is finite."""
    reader = tf.train.load_checkpoint(str(prefix))
    return all(np.isfinite(np.asarray(reader.get_tensor(name), np.float32)).all()
               for name, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating)


def _command() -> str:
    """This process's command line, shortened: "python -m srlib train --recipe paper ..."."""
    argv = list(sys.argv) or ["python"]
    program = Path(argv[0])
    argv[0] = (f"python -m {program.parent.name}" if program.name == "__main__.py" else
               "python -c" if argv[0] == "-c" else program.name or "python")
    text = " ".join(argv)
    return text if len(text) <= 120 else text[:117] + "..."


def _stage_named(name: str):
    """The recipe ``Stage`` called ``name`` when exactly one recipe has it, else None."""
    stages = {id(s): s for stages in RECIPES.values() for s in stages.values() if s.name == name}
    return next(iter(stages.values())) if len(stages) == 1 else None


def checkpoint_steps(checkpoint_dir: str | os.PathLike) -> list[int]:
    """The steps of the checkpoints in ``checkpoint_dir``, newest first, from their files (``ckpt-<step>.index``)."""
    found = [int(m.group(1)) for p in Path(checkpoint_dir).glob("ckpt-*.index")
             if (m := re.fullmatch(r"ckpt-(\d+)\.index", p.name))]
    return sorted(found, reverse=True)


def changed_settings(before: dict, now: dict, stage) -> dict[str, tuple]:
    """The settings (``TrainConfig`` dicts) a stage cannot resume with: {name: (value it was trained with, value
    now)}, comparing what ``stage`` (a recipe ``Stage``, or None) would use; an EMA may be added, not dropped."""
    # stages started before these settings existed were bicubic, without a warm-up
    before = {"degradation": "bicubic", "warmup_steps": 0, **before}
    old, new = effective_settings(before, stage), effective_settings(now, stage)
    fixed = [k for k in RESUME_FIXED if k in before]
    if not (CONTENT_LOSSES.get(old.get("content_loss")) or CONTENT_LOSSES.get(new.get("content_loss"))):
        fixed = [k for k in fixed if k != "vgg_weights"]  # no VGG in this stage: its weights do not matter
    changed = {k: (old.get(k), new.get(k)) for k in fixed if old.get(k) != new.get(k)}
    if before.get("ema") and not now.get("ema"):  # the average would be dropped silently
        changed["ema"] = (before["ema"], None)
    # float32 and bfloat16 checkpoints hold the same float32 variables, so a stage may move between them (the
    # history records each step's); mixed_float16 adds the loss scale's state to the optimizer's
    was, asked = stored_precision(before), now.get("precision", "float32")
    if was != asked and "mixed_float16" in (was, asked):
        changed["precision"] = (was, asked)
    return changed


def stored_precision(config: dict) -> str:
    """The precision a stored ``TrainConfig`` dict asked for; config.json files from before the ``precision``
    setting have the ``mixed_precision`` switch instead (true: mixed_float16)."""
    if "precision" in config:
        return config["precision"]
    return "mixed_float16" if config.get("mixed_precision") else "float32"


def effective_settings(config: dict, stage) -> dict:
    """``config`` (a ``TrainConfig`` as a dict) with the stage's own value for each stage setting left at
    None, as ``TrainConfig.stage`` applies them."""
    if stage is None:
        return dict(config)
    values = {**config, **{k: getattr(stage, k) for k in STAGE_SETTINGS if config.get(k) is None}}
    if stage.content_loss is None:  # a stage without a content term keeps none
        values["content_loss"] = None
    return values


def _read_object(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise SrlibError(f"{path} is not valid JSON ({_first_line(error)}); restore it or train in a new run "
                         "folder") from None
    if not isinstance(value, dict):
        raise SrlibError(f"{path} should hold a JSON object, not {type(value).__name__}")
    return value


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return text.strip().splitlines()[0][:200] if text.strip() else type(error).__name__
