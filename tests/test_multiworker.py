"""Training on a cluster: two worker processes on 127.0.0.1 (TF_CONFIG, MultiWorkerMirroredStrategy, CPU).

One set of runs serves every test (each TensorFlow process start costs seconds of CPU): two workers train a tiny
network until worker 1 is killed with SIGKILL, then both are started again with the same command and finish;
a one-process run with the same global batch and seed is the reference.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from srlib.recipes import TrainConfig
from tiny_runs import write_train_folder

ROOT = Path(__file__).resolve().parent.parent
STEPS = 40
SIZES = dict(scale=2, blocks=1, filters=4, batch_size=4, patch_size=16)  # global batch 4: 2 patches per worker
FLAGS = [f"--{k.replace('_', '-')}={v}" for k, v in SIZES.items()]
FLAGS += ["--checkpoint-every=3", "--validate-every=1000", "--vgg-weights=none", "--precision=float32"]
LOSSES = ("content", "g_loss")  # g_grad_norm is each replica's norm, averaged: not the one-process norm


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _steps(history: Path) -> list[int]:
    if not history.exists():
        return []
    return [json.loads(line)["step"] for line in history.read_text().splitlines() if line.endswith("}")]


def _start_workers(command, addresses, tmp_dirs, logs: Path):
    """The workers of ``command``, their output going to files in ``logs`` (a pipe that nobody reads while the
    test waits for another worker could fill up and stop its worker)."""
    processes = []
    for index, tmp in enumerate(tmp_dirs):
        spec = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp),
               "TF_CONFIG": json.dumps(spec)}
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"worker{index}.out", "w") as out, open(logs / f"worker{index}.err", "w") as err:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=err, text=True)
        process.logs = logs / f"worker{index}"
        processes.append(process)
    return processes


def _finish(process, timeout: float) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a worker of ``_start_workers`` once it has ended."""
    code = process.wait(timeout=timeout)
    return code, process.logs.with_suffix(".out").read_text(), process.logs.with_suffix(".err").read_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The two-worker job (killed, then restarted) and the one-process reference: their outputs and folders."""
    from srlib.training import train_stage

    root = tmp_path_factory.mktemp("multiworker")
    (root / "train").mkdir()
    data = write_train_folder(root / "train")
    run, tmp_dirs = root / "run", [root / "tmp0", root / "tmp1"]
    for folder in tmp_dirs:
        folder.mkdir()
    command = [sys.executable, "-m", "srlib", "train", "--recipe", "paper", "--stage", "mse", "--data", str(data),
               "--steps", str(STEPS), "--run-dir", str(run), *FLAGS, "--xla"]  # not used across workers: said once
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    out = {"run": run, "tmp_dirs": tmp_dirs}

    chief, worker = _start_workers(command, addresses, tmp_dirs, root / "logs" / "first")
    deadline = time.time() + 120
    while time.time() < deadline and chief.poll() is None and len(_steps(run / "history.jsonl")) < 4:
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    out["killed_at"] = max(_steps(run / "history.jsonl"), default=0)
    out["killed_scratch"] = sorted(str(p.relative_to(tmp_dirs[1])) for p in tmp_dirs[1].rglob("ckpt-*.index"))
    out["chief_after_kill"] = _finish(chief, 120)[::2]  # (exit code, stderr)

    restarted = _start_workers(command, addresses, tmp_dirs, root / "logs" / "restarted")
    out["restarted"] = [_finish(p, 180) for p in restarted]
    out["chief_pid"] = restarted[0].pid

    reference = root / "reference"  # one process, the same global batch and seed
    train_stage("paper", "mse", data, reference, STEPS, TrainConfig(
        **SIZES, checkpoint_every=3, validate_every=1000, vgg_weights=None, precision="float32", progress=False))
    out["reference"] = reference
    return out


def test_a_tf_config_that_is_not_a_cluster_spec_is_a_one_line_error(monkeypatch):
    from srlib.cluster import Cluster
    from srlib.errors import SrlibError

    for index in (3, -1):  # past the end, or before it (which Python would read from the end)
        monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": '
                           f'{index}}}}}')
        with pytest.raises(SrlibError, match=r"^TF_CONFIG is not a cluster spec: it should read like"):
            Cluster.from_env()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, '
                                    '"task": {"type": "worker", "index": 1}}')
    cluster = Cluster.from_env()
    assert (cluster.workers, cluster.index, cluster.chief) == (3, 2, False)


def test_the_lock_lets_the_workers_of_its_job_in_and_no_one_else(tmp_path):
    from srlib.run_folder import RunFolder, RunFolderBusy, check_job_lock

    folder = RunFolder(tmp_path, "mse", job="abc123")  # the chief of job abc123 holds the folder
    try:
        check_job_lock(tmp_path, "abc123")
        with pytest.raises(RunFolderBusy, match="not by the chief of this job"):
            check_job_lock(tmp_path, "other")
    finally:
        folder.close()
    check_job_lock(tmp_path, "other")  # nobody holds it: a worker writes nothing there anyway


def test_a_killed_worker_stops_the_job_with_a_clear_message(runs):
    code, stderr = runs["chief_after_kill"]
    assert 4 <= runs["killed_at"] < STEPS, "the job ended before a worker could be killed"
    assert code == 2, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: worker 0 of 2: a worker of the job stopped")
    assert "restart every worker with the same command" in last


def test_the_workers_train_together_and_finish_at_the_same_step(runs):
    for code, stdout, stderr in runs["restarted"]:
        assert code == 0, stderr[-2000:]
        assert stdout.strip().splitlines()[-1].startswith(f"paper/mse: {STEPS} steps")
        assert stderr.count("--xla is not used in a multi-worker job") == 1
    saved = re.search(r"the last saved step is (\d+)", runs["chief_after_kill"][1]).group(1)
    # worker 1 took the step (and the weights) the chief restored, through the collective
    assert f"worker 1 of 2: paper/mse starts at step {saved} with the chief" in runs["restarted"][1][2]


def test_the_resumed_job_has_each_step_once_and_equals_a_one_process_run(runs):
    history = runs["run"] / "history.jsonl"
    assert _steps(history) == list(range(1, STEPS + 1))
    rows = [json.loads(line) for line in history.read_text().splitlines()]
    reference = [json.loads(line) for line in (runs["reference"] / "history.jsonl").read_text().splitlines()]
    assert len(rows) == len(reference)
    for row, expected in zip(rows, reference):
        for key in LOSSES:  # the collective ran: without summed gradients the losses part after step 1
            assert row[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-7), (row["step"], key)


def test_only_the_chief_writes_the_run_folder(runs):
    def files(folder):
        return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()
                      and "tfevents" not in p.name and p.name != ".lock")

    assert files(runs["run"]) == files(runs["reference"])
    assert len(list((runs["run"] / "tensorboard" / "mse").glob("events.out.tfevents.*"))) == 2  # run, resumed run
    holder = (runs["run"] / ".lock").read_text()
    assert holder.startswith(f"process {runs['chief_pid']} ") and "chief of job" in holder
    # the other worker checkpoints into its own temporary folder (as TensorFlow's guide says), removed when it ends
    assert any(path.endswith("mse/checkpoints/ckpt-3.index") for path in runs["killed_scratch"])
    for tmp in runs["tmp_dirs"]:  # (TensorFlow's autograph leaves its own files there)
        assert list(tmp.glob("srlib-*")) == []


def test_workers_started_with_different_settings_stop_with_one_line(tmp_path):
    (tmp_path / "train").mkdir()
    data = write_train_folder(tmp_path / "train")
    addresses = [f"127.0.0.1:{_free_port()}" for _ in range(2)]
    processes = []
    for index, seed in enumerate((0, 1)):  # worker 1 was given another --seed
        command = [sys.executable, "-m", "srlib", "train", "--recipe", "paper", "--stage", "mse", "--data", str(data),
                   "--steps", "4", "--run-dir", str(tmp_path / "run"), *FLAGS, f"--seed={seed}"]
        spec = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        (tmp_path / f"tmp{index}").mkdir()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TMPDIR": str(tmp_path / f"tmp{index}"),
               "TF_CONFIG": json.dumps(spec)}
        processes.append(subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    for index, process in enumerate(processes):
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 2, stderr[-2000:]
        assert stderr.strip().splitlines()[-1] == (
            f"error: worker {index} of 2: the workers were started with different settings (--batch-size, --seed, "
            "--patch-size, ...): start every worker with the same command")
    assert _steps(tmp_path / "run" / "history.jsonl") == []  # no step was trained
