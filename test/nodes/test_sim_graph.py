"""The LIBERO sim graph end to end, in lock-step: `tramoe-up sim` (one process) runs N steps and reports the
episode status; the reset service starts the same initial state again and the second episode repeats the first
action for action (lock-step is deterministic); Ctrl-C leaves a complete bag."""
import importlib.util

import numpy as np
import pytest
from tramoe_msgs.msg import EpisodeStatus, TrackArray
from tramoe_msgs.srv import ResetEpisode

from node_fixtures import NodeProcess
from tramoe_ros.ros import topics
from tramoe_ros.ros.bag import read_bag
from tramoe_ros.ros.conversions import stamp_to_ns
from tramoe_ros.ros.qos import RELIABLE_QOS, STATUS_QOS

pytestmark = pytest.mark.skipif(importlib.util.find_spec("libero") is None, reason="LIBERO is not installed")

STEPS = 5


@pytest.fixture(scope="module")
def two_episodes(tiny_models, tmp_path_factory, driver):
    """`tramoe-up sim` in a subprocess: one episode, a reset to the same initial state, a second episode, Ctrl-C."""
    track, policy = tiny_models
    folder = tmp_path_factory.mktemp("sim")
    statuses, track_stamps = [], set()
    driver.node.create_subscription(EpisodeStatus, topics.EPISODE_STATUS, statuses.append, STATUS_QOS)
    driver.node.create_subscription(TrackArray, topics.TRACKS, lambda m: track_stamps.add(stamp_to_ns(m.header.stamp)),
                                    RELIABLE_QOS)
    reset = driver.node.create_client(ResetEpisode, topics.LIBERO_RESET)
    up = NodeProcess("tramoe_ros.cli.up", [
        "sim", f"track_model:={track}", f"policy_model:={policy}", "mode:=lockstep", f"max_steps:={STEPS}",
        "record:=true", f"bag:={folder / 'bag'}"], folder / "up.log")
    try:
        driver.spin_until(lambda: any(s.done for s in statuses) or not up.alive(), 240, "the first episode to end")
        assert up.alive(), up.output()
        response = reset.call_async(ResetEpisode.Request(init_state_index=0))
        driver.spin_until(response.done, 30, "the reset service")
        assert response.result().success, response.result().message
        driver.spin_until(lambda: any(s.done and s.episode == 1 for s in statuses), 60, "the second episode to end")
        last = stamp_to_ns([s for s in statuses if s.done and s.episode == 1][-1].header.stamp)
        driver.spin_until(lambda: last in track_stamps, 60, "the tracks of the last observation")
        driver.spin_for(0.5)  # ... and they reach the recorder too
    finally:
        status = up.stop()
    assert status == 0, up.output()
    return statuses, folder / "bag"


def test_lockstep_episodes_run_their_steps_and_report_status(two_episodes):
    statuses, _ = two_episodes
    for episode in (0, 1):
        mine = [s for s in statuses if s.episode == episode]
        assert mine[-1].done and mine[-1].step == STEPS and mine[-1].horizon == STEPS and not mine[-1].success
        # While it waits for an action the bridge re-sends its observation and status, so steps may repeat.
        steps = [s.step for s in mine if s.step > 0]
        assert steps == sorted(steps) and sorted(set(steps)) == list(range(1, STEPS + 1))
    assert (statuses[-1].suite, statuses[-1].task_index) == ("libero_object", 0)
    assert statuses[-1].instruction == "pick up the alphabet soup and place it in the basket"


def recorded_by_step(bag, statuses) -> dict[str, dict[tuple[int, int], object]]:
    """Per recorded topic, the first message of each (episode, step), identified by the observation stamp."""
    steps = {stamp_to_ns(s.header.stamp): (s.episode, s.step) for s in statuses}
    recorded: dict[str, dict] = {}
    for topic, _, msg in read_bag(bag):
        if hasattr(msg, "header") and stamp_to_ns(msg.header.stamp) in steps:
            recorded.setdefault(topic, {}).setdefault(steps[stamp_to_ns(msg.header.stamp)], msg)
    return recorded


def test_bag_of_the_episodes_is_complete(two_episodes):
    statuses, bag = two_episodes
    recorded = recorded_by_step(bag, statuses)
    # Every observation and action of both episodes (the recorder may start after the very first observation).
    expected = {(episode, step) for episode in (0, 1) for step in range(1, STEPS + 1)}
    for topic in (topics.camera_image("agentview"), topics.camera_image("eye_in_hand"), topics.JOINT_STATES,
                  topics.TRACKS, topics.EPISODE_STATUS):
        assert expected <= recorded[topic].keys(), topic
    assert {(e, s) for e, s in expected if s < STEPS} <= recorded[topics.LIBERO_ACTION].keys()
    assert len(list(read_bag(bag, [topics.INSTRUCTION]))) == 1


def test_lockstep_is_deterministic(two_episodes):
    statuses, bag = two_episodes
    actions = recorded_by_step(bag, statuses)[topics.LIBERO_ACTION]
    for step in range(1, STEPS):
        np.testing.assert_array_equal(actions[(0, step)].action, actions[(1, step)].action)
