"""A full disk, anywhere: one line naming the file and "No space left on device", nothing written before lost,
and the next run starts from what was saved. Outputs that are never replaced unless asked, whatever runs at the
same time.

The writers that write from C (h5py, TensorFlow) are tried on a real small tmpfs (the ``small_disk`` fixture,
which skips where mounting is impossible); the rest by making the disk full there too, or by an ENOSPC injected
where the real one cannot be had quickly (a notebook run).
"""

import contextlib
import errno
import importlib
import logging
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from srlib import cli, stage_outputs
from srlib.callbacks import TensorBoardLogger
from srlib.errors import SrlibError
from srlib.files import atomic_path, is_temp_file, write_json, write_text
from srlib.images import write_image
from srlib.model_card import ModelCard, card_path
from srlib.models import generator, load_generator, load_weights, save_generator, save_weights
from srlib.run_folder import HistoryLog, RunFolder
from srlib.training import Trainer, TrainConfig
from srlib.upscale import upscale_files
from tiny_runs import TINY, write_train_folder

FULL = os.strerror(errno.ENOSPC)  # "No space left on device"
upscale_module = importlib.import_module("srlib.upscale")  # `srlib.upscale` itself is the function


def fill(folder: Path, leave: int = 0) -> None:
    """Take every free byte of ``folder``'s file system but ``leave`` (the pages other files have begun still take
    a little)."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 4096, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * size):
                    pass
        os.ftruncate(fd, max(0, os.fstat(fd).st_size - leave))
    finally:
        os.close(fd)


def full(path) -> str:
    """The error a full disk gives when writing ``path``."""
    return f"[Errno {errno.ENOSPC}] {FULL}: '{path}'"


def temp_files(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if is_temp_file(p)]


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    """An image that compresses badly: its PNG needs fresh pages of a full disk."""
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# --- what training writes --------------------------------------------------------------------------------

def test_a_weights_export_on_a_full_disk_is_one_error_and_keeps_the_earlier_export(small_disk, capfd):
    disk = small_disk("1m")
    path = disk / "generator.weights.h5"
    save_generator(generator(scale=2, blocks=1, filters=8), path, {"steps": 1})
    before = path.read_bytes(), card_path(path).read_bytes()
    fill(disk)
    with pytest.raises(OSError) as error:  # h5py writing the file itself printed a wall, then could crash
        save_generator(generator(scale=2, blocks=1, filters=16), path, {"steps": 2})
    assert str(error.value) == full(path) and error.value.errno == errno.ENOSPC
    assert (path.read_bytes(), card_path(path).read_bytes()) == before
    assert not temp_files(disk)
    (disk / "filler").unlink()
    assert load_generator(path).architecture["filters"] == 8
    assert "h5py" not in capfd.readouterr().err


def test_weights_written_from_memory_load_as_keras_wrote_them_with_their_attributes(tmp_path):
    model = generator(scale=2, blocks=1, filters=8)
    path = tmp_path / "generator.weights.h5"
    save_weights(model, path, attrs={"steps": 5})
    with h5py.File(path, "r") as file:
        assert file.attrs["steps"] == 5
    loaded = generator(scale=2, blocks=1, filters=8)
    load_weights(loaded, path)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), loaded.get_weights()))


def test_a_checkpoint_save_on_a_full_disk_keeps_the_previous_one_as_the_latest(small_disk):
    disk = small_disk("1m")
    folder = RunFolder(disk / "run", "mse")
    step, weights = tf.Variable(1, dtype=tf.int64), tf.Variable(tf.zeros([50_000]))
    checkpoint = tf.train.Checkpoint(step=step, weights=weights)
    folder.save(checkpoint, 1)
    fill(disk, leave=16 << 10)  # room for the state file, not for the 200 kB of TensorFlow's data file
    step.assign(2)
    weights.assign(tf.ones([50_000]))
    with pytest.raises(SrlibError) as error:
        folder.save(checkpoint, 2)
    assert str(error.value) == (f"could not save a checkpoint in {folder.checkpoint_dir} ({FULL}); the previous "
                                "checkpoint ckpt-1 (step 1) is intact: rerun the same command to continue from it")
    # nothing of the failed save takes space or passes for a checkpoint
    assert sorted(p.name for p in folder.checkpoint_dir.iterdir()) == [
        "checkpoint", "ckpt-1.data-00000-of-00001", "ckpt-1.index"]
    (disk / "filler").unlink()
    assert folder.restore(checkpoint).name == "ckpt-1"
    assert int(step.numpy()) == 1 and not weights.numpy().any()
    folder.close()


def test_a_save_cut_short_after_its_files_appeared_leaves_no_damaged_newest_checkpoint(tmp_path, monkeypatch,
                                                                                      caplog):
    folder = RunFolder(tmp_path, "mse")
    step = tf.Variable(2, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(step=step)
    folder.save(checkpoint, 2)

    def cut_short(self, checkpoint_number=None, **kwargs):  # TensorFlow merging the index when the disk filled
        for part in ("data-00000-of-00001", "index"):
            (folder.checkpoint_dir / f"ckpt-{checkpoint_number}.{part}").write_bytes(b"\0" * 10)
        raise tf.errors.ResourceExhaustedError(None, None, f"ckpt-{checkpoint_number}.index; {FULL} "
                                               "[Op:MergeV2Checkpoints]")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", cut_short)
    step.assign(4)
    with pytest.raises(SrlibError, match=r"\(No space left on device\); the previous checkpoint ckpt-2 \(step 2\)"):
        folder.save(checkpoint, 4)
    monkeypatch.undo()
    assert not list(folder.checkpoint_dir.glob("ckpt-4*"))
    with caplog.at_level(logging.WARNING):
        assert folder.restore(checkpoint).name == "ckpt-2"
    assert int(step.numpy()) == 2 and not caplog.records  # no damaged checkpoint moved aside
    folder.close()


def test_a_history_line_on_a_full_disk_is_written_whole_or_not_at_all(small_disk):
    disk = small_disk("1m")
    history = HistoryLog(disk / "history.jsonl")
    history.append({"stage": "mse", "step": 1})
    before = history.path.read_bytes()
    fill(disk)  # the page the file has begun still takes the start of a line
    with pytest.raises(OSError) as error:
        history.append({"stage": "mse", "step": 2, "note": "x" * 20_000})
    assert str(error.value) == full(history.path)
    assert history.path.read_bytes() == before  # no torn line for the next rows to follow
    (disk / "filler").unlink()
    history.append({"stage": "mse", "step": 2})
    history.close()
    assert [row["step"] for row in history.rows()] == [1, 2]


def test_tensorboard_events_lost_to_a_full_disk_are_an_error(small_disk):
    disk = small_disk("1m")
    logger = TensorBoardLogger(disk / "tensorboard")
    logger.write({"stage": "mse", "step": 1, "g_loss": 0.5})
    fill(disk)
    with pytest.raises(OSError) as error:  # TensorFlow drops what it cannot write without a word
        logger.write({"stage": "mse", "step": 2, "g_loss": 0.25}, noise(64, 192))
    (events,) = (disk / "tensorboard").glob("events.out.tfevents.*")
    assert str(error.value) == full(events)
    logger.close()
    (disk / "filler").unlink()
    TensorBoardLogger(disk / "tensorboard", resumed_at=1).close()  # a resumed run keeps what was whole
    steps = [tf.compat.v1.Event.FromString(r.numpy()).step for r in tf.data.TFRecordDataset(str(events))]
    assert steps == [0, 1]  # the file's version record, then step 1


def _write_figure(path, seed):
    import matplotlib.pyplot as plt

    from srlib.figures import save_figure

    fig, ax = plt.subplots()
    ax.imshow(noise(64, 64, seed))
    save_figure(fig, path)
    plt.close(fig)


WRITERS = {  # name: (file name, write(path, version))
    "JSON report": ("report.json", lambda path, n: write_json(path, {"version": n})),
    "Markdown table": ("table.md", lambda path, n: write_text(path, f"| version | {n} |\n")),
    "model card": ("generator.weights.h5", lambda path, n: ModelCard({"scale": 2, "blocks": 1, "filters": 8},
                                                                      steps=n).write(path)),
    "image": ("step_0000001.png", lambda path, n: write_image(path, noise(48, 48, n))),
    "figure": ("crops.png", _write_figure),
}


@pytest.mark.parametrize("kind", WRITERS)
def test_a_small_file_on_a_full_disk_is_one_error_and_keeps_the_earlier_version(small_disk, kind):
    disk = small_disk("1m")
    name, write = WRITERS[kind]
    path = disk / "out" / name
    write(path, 1)
    written = card_path(path) if kind == "model card" else path
    before = written.read_bytes()
    fill(disk)
    with pytest.raises(OSError) as error:
        write(path, 2)
    assert str(error.value) == full(written)
    assert written.read_bytes() == before and not temp_files(disk)


def test_the_train_command_stopped_by_a_full_disk_says_which_step_is_saved(small_disk, tmp_path, monkeypatch,
                                                                          capsys):
    disk = small_disk("4m")
    run = disk / "run"
    real = stage_outputs.save_generator

    def fill_then_save(*args, **kwargs):  # the disk fills after the checkpoint of step 2, before the export
        fill(disk)
        return real(*args, **kwargs)

    monkeypatch.setattr(stage_outputs, "save_generator", fill_then_save)
    settings = ["--scale", "2", "--blocks", "1", "--filters", "8", "--batch-size", "2", "--patch-size", "32",
                "--vgg-weights", "none", "--precision", "float32", "--checkpoint-every", "2"]
    code = cli.main(["train", "--recipe", "paper", "--stage", "mse", "--data", str(write_train_folder(tmp_path)),
                     "--steps", "2", "--run-dir", str(run), *settings])
    err = capsys.readouterr().err
    assert code == 2
    assert err.splitlines()[-1] == (
        f"error: training stopped at step 2: {full(run / 'mse' / 'generator.weights.h5')}; the last saved step is "
        "2 (ckpt-2): rerun the same command to continue from it")
    assert "Traceback" not in err and "h5py" not in err
    assert not temp_files(run)
    monkeypatch.undo()
    (disk / "filler").unlink()
    config = TrainConfig(**{**TINY, "checkpoint_every": 2, "precision": "float32"})
    resumed = Trainer("paper", "mse", run, config)
    assert resumed.current_step == 2  # the next run starts from the saved step
    resumed.close()


# --- upscale and the pipeline -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny x2 generator and a folder with one noisy photo."""
    folder = tmp_path_factory.mktemp("tiny")
    save_generator(generator(scale=2, blocks=1, filters=4, batch_norm=False), folder / "tiny.weights.h5")
    (folder / "in").mkdir()
    Image.fromarray(noise(40, 40)).save(folder / "in" / "photo.png")
    return folder


def test_the_upscale_command_on_a_full_disk_names_the_output_in_one_line(small_disk, tiny, capsys):
    out = small_disk("1m") / "out"
    out.mkdir()
    fill(out.parent)
    code = cli.main(["upscale", str(tiny / "in"), "-o", str(out), "--weights", str(tiny / "tiny.weights.h5"),
                     "--quiet", "--precision", "float32"])
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [f"error: {full(out / 'photo.png')}"]
    assert not list(out.iterdir())  # no half-written PNG, hidden or not


def test_a_notebook_copy_cut_short_by_a_full_disk_keeps_the_earlier_copy(tmp_path, monkeypatch):
    import papermill

    from srlib.pipeline import PipelineError, run_pipeline

    out = tmp_path / "out"
    out.mkdir()
    target = out / "01_data_prep.ipynb"
    target.write_text("the copy of the last run")

    def cut_short(source, output, **kwargs):  # papermill writes the copy as the cells run
        Path(output).write_text('{"cells": [')
        raise OSError(errno.ENOSPC, FULL)

    monkeypatch.setattr(papermill, "execute_notebook", cut_short)
    with pytest.raises(PipelineError) as error:
        run_pipeline("smoke", "report", data_dir=tmp_path / "data", out_dir=out, notebooks=["01"], progress=False)
    assert str(error.value) == f"01_data_prep.ipynb stopped: could not write its executed copy {target}: {FULL}"
    assert target.read_text() == "the copy of the last run"
    assert sorted(p.name for p in out.iterdir()) == ["01_data_prep.ipynb"]


# --- nothing is replaced unless asked, whatever runs at the same time ----------------------------------------

@pytest.mark.parametrize("links", ["hard links", "no hard links"])
def test_a_file_made_during_a_write_is_not_replaced_unless_asked(tmp_path, monkeypatch, links):
    if links == "no hard links":  # as on FAT or some network file systems
        def no_link(*args, **kwargs):
            raise OSError(errno.EPERM, os.strerror(errno.EPERM))
        monkeypatch.setattr(os, "link", no_link)
    target = tmp_path / "photo.png"
    with pytest.raises(FileExistsError) as error:
        with atomic_path(target, replace=False) as tmp:
            tmp.write_text("ours")
            target.write_text("theirs")  # another process, which checked at the same time
    assert error.value.filename == str(target)
    assert target.read_text() == "theirs" and os.listdir(tmp_path) == ["photo.png"]
    with atomic_path(tmp_path / "free.png", replace=False) as tmp:
        tmp.write_text("ours")
    assert (tmp_path / "free.png").read_text() == "ours" and sorted(os.listdir(tmp_path)) == ["free.png", "photo.png"]


def test_upscale_keeps_an_output_another_process_writes_meanwhile_unless_overwrite(tiny, tmp_path, monkeypatch,
                                                                                   caplog):
    target = tmp_path / "photo.png"
    real = upscale_module._bands

    def racing(*args, **kwargs):  # another upscale into the same folder finishes this output first
        target.write_bytes(b"theirs")
        yield from real(*args, **kwargs)

    monkeypatch.setattr(upscale_module, "_bands", racing)
    options = dict(weights=tiny / "tiny.weights.h5", progress=False, precision="float32")
    done = upscale_files([tiny / "in"], tmp_path, overwrite=False, **options)
    assert done == {"written": [], "kept": [target], "failed": []}
    assert target.read_bytes() == b"theirs" and sorted(os.listdir(tmp_path)) == ["photo.png"]
    assert any("written by another process meanwhile" in r.getMessage() for r in caplog.records)
    done = upscale_files([tiny / "in"], tmp_path, overwrite=True, **options)
    assert done["written"] == [target] and Image.open(target).size == (80, 80)
