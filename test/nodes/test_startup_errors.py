"""Nodes that cannot start (missing or corrupt model, invalid parameters, missing camera) exit non-zero with one
clear message naming the node and the problem."""
import importlib.util
import os

import pytest

from node_fixtures import NodeProcess, ros_args, stop_all


@pytest.fixture(scope="module")
def corrupt_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("bad") / "corrupt.safetensors"
    path.write_bytes(b"\x00\x01 this is not a safetensors file")
    return path


def cases(tiny_models, corrupt_model, tmp):
    track, policy = tiny_models
    return {
        "missing track model": ("track_node", {"model_path": str(tmp / "absent.safetensors")},
                                ["[track_node] cannot start", "absent.safetensors does not exist"]),
        "corrupt policy": ("policy_node", {"policy_path": str(corrupt_model)},
                           ["[policy_node] cannot start", "is not a readable safetensors file"]),
        "policy given to the track node": ("track_node", {"model_path": str(policy)},
                                           ["holds a policy, expected a track_model"]),
        "invalid arm parameters": ("arm_node", {"backend": "teleport", "watchdog_timeout_s": -1.0},
                                   ["arm_node: invalid parameters", "backend: must be one of libero, ros2_control, "
                                    "dynamixel, got 'teleport'", "watchdog_timeout_s: must be > 0, got -1.0"]),
        "wrong parameter type": ("arm_node", {"action_dim": "seven"}, ["action_dim: must be an integer"]),
        "missing camera": ("camera_node", {"source": str(tmp / "absent.mp4")},
                           ["[camera_node] cannot start", "absent.mp4' is neither a device index nor"]),
        "policy without its proprio joint names": ("policy_node", {"policy_path": str(policy)},
                                                   ["proprio.joint_states: must list 7 joint names, got []"]),
        "instruction of 2000 characters": ("instruction_node", {"instruction": "x" * 2000},
                                           ["instruction: has 2000 characters, more than 1000"]),
        "malformed LIBERO task": ("libero_bridge_node", {"task": "libero_object"},
                                  ["task: must be <suite>/<task index>, e.g. libero_object/0"]),
    } | ({"LIBERO task out of range": ("libero_bridge_node", {"task": "libero_object/99"},
                                       ["task index 99 is out of range for libero_object"]),
            "visual meshes simplified below a tetrahedron": ("libero_bridge_node", {"max_visual_faces": 3},
                                                             ["[libero_bridge_node] cannot start",
                                                              "max_visual_faces must be at least 4"])}
         if importlib.util.find_spec("libero") else {})


def test_startup_errors_are_clear_and_fatal(tiny_models, corrupt_model, tmp_path):
    table = cases(tiny_models, corrupt_model, tmp_path)
    # All at once (most of the time is Python and torch importing), each in a ROS domain of its own: they talk to
    # no one, and participants appearing and vanishing together can deadlock Fast DDS's discovery.
    base = int(os.environ["ROS_DOMAIN_ID"]) % 100 + 50
    running = {name: NodeProcess(f"tramoe_ros.nodes.{node}", ros_args(params), tmp_path / f"{i}.log",
                                 env={"ROS_DOMAIN_ID": str(100 + (base + i) % 100)})
               for i, (name, (node, params, _)) in enumerate(table.items())}
    try:
        for name, process in running.items():
            status = process.wait(timeout=120)
            output = process.output()
            assert status == 1, f"{name}: exit status {status}\n{output}"
            for expected in table[name][2]:
                assert expected in output, f"{name}: {expected!r} not in\n{output}"
            assert "Traceback" not in output, f"{name}: a traceback instead of a clear message\n{output}"
            assert max(len(line) for line in output.splitlines()) < 1000, f"{name}: unbounded log line"
    finally:
        stop_all(running.values())


def test_tramoe_up_ends_when_a_node_of_its_graph_cannot_start(tmp_path):
    """The real graph on a machine without the robot: tramoe-up does not run on with the nodes that could start;
    it ends with status 1 and says which node could not start and why (as the launch files do)."""
    up = NodeProcess("tramoe_ros.cli.up", ["real", "track_model:=" + str(tmp_path / "absent.safetensors")],
                     tmp_path / "up.log")
    try:
        status = up.wait(timeout=120)
        output = up.output()
    finally:
        stop_all([up])
    assert status == 1, output
    assert "[tramoe-up] cannot start" in output and "Traceback" not in output, output
