"""A node process stopped by Ctrl-C (SIGINT) while it is still starting (loading models or a simulator) exits
quietly with status 0, and the node it was making is destroyed in order."""
import signal
import subprocess
import sys
import textwrap
import time

NODE_SCRIPT = textwrap.dedent("""
    import sys, time
    from rclpy.node import Node
    from tramoe_ros.ros.runtime import run_node

    class SlowNode(Node):
        def __init__(self):
            super().__init__("slow_to_start")
            print("loading", flush=True)
            time.sleep(3.0)  # what loading models or LIBERO does to a node's start

        def destroy_node(self):
            open(sys.argv[1], "w").write("destroyed")
            super().destroy_node()

    run_node(SlowNode, "slow_to_start", [])
""")


def test_ctrl_c_during_start_up_ends_the_node_quietly(tmp_path):
    marker = tmp_path / "destroyed"
    process = subprocess.Popen([sys.executable, "-c", NODE_SCRIPT, str(marker)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    line = ""
    while "loading" not in line and time.monotonic() < deadline:
        line = process.stdout.readline()
    assert "loading" in line, "the node did not start loading"
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "stopped while starting" in output
    assert marker.read_text() == "destroyed"


def _catches_sigterm(pid: int) -> bool:
    """Whether the process handles SIGTERM (SigCgt in /proc/<pid>/status). Python catches SIGINT from its start,
    SIGTERM only when a program asks: tramoe_ros.nodes.start sets both, SIGINT first."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_ctrl_c_while_a_node_imports_ends_it_quietly():
    """`python -m tramoe_ros.nodes.start <node>` (what the console scripts and ProcessGraph run) catches the signal
    before the node's module imports torch and the models' code."""
    process = subprocess.Popen([sys.executable, "-m", "tramoe_ros.nodes.start", "track_node"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while process.poll() is None and not _catches_sigterm(process.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)  # the handler is in; the node's imports (seconds of them) have just begun
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert "[track_node] stopped while starting" in output
