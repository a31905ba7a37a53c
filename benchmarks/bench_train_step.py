"""Seconds per training step: the whole trainer against the bare network step, and XLA on against off.

    python benchmarks/bench_train_step.py [--data ../shared/data/train] [--steps 30] [--xla]
    python benchmarks/bench_train_step.py --compare-xla [--steps 6] [--rounds 2] [--profiles cpu gpu]
                                          [--out figures/bench_train_xla_avx2.md]
    python benchmarks/bench_train_step.py --compare-precision [--steps 6] [--rounds 3] [--profiles cpu gpu]
                                          [--no-xla | --xla] [--out figures/bench_train_precision.md]

The first form uses SRResNet-16 (64 filters), batch 16, HR 96, x4, pixel MSE and Adam. The trainer's
figure is wall-clock time per step inside ``Trainer.fit`` (data pipeline, step, callbacks, history line,
progress bar), from the history's timestamps; the bare figure is a tf.function of forward, backward and
Adam update on synthetic tensors. The trainer should cost at most 5% more. The last line reads
``trainer_s=... bare_s=... ratio=...``.

``--compare-xla`` times the bare step of each profile's network, for the pretraining step (generator and
MSE) and the GAN step (generator, discriminator, adversarial term), with XLA off and on, alternating
in rounds so that both see the same machine load; it prints the median of each and the ratio on / off.
``--compare-precision`` does the same for float32 against bfloat16, each with XLA as the profile's setting gives it
on this machine (its "auto": on GPUs and for mixed_float16; on CPUs otherwise only for float32 with a discriminator).
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import srlib  # noqa: F401  (first: it keeps TensorFlow's start-up C++ messages out of the output)
import keras
import tensorflow as tf

from srlib.data import PatchSource, training_dataset
from srlib.models import discriminator, generator
from srlib.pipeline import PROFILES
from srlib.precision import cpu_description, policy
from srlib.recipes import TrainConfig
from srlib.stage_model import use_xla
from srlib.training import Trainer


def bare_step(blocks: int, filters: int, batch: int, patch: int, gan: bool, jit: bool, precision: str = "float32",
              batch_norm: bool = True):
    """A step function (no arguments) of the network on synthetic tensors: forward, backward, Adam."""
    with policy(precision):
        g = generator(scale=4, blocks=blocks, filters=filters, batch_norm=batch_norm)
        d = discriminator(patch) if gan else None
    g_opt, d_opt = keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4)
    g_opt.build(g.trainable_variables)
    if gan:
        d_opt.build(d.trainable_variables)
    lr = tf.random.uniform((batch, patch // 4, patch // 4, 3))
    hr = tf.random.uniform((batch, patch, patch, 3))

    @tf.function(jit_compile=jit)
    def step(lr, hr):
        with tf.GradientTape(persistent=True) as tape:
            sr = g(lr, training=True)
            loss = tf.reduce_mean(tf.square(sr - hr))
            if gan:
                real, fake = d(hr, training=True), d(sr, training=True)
                loss += 1e-3 * tf.reduce_mean(tf.nn.softplus(-fake))
                d_loss = tf.reduce_mean(tf.nn.softplus(-real) + tf.nn.softplus(fake))
        g_opt.apply_gradients(zip(tape.gradient(loss, g.trainable_variables), g.trainable_variables))
        if gan:
            d_opt.apply_gradients(zip(tape.gradient(d_loss, d.trainable_variables), d.trainable_variables))
        return loss

    return lambda: float(step(lr, hr))  # the trainer also waits for each step's losses


def seconds_per_step(step, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def trainer_step_seconds(data: str, steps: int, jit: bool) -> float:
    with tempfile.TemporaryDirectory() as run_dir:
        config = TrainConfig(checkpoint_every=10**9, validate_every=10**9, xla=jit, progress=True)
        trainer = Trainer("paper", "mse", run_dir, config)
        source = PatchSource([data], patch_size=96)
        trainer.fit(lambda start: training_dataset(source, 4, 16, start), steps=3 + steps)
        rows = [json.loads(line) for line in (Path(run_dir) / "history.jsonl").read_text().splitlines()]
        times = [row["time"] for row in rows[2:]]  # from the end of warm-up step 3
        return (times[-1] - times[0]) / (len(times) - 1)


def stage_settings(profile: str, gan: bool) -> dict:
    """A profile's settings for its pretraining or its GAN step: a stage's section may train another network than
    the profile's (the cpu GAN: SRResNet-16 from the shipped model)."""
    return {**PROFILES[profile], **PROFILES[profile]["gan" if gan else "pretrain"]}


def network_label(profile: str, p: dict) -> str:
    """A profile's network as the tables name it, e.g. "gpu-full: 16 blocks x 64 BN, batch 16, HR 96"."""
    return (f"{profile}: {p['blocks']} blocks x {p['filters']}{' BN' if p['batch_norm'] else ''}, "
            f"batch {p['batch_size']}, HR {p['patch_size']}")


def alternated_medians(step_functions: dict, steps: int, rounds: int) -> dict:
    """{key: median seconds per step} of each step function, timed in turn in each of ``rounds`` rounds, so that
    all see the same machine load."""
    times = {key: [] for key in step_functions}
    for _ in range(rounds):
        for key, step in step_functions.items():
            times[key].append(seconds_per_step(step, steps))
    return {key: statistics.median(values) for key, values in times.items()}


def caption(what: str, steps: int, rounds: int, command: str) -> str:
    """The line under a table: what was timed, how, the load and the CPU, and the command that made it."""
    import os

    return (f"{what} (forward, backward, Adam) on synthetic tensors, the median of {rounds} alternated rounds of "
            f"{steps} steps; load average {os.getloadavg()[0]:.1f} after, on {cpu_description()} "
            f"(benchmarks/bench_train_step.py {command}).")


def compare_xla(steps: int, rounds: int, profiles: list[str]) -> str:
    """XLA off against on for each profile's float32 network, pretraining and GAN step; returns the figures as a
    Markdown table."""
    rows = ["| profile's network | step | XLA off (s) | XLA on (s) | on / off |", "|---|---|---|---|---|"]
    print(f"{'profile network':<44} {'step':<8} {'XLA off (s)':>11} {'XLA on (s)':>11} {'on/off':>7}")
    for name in profiles:
        for gan in (False, True):
            p = stage_settings(name, gan)
            blocks, filters, batch, patch = p["blocks"], p["filters"], p["batch_size"], p["patch_size"]
            seconds = alternated_medians({jit: bare_step(blocks, filters, batch, patch, gan, jit,
                                                         batch_norm=p["batch_norm"]) for jit in (False, True)},
                                         steps, rounds)
            off, on = seconds[False], seconds[True]
            label, kind = network_label(name, p), "GAN" if gan else "pretrain"
            print(f"{label:<44} {kind:<8} {off:>11.3f} {on:>11.3f} {on / off:>7.2f}", flush=True)
            rows.append(f"| {label} | {kind} | {off:.3f} | {on:.3f} | {on / off:.2f} |")
    return "\n".join(rows) + "\n\n" + caption("Bare float32 steps", steps, rounds, "--compare-xla")


def compare_precision(steps: int, rounds: int, profiles: list[str], xla: bool | None = None) -> str:
    """float32 against bfloat16 for each profile's network, each precision with XLA as the profile's setting gives
    it on this machine (srlib.stage_model.use_xla: "auto" differs between the precisions), or ``xla``; returns the
    figures as a Markdown table."""
    rows = ["| profile's network | step | XLA (float32, bfloat16) | float32 (s) | bfloat16 (s) | bfloat16 speed-up |",
            "|---|---|---|---|---|---|"]
    print(f"{'profile network':<44} {'step':<8} {'float32 (s)':>11} {'bfloat16 (s)':>12} {'speed-up':>8}")
    for name in profiles:
        for gan in (False, True):
            p = stage_settings(name, gan)
            blocks, filters, batch, patch = p["blocks"], p["filters"], p["batch_size"], p["patch_size"]
            jit = {precision: use_xla(p["xla"] if xla is None else xla, precision, gan)
                   for precision in ("float32", "bfloat16")}
            seconds = alternated_medians({precision: bare_step(blocks, filters, batch, patch, gan, jit[precision],
                                                               precision, p["batch_norm"]) for precision in jit},
                                         steps, rounds)
            f32, bf16 = seconds["float32"], seconds["bfloat16"]
            label, kind = network_label(name, p), "GAN" if gan else "pretrain"
            print(f"{label:<44} {kind:<8} {f32:>11.3f} {bf16:>12.3f} {f32 / bf16:>7.2f}x", flush=True)
            on = ", ".join("on" if jit[precision] else "off" for precision in jit)
            rows.append(f"| {label} | {kind} | {on} | {f32:.3f} | {bf16:.3f} | {f32 / bf16:.2f}x |")
    flag = {None: "", False: " --no-xla", True: " --xla"}[xla]
    return "\n".join(rows) + "\n\n" + caption("Bare steps", steps, rounds, f"--compare-precision{flag}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--steps", type=int, default=30)  # fewer: a few slow steps move the ratio by 0.1
    parser.add_argument("--rounds", type=int, default=2)
    xla = parser.add_mutually_exclusive_group()
    xla.add_argument("--xla", action="store_true",
                     help="compile both steps (with --compare-precision: every step) with XLA; --compare-xla runs both")
    xla.add_argument("--no-xla", action="store_true", help="with --compare-precision: XLA off for every step")
    parser.add_argument("--compare-xla", action="store_true", help="XLA on and off for each profile's network")
    parser.add_argument("--compare-precision", action="store_true",
                        help="float32 against bfloat16 for each profile's network")
    parser.add_argument("--profiles", nargs="+", default=list(PROFILES), choices=list(PROFILES))
    parser.add_argument("--out", help="with --compare-precision or --compare-xla: also write the table (Markdown) here")
    args = parser.parse_args()
    if args.compare_precision or args.compare_xla:
        table = (compare_precision(args.steps, args.rounds, args.profiles,
                                   False if args.no_xla else True if args.xla else None)
                 if args.compare_precision else compare_xla(args.steps, args.rounds, args.profiles))
        print(table)
        if args.out:
            from srlib.files import write_text

            write_text(args.out, table + "\n")
            print(f"wrote {args.out}")
        return
    bare = seconds_per_step(bare_step(16, 64, 16, 96, False, args.xla), args.steps)
    print(f"bare network step: {bare:.3f} s")
    trainer = trainer_step_seconds(args.data, args.steps, args.xla)
    print(f"trainer step:      {trainer:.3f} s")
    print(f"trainer_s={trainer:.3f} bare_s={bare:.3f} ratio={trainer / bare:.3f}")


if __name__ == "__main__":
    main()
