"""policy_node with a policy conditioned on the instruction (a multi-task policy): it listens on /instruction, does
not act before it has one, and each action is the shared inference path's (`PolicyRunner`) for the instruction
of the moment; a new instruction starts a new frame stack."""
import dataclasses

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String
from tramoe_msgs.msg import PolicyAction, TrackArray

from model_fixtures import tiny_model_configs
from node_fixtures import NodeProcess, ros_args
from test_policy_realtime import ARM_JOINTS, FINGERS, MS, VIEWS, actions_for, observation, tracks
from tramoe_ros.config import config_to_dict
from tramoe_ros.models.checkpoint import save_checkpoint
from tramoe_ros.models.policy import TrackGuidedPolicy
from tramoe_ros.models.runner import PolicyRunner
from tramoe_ros.ros import topics
from tramoe_ros.ros.qos import IMAGE_QOS, LATCHED_QOS, RELIABLE_QOS


@pytest.fixture(scope="module")
def instructed_policy(tiny_models, tmp_path_factory, driver):
    track_path, _ = tiny_models
    _, cfg = tiny_model_configs()
    torch.manual_seed(0)
    model = TrackGuidedPolicy(dataclasses.replace(cfg, instruction_dim=384))
    torch.nn.init.normal_(model.instruction_spatial.weight)  # as trained: the instruction changes the actions
    torch.nn.init.normal_(model.instruction_temporal.weight)
    folder = tmp_path_factory.mktemp("instructed")
    path = save_checkpoint(folder / "policy.safetensors", model, "policy", config_to_dict(model.cfg),
                           extra={"track_model": str(track_path), "language_encoder": "minilm"})
    node = NodeProcess("tramoe_ros.nodes.policy_node", ros_args(
        {"policy_path": str(path), "device": "cpu", "mode": "lockstep", "control_rate_hz": 0.0,
         "joint_state_tolerance_s": 0.0, "proprio.joint_states": ARM_JOINTS, "proprio.gripper_states": FINGERS}),
        folder / "policy.log")
    io = {"joints": driver.node.create_publisher(JointState, topics.JOINT_STATES, RELIABLE_QOS),
          "cameras": {v: driver.node.create_publisher(Image, topics.camera_image(v), IMAGE_QOS) for v in VIEWS},
          "tracks": driver.node.create_publisher(TrackArray, topics.TRACKS, RELIABLE_QOS),
          "instruction": driver.node.create_publisher(String, topics.INSTRUCTION, LATCHED_QOS),
          "actions": [], "diagnostics": {}}
    driver.node.create_subscription(PolicyAction, topics.POLICY_ACTION, io["actions"].append, RELIABLE_QOS)
    driver.node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, lambda m: io["diagnostics"].update(
        {s.name: s for s in m.status}), RELIABLE_QOS)

    def ready() -> bool:
        assert node.alive(), node.output()
        return driver.node.count_subscribers(topics.INSTRUCTION) >= 1 and \
            driver.node.count_publishers(topics.POLICY_ACTION) >= 1

    driver.spin_until(ready, 120, "the policy node to start")
    yield io, path
    assert node.stop() == 0, node.output()


def test_acts_only_with_an_instruction_and_on_the_instruction_it_has(driver, instructed_policy):
    io, path = instructed_policy
    s0 = driver.node.get_clock().now().nanoseconds
    images0, proprio0 = observation(io, s0, seed=0)
    driver.spin_for(0.5)
    tracks0 = tracks(io, s0, seed=0)
    driver.spin_for(1.0)
    assert not actions_for(io, s0), "acted without an instruction"

    def dropped_without_instruction() -> bool:
        status = io["diagnostics"].get("/policy_node")
        return status is not None and any(kv.key == "dropped/no_instruction" and kv.value != "0"
                                          for kv in status.values)

    driver.spin_until(dropped_without_instruction, 10, "the diagnostics to count the observation without instruction")

    runner = PolicyRunner.from_checkpoints(path)
    io["instruction"].publish(String(data="pick up the soup"))
    driver.spin_for(0.5)
    tracks(io, s0, seed=0)  # the same tracks again, as the lock-step bridge re-sends an observation
    driver.spin_until(lambda: actions_for(io, s0), 10, "the action once the instruction is there")
    np.testing.assert_allclose(actions_for(io, s0)[0], runner.step(images0, proprio0, "pick up the soup", tracks0),
                               atol=1e-5)

    # Another instruction: a new task, whose stack starts at its first observation.
    io["instruction"].publish(String(data="pick up the ketchup"))
    driver.spin_for(0.5)
    s1 = s0 + 50 * MS
    images1, proprio1 = observation(io, s1, seed=1)
    driver.spin_for(0.5)
    tracks1 = tracks(io, s1, seed=1)
    driver.spin_until(lambda: actions_for(io, s1), 10, "the action for the new instruction")
    expected = runner.step(images1, proprio1, "pick up the ketchup", tracks1)
    np.testing.assert_allclose(actions_for(io, s1)[0], expected, atol=1e-5)
    runner.reset()
    assert np.abs(expected - runner.step(images1, proprio1, "pick up the soup", tracks1)).max() > 1e-3
