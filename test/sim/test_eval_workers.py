"""Evaluation workers do not outlive the evaluation that started them (it may be stopped with SIGTERM or SIGKILL,
which, unlike Ctrl-C, reach only the main process)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

PARENT = textwrap.dedent("""
    import multiprocessing, os, sys, time
    from concurrent.futures import ProcessPoolExecutor
    from tramoe_ros.sim.evaluate import exit_with_parent

    def long_episode():
        time.sleep(120)

    if __name__ == "__main__":
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent,
                                   initargs=(0.1,))
        print(pool.submit(os.getpid).result(), flush=True)
        pool.submit(long_episode)
        time.sleep(120)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers signal 0 until reaped; it no longer runs.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(") ")[1][0] != "Z"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_worker_exits_when_the_evaluation_is_killed(tmp_path, sig):
    script = tmp_path / "parent.py"
    script.write_text(PARENT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        worker = int(parent.stdout.readline())
        time.sleep(0.5)
        assert _alive(worker), "the worker should run while the evaluation does"
        parent.send_signal(sig)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker), f"worker {worker} still runs after its parent got {sig.name}"
    finally:
        parent.kill()
