"""Which Keras path trains under ``tf.distribute.MultiWorkerMirroredStrategy`` with the pinned TF / Keras.

    python tools/probe_multiworker.py [fit|loop]

Starts two worker processes on 127.0.0.1 (CPU, free ports, ``TF_CONFIG``), each building a one-layer Keras
model under the strategy, and tries ``Model.fit`` ("fit") or a ``strategy.run(model.train_step)`` loop inside a
``tf.function`` ("loop"); prints each worker's last line (the loss after 3 steps, or the error).
"""

import json
import os
import socket
import subprocess
import sys

WORKER = r"""
import json, os, sys
import numpy as np, tensorflow as tf, keras
strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
rng = np.random.default_rng(0)
x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(4)
try:
    if sys.argv[1] == "fit":
        history = model.fit(data, steps_per_epoch=3, epochs=1, verbose=0)
        print("fit ok, loss", history.history["loss"][-1])
    else:
        batches = iter(strategy.experimental_distribute_dataset(data))
        @tf.function
        def step(batch):
            logs = strategy.run(model.train_step, args=(batch,))
            return strategy.reduce("MEAN", logs["loss"], axis=None)
        for _ in range(3):
            loss = step(next(batches))
        print("loop ok, loss", float(loss))
except Exception as error:
    print(f"{type(error).__name__}: {' '.join(str(error).split())[:500]}")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(path: str) -> None:
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    processes = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "",
               "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})}
        processes.append(subprocess.Popen([sys.executable, "-c", WORKER, path], env=env, stdout=subprocess.PIPE,
                                          stderr=subprocess.DEVNULL, text=True))
    for index, process in enumerate(processes):
        out = process.communicate(timeout=300)[0].strip().splitlines()
        print(f"{path}: worker {index}: {out[-1] if out else '(no output)'}")


if __name__ == "__main__":
    for path in sys.argv[1:] or ["fit", "loop"]:
        main(path)
