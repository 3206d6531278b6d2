"""A writer of LIBERO's demonstration file layout, for tests: LIBERO's files cannot be downloaded here, so an expert
episode of the project's scripted expert is recorded the way LIBERO records its human demonstrations and written
in the layout of its released datasets (`tramoe_ros.sim.libero_import` lists the fields).

As in LIBERO: states[t] is the flattened MuJoCo state before actions[t] (robosuite's `DataCollectionWrapper`),
obs/*[t] the observation after actions[t], raw as robosuite renders it (upside down; `scripts/create_dataset.py`),
and recording goes on for a few steps after the goal is reached (`scripts/collect_demonstration.py` holds ~10).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from tramoe_ros.sim.libero_env import LiberoEnv
from tramoe_ros.sim.rollout import expert_rollout

# Steps recorded after the goal is reached, the arm still and the gripper as last commanded.
HOLD_STEPS = 3


@dataclass
class RecordedDemo:
    """One demonstration in LIBERO's terms: states (T, D) float64 (before each action), actions (T, 7) float64,
    obs: LIBERO's observation keys -> (T, ...) (after each action), model_file: the scene's MJCF."""

    states: np.ndarray
    actions: np.ndarray
    obs: dict[str, np.ndarray]
    model_file: str

    def truncated(self, length: int) -> RecordedDemo:
        """The first `length` steps."""
        return RecordedDemo(self.states[:length], self.actions[:length],
                            {key: values[:length] for key, values in self.obs.items()}, self.model_file)


def record_expert_demo(env: LiberoEnv, init_state_index: int = 0, hold_steps: int = HOLD_STEPS) -> RecordedDemo:
    """Run the scripted expert from an initial state to the goal, then `hold_steps` still steps, recording as
    LIBERO does. Raises AssertionError when the expert does not reach the goal."""
    states: list[np.ndarray] = []
    actions: list[np.ndarray] = []
    after: list[dict[str, np.ndarray]] = []

    def record_state(_obs) -> None:
        states.append(env.sim.get_state().flatten())

    success = False
    for _, action, next_obs, success in expert_rollout(env, init_state_index, on_start=record_state):
        actions.append(action)
        after.append(next_obs.raw)
        record_state(next_obs)
    assert success, "the scripted expert did not reach the goal"
    hold = np.r_[np.zeros(6), actions[-1][6]]
    for _ in range(hold_steps):
        next_obs, _, _ = env.step(hold)
        actions.append(hold)
        after.append(next_obs.raw)
        record_state(next_obs)
    # The state after the last action is not kept (robosuite's gather_demonstrations_as_hdf5 drops it).
    obs = {
        "agentview_rgb": np.stack([raw["agentview_image"] for raw in after]),
        "eye_in_hand_rgb": np.stack([raw["robot0_eye_in_hand_image"] for raw in after]),
        "joint_states": np.stack([raw["robot0_joint_pos"] for raw in after]),
        "gripper_states": np.stack([raw["robot0_gripper_qpos"] for raw in after]),
        "ee_pos": np.stack([raw["robot0_eef_pos"] for raw in after]),
    }
    return RecordedDemo(np.stack(states[:-1]), np.stack(actions), obs, env.sim.model.get_xml())


def write_libero_file(path: Path, env: LiberoEnv, demos: list[RecordedDemo], bddl_file_name: str | None = None
                      ) -> Path:
    """Write `demos` as data/demo_0, demo_1, ... of a LIBERO dataset file for `env`'s task.

    bddl_file_name: the data attribute naming the task (default: the env's BDDL file; '' leaves it and env_args'
        bddl_file out, as in a file that does not say).
    """
    bddl = env.bddl_file if bddl_file_name is None else bddl_file_name
    problem_info = {"problem_name": type(env.robosuite_env).__name__.lower(), "domain_name": "robosuite",
                    "language_instruction": env.instruction}
    env_args = {"type": 1, "env_name": type(env.robosuite_env).__name__,
                "problem_name": problem_info["problem_name"], "env_kwargs": {"camera_heights": 128}}
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_name"] = env_args["env_name"]
        data.attrs["problem_info"] = json.dumps(problem_info)
        data.attrs["macros_image_convention"] = "opengl"
        if bddl:
            data.attrs["bddl_file_name"] = bddl
            env_args["bddl_file"] = bddl
        data.attrs["env_args"] = json.dumps(env_args)
        for i, demo in enumerate(demos):
            group = data.create_group(f"demo_{i}")
            for key, values in demo.obs.items():
                group.create_dataset(f"obs/{key}", data=values)
            group.create_dataset("states", data=demo.states)
            group.create_dataset("actions", data=demo.actions)
            ends = np.zeros(len(demo.actions), np.uint8)
            ends[-1] = 1
            group.create_dataset("rewards", data=ends)
            group.create_dataset("dones", data=ends)
            group.attrs["num_samples"] = len(demo.actions)
            group.attrs["model_file"] = demo.model_file
            group.attrs["init_state"] = demo.states[0]
        data.attrs["num_demos"] = len(demos)
        data.attrs["total"] = sum(len(demo.actions) for demo in demos)
    return path
