"""What tf.data's autotuning thread costs the training data: the seconds that deleting an iterator waits, and the
patches per second, with the thread (TensorFlow's default) and without it (``srlib.data.without_autotuning``, what
``training_dataset`` and the trainer use).

    python benchmarks/bench_autotuning.py [--data ../shared/data/train/T91] [--use 3] [--iterators 5]
                                          [--degradation bicubic]

Each of ``--iterators`` iterators of ``training_dataset`` per setting is read for ``--use`` seconds and then
deleted; the table gives the median rate while reading, and the longest and the total wait on deletion. With the
thread, the wait is what is left of its optimization period, which doubles from 10 ms up to 60 s while the
iterator lives, so a longer ``--use`` gives longer waits. The two settings alternate in one process, so the
machine's load falls on both alike.
"""

import argparse
import statistics
import time

from srlib.data import PatchSource, training_dataset  # first: srlib quiets TensorFlow's C++ log
from srlib.degradation import DEGRADATIONS

import tensorflow as tf

BATCH = 16


def with_autotuning(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with tf.data's autotuning thread turned back on (TensorFlow's default)."""
    options = tf.data.Options()
    options.autotune.enabled = True
    return dataset.with_options(options)


def read_then_delete(source: PatchSource, autotuning: bool, use: float, degradation: str) -> tuple[float, float]:
    """(patches per second over ``use`` seconds of reading an iterator of the training data, after 3 batches of
    warm-up; seconds that deleting the iterator then takes)."""
    dataset = training_dataset(source, scale=4, batch_size=BATCH, degradation=degradation)
    batches = iter(with_autotuning(dataset) if autotuning else dataset)
    for _ in range(3):
        next(batches)
    start, read = time.perf_counter(), 0
    while time.perf_counter() - start < use:
        next(batches)
        read += 1
    rate = read * BATCH / (time.perf_counter() - start)
    start = time.perf_counter()
    del batches
    return rate, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data/train/T91")
    parser.add_argument("--use", type=float, default=3.0, help="seconds each iterator is read before it is deleted")
    parser.add_argument("--iterators", type=int, default=5, help="iterators per setting")
    parser.add_argument("--degradation", default="bicubic", choices=DEGRADATIONS, help="how the LR patches are made")
    args = parser.parse_args()
    source = PatchSource([args.data], patch_size=96)
    measured = {True: [], False: []}
    for _ in range(args.iterators):
        for autotuning in (True, False):
            measured[autotuning].append(read_then_delete(source, autotuning, args.use, args.degradation))
    print(f"training_dataset of {args.data}: HR 96, batch {BATCH}, {args.degradation} LR; {args.iterators} iterators per "
          f"setting, each read for {args.use:g} s and then deleted\n")
    print("| autotuning thread | patches/s while reading (median) | longest wait on deletion | all waits |")
    print("|---|---|---|---|")
    for autotuning, label in ((True, "on (TensorFlow's default)"), (False, "off (srlib.data.without_autotuning)")):
        rates, waits = zip(*measured[autotuning])
        print(f"| {label} | {statistics.median(rates):.0f} | {max(waits):.2f} s | {sum(waits):.2f} s |")


if __name__ == "__main__":
    main()
