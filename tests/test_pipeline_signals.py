"""Ctrl-C or ``kill`` to ``srlib pipeline``: the kernel's running cell is interrupted (a training cell saves its
step and stops) and the pipeline says where it stopped, with the shell's exit status."""

import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from srlib import cli
from srlib.errors import Stopped, TrainingStopped
from srlib.pipeline import _interrupting, _stopped

# a stand-in for the kernel: it writes down each SIGINT it gets and keeps running
KERNEL = """
import signal, sys, time
signal.signal(signal.SIGINT, lambda s, f: print("SIGINT", flush=True))
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture
def kernel():
    process = subprocess.Popen([sys.executable, "-c", KERNEL], stdout=subprocess.PIPE, text=True,
                               start_new_session=True)  # as jupyter_client starts kernels: Ctrl-C does not reach them
    assert process.stdout.readline() == "ready\n"
    manager = SimpleNamespace(latest=SimpleNamespace(has_kernel=True, provisioner=SimpleNamespace(pid=process.pid)))
    yield process, manager
    process.kill()
    process.wait()


@pytest.fixture
def terminal_signals():
    """SIGINT and SIGTERM as in a terminal (pytest may run as a background job, where SIGINT is ignored)."""
    previous = {s: signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_the_pipeline_interrupts_the_kernel_once_and_is_remembered(signum, kernel, terminal_signals):
    process, manager = kernel
    with _interrupting(manager) as received:
        os.kill(os.getpid(), signum)  # this process goes on: the kernel's cell decides how the notebook ends
        time.sleep(0.2)
    assert received == [signum]
    assert process.stdout.readline() == "SIGINT\n"  # the kernel was interrupted, as Jupyter's button does
    assert process.poll() is None
    assert signal.getsignal(signal.SIGINT) is signal.SIG_DFL and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_before_the_kernel_runs_interrupts_the_pipeline_itself(terminal_signals):
    with pytest.raises(KeyboardInterrupt):
        with _interrupting(SimpleNamespace(latest=None)):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_the_pipeline_ignores_stays_ignored(kernel):
    process, manager = kernel
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # e.g. a job started with nohup or in the background
    try:
        with _interrupting(manager) as received:
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)
        assert received == []
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_what_the_pipeline_says_when_stopped(capsys, monkeypatch):
    saved = SimpleNamespace(evalue="stopped at step 64 by SIGINT, saved; rerun the same command to continue")
    stopped = _stopped(saved, [signal.SIGTERM], "02_pretrain_sr_vgg")
    assert isinstance(stopped, TrainingStopped) and stopped.exit_code == 143
    assert str(stopped) == "stopped at step 64 by SIGTERM, saved; rerun the same command to continue"
    elsewhere = _stopped(SimpleNamespace(evalue=""), [signal.SIGINT], "06_benchmarks")
    assert type(elsewhere) is Stopped and elsewhere.exit_code == 130
    assert str(elsewhere).startswith("stopped by SIGINT in 06_benchmarks.ipynb; rerun the same command to continue")

    def run_pipeline(*args, **kwargs):
        raise stopped
    monkeypatch.setattr("srlib.pipeline.run_pipeline", run_pipeline)
    assert cli.main(["pipeline", "--profile", "smoke"]) == 143
    assert capsys.readouterr().err == "stopped at step 64 by SIGTERM, saved; rerun the same command to continue\n"
