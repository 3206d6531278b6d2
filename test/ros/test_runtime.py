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
