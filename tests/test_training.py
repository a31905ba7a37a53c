"""The trainer: every stage of both recipes, resume after interruption, NaN handling, distribution."""

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from srlib.data import PatchSource, training_dataset
from srlib.errors import DataError, SrlibError
from srlib.training import RECIPES, Trainer, TrainConfig, TrainingError
from tiny_runs import TINY, batches, write_train_folder

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def train_folder(tmp_path_factory):
    return write_train_folder(tmp_path_factory.mktemp("train"))


def _snapshot(model):
    return None if model is None else [w.numpy().copy() for w in model.weights]


def _changed(before, model):
    return any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.weights))


STAGES = [(recipe, stage) for recipe, stages in RECIPES.items() for stage in stages]


@pytest.mark.filterwarnings("ignore:.*RANDOM weights")
@pytest.mark.parametrize("recipe, stage", STAGES)
def test_each_stage_trains_only_its_networks(train_folder, tmp_path, recipe, stage):
    config = TrainConfig(**TINY, checkpoint_every=100)
    trainer = Trainer(recipe, stage, tmp_path, config, from_scratch=True)
    generator_before = _snapshot(trainer.generator)
    discriminator_before = _snapshot(trainer.discriminator)
    features_before = _snapshot(trainer.features)
    last = trainer.fit(batches(train_folder, config), steps=2)

    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    terms = [k for k in last if k not in ("stage", "step", "lr", "precision", "sec_per_step", "time")]
    assert ("g_grad_norm" in last) == RECIPES[recipe][stage].train_generator
    assert terms and all(np.isfinite(last[k]) for k in terms)
    spec = RECIPES[recipe][stage]
    assert _changed(generator_before, trainer.generator) == spec.train_generator
    if trainer.discriminator is not None:
        assert _changed(discriminator_before, trainer.discriminator) == spec.train_discriminator
        assert {"d_loss", "d_acc_real", "d_acc_fake"} <= set(last)
    if trainer.features is not None:
        assert not _changed(features_before, trainer.features)  # VGG stays bit-identical
    assert (tmp_path / "generator.weights.h5").is_file() and (tmp_path / stage / "generator.weights.h5").is_file()


@pytest.mark.filterwarnings("ignore:.*RANDOM weights")
def test_a_stage_starts_from_the_previous_stage(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=100)
    first = Trainer("report", "sr_vgg", tmp_path, config)
    first.fit(batches(train_folder, config), steps=1)
    second = Trainer("report", "discriminator", tmp_path, config)
    for a, b in zip(first.generator.weights, second.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_missing_starting_weights_are_clear_errors(tmp_path):
    config = TrainConfig(**TINY)
    with pytest.raises(SrlibError, match="run that stage first"):
        Trainer("paper", "gan", tmp_path, config)
    with pytest.raises(SrlibError, match="does not exist"):
        Trainer("paper", "mse", tmp_path, config, init_generator=tmp_path / "nope.weights.h5")


def test_resuming_with_other_options_is_a_clear_error(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=1)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=1)
    with pytest.raises(SrlibError, match=r"other settings \(filters: 8 -> 16\)"):
        Trainer("paper", "mse", tmp_path, TrainConfig(**{**TINY, "filters": 16}))


def _averages(trainer):
    return [a.numpy().copy() for a in trainer.networks.ema()]


def test_an_ema_can_be_added_to_a_running_stage_but_not_dropped(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=2)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=2)
    with_ema = TrainConfig(**TINY, checkpoint_every=2, ema=0.5)
    trainer = Trainer("paper", "mse", tmp_path, with_ema)
    assert trainer.current_step == 2
    trained = [v.numpy() for v in trainer.generator.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(_averages(trainer), trained))  # starts at the restored weights
    trainer.fit(batches(train_folder, with_ema), steps=4)
    averages = _averages(trainer)
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(averages, trainer.generator.trainable_variables))
    resumed = Trainer("paper", "mse", tmp_path, with_ema)  # the average itself is restored now
    assert all(np.array_equal(a, b) for a, b in zip(_averages(resumed), averages))
    resumed.close()
    with pytest.raises(SrlibError, match="ema: 0.5 -> None"):
        Trainer("paper", "mse", tmp_path, config)


def test_learning_rate_drops_tenfold_after_half_the_steps(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=100)
    trainer = Trainer("paper", "gan", tmp_path, config, from_scratch=True)
    trainer.fit(batches(train_folder, config), steps=4)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([1e-4, 1e-4, 1e-5, 1e-5])


def test_the_card_of_a_resumed_stage_says_what_trained_each_step(train_folder, tmp_path):
    from srlib.model_card import ModelCard

    config = TrainConfig(**TINY, checkpoint_every=2, learning_rate=2e-4)
    Trainer("paper", "mse", tmp_path, config, training_data={"name": "T91", "images": 4}).fit(
        batches(train_folder, config), steps=2)
    resumed = TrainConfig(**TINY, checkpoint_every=2, learning_rate=5e-5, ema=0.5)  # from step 3, on other data
    Trainer("paper", "mse", tmp_path, resumed, training_data={"name": "BSD200", "images": 4}).fit(
        batches(train_folder, resumed), steps=4)
    sidecar = json.loads((tmp_path / "generator.json").read_text())
    assert sidecar["steps"] == 4
    assert sidecar["learning_rates"] == [{"from_step": 1, "rate": 2e-4}, {"from_step": 3, "rate": 5e-5}]
    assert sidecar["emas"] == [{"from_step": 1, "ema": None}, {"from_step": 3, "ema": 0.5}]
    assert sidecar["training_data"] == {"name": "T91, then BSD200 from step 3", "segments": [
        {"from_step": 1, "name": "T91", "images": 4}, {"from_step": 3, "name": "BSD200", "images": 4}]}
    assert ModelCard.read(tmp_path / "generator.weights.h5").provenance() == \
        "paper/mse, 4 steps on T91, then BSD200 from step 3"


def test_unusable_streamed_data_stop_with_a_data_error(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.png").write_bytes(b"not a png")
    config = TrainConfig(**TINY)
    source = PatchSource([junk], patch_size=32, cache=False)
    trainer = Trainer("paper", "mse", tmp_path / "run", config)
    with pytest.raises(DataError, match="no usable training image"):
        trainer.fit(lambda start: training_dataset(source, 2, 2, start), steps=2)


class _Interrupt(Exception):
    pass


def _failing_after(batches, good_steps, kind):
    def dataset_for(start):
        def generate():
            for i, (lr, hr) in enumerate(batches(start).take(100)):
                if start + i >= good_steps:
                    if kind == "interrupt":
                        raise _Interrupt()
                    hr = hr * np.nan
                yield lr, hr
        spec = (tf.TensorSpec((2, 16, 16, 3), tf.float32), tf.TensorSpec((2, 32, 32, 3), tf.float32))
        return tf.data.Dataset.from_generator(generate, output_signature=spec)
    return dataset_for


def _steps(history: Path, stage: str):
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    return [r["step"] for r in rows if r["stage"] == stage and "val_psnr" not in r]


def test_interrupted_run_resumes_with_each_step_once(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=2)
    data = batches(train_folder, config)
    trainer = Trainer("paper", "mse", tmp_path, config)
    with pytest.raises(tf.errors.OpError, match="_Interrupt"):  # raised inside the input pipeline
        trainer.fit(_failing_after(data, 3, "interrupt"), steps=6)
    assert _steps(tmp_path / "history.jsonl", "mse") == [1, 2, 3]  # step 3 was logged, not checkpointed
    resumed = Trainer("paper", "mse", tmp_path, config)
    assert resumed.current_step == 2
    resumed.fit(data, steps=6)
    assert _steps(tmp_path / "history.jsonl", "mse") == [1, 2, 3, 4, 5, 6]
    finished = Trainer("paper", "mse", tmp_path, config)
    assert finished.current_step == 6
    finished.close()


def test_interrupted_before_the_first_checkpoint_restarts_cleanly(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=100)
    data = batches(train_folder, config)
    with pytest.raises(tf.errors.OpError, match="_Interrupt"):  # raised inside the input pipeline
        Trainer("paper", "mse", tmp_path, config).fit(_failing_after(data, 2, "interrupt"), steps=4)
    with open(tmp_path / "history.jsonl", "a") as history:
        history.write('{"stage": "mse", "step": 3, "pix')  # a line torn by kill -9
    Trainer("paper", "mse", tmp_path, config).fit(data, steps=4)
    assert _steps(tmp_path / "history.jsonl", "mse") == [1, 2, 3, 4]


def test_fit_reads_any_dataset_without_tf_data_autotuning(tmp_path):
    # the data may come from anywhere (here: a dataset the caller made); srlib.data.without_autotuning says why
    class Seen(Exception):
        pass

    def record(dataset, **kwargs):
        raise Seen(dataset.options().autotune.enabled)

    trainer = Trainer("paper", "mse", tmp_path, TrainConfig(**TINY))
    trainer.model.fit = record
    zeros = tf.zeros((2, 16, 16, 3)), tf.zeros((2, 32, 32, 3))
    with pytest.raises(Seen) as seen:
        trainer.fit(lambda start: tf.data.Dataset.from_tensors(zeros).repeat(), steps=1)
    assert seen.value.args == (False,)


def test_nan_loss_stops_with_a_clear_error_and_a_good_checkpoint(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=2)
    trainer = Trainer("paper", "mse", tmp_path, config)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3 of stage paper/mse"):
        trainer.fit(_failing_after(batches(train_folder, config), 2, "nan"), steps=6)
    restored = Trainer("paper", "mse", tmp_path, config)
    assert restored.current_step == 2
    assert all(np.all(np.isfinite(w.numpy())) for w in restored.generator.weights)
    restored.close()
    assert _steps(tmp_path / "history.jsonl", "mse") == [1, 2]


def test_the_warm_up_raises_the_rate_step_by_step_then_the_tenfold_drop_takes_it():
    from srlib.stage_model import StageSchedule

    schedule = StageSchedule(1e-3, warmup_steps=4)
    schedule.boundary.assign(5)
    assert [float(schedule(step)) for step in range(7)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-4, 1e-4])
    assert [float(StageSchedule(1e-3)(step)) for step in (0, 10 ** 9)] == pytest.approx([1e-3, 1e-3])


def test_a_warm_up_resumes_where_it_stopped_and_the_card_names_it_once(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=1, learning_rate=2e-4, warmup_steps=4)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=2)
    warming = [{"from_step": 1, "rate": 2e-4, "warmup_steps": 4}]
    assert json.loads((tmp_path / "generator.json").read_text())["learning_rates"] == warming
    resumed = Trainer("paper", "mse", tmp_path, config)
    optimizer = resumed.model.g_optimizer
    assert float(optimizer.learning_rate) == pytest.approx(1.5e-4)  # step 3 of the ramp: 3/4 of the rate
    resumed.fit(batches(train_folder, config), steps=6)
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([2e-4] * 6)  # the stage's rate, before the ramp
    assert json.loads((tmp_path / "generator.json").read_text())["learning_rates"] == warming
    with pytest.raises(SrlibError, match=r"other settings \(warmup_steps: 4 -> 0\)"):
        Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, checkpoint_every=1, learning_rate=2e-4))


def test_a_stage_without_a_warm_up_cannot_be_given_one_when_it_resumes(train_folder, tmp_path):
    # its optimizer holds the rate in a variable, a warming-up one computes it (and would start its ramp at the
    # stage's step count): a stage keeps the warm-up it started with
    config = TrainConfig(**TINY, checkpoint_every=1)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=1)
    path = tmp_path / "mse" / "config.json"
    path.write_text(json.dumps({k: v for k, v in json.loads(path.read_text()).items() if k != "warmup_steps"}))
    with pytest.raises(SrlibError, match=r"other settings \(warmup_steps: 0 -> 2\)"):  # from before the setting
        Trainer("paper", "mse", tmp_path, TrainConfig(**TINY, checkpoint_every=1, warmup_steps=2))
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=2)


def test_diverged_weights_are_never_saved_nor_resumed_from(train_folder, tmp_path, caplog):
    from srlib.model_card import ModelCard
    from srlib.models import load_generator
    from srlib.run_folder import checkpoint_steps

    config = TrainConfig(**TINY, checkpoint_every=1)
    Trainer("paper", "mse", tmp_path, config).fit(batches(train_folder, config), steps=2)
    trainer = Trainer("paper", "mse", tmp_path, config)
    trainer.model.g_optimizer.learning_rate = float("nan")  # as --learning-rate nan: step 3's loss is finite, its update not
    with pytest.raises(TrainingError, match=r"NaN or Inf at step 3 of stage paper/mse \(.*\): nothing from this step "
                                            r"was saved; the last checkpoint with finite weights is .*ckpt-2 \(step 2\)"):
        trainer.fit(batches(train_folder, config), steps=4)
    checkpoints = tmp_path / "mse" / "checkpoints"
    assert checkpoint_steps(checkpoints) == [2, 1]
    assert ModelCard.read(tmp_path / "generator.weights.h5").steps == 2
    assert all(np.isfinite(w.numpy()).all() for w in load_generator(tmp_path / "generator.weights.h5").weights)

    stale = Trainer("paper", "mse", tmp_path, config)  # a checkpoint holding NaN, as srlib saved them before
    for variable in stale.generator.trainable_variables:
        variable.assign(np.full(variable.shape, np.nan, np.float32))
    stale.model.step.assign(5)
    stale.folder.save(stale.networks.checkpoint, 5)
    stale.close()
    resumed = Trainer("paper", "mse", tmp_path, config)
    assert resumed.current_step == 2 and (checkpoints / "damaged" / "ckpt-5.index").is_file()
    assert "ckpt-5: NaN or Inf in head_conv/kernel" in caplog.text
    with pytest.raises(TrainingError, match=r"non-finite loss at step 3 .*the last checkpoint with finite weights is "
                                            r".*ckpt-2 \(step 2\), where a rerun resumes"):
        resumed.fit(_failing_after(batches(train_folder, config), 2, "nan"), steps=4)


def test_ema_generator_is_averaged_and_exported(train_folder, tmp_path):
    from srlib.models import load_generator

    config = TrainConfig(**TINY, checkpoint_every=100, ema=0.5)
    trainer = Trainer("paper", "mse", tmp_path, config)
    trainer.fit(batches(train_folder, config), steps=1)
    first = _averages(trainer)  # Keras starts the average at the weights of the first step
    assert all(np.array_equal(a, v.numpy()) for a, v in zip(first, trainer.generator.trainable_variables))
    trainer = Trainer("paper", "mse", tmp_path, config)
    trainer.fit(batches(train_folder, config), steps=2)
    for variable, before, averaged in zip(trainer.generator.trainable_variables, first, _averages(trainer)):
        np.testing.assert_allclose(averaged, 0.5 * before + 0.5 * variable.numpy(), rtol=1e-6, atol=1e-7)
    trainer = Trainer("paper", "mse", tmp_path, config)
    trainer.fit(batches(train_folder, config), steps=4)
    exported = load_generator(tmp_path / "generator.weights.h5")
    # the export holds the average for trainable weights and the live values of the others (BN statistics)
    for variable, average in zip(exported.trainable_variables, _averages(trainer)):
        np.testing.assert_array_equal(variable.numpy(), average)
    for variable, live in zip(exported.non_trainable_variables, trainer.generator.non_trainable_variables):
        np.testing.assert_array_equal(variable.numpy(), live.numpy())
    assert not all(np.array_equal(a, v.numpy()) for a, v in zip(_averages(trainer), trainer.generator.trainable_variables))


def test_kill_9_then_rerun_continues_the_run(train_folder, tmp_path):
    val = tmp_path / "val"
    val.mkdir()
    Image.open(next(train_folder.glob("*.png"))).save(val / "v.png")
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "srlib", "train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder),
           "--steps", "14", "--run-dir", str(run), "--scale", "2", "--blocks", "1", "--filters", "8",
           "--batch-size", "2", "--patch-size", "32", "--checkpoint-every", "3", "--validate-every", "5",
           "--val-data", str(val)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    history = run / "history.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if history.exists() and len(_steps(history, "mse")) >= 7:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = max(_steps(history, "mse"))
    assert 7 <= killed_at < 14
    finished = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _steps(history, "mse") == list(range(1, 15))
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    assert [r["step"] for r in rows if "val_psnr" in r] == [5, 10, 14]
    samples = sorted(p.name for p in (run / "mse" / "samples").iterdir())
    assert samples == ["step_0000005.png", "step_0000010.png", "step_0000014.png"]  # every 5 steps and the last


def test_sigterm_then_ctrl_c_save_the_step_they_stop_at_and_the_rerun_continues(train_folder, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "srlib", "train", "--recipe", "paper", "--stage", "mse", "--data", str(train_folder),
           "--steps", "1000", "--run-dir", str(run), "--scale", "2", "--blocks", "1", "--filters", "8",
           "--batch-size", "2", "--patch-size", "32", "--checkpoint-every", "1000", "--validate-every", "1000"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    history = run / "history.jsonl"
    stopped_at = 0
    for signum, code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and process.poll() is None:
            if history.exists() and len(_steps(history, "mse")) >= stopped_at + 4:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the run ended before it could be stopped"
        process.send_signal(signum)
        stderr = process.communicate(timeout=120)[1]
        assert process.returncode == code, stderr[-2000:]
        stopped_at = max(_steps(history, "mse"))
        name = signal.Signals(signum).name
        assert stderr.strip().splitlines()[-1] == (f"stopped at step {stopped_at} by {name}, saved; rerun the same "
                                                   "command to continue")
        assert (run / "mse" / "checkpoints" / f"ckpt-{stopped_at}.index").is_file()  # nothing trained is lost
        assert json.loads((run / "generator.json").read_text())["steps"] == stopped_at
    finished = subprocess.run([*cmd[:cmd.index("--steps") + 1], str(stopped_at + 2), *cmd[cmd.index("--steps") + 2:]],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # the lock was released
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert _steps(history, "mse") == list(range(1, stopped_at + 3))


def test_an_interrupted_kernel_stops_training_the_same_way(train_folder, tmp_path):
    # a notebook's kernel gets SIGINT when it is interrupted (papermill, Jupyter's stop button)
    import keras

    from srlib.errors import TrainingStopped

    class InterruptAtStep3(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if int(logs["step"]) == 3:
                os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a job started in the background
    config = TrainConfig(**TINY, checkpoint_every=100)
    trainer = Trainer("paper", "mse", tmp_path, config)
    fit = trainer.model.fit
    trainer.model.fit = lambda *args, callbacks, **kwargs: fit(*args, callbacks=[InterruptAtStep3(), *callbacks],
                                                              **kwargs)
    with pytest.raises(TrainingStopped, match="stopped at step 3 by SIGINT, saved") as stopped:
        trainer.fit(batches(train_folder, config), steps=50)
    assert stopped.value.exit_code == 130
    assert signal.getsignal(signal.SIGINT) is before  # the usual Ctrl-C is back
    resumed = Trainer("paper", "mse", tmp_path, config)
    assert resumed.current_step == 3
    resumed.close()


DISTRIBUTED = """
import json, sys
import numpy as np, tensorflow as tf, keras
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from srlib.training import Trainer, TrainConfig
config = TrainConfig(scale=2, blocks=2, filters=8, batch_size=4, patch_size=32, vgg_weights=None, progress=False,
                     precision="float32", xla=False)  # float32: the sums of two devices match one device's to 1e-4;
# no XLA for either: it cannot span two CPU devices, and the plain step would then differ by more than rounding
rng = np.random.default_rng(0)
lr = rng.uniform(size=(4, 16, 16, 3)).astype(np.float32)
hr = rng.uniform(size=(4, 32, 32, 3)).astype(np.float32)
out = {}
for name, strategy in [("plain", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    trainer = Trainer("paper", "mse", sys.argv[1] + "/" + name, config, strategy=strategy)
    data = lambda start: tf.data.Dataset.from_tensors((lr, hr)).repeat()
    last = trainer.fit(data, steps=2)
    gan = Trainer("paper", "gan", sys.argv[1] + "/" + name, TrainConfig(**{**config.__dict__, "label_flip": 0.3}),
                  strategy=strategy)
    out[name + "_gan"] = {k: v for k, v in gan.fit(data, steps=2).items() if k in ("d_loss", "content", "adversarial")}
    out[name] = {"replicas": strategy.num_replicas_in_sync, "loss": last["content"],
                 "kernel": float(np.abs(trainer.generator.get_layer("head_conv").kernel.numpy()).sum())}
print(json.dumps(out))
"""


def test_distributed_step_matches_the_plain_step(tmp_path):
    result = subprocess.run([sys.executable, "-c", DISTRIBUTED, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["plain"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    assert out["mirrored"]["loss"] == pytest.approx(out["plain"]["loss"], rel=1e-4)
    assert out["mirrored"]["kernel"] == pytest.approx(out["plain"]["kernel"], rel=1e-4)
    # the GAN step with label flips: the two devices flip the labels one device would
    assert out["mirrored_gan"] == pytest.approx(out["plain_gan"], rel=1e-4)


def test_xla_auto_is_on_for_gpus_and_on_cpus_only_for_a_float32_step_with_a_discriminator_on_one_replica(monkeypatch):
    from srlib.stage_model import use_xla

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])  # a CPU, even on a GPU machine

    assert [use_xla("auto", precision, discriminator) for precision, discriminator in
            [("float32", True), ("float32", False), ("bfloat16", True), ("bfloat16", False)]] == [True, False, False, False]
    assert use_xla(True, "bfloat16", False) is True and use_xla(False, "float32", True) is False  # as asked
    assert use_xla("auto", "float32", True, replicas=2) is False  # XLA cannot span several CPU devices
    assert use_xla("auto", "mixed_float16", False) is True  # a GPU profile's dry run compiles as the GPU would
    assert use_xla("auto", "mixed_float16", False, replicas=2) is False
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    assert use_xla("auto", "mixed_float16", False) is True and use_xla("auto", "bfloat16", True) is True
    assert use_xla("auto", "mixed_float16", True, replicas=2) is True


def test_a_multi_worker_step_is_never_compiled_and_an_explicit_xla_says_so_once(monkeypatch, caplog):
    from srlib import _quiet
    from srlib.stage_model import use_xla

    monkeypatch.setattr(_quiet, "_warned", set())
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"] if kind == "GPU" else [])
    with caplog.at_level(logging.WARNING, logger="srlib.stage_model"):
        assert use_xla("auto", "float32", True, replicas=2, multi_worker=True) is False  # "auto" on a GPU: quietly
        assert not caplog.records
        assert [use_xla(True, "float32", True, replicas=2, multi_worker=True) for _ in range(2)] == [False, False]
    assert [r.getMessage() for r in caplog.records] == [
        "--xla is not used in a multi-worker job: its strategy.run loop is not compiled with XLA"]


def test_mixed_float16_runs_a_gan_step_and_restores_the_policy(tmp_path):
    # in this process: the Trainer sets the float16 policy only while it builds the networks (float16 under XLA,
    # as on a GPU: the gpu profiles' dry runs in test_profiles.py; here without it, four times faster on a CPU)
    import keras

    before = keras.mixed_precision.global_policy().name
    config = TrainConfig(**{**TINY, "precision": "mixed_float16"}, xla=False)
    rng = np.random.default_rng(0)
    lr = rng.uniform(size=(2, 16, 16, 3)).astype(np.float32)
    hr = rng.uniform(size=(2, 32, 32, 3)).astype(np.float32)
    trainer = Trainer("paper", "gan", tmp_path, config, from_scratch=True)
    last = trainer.fit(lambda start: tf.data.Dataset.from_tensors((lr, hr)).repeat(), steps=2)
    assert trainer.generator.get_layer("head_conv").compute_dtype == "float16"
    assert trainer.generator.output.dtype == "float32"
    assert all(np.isfinite(v) for k, v in last.items() if k not in ("stage", "precision"))
    assert last["lr"] == pytest.approx(1e-5)  # the paper's tenfold decay after half the steps
    assert keras.mixed_precision.global_policy().name == before  # and the policy is back


@pytest.mark.filterwarnings("ignore:.*RANDOM")
def test_train_stage_and_stage_generators_follow_the_recipe(train_folder, tmp_path, monkeypatch):
    from srlib.training import stage_generators, train_stage

    import srlib.models as models

    build, preprocess = models._VGG["vgg16"]

    def offline(**kwargs):
        if kwargs["weights"] == "imagenet":
            raise Exception("URL fetch failure: Name or service not known")
        return build(**kwargs)

    monkeypatch.setitem(models._VGG, "vgg16", (offline, preprocess))
    config = TrainConfig(**{**TINY, "vgg_weights": "auto"}, checkpoint_every=100)
    for stage in ("sr_vgg", "discriminator"):
        trainer = train_stage("report", stage, train_folder, tmp_path, 2, config)
        assert trainer.current_step == 2
        assert trainer.config.vgg_weights == (None if stage == "sr_vgg" else "auto")  # resolved where VGG is used
    found = stage_generators(tmp_path, "report")
    assert [g["stage"] for g in found] == ["sr_vgg"]  # the discriminator stage keeps the generator frozen
    assert found[0]["card"].vgg_weights == "random" and found[0]["random_vgg"]
    assert found[0]["card"].steps == 2
    assert found[0]["card"].training_data == {"name": train_folder.name, "images": 4,
                                                     "folders": [str(train_folder)]}
    assert stage_generators(tmp_path, "paper") == []


def test_a_generator_without_batch_norm_can_start_from_one_with_it(train_folder, tmp_path):
    # float32: the folded network is compared with the one it came from to 1e-5
    config = TrainConfig(**TINY, checkpoint_every=100, precision="float32")
    bn_run = Trainer("paper", "mse", tmp_path / "bn", config)
    bn_run.fit(batches(train_folder, config), steps=3)
    source = tmp_path / "bn" / "generator.weights.h5"
    plain = TrainConfig(**{**TINY, "batch_norm": False}, checkpoint_every=100, precision="float32")
    trainer = Trainer("paper", "mse", tmp_path / "plain", plain, init_generator=source)
    assert trainer.generator.architecture["batch_norm"] is False
    x = np.random.default_rng(0).uniform(0, 1, (1, 10, 12, 3)).astype("float32")
    np.testing.assert_allclose(trainer.generator(x, training=False), bn_run.generator(x, training=False), atol=1e-5)
    trainer.fit(batches(train_folder, plain), steps=1)
    sidecar = json.loads((tmp_path / "plain" / "generator.json").read_text())
    assert sidecar["architecture"]["batch_norm"] is False
    assert sidecar["initialised_from"] == {"weights": str(source), "batch_norm_folded": True, "random_vgg": False,
                                           "recipe": "paper", "stage": "mse", "steps": 3,
                                           "architecture": bn_run.generator.architecture}


def test_tensorboard_shows_every_loss_term_validation_and_the_sample(train_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    val = tmp_path / "val"
    val.mkdir()
    Image.open(next(train_folder.glob("*.png"))).save(val / "v.png")
    config = TrainConfig(**TINY, checkpoint_every=100, validate_every=2)
    trainer = Trainer("report", "full", tmp_path / "run", config, from_scratch=True,
                      validation=[("v", np.asarray(Image.open(val / "v.png")))])
    trainer.fit(batches(train_folder, config), steps=2)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard" / "full"), size_guidance={"tensors": 0, "images": 0})
    events.Reload()
    tags = set(events.Tags()["tensors"])  # TF2 summaries are stored as tensors
    assert {"content", "tv", "adversarial", "g_loss", "d_loss", "d_acc_real", "d_acc_fake", "lr",
            "val_psnr", "val_ssim"} <= tags
    assert [event.step for event in events.Tensors("g_loss")] == [1, 2]
    [image] = events.Tensors("sample: bicubic | SR | HR")
    width, height, png = image.tensor_proto.string_val  # an image summary: its size, then the PNG
    assert image.step == 2 and png[:4] == b"\x89PNG" and (int(width), int(height)) == (3 * 40, 48)  # bicubic | SR | HR of 40x48


REPRODUCIBLE = """
import json, sys
from srlib.data import PatchSource, training_dataset
import srlib.precision
srlib.precision.bf16_hardware = lambda: True  # on a machine without it, bfloat16 is emulated: slow, still exact
from srlib.training import Trainer, TrainConfig
config = TrainConfig(scale=2, blocks=1, filters=8, batch_size=2, patch_size=32, vgg_weights=None, progress=False,
                     checkpoint_every=100, label_flip=0.3, seed=5, precision=sys.argv[3])
source = PatchSource([sys.argv[2]], patch_size=32, seed=5)
trainer = Trainer("report", "full", sys.argv[1], config, from_scratch=True)
trainer.fit(lambda start: training_dataset(source, 2, 2, start), steps=3)
print(json.dumps([trainer.networks.xla] + [{k: v for k, v in json.loads(line).items() if k not in ("sec_per_step", "time")}
                                          for line in open(sys.argv[1] + "/history.jsonl")]))
"""


# XLA as "auto" sets it on a CPU: float32 under XLA (oneDNN's own float32 kernels vary from process to process in
# the discriminator), bfloat16 without (XLA's CPU compiler gains nothing in bfloat16)
@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_two_fresh_runs_with_the_same_seed_give_the_same_history(train_folder, tmp_path, precision):
    # random VGG, random initial weights and label flips: each seeded, in separate processes
    runs = []
    for name in ("a", "b"):
        result = subprocess.run([sys.executable, "-c", REPRODUCIBLE, str(tmp_path / name), str(train_folder),
                                 precision], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        xla, *history = json.loads(result.stdout.strip().splitlines()[-1])
        assert xla is (precision == "float32")
        runs.append(history)
    assert [row["step"] for row in runs[0]] == [1, 2, 3]
    assert {row["precision"] for row in runs[0]} == {precision}
    if precision == "bfloat16":
        assert runs[0] == runs[1]
    for first, second in zip(*runs):
        assert first.keys() == second.keys()
        for key in first:
            assert first[key] == (second[key] if isinstance(second[key], str) else
                                  pytest.approx(second[key], rel=1e-6, abs=1e-9)), key


def test_tensorboard_keeps_each_step_once_after_a_resume(train_folder, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(**TINY, checkpoint_every=2)
    data = batches(train_folder, config)
    with pytest.raises(tf.errors.OpError, match="_Interrupt"):  # raised inside the input pipeline
        Trainer("paper", "mse", tmp_path, config).fit(_failing_after(data, 3, "interrupt"), steps=4)
    Trainer("paper", "mse", tmp_path, config).fit(data, steps=4)  # step 3 again, from the checkpoint at 2
    events = EventAccumulator(str(tmp_path / "tensorboard" / "mse"), size_guidance={"tensors": 0})
    events.Reload()
    assert [event.step for event in events.Tensors("g_loss")] == [1, 2, 3, 4]


def test_the_learning_rate_drops_at_the_step_planned_when_the_stage_started(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=1, content_loss="mse")  # the GAN's schedule; VGG19 adds only time
    Trainer("paper", "gan", tmp_path, config, from_scratch=True).fit(batches(train_folder, config), steps=2)
    Trainer("paper", "gan", tmp_path, config).fit(batches(train_folder, config), steps=4)  # extended: drop stays at 1
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["lr"] for r in rows] == pytest.approx([1e-4, 1e-5, 1e-5, 1e-5])


def test_a_finished_trainer_cannot_train_again_without_its_lock(train_folder, tmp_path):
    config = TrainConfig(**TINY, checkpoint_every=1)
    trainer = Trainer("paper", "mse", tmp_path, config)
    trainer.fit(batches(train_folder, config), steps=1)
    with pytest.raises(SrlibError, match="released its run folder"):
        trainer.fit(batches(train_folder, config), steps=2)
