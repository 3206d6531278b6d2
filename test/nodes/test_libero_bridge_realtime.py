"""The LIBERO bridge in real time with a camera rate: it steps and publishes joint states at its control rate, and
renders and publishes the cameras only on every (control rate / camera rate)-th step, each image stamped like the
joint state of its step."""
import importlib.util

import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from tramoe_msgs.msg import EpisodeStatus, PolicyAction

from node_fixtures import NodeProcess, ros_args
from tramoe_ros.ros import topics
from tramoe_ros.ros.conversions import action_to_msg, stamp_to_ns
from tramoe_ros.ros.qos import IMAGE_QOS, RELIABLE_QOS, STATUS_QOS
from tramoe_ros.sim.libero_env import NOOP_ACTION

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libero") is None, reason="LIBERO is not installed")

CONTROL_HZ, CAMERA_HZ, STEPS = 10.0, 2.5, 20


def test_cameras_render_at_their_rate_beside_the_control_rate(driver, tmp_path):
    joint_stamps, image_stamps, statuses = [], {"agentview": [], "eye_in_hand": []}, []
    driver.node.create_subscription(JointState, topics.JOINT_STATES,
                                    lambda m: joint_stamps.append(stamp_to_ns(m.header.stamp)), RELIABLE_QOS)
    for view, stamps in image_stamps.items():
        driver.node.create_subscription(Image, topics.camera_image(view),
                                        lambda m, s=stamps: s.append(stamp_to_ns(m.header.stamp)), IMAGE_QOS)
    driver.node.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, statuses.append, STATUS_QOS)
    actions = driver.node.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)
    bridge = NodeProcess("tramoe_ros.nodes.libero_bridge_node", ros_args(
        {"mode": "realtime", "control_rate_hz": CONTROL_HZ, "camera_rate_hz": CAMERA_HZ, "max_steps": STEPS}),
        tmp_path / "bridge.log")
    try:
        driver.spin_until(lambda: statuses or not bridge.alive(), 240, "the bridge's first observation")
        assert bridge.alive(), bridge.output()
        # The world waits for its first action; one starts the episode, then the bridge holds on its own.
        actions.publish(action_to_msg(NOOP_ACTION, statuses[-1].header, 0.0, "test"))
        driver.spin_until(lambda: any(s.done for s in statuses), 60, "the episode to end")
        driver.spin_for(0.5)
    finally:
        assert bridge.stop() == 0, bridge.output()

    step_of = {stamp_to_ns(s.header.stamp): s.step for s in statuses if s.step > 0}
    assert sorted(step_of.values()) == list(range(1, STEPS + 1))
    every = round(CONTROL_HZ / CAMERA_HZ)
    for view, stamps in image_stamps.items():
        # Every image belongs to a step's observation (the same stamp as its joint state) ...
        assert set(stamps) <= set(joint_stamps), view
        # ... and exactly every `every`-th step renders (a camera rate in simulated time).
        assert sorted(step_of[s] for s in set(stamps) if s in step_of) == list(range(every, STEPS + 1, every)), view


def answer_then_stop(driver, tmp_path, max_steps: int, command_timeout_s: float,
                     planned: np.ndarray | None = None) -> list[EpisodeStatus]:
    """A real-time bridge at CONTROL_HZ whose every observation gets a no-op action (with `planned` actions after
    it) until step 8, then nothing: the statuses of the whole episode."""
    statuses: list[EpisodeStatus] = []
    answering = {"on": True}
    actions = driver.node.create_publisher(PolicyAction, topics.LIBERO_ACTION, RELIABLE_QOS)

    def answer(status: EpisodeStatus) -> None:
        statuses.append(status)
        if answering["on"] and not status.done:
            actions.publish(action_to_msg(NOOP_ACTION, status.header, 0.0, "test", planned=planned))

    driver.node.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, answer, STATUS_QOS)
    bridge = NodeProcess("tramoe_ros.nodes.libero_bridge_node", ros_args(
        {"mode": "realtime", "control_rate_hz": CONTROL_HZ, "camera_rate_hz": 0.0, "max_steps": max_steps,
         "command_timeout_s": command_timeout_s, "action_grace_s": 0.05}), tmp_path / "bridge.log")
    try:
        driver.spin_until(lambda: any(s.step >= 8 for s in statuses) or not bridge.alive(), 240, "8 answered steps")
        assert bridge.alive(), bridge.output()
        answering["on"] = False
        driver.spin_until(lambda: any(s.done for s in statuses), 60, "the episode to end")
    finally:
        assert bridge.stop() == 0, bridge.output()
    return statuses


def test_each_step_applies_the_newest_action_repeats_it_briefly_then_holds(driver, tmp_path):
    """Answered observations are fresh steps (the status names the observation the applied action came from);
    when answers stop, the standing action is repeated until `command_timeout_s`, then the arm holds (stamp 0)."""
    statuses = answer_then_stop(driver, tmp_path, max_steps=16, command_timeout_s=0.25)
    stepped = {s.step: s for s in statuses if s.step > 0}
    observation_of = {s.step: stamp_to_ns(s.header.stamp) for s in statuses}  # the last one of each step
    assert sorted(stepped) == list(range(1, 17))
    kind = {k: "held" if stamp_to_ns(s.action_stamp) == 0 else "repeated" if s.action_repeated else "fresh"
            for k, s in stepped.items()}
    fresh = [k for k in stepped if kind[k] == "fresh"]
    # The world waits for its first action; a fresh action was computed from an observation of an earlier step,
    # and each one is newer than the last (an answer that came late is applied late, never out of order).
    assert fresh[0] == 1
    sources = [stamp_to_ns(stepped[k].action_stamp) for k in fresh]
    assert all(source in {observation_of[j] for j in range(k)} for k, source in zip(fresh, sources))
    assert sources == sorted(set(sources))
    # While answered, most steps are fresh (an answer late on a loaded machine may make one repeat).
    assert len(fresh) >= 5
    # A step without a new action repeats the newest one for at most 0.25 s (two or three steps at 10 Hz) ...
    run = 0
    for k in range(2, 17):
        run = run + 1 if kind[k] == "repeated" else 0
        assert run <= 3, kind
        if kind[k] == "repeated":
            standing = max(j for j in fresh if j < k)
            assert stamp_to_ns(stepped[k].action_stamp) == stamp_to_ns(stepped[standing].action_stamp)
    # ... and once answers stop for good, the last action stands briefly, then the arm holds to the end.
    last = fresh[-1]
    tail = [kind[k] for k in range(last + 1, 17)]
    repeats = tail.count("repeated")
    assert 1 <= repeats <= 3 and tail == ["repeated"] * repeats + ["held"] * (len(tail) - repeats), kind


def test_a_step_without_its_own_action_applies_what_the_newest_plan_holds_for_it(driver, tmp_path):
    """An action-chunk policy's answers carry 3 planned actions: once answers stop, the next steps apply the last
    answer's plan, each the row for its own step (offset = steps since that observation), then the last one
    repeats until `command_timeout_s`, then the arm holds."""
    statuses = answer_then_stop(driver, tmp_path, max_steps=18, command_timeout_s=0.45,
                                planned=np.tile(NOOP_ACTION, (3, 1)))
    stepped = {s.step: s for s in statuses if s.step > 0}
    step_of_observation = {stamp_to_ns(s.header.stamp): s.step for s in statuses}
    assert sorted(stepped) == list(range(1, 19))

    def kind(s: EpisodeStatus) -> str:
        if stamp_to_ns(s.action_stamp) == 0:
            return "held"
        return "repeated" if s.action_repeated else "planned" if s.action_offset else "own"

    kinds = {k: kind(s) for k, s in stepped.items()}
    for k, s in stepped.items():
        if kinds[k] == "planned":
            # Step k follows observation k - 1; the row applied is the one planned for it.
            assert 1 <= s.action_offset <= 3 and not s.action_repeated
            assert step_of_observation[stamp_to_ns(s.action_stamp)] == k - 1 - s.action_offset, kinds
    # After the last answer applied (a new stamp; on a loaded machine it may itself come late, as a plan row), the
    # rest of its plan is used in order, then the last row repeats within the 0.45 s timeout, then the arm holds.
    stamps = [stamp_to_ns(stepped[k].action_stamp) for k in range(1, 19)]
    last = max(k for k in range(1, 19) if stamps[k - 1] and stamps[k - 1] not in stamps[:k - 1])
    tail = [kinds[k] for k in range(last + 1, 19)]
    p, r = tail.count("planned"), tail.count("repeated")
    assert tail == ["planned"] * p + ["repeated"] * r + ["held"] * (len(tail) - p - r), kinds
    first_offset = stepped[last].action_offset
    assert p == 3 - first_offset, kinds
    assert [stepped[last + i].action_offset for i in range(1, p + 1)] == list(range(first_offset + 1, 4)), kinds
    assert p + r <= 5 and len(tail) - p - r >= 1, kinds
