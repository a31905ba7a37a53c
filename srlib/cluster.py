"""Where a stage trains: one device, several GPUs, several workers, or a TPU; and what the workers of one job share.

``choose_strategy()`` is the one place that picks the ``tf.distribute`` strategy. Several machines (or
processes) train together when ``TF_CONFIG`` describes a cluster, as TensorFlow documents it::

    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'

Every worker runs the same ``python -m srlib train ...`` command with its own ``task.index``; worker 0 (or
the task of type "chief") is the chief, which alone writes the run folder. With TF 2.21 / Keras 3.15
``Model.fit`` cannot train under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585; see
``tools/probe_multiworker.py``), so ``srlib.training`` runs ``SRGAN.train_step`` in a ``strategy.run`` loop there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass

import tensorflow as tf

from .errors import SrlibError

log = logging.getLogger(__name__)

# How often each worker checks that the others are alive (TensorFlow's default is 30 s): a killed worker stops the
# job this long after it died, instead of the others waiting for it in the next all-reduce.
HEALTH_CHECK_SECONDS = 5


@dataclass(frozen=True)
class Cluster:
    """The job this process belongs to, from ``TF_CONFIG``: its ``workers`` (1 without a cluster), this process's
    ``index`` among them, whether it is the ``chief`` and the ``job`` (an id of the cluster's addresses)."""

    workers: int = 1
    index: int = 0
    chief: bool = True
    job: str | None = None

    @classmethod
    def from_env(cls) -> "Cluster":
        """The cluster ``TF_CONFIG`` describes; one worker without it. A ``TF_CONFIG`` that is not a cluster
        spec as TensorFlow documents it is a one-line ``SrlibError``."""
        text = os.environ.get("TF_CONFIG", "").strip()
        if not text:
            return cls()
        try:
            spec = json.loads(text)
            cluster, task = spec["cluster"], spec["task"]
            kind, index = task["type"], int(task["index"])
            if index < 0:  # Python would count it from the end, and two workers would take one place
                raise IndexError(index)
            tasks = [f"{name}:{address}" for name in ("chief", "worker") for address in cluster.get(name, [])]
            position = (["chief"] * len(cluster.get("chief", [])) + ["worker"] * len(cluster.get("worker", [])))
            order = [i for i, name in enumerate(position) if name == kind][index]
        except (ValueError, KeyError, TypeError, IndexError, AttributeError):
            raise SrlibError("TF_CONFIG is not a cluster spec: it should read like {\"cluster\": {\"worker\": "
                             "[\"host1:port\", \"host2:port\"]}, \"task\": {\"type\": \"worker\", \"index\": 0}}, "
                             f"got {text[:120]}") from None
        job = hashlib.sha1(json.dumps(sorted(tasks)).encode()).hexdigest()[:12]
        return cls(workers=len(tasks), index=order, chief=order == 0, job=job)


def choose_strategy(cluster: Cluster | None = None) -> tf.distribute.Strategy:
    """The strategy a stage trains with: ``TPUStrategy`` on a TPU, ``MultiWorkerMirroredStrategy`` when
    ``TF_CONFIG`` names several workers, ``MirroredStrategy`` on a machine with several GPUs, else the default
    (one device)."""
    cluster = cluster or Cluster.from_env()
    if cluster.workers > 1:  # first: it must be made before TensorFlow runs anything in this process
        from tensorflow.python.distribute import collective_all_reduce_strategy as collective

        collective.CollectiveAllReduceExtended._check_health_interval = HEALTH_CHECK_SECONDS
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:  # "Collective ops must be configured at program startup"
            raise SrlibError(f"TF_CONFIG names a cluster of {cluster.workers} workers, but TensorFlow already ran in "
                             "this process (a notebook's kernel?): start each worker as a new process, e.g. python -m "
                             f"srlib train ... ({error})") from None
    if os.environ.get("TPU_NAME") or tf.config.list_physical_devices("TPU"):
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether ``strategy`` spans several processes (``Model.fit`` cannot train there)."""
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and strategy.extended._num_workers > 1


def all_workers_sum(strategy: tf.distribute.Strategy, values: list[float]) -> list[float]:
    """The sum over the workers of each of ``values`` (each worker gives its own): a barrier that also tells every
    worker what the others found, e.g. whether the chief could take the run folder."""
    local = tf.constant(values, tf.float64)

    @tf.function
    def reduce():
        def share():
            context = tf.distribute.get_replica_context()
            per_worker = max(1, strategy.num_replicas_in_sync // strategy.extended._num_workers)
            first = tf.equal(context.replica_id_in_sync_group % per_worker, 0)  # a worker's first device
            mine = tf.where(first, local, tf.zeros_like(local))  # each worker's values once, not once per device
            return context.all_reduce("SUM", mine)
        return strategy.experimental_local_results(strategy.run(share))[0]

    return [float(v) for v in reduce().numpy()]


def check_same_settings(strategy: tf.distribute.Strategy, cluster: Cluster, settings: dict) -> None:
    """Stop every worker with one line when the workers were started with different ``settings`` (a run's
    TrainConfig as a dict; ``vgg_weights`` "auto" may resolve differently on each machine, and ``progress`` only
    shows, so neither counts): each would otherwise read other samples or wait for the others forever."""
    shared = {k: v for k, v in settings.items() if k not in ("vgg_weights", "progress")}
    digest = int(hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:5], 16)
    workers, total, squares = all_workers_sum(strategy, [1.0, digest, digest * digest])  # exact: digest < 2**20
    if workers * squares != total * total:  # equality only when every worker's digest is the same
        raise SrlibError(f"worker {cluster.index} of {cluster.workers}: the workers were started with different "
                         "settings (--batch-size, --seed, --patch-size, ...): start every worker with the same command")


def broadcast_from_chief(strategy: tf.distribute.Strategy, variables: list) -> None:
    """Give every worker the chief's values of ``variables``: the chief resumed from the run folder (or started
    from the previous stage), the others take what it has, without reading the folder."""
    @tf.function
    def share():
        def take():
            context = tf.distribute.get_replica_context()
            chief = tf.equal(context.replica_id_in_sync_group, 0)
            return [context.all_reduce("SUM", tf.where(chief, tf.cast(v, tf.float64),
                                                       tf.zeros(v.shape, tf.float64))) for v in variables]
        return [strategy.experimental_local_results(t)[0] for t in strategy.run(take)]

    for variable, value in zip(variables, share()):
        variable.assign(tf.cast(value, variable.dtype))


def lost_worker(error: tf.errors.OpError, cluster: Cluster, step: int, saved: int | None) -> SrlibError:
    """The error of a worker whose job lost another worker (``error``, from a collective op) at ``step``, saying
    where a restart of every worker resumes: ``saved``, the chief's last checkpoint (None elsewhere)."""
    where = (f"the last saved step is {saved}" if saved is not None else "no step was saved yet" if cluster.chief
             else "the chief's run folder says which step was saved last")
    reason = re.sub(r"\{\{.*?\}\}\s*", "", error.message or "").strip()  # without {{function_node ...}}
    reason = reason.splitlines()[0][:200] if reason else type(error).__name__
    return SrlibError(f"worker {cluster.index} of {cluster.workers}: a worker of the job stopped ({reason}), so the "
                      f"job stops at step {step}; {where}: restart every worker with the same command to continue "
                      "from it")
