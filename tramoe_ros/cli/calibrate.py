"""`tramoe-calibrate`: calibrate one Koch arm (leader or follower) step by step and write its calibration file.

    tramoe-calibrate --port /dev/serial/by-id/usb-...-if00-port0 --arm left_follower \\
        --out config/robot/calibration/left_follower.yaml

The arm's torque is turned off (hold it); then three poses, each confirmed with Enter:
  1. the zero pose: every joint at its zero angle, gripper closed;
  2. the rotated pose: every joint a quarter turn in its positive direction, gripper open;
  3. a sweep: move every joint slowly through its whole range, open and close the gripper fully.
Steps 1 and 2 give each servo's homing offset and direction, step 3 the joint ranges (the safety limits the
arm backend and tramoe-teleop clamp to). Leader and follower arms must be calibrated to the same poses.
"""
from __future__ import annotations

import argparse
import math
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.calibration import (ArmCalibration, CalibrationError, compute_calibration,
                                          save_calibration)
from tramoe_ros.robot.driver import DynamixelError, ServoBus, configure_servos

SWEEP_PERIOD_S = 0.02  # position sampling during the range sweep
POSE_READS = 5  # reads averaged per pose

STEPS = {
    "zero": "Step 1/3, zero pose: put every joint at its zero angle (Koch arm: upper arm and forearm level and "
            "pointing forward, wrist straight, gripper closed). Press Enter when it is there.",
    "rotated": "Step 2/3, rotated pose: from the zero pose turn every joint a quarter turn (90 deg) in its "
               "positive direction (pan left, lift up, elbow up, wrist up, roll clockwise seen from behind) and "
               "open the gripper. Press Enter when it is there.",
    "sweep": "Step 3/3, ranges: move every joint slowly through its whole range, one after another, and open and "
             "close the gripper fully. Press Enter when done.",
}


def _positions(bus: ServoBus, ids: list[int]) -> np.ndarray:
    """Present positions (J,) int64 ticks."""
    data = bus.sync_read(ids, ct.PRESENT_POSITION, ct.PRESENT_POSITION)
    return np.array([ct.PRESENT_POSITION.decode(data[i]) for i in ids], np.int64)


def _pose(bus: ServoBus, ids: list[int]) -> np.ndarray:
    return np.round(np.mean([_positions(bus, ids) for _ in range(POSE_READS)], axis=0)).astype(np.int64)


def _sweep(bus: ServoBus, ids: list[int], prompt: Callable[[str], str]) -> tuple[np.ndarray, np.ndarray]:
    """The extremes (J,), (J,) of the positions sampled while the user sweeps the joints (until `prompt` returns)."""
    low = high = _positions(bus, ids)
    done = threading.Event()
    failure: list[DynamixelError] = []

    def sample() -> None:
        nonlocal low, high
        while not done.wait(SWEEP_PERIOD_S):
            try:
                ticks = _positions(bus, ids)
            except DynamixelError as e:
                failure.append(e)
                return
            low, high = np.minimum(low, ticks), np.maximum(high, ticks)

    sampler = threading.Thread(target=sample, name="calibration-sweep", daemon=True)
    sampler.start()
    try:
        prompt(STEPS["sweep"])
    finally:
        done.set()
        sampler.join()
    if failure:
        raise failure[0]
    return low, high


def _report(calibration: ArmCalibration) -> str:
    lines = [f"{'servo':>5}  {'model':<11} {'offset':>7}  {'inverted':<8}  range"]
    for j in calibration.joints:
        span = (f"{math.degrees(j.lower):7.1f} .. {math.degrees(j.upper):6.1f} deg"
                + ("  (gripper: closed .. open)" if j.gripper else ""))
        lines.append(f"{j.id:>5}  {j.model:<11} {j.homing_offset:>7}  {str(j.inverted):<8}  {span}")
    return "\n".join(lines)


def calibrate(bus: ServoBus, arm: str, ids: list[int], gripper_id: int | None,
              prompt: Callable[[str], str], log: Callable[[str], None]) -> ArmCalibration:
    """Run the three steps on an open bus and return the calibration."""
    models = []
    for servo_id in ids:
        models.append(ct.model_name(bus.ping(servo_id)))
    log("found " + ", ".join(f"servo {i}: {m}" for i, m in zip(ids, models)))
    unknown = [f"servo {i} ({m})" for i, m in zip(ids, models) if m not in ct.MODELS_BY_NAME]
    if unknown:
        raise DynamixelError(f"{', '.join(unknown)}: not a servo of the Koch arms "
                             f"({', '.join(ct.MODELS_BY_NAME)})")
    # Raw ticks: no homing offset, no reversal, multi-turn counting (a joint may cross the turn boundary).
    configure_servos(bus, {i: {ct.OPERATING_MODE: ct.MODE_EXTENDED_POSITION, ct.DRIVE_MODE: 0, ct.HOMING_OFFSET: 0}
                           for i in ids})
    for servo_id in ids:
        bus.write(servo_id, ct.TORQUE_ENABLE, 0)
    log("torque is off: hold the arm, it can fall.")
    prompt(STEPS["zero"])
    zero = _pose(bus, ids)
    prompt(STEPS["rotated"])
    rotated = _pose(bus, ids)
    low, high = _sweep(bus, ids, prompt)
    return compute_calibration(arm, ids, models, zero, rotated, np.minimum(low, np.minimum(zero, rotated)),
                               np.maximum(high, np.maximum(zero, rotated)), gripper_id)


def main(argv: list[str] | None = None, prompt: Callable[[str], str] | None = None) -> int:
    """`prompt`: shows a step and waits for the user (default: `input`, i.e. Enter)."""
    parser = argparse.ArgumentParser(prog="tramoe-calibrate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", required=True, help="the arm's serial port")
    parser.add_argument("--arm", required=True, help="name stored in the file, e.g. left_follower")
    parser.add_argument("--out", required=True, type=Path, help="calibration file to write (YAML)")
    parser.add_argument("--ids", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6], help="servo IDs in joint order")
    parser.add_argument("--gripper-id", type=int, default=None, help="the gripper's servo (default: the last ID)")
    parser.add_argument("--no-gripper", action="store_true", help="the arm has no gripper")
    parser.add_argument("--baudrate", type=int, default=1_000_000)
    parser.add_argument("--latency-timer-ms", type=float, default=16.0,
                        help="the USB adapter's latency timer (answers are awaited for twice this + 2 ms)")
    parser.add_argument("--force", action="store_true", help="overwrite --out without asking")
    args = parser.parse_args(argv)
    prompt = prompt or (lambda message: input(message + " "))
    gripper_id = None if args.no_gripper else (args.gripper_id if args.gripper_id is not None else args.ids[-1])
    if gripper_id is not None and gripper_id not in args.ids:
        print(f"tramoe-calibrate: --gripper-id {gripper_id} is not one of --ids {args.ids}", file=sys.stderr)
        return 2
    if len(set(args.ids)) != len(args.ids):
        print(f"tramoe-calibrate: --ids repeat: {args.ids}", file=sys.stderr)
        return 2
    bus = ServoBus(args.port, args.baudrate, latency_timer_ms=args.latency_timer_ms)
    try:
        if args.out.exists() and not args.force:
            if prompt(f"{args.out} exists. Overwrite it? [y/N]").strip().lower() not in ("y", "yes"):
                print("tramoe-calibrate: nothing written")
                return 1
        bus.open()
        calibration = calibrate(bus, args.arm, args.ids, gripper_id, prompt, print)
    except (DynamixelError, CalibrationError) as e:
        print(f"tramoe-calibrate: {e}; nothing written", file=sys.stderr)
        return 1
    except (EOFError, KeyboardInterrupt):
        print("\ntramoe-calibrate: aborted; nothing written", file=sys.stderr)
        return 1
    finally:
        bus.close()
    print(_report(calibration))
    save_calibration(calibration, args.out)
    print(f"tramoe-calibrate: wrote {args.out}")
    return 0
