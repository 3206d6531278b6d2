"""Speed of the robot's control paths against emulated arms (`tramoe-bench robot`): the emulators run in their
own processes (as servos are separate hardware), so the numbers are this machine's driver and node costs over a
pty, not the emulator's. On a real bus, add the USB adapter's latency (set the FTDI latency timer to 1 ms).

- `driver_*`: one control cycle of both follower arms (sync write goals + sync read position and velocity of 6
  servos each), back to back: cycles per second and the cycle time p50 / p95.
- `teleop_*`: the leader -> follower loop of two pairs (4 sync reads, 2 sync writes per iteration), flat out,
  and paced at its 50 Hz target: achieved rate and slowest iteration.
- `joint_states_hz`: /joint_states received from `arm_node` (dynamixel backend, both arms, set to 100 Hz).
"""
from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from tramoe_ros.robot.calibration import load_calibration
from tramoe_ros.robot.driver import DynamixelArm, ServoBus
from tramoe_ros.robot.pacing import Pacer
from tramoe_ros.robot.teleop import ArmPairConfig, ArmPortConfig, CameraConfig, TeleopConfig, Teleoperator

ARMS = ("left", "right")
JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")


class EmulatorProcess:
    """`python -m tramoe_ros.robot.emulator` for `arms`, writing their calibrations into `folder`."""

    def __init__(self, arms: list[str], folder: Path, leader: bool = False):
        command = [sys.executable, "-m", "tramoe_ros.robot.emulator", "--arms", *arms, "--calibration-dir",
                   str(folder)] + (["--leader"] if leader else [])
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator did not start ({' '.join(command)})")
        self.ports: dict[str, str] = json.loads(line)
        self.calibrations = {arm: folder / f"{arm}.yaml" for arm in arms}

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(10)


def _bench_driver(followers: EmulatorProcess, seconds: float) -> dict:
    arms = [DynamixelArm(arm, ServoBus(followers.ports[arm]), load_calibration(followers.calibrations[arm]))
            for arm in ARMS]
    try:
        for arm in arms:
            arm.connect()
            arm.enable_torque()
        times = []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            for arm in arms:
                arm.cycle(arm.last.positions)
            times.append(time.perf_counter() - start)
    finally:
        for arm in arms:
            arm.close(torque_off=True)
    return {"driver_cycles_hz": round(len(times) / sum(times), 1),
            "driver_cycle_ms_p50": round(statistics.median(times) * 1e3, 2),
            "driver_cycle_ms_p95": round(float(np.percentile(times, 95)) * 1e3, 2)}


def _bench_teleop(leaders: EmulatorProcess, followers: EmulatorProcess, seconds: float) -> dict:
    config = TeleopConfig(
        arms=[ArmPairConfig(arm, ArmPortConfig(leaders.ports[f"{arm}_leader"], [1, 2, 3, 4, 5, 6],
                                               str(leaders.calibrations[f"{arm}_leader"])),
                            ArmPortConfig(followers.ports[arm], [1, 2, 3, 4, 5, 6], str(followers.calibrations[arm])),
                            [f"{arm}_{j}" for j in JOINTS]) for arm in ARMS],
        cameras=[CameraConfig("agentview", "0")],  # required by the config; Teleoperator opens no camera
        on_exit="torque_off")
    teleop = Teleoperator(config)
    try:
        teleop.connect()
        steps = []
        end = time.monotonic() + seconds / 2
        while time.monotonic() < end:
            start = time.perf_counter()
            teleop.step()
            steps.append(time.perf_counter() - start)
        count, slowest, pacer = 0, 0.0, Pacer(config.rate_hz)
        started = time.monotonic()
        while time.monotonic() < started + seconds / 2:  # paced as tramoe-teleop paces it
            begin = time.perf_counter()
            teleop.step()
            slowest = max(slowest, time.perf_counter() - begin)
            count += 1
            pacer.wait()
        paced = count / (time.monotonic() - started)
    finally:
        teleop.close()
    return {"teleop_flat_out_hz": round(len(steps) / sum(steps), 1),
            "teleop_step_ms_p95": round(float(np.percentile(steps, 95)) * 1e3, 2),
            "teleop_target_hz": config.rate_hz, "teleop_achieved_hz": round(paced, 1),
            "teleop_slowest_step_ms": round(slowest * 1e3, 2)}


def _bench_joint_states(followers: EmulatorProcess, folder: Path, seconds: float) -> dict:
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from sensor_msgs.msg import JointState

    from tramoe_ros.ros import topics
    from tramoe_ros.ros.qos import RELIABLE_QOS

    dynamixel = {"arms": list(ARMS), "joint_states_rate_hz": 100.0, "on_shutdown": "torque_off"}
    for arm in ARMS:
        dynamixel[arm] = {"port": followers.ports[arm], "ids": [1, 2, 3, 4, 5, 6],
                          "calibration": str(followers.calibrations[arm]),
                          "joint_names": [f"{arm}_{j}" for j in JOINTS]}
    params = folder / "arm_node.yaml"
    params.write_text(yaml.safe_dump({"arm_node": {"ros__parameters": {
        "backend": "dynamixel", "action_dim": 12, "dynamixel": dynamixel}}}))
    node_process = subprocess.Popen([sys.executable, "-m", "tramoe_ros.nodes.arm_node", "--ros-args",
                                     "--params-file", str(params)], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("bench_joint_states", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    stamps: list[float] = []
    node.create_subscription(JointState, topics.JOINT_STATES, lambda _: stamps.append(time.monotonic()),
                             RELIABLE_QOS)
    try:
        deadline = time.monotonic() + 60
        while len(stamps) < 20 and time.monotonic() < deadline and node_process.poll() is None:
            executor.spin_once(timeout_sec=0.05)
        first = len(stamps)
        start = time.monotonic()
        while time.monotonic() < start + seconds:
            executor.spin_once(timeout_sec=0.05)
        rate = (len(stamps) - first) / (time.monotonic() - start)
    finally:
        node_process.send_signal(signal.SIGINT)
        node_process.wait(20)
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    return {"joint_states_target_hz": 100.0, "joint_states_hz": round(rate, 1)}


def bench_robot(seconds: float = 3.0) -> dict:
    """All three measurements, each over `seconds`."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        followers = EmulatorProcess(list(ARMS), folder)
        leaders = EmulatorProcess([f"{arm}_leader" for arm in ARMS], folder, leader=True)
        try:
            result = _bench_driver(followers, seconds)
            result.update(_bench_teleop(leaders, followers, seconds))
            result.update(_bench_joint_states(followers, folder, seconds))
        finally:
            followers.stop()
            leaders.stop()
    return result
