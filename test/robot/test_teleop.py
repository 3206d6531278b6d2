"""`tramoe-teleop` with two emulated leader/follower pairs and two video-file cameras, keys scripted: the followers
follow the leaders (a person moves the leaders), episodes are recorded, saved, discarded and saved on quit, and
the dataset validator accepts them (with no point tracks yet)."""
import time

import numpy as np
import pytest
import yaml

from node_fixtures import write_video
from robot_fixtures import GRIPPER_RANGE, JOINT_RANGE, LATENCY_TIMER_MS, ScriptedKeys, ticks, write_calibration
from tramoe_ros.cli import teleop
from tramoe_ros.data.episode import EpisodeFile, validate_episode
from tramoe_ros.robot import control_table as ct
from tramoe_ros.robot.emulator import KOCH_LEADER, EmulatedBus, Emulator, koch_arm

ARMS = ("left", "right")
# Where the person takes each leader (rad; the gripper in rad of its 0..1.2 range), reached after RAMP_S.
LEADER_TARGET = {"left": [0.5, -0.4, 0.3, 0.2, -0.6, 0.9], "right": [-0.3, 0.6, -0.5, 0.1, 0.4, 0.3]}
RAMP_S = 1.2


@pytest.fixture
def rig(tmp_path):
    """Emulated leaders (moved by hand along a ramp) and followers, video cameras, and a teleop config file."""
    leaders = {arm: EmulatedBus(koch_arm(KOCH_LEADER)) for arm in ARMS}
    followers = {arm: EmulatedBus(koch_arm()) for arm in ARMS}
    start = time.monotonic()
    for arm, bus in leaders.items():
        for servo_id, target in zip(range(1, 7), LEADER_TARGET[arm]):
            bus.servos[servo_id].hand = lambda now, target=target: ticks(target * min(1.0, (now - start) / RAMP_S))
    cameras = []
    for view in ("agentview", "eye_in_hand"):
        write_video(tmp_path / f"{view}.avi")
        cameras.append({"view": view, "source": str(tmp_path / f"{view}.avi")})
    config = {
        "arms": [{"name": arm,
                  "leader": {"port": leaders[arm].port, "ids": [1, 2, 3, 4, 5, 6],
                             "calibration": str(write_calibration(tmp_path / f"{arm}_leader.yaml", f"{arm}_leader",
                                                                  KOCH_LEADER))},
                  "follower": {"port": followers[arm].port, "ids": [1, 2, 3, 4, 5, 6],
                               "calibration": str(write_calibration(tmp_path / f"{arm}_follower.yaml"))},
                  "joint_names": [f"{arm}_joint{i}" for i in range(1, 7)]} for arm in ARMS],
        "cameras": cameras, "rate_hz": 50.0, "record_rate_hz": 20.0, "max_step": 0.1,
        "latency_timer_ms": LATENCY_TIMER_MS,
    }
    (tmp_path / "teleop.yaml").write_text(yaml.safe_dump(config))
    with Emulator(list(leaders.values()) + list(followers.values())):
        yield tmp_path / "teleop.yaml", leaders, followers


def test_teleop_records_saves_and_discards_episodes(rig, tmp_path, capsys):
    config, _, followers = rig
    out = tmp_path / "episodes"
    keys = ScriptedKeys([(0.3, "r"), (1.3, "s"), (1.5, "r"), (1.8, "d"), (2.0, "r"), (2.8, "q")])
    assert teleop.main(["--config", str(config), "--out", str(out), "--instruction", "fold the towel"],
                       keys=keys) == 0
    files = sorted(out.glob("*.hdf5"))
    assert [f.name for f in files] == ["episode_0000.hdf5", "episode_0001.hdf5"]  # the discarded one is gone
    printed = capsys.readouterr().out
    assert "episode discarded" in printed and "loop" in printed
    for path in files:
        validate_episode(path)
        episode = EpisodeFile(path)
        assert (episode.instruction, episode.domain) == ("fold the towel", "robot")
        assert episode.views == ("agentview", "eye_in_hand") and episode.image_size["agentview"] == 128
        assert episode.num_points == {"agentview": 0, "eye_in_hand": 0}  # tracks come from tramoe-label-tracks
        assert episode.action_dim == 12 and episode.proprio_dims == {"joint_states": 12}
        assert episode.frames("eye_in_hand", [0]).mean() > 20  # the video's frames, not blanks
    first, last = EpisodeFile(files[0]), EpisodeFile(files[1])
    assert 10 <= first.length <= 22  # 1 s at 20 Hz
    assert 8 <= last.length <= 18  # 0.8 s
    actions = first.actions(0, first.length)
    assert np.all(np.abs(actions) <= 1.0) and np.ptp(actions[:, 0]) > 0.1  # the leader was moving
    # By the last episode the person holds the leaders still: the followers are where the leaders are, and the
    # actions are those positions normalised to [-1, 1] over each joint's range.
    target = np.array(LEADER_TARGET["left"] + LEADER_TARGET["right"])
    joints = np.where(np.tile(np.arange(6) == 5, 2), target / GRIPPER_RANGE[1], target)
    np.testing.assert_allclose(last.proprio("joint_states", last.length - 1, last.length)[0], joints, atol=0.01)
    normalised = np.where(np.tile(np.arange(6) == 5, 2), 2 * joints - 1, joints / JOINT_RANGE)
    np.testing.assert_allclose(last.actions(last.length - 1, last.length)[0], normalised, atol=0.01)
    with followers["left"].lock:  # on_exit: hold
        assert all(servo.torque for servo in followers["left"].servos.values())


def test_a_missing_camera_is_a_clear_error(rig, tmp_path, capsys):
    config, _, followers = rig
    text = config.read_text().replace(str(tmp_path / "agentview.avi"), str(tmp_path / "absent.avi"))
    config.write_text(text)
    assert teleop.main(["--config", str(config), "--out", str(tmp_path / "e"), "--instruction", "x"],
                       keys=ScriptedKeys([(0.0, "q")])) == 1
    assert "absent.avi' is neither a device index nor an existing device or video file" in capsys.readouterr().err
    with followers["left"].lock:  # never touched
        assert not any(servo.torque for servo in followers["left"].servos.values())
    assert ct.CENTER_TICKS == followers["left"].servos[1].shaft


def test_an_episode_that_cannot_be_written_is_kept_until_discarded(rig, tmp_path, capsys):
    config, _, _ = rig
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the episode folder should be")
    keys = ScriptedKeys([(0.2, "r"), (0.6, "q"), (0.8, "s"), (1.0, "d"), (1.1, "q")])
    assert teleop.main(["--config", str(config), "--out", str(blocked / "episodes"), "--instruction", "x"],
                       keys=keys) == 0
    printed = capsys.readouterr().out
    assert printed.count("could not save the episode") == 2  # on q, and again on s
    assert "not quitting with an unsaved episode" in printed and "episode discarded" in printed
    assert blocked.read_text() == "a file where the episode folder should be"
