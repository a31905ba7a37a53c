"""The run folder under faults: a lost or damaged checkpoint state, damaged checkpoints, a full disk, two
processes on one folder, changed settings, history lines that are not rows, leftovers of killed saves."""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from srlib.errors import SrlibError
from srlib.run_folder import HistoryLog, RunFolder, RunFolderBusy
from srlib.training import Trainer, TrainConfig
from tiny_runs import RUN_FOLDER_FIXTURES, TINY, batches, fixture_config, write_run_folder, write_train_folder

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_train_folder(tmp_path_factory.mktemp("train"))


def _train(folder, run, steps, recipe="paper", stage="mse", **settings):
    """Train ``recipe/stage`` in ``run`` up to ``steps`` steps; returns the fitted trainer."""
    config = TrainConfig(**{**TINY, "checkpoint_every": 2, **settings})
    trainer = Trainer(recipe, stage, run, config, from_scratch=True)
    trainer.fit(batches(folder, config), steps=steps)
    return trainer


def _steps(run: Path, stage="mse"):
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    return [r["step"] for r in rows if r["stage"] == stage and "val_psnr" not in r]


def _weights(model):
    return [w.numpy().copy() for w in model.weights]


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def _warnings(caplog, text):
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


# --- 1. the checkpoint state file lost or garbage ------------------------------------------------------------

@pytest.mark.parametrize("damage", ["deleted", "garbage"])
def test_a_lost_or_garbage_state_file_resumes_from_the_newest_checkpoint(train_folder, tmp_path, caplog, damage):
    trained = _weights(_train(train_folder, tmp_path, 4).generator)
    state = tmp_path / "mse" / "checkpoints" / "checkpoint"
    if damage == "deleted":
        state.unlink()
    else:
        state.write_bytes(b"\xff\xfe not a checkpoint state {{\x00")  # not even UTF-8: TensorFlow's reader fails
    config = TrainConfig(**TINY, checkpoint_every=2)
    resumed = Trainer("paper", "mse", tmp_path, config)
    assert resumed.current_step == 4
    assert _same(_weights(resumed.generator), trained)  # not the step-0 weights
    assert _steps(tmp_path) == [1, 2, 3, 4]
    assert _warnings(caplog, "resumes from ckpt-4, the newest checkpoint found by its files")
    resumed.fit(batches(train_folder, config), steps=6)  # saving works again, and prunes by the files
    assert _steps(tmp_path) == [1, 2, 3, 4, 5, 6]
    assert sorted(p.name for p in state.parent.glob("*.index")) == ["ckpt-4.index", "ckpt-6.index"]
    assert 'model_checkpoint_path: "ckpt-6"' in state.read_text()


def test_state_file_is_rewritten_from_the_files_and_old_checkpoints_are_pruned(tmp_path):
    folder = RunFolder(tmp_path, "mse")
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    for n in (1, 2):
        step.assign(n)
        folder.save(checkpoint, n)
    (folder.checkpoint_dir / "checkpoint").unlink()  # the manager no longer knows ckpt-1 and ckpt-2
    for n in (3, 4):
        step.assign(n)
        folder.save(checkpoint, n)
    folder.close()
    assert [p.name for p in folder.checkpoints()] == ["ckpt-4", "ckpt-3"]
    assert tf.train.latest_checkpoint(str(folder.checkpoint_dir)).endswith("ckpt-4")


# --- 2. one process per run folder ---------------------------------------------------------------------------

HOLDER = """
import sys, time
from srlib.run_folder import RunFolder
folder = RunFolder(sys.argv[1], "mse")
print("locked", flush=True)
time.sleep(600)
"""


def test_a_second_process_is_refused_and_a_killed_holder_blocks_nothing(train_folder, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run)], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match=re.escape(f"{run} is in use by process {holder.pid} (python -c")):
            RunFolder(run, "gan")  # the lock is the run folder's, not the stage's
        cli = subprocess.run(
            [sys.executable, "-m", "srlib", "train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder),
             "--steps", "2", "--run-dir", str(run), "--scale", "2", "--blocks", "1", "--filters", "8",
             "--batch-size", "2", "--patch-size", "32"], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=300)
        assert holder.poll() is None  # refused while the holder runs: it did not wait for it
        assert cli.returncode == 2
        errors = [line for line in cli.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"in use by process {holder.pid} (python -c" in errors[0], cli.stderr[-2000:]
        assert "Traceback" not in cli.stderr
        assert not (run / "mse" / "checkpoints").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    folder = RunFolder(run, "mse")  # the kernel dropped the dead holder's lock
    assert (run / ".lock").read_text().startswith(f"process {os.getpid()} ")
    folder.close()


def test_the_lock_is_released_on_close_and_taken_once_per_folder(tmp_path):
    first = RunFolder(tmp_path, "mse")
    with pytest.raises(RunFolderBusy, match=f"process {os.getpid()}"):
        RunFolder(tmp_path, "mse")
    first.close()
    RunFolder(tmp_path, "mse").close()


# --- 3. damaged checkpoints, a full disk ---------------------------------------------------------------------

def _damage(prefix: Path, how: str) -> None:
    if how == "truncated data":
        data = prefix.with_name(prefix.name + ".data-00000-of-00001")
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    else:
        prefix.with_name(prefix.name + ".index").write_bytes(b"garbage" * 50)


@pytest.mark.parametrize("how", ["truncated data", "garbage index"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(train_folder, tmp_path, caplog, how):
    at_2 = _weights(_train(train_folder, tmp_path, 2).generator)
    _train(train_folder, tmp_path, 4)
    checkpoints = tmp_path / "mse" / "checkpoints"
    _damage(checkpoints / "ckpt-4", how)
    damaged = {p.name: p.read_bytes() for p in checkpoints.glob("ckpt-4.*")}
    config = TrainConfig(**TINY, checkpoint_every=2)
    resumed = Trainer("paper", "mse", tmp_path, config)
    assert resumed.current_step == 2
    assert _same(_weights(resumed.generator), at_2)
    (warning,) = _warnings(caplog, "resumes from ckpt-2")
    assert "ckpt-4" in warning and "damaged" in warning and str(checkpoints / "damaged") in warning
    assert {p.name: p.read_bytes() for p in (checkpoints / "damaged").iterdir()} == damaged  # kept as they were
    assert _steps(tmp_path) == [1, 2]  # the steps after ckpt-2 are done again, each once
    resumed.fit(batches(train_folder, config), steps=4)
    assert _steps(tmp_path) == [1, 2, 3, 4]
    assert (checkpoints / "ckpt-4.index").is_file() and len(list((checkpoints / "damaged").iterdir())) == 2


def test_a_checkpoint_damaged_twice_keeps_both_copies(tmp_path):
    folder = RunFolder(tmp_path, "mse")
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    for _ in range(2):
        for n in (1, 2):
            step.assign(n)
            folder.save(checkpoint, n)
        _damage(folder.checkpoint_dir / "ckpt-2", "garbage index")
        assert folder.restore(checkpoint).name == "ckpt-1" and int(step.numpy()) == 1
    folder.close()
    damaged = folder.checkpoint_dir / "damaged"
    assert (damaged / "ckpt-2.index").is_file() and (damaged / "2" / "ckpt-2.index").is_file()


def test_all_checkpoints_damaged_is_an_error_until_restart(train_folder, tmp_path):
    _train(train_folder, tmp_path, 4)
    checkpoints = tmp_path / "mse" / "checkpoints"
    for prefix in ("ckpt-2", "ckpt-4"):
        _damage(checkpoints / prefix, "truncated data")
    config = TrainConfig(**TINY, checkpoint_every=2)
    unreadable = re.escape(f"no checkpoint in {checkpoints} could be read (ckpt-4: Read less bytes")
    with pytest.raises(SrlibError, match=unreadable + ".*pass --restart") as error:
        Trainer("paper", "mse", tmp_path, config)
    assert "\n" not in str(error.value)
    with pytest.raises(SrlibError, match="pass --restart"):  # the damaged files alone still count
        Trainer("paper", "mse", tmp_path, config)
    assert _steps(tmp_path) == [1, 2, 3, 4]  # nothing was thrown away
    restarted = Trainer("paper", "mse", tmp_path, config, restart=True)
    assert restarted.current_step == 0
    restarted.close()
    (aside,) = tmp_path.glob("mse.replaced-*")
    damaged = sorted(p.name for p in (aside / "checkpoints" / "damaged").glob("*.index"))
    assert damaged == ["ckpt-2.index", "ckpt-4.index"]
    assert [json.loads(line)["step"] for line in (aside / "history.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert (aside / "tensorboard").is_dir() and not _steps(tmp_path)


def test_a_stage_whose_checkpoints_were_deleted_never_restarts_silently(train_folder, tmp_path):
    _train(train_folder, tmp_path, 4)
    exported = (tmp_path / "mse" / "generator.weights.h5").read_bytes()
    shutil.rmtree(tmp_path / "mse" / "checkpoints")
    config = TrainConfig(**TINY, checkpoint_every=2)
    with pytest.raises(SrlibError, match=re.escape(f"{tmp_path / 'mse'} has no checkpoint left but holds the "
                                                   "generator it exported after 4 steps") + ".*pass --restart"):
        Trainer("paper", "mse", tmp_path, config)
    assert _steps(tmp_path) == [1, 2, 3, 4]  # nothing was thrown away
    assert (tmp_path / "mse" / "generator.weights.h5").read_bytes() == exported
    assert json.loads((tmp_path / "mse" / "config.json").read_text())["checkpoint_every"] == 2
    with pytest.raises(SrlibError, match="no checkpoint left"):  # refused before its settings are recorded
        Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, checkpoint_every=3))
    assert json.loads((tmp_path / "mse" / "config.json").read_text())["checkpoint_every"] == 2
    restarted = Trainer("paper", "mse", tmp_path, config, restart=True)
    assert restarted.current_step == 0
    restarted.close()


def test_checkpoint_files_without_an_index_never_restart_silently(tmp_path):
    folder = RunFolder(tmp_path, "mse")
    folder.checkpoint_dir.mkdir()
    (folder.checkpoint_dir / "ckpt-4.data-00000-of-00001").write_bytes(b"\x00" * 64)
    with pytest.raises(SrlibError, match=r"checkpoints could be read \(files: ckpt-4\.data-00000-of-00001\)\. "):
        folder.restore(tf.train.Checkpoint(step=tf.Variable(0, dtype=tf.int64)))
    folder.close()


def test_restarting_twice_in_one_second_keeps_both_copies(tmp_path):
    folder = RunFolder(tmp_path, "mse")
    for text in ("first", "second"):
        (folder.stage_dir / "config.json").write_text(text)
        folder.restart()
    folder.close()
    asides = sorted(tmp_path.glob("mse.replaced-*"))
    assert sorted((p / "config.json").read_text() for p in asides) == ["first", "second"]


def test_a_full_disk_during_a_save_is_a_one_line_error_and_keeps_the_last_checkpoint(train_folder, tmp_path,
                                                                                      monkeypatch):
    at_2 = _weights(_train(train_folder, tmp_path, 2).generator)

    def full_disk(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk)
    checkpoints = tmp_path / "mse" / "checkpoints"
    with pytest.raises(SrlibError) as error:
        _train(train_folder, tmp_path, 4)
    message = str(error.value)
    assert message == (f"could not save a checkpoint in {checkpoints} (No space left on device); the previous "
                       "checkpoint ckpt-2 (step 2) is intact: rerun the same command to continue from it")
    monkeypatch.undo()
    resumed = Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, checkpoint_every=2))
    assert resumed.current_step == 2 and _same(_weights(resumed.generator), at_2)
    resumed.close()


# --- 6. settings a stage cannot change when it resumes -------------------------------------------------------

def test_resuming_with_other_fixed_settings_is_refused(train_folder, tmp_path):
    _train(train_folder, tmp_path, 1, "report", "sr_vgg", checkpoint_every=1)
    for change, message in [({"vgg_weights": "imagenet"}, "vgg_weights: None -> imagenet"),
                            ({"batch_size": 4}, "batch_size: 2 -> 4"), ({"seed": 1}, "seed: 0 -> 1"),
                            ({"content_loss": "vgg16_53"}, "content_loss: vgg16_22 -> vgg16_53"),
                            ({"adversarial_weight": 1e-3}, "adversarial_weight: 0.0 -> 0.001")]:
        with pytest.raises(SrlibError, match=f"trained with other settings \\({message}\\).*--restart"):
            Trainer("report", "sr_vgg", tmp_path, TrainConfig(**{**TINY, **change}))
    # naming the stage's own value is no change
    Trainer("report", "sr_vgg", tmp_path, TrainConfig(**TINY, content_loss="vgg16_22", tv_weight=1e-3)).close()


def test_vgg_weights_do_not_matter_to_a_stage_without_vgg(train_folder, tmp_path):
    _train(train_folder, tmp_path, 1, checkpoint_every=1)
    resumed = Trainer("paper", "mse", tmp_path, TrainConfig(**{**TINY, "vgg_weights": "imagenet"}))
    assert resumed.current_step == 1
    resumed.close()
    with pytest.raises(SrlibError, match=r"content_loss: mse -> vgg22"):
        Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, content_loss="vgg22"))


# --- 7. run folders written by an earlier srlib ----------------------------------------------------------------

def _layout(run: Path) -> dict:
    """{variable name: shape} of the newest checkpoint of ``run``'s mse stage."""
    return dict(tf.train.list_variables(tf.train.latest_checkpoint(str(run / "mse" / "checkpoints"))))


@pytest.mark.parametrize("name", RUN_FOLDER_FIXTURES)
def test_a_run_folder_written_by_an_earlier_srlib_resumes(train_folder, tmp_path, name):
    """tests/fixtures/run_folders/<name> (tiny_runs.py): two steps, committed. What a checkpoint holds is Keras's
    choice as much as ours (its optimizer keeps a float rate in a variable and a schedule's not; a warm-up once broke
    every old folder this way): a change to it shows here as a layout diff before it reaches users' folders."""
    committed = shutil.copytree(ROOT / "tests" / "fixtures" / "run_folders" / name, tmp_path / name)
    now = write_run_folder(train_folder, tmp_path / "now", name)
    assert _layout(now) == _layout(committed)
    config = fixture_config(name)
    trainer = Trainer("paper", "mse", committed, config)
    optimizer = trainer.model.g_optimizer
    assert trainer.current_step == 2 and int(optimizer.iterations.numpy()) == 2
    warmed_up = min(1.0, 3 / config.warmup_steps) if config.warmup_steps else 1.0  # step 3 of a ramp goes on
    assert float(optimizer.learning_rate) == pytest.approx(1e-4 * warmed_up)  # the paper mse stage's rate
    trainer.fit(batches(train_folder, config), steps=3)
    assert _steps(committed) == [1, 2, 3]


# --- 9. history lines that are not rows, steps=0, leftovers of killed saves ----------------------------------

def test_history_lines_that_are_not_rows_are_skipped_with_one_warning(train_folder, tmp_path, caplog):
    _train(train_folder, tmp_path, 2)
    history = tmp_path / "history.jsonl"
    with open(history, "ab") as file:
        file.write(b'42\n{"stage": "mse", "step": null}\n\xff\xfe\x80 not UTF-8\n[1, 2]\n"text"\n')
    config = TrainConfig(**TINY, checkpoint_every=2)
    _train(train_folder, tmp_path, 3)
    assert _steps(tmp_path) == [1, 2, 3]
    (warning,) = _warnings(caplog, "not history rows")
    assert warning.startswith(f"{history}: skipped 5 line(s)")
    Trainer("paper", "mse", tmp_path, config).close()  # the lines were dropped when the resumed run rewrote the file
    assert len(_warnings(caplog, "not history rows")) == 1


def test_a_torn_last_line_is_skipped_silently_but_a_last_line_that_is_not_a_row_is_not(tmp_path, caplog):
    history = tmp_path / "history.jsonl"
    history.write_text('{"stage": "mse", "step": 1}\n{"stage": "mse", "st')
    assert [r["step"] for r in HistoryLog(history).rows()] == [1]
    assert not _warnings(caplog, "not history rows")
    history.write_text('{"stage": "mse", "step": 1}\n42\n')
    log = HistoryLog(history)
    assert [r["step"] for r in log.rows()] == [1] and [r["step"] for r in log.rows()] == [1]
    assert len(_warnings(caplog, "not history rows")) == 1  # once per log, not at every read


def test_zero_steps_is_a_clear_error_not_an_export(train_folder, tmp_path, capsys):
    from srlib.cli import main

    config = TrainConfig(**TINY)
    with pytest.raises(SrlibError, match="steps = 0: must be an integer of at least 1"):
        Trainer("paper", "mse", tmp_path / "a", config).fit(batches(train_folder, config), steps=0)
    assert not list((tmp_path / "a").rglob("*.weights.h5"))
    code = main(["train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder), "--steps", "0",
                 "--run-dir", str(tmp_path / "b"), "--scale", "2", "--blocks", "1", "--filters", "8",
                 "--batch-size", "2", "--patch-size", "32", "--vgg-weights", "none"])
    assert code == 2
    assert "error: --steps 0: must be an integer of at least 1" in capsys.readouterr().err
    assert not list((tmp_path / "b").rglob("*.weights.h5"))


def test_leftovers_of_killed_saves_are_removed_when_a_run_starts(tmp_path):
    stage = tmp_path / "mse"
    (stage / "checkpoints" / "ckpt-4_temp").mkdir(parents=True)
    (stage / "checkpoints" / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    (stage / "samples").mkdir()
    leftovers = [tmp_path / ".generator.weights.h5.tmp-0123456789ab.weights.h5",
                 stage / ".generator.json.tmp-abcdef012345.json",
                 stage / "samples" / ".step_0000004.png.tmp-00aa11bb22cc.png"]
    for path in leftovers:
        path.write_bytes(b"half")
        os.utime(path, (time.time() - 3600, time.time() - 3600))  # left by a process killed an hour ago
    being_written = stage / ".config.json.tmp-feedfeedfeed.json"  # newer than this process: never touched
    being_written.write_text("{")
    kept = [tmp_path / ".notes", stage / "generator.weights.h5", stage / "checkpoints" / "ckpt-2.index"]
    for path in kept:
        path.write_bytes(b"mine")
    RunFolder(tmp_path, "mse").close()
    assert not any(path.exists() for path in leftovers) and not (stage / "checkpoints" / "ckpt-4_temp").exists()
    assert all(path.exists() for path in kept) and being_written.exists()


def test_a_second_ctrl_c_during_a_save_leaves_no_half_written_newest_checkpoint(tmp_path, monkeypatch, caplog):
    folder = RunFolder(tmp_path, "mse")
    step = tf.Variable(2, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    folder.save(checkpoint, 2)

    def interrupted(self, checkpoint_number=None, **kwargs):  # Ctrl-C while TensorFlow writes the files
        (folder.checkpoint_dir / f"ckpt-{checkpoint_number}_temp").mkdir()
        (folder.checkpoint_dir / f"ckpt-{checkpoint_number}.data-00000-of-00001").write_bytes(b"\0" * 10)
        raise KeyboardInterrupt

    monkeypatch.setattr(tf.train.CheckpointManager, "save", interrupted)
    step.assign(4)
    with pytest.raises(KeyboardInterrupt):
        folder.save(checkpoint, 4)
    monkeypatch.undo()
    assert not list(folder.checkpoint_dir.glob("ckpt-4*"))
    with caplog.at_level(logging.WARNING):
        assert folder.restore(checkpoint).name == "ckpt-2"
    assert int(step.numpy()) == 2 and not caplog.records  # the newest is the last complete one, nothing damaged
    folder.close()
