"""Seconds per training step: the whole trainer against the bare network step.

    python benchmarks/bench_train_step.py [--data ../shared/data/train] [--steps 12] [--xla]

Both use SRResNet-16 (64 filters), batch 16, HR 96, x4, pixel MSE and Adam. The trainer's figure is
wall-clock time per step inside ``Trainer.fit`` (data pipeline, step, history line, progress bar), from
the history's timestamps; the bare figure is a tf.function of forward, backward and Adam update on
synthetic tensors. The trainer should cost at most 15% more. The last line reads
``trainer_s=... bare_s=... ratio=...``.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import keras
import tensorflow as tf

from srlib.data import PatchSource, training_dataset
from srlib.models import generator
from srlib.training import Trainer, TrainConfig


def bare_step_seconds(steps: int, jit: bool) -> float:
    model = generator(scale=4, blocks=16, filters=64)
    optimizer = keras.optimizers.Adam(1e-4)
    optimizer.build(model.trainable_variables)
    lr = tf.random.uniform((16, 24, 24, 3))
    hr = tf.random.uniform((16, 96, 96, 3))

    @tf.function(jit_compile=jit)
    def step(lr, hr):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(lr, training=True) - hr))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    for _ in range(3):
        float(step(lr, hr))
    start = time.perf_counter()
    for _ in range(steps):
        float(step(lr, hr))  # the trainer also waits for each step's losses
    return (time.perf_counter() - start) / steps


def trainer_step_seconds(data: str, steps: int, jit: bool) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(checkpoint_every=10**9, validate_every=10**9, jit_compile=jit, progress=True)
        trainer = Trainer("paper", "mse", run_dir, config)
        source = PatchSource([data], patch_size=96)
        trainer.fit(lambda start: training_dataset(source, 4, 16, start), steps=3 + steps)
        rows = [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]
        times = [row["time"] for row in rows[2:]]  # from the end of warm-up step 3
        return (times[-1] - times[0]) / (len(times) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--xla", action="store_true", help="compile both steps with XLA")
    args = parser.parse_args()
    bare = bare_step_seconds(args.steps, args.xla)
    print(f"bare network step: {bare:.3f} s")
    trainer = trainer_step_seconds(args.data, args.steps, args.xla)
    print(f"trainer step:      {trainer:.3f} s")
    print(f"trainer_s={trainer:.3f} bare_s={bare:.3f} ratio={trainer / bare:.3f}")


if __name__ == "__main__":
    main()
