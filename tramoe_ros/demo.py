"""The sim demo: LIBERO episodes through the whole ROS graph, recorded and summarised.

`run_sim_demo` starts the `sim` graph (bridge, track, policy and arm nodes, recorder) from the graph description,
one process per node as `ros2 launch` starts them (their logs in out_dir/logs), runs one episode per initial
state (the first through the bridge's `init_state_index`, the next ones through /libero/reset), then reads the recorded bag back to draw the predicted tracks on the agentview camera of
the first episode into a video. It prints and writes (out_dir/summary.json) per episode and over all of them:
success, steps, the simulation's step rate, the rate of fresh actions the simulation applied (computed from a new
observation; a repeated or held step is not fresh), how many steps applied the action of their own observation
(on time, as lock-step does), the action an older one's chunk planned for them (planned), or an older one's own
action (late), the control rate and the camera->action latency (p50/p95,
from the image stamps carried through the graph).
"""
from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
from tramoe_msgs.srv import ResetEpisode

from tramoe_ros.paths import shipped_policy, shipped_track_model
from tramoe_ros.ros import topics
from tramoe_ros.ros.bag import read_bag
from tramoe_ros.ros.conversions import rgb_from_image, stamp_to_ns, tracks_from_msg
from tramoe_ros.ros.graph import resolve
from tramoe_ros.ros.probe import GraphProbe
from tramoe_ros.ros.processes import ProcessGraph
from tramoe_ros.viz import draw_tracks, write_animation

DEFAULT_TASK = "libero_object/0"
# Time allowed to load the simulator and models before the first step, and per step after it.
STARTUP_BUDGET_S = 180.0
STEP_BUDGET_S = 2.0
RESET_BUDGET_S = 60.0


def overlay_frames(bag: Path, view: str = "agentview", scale: int = 4,
                   until_ns: int | None = None) -> list[np.ndarray]:
    """The view's recorded images with the tracks predicted from them, in recording order; only images stamped
    up to `until_ns` when given."""
    images, frames = {}, []
    for topic, _, msg in read_bag(bag, [topics.camera_image(view), topics.TRACKS]):
        if topic == topics.TRACKS:
            view_tracks = next((t for t in msg.views if t.view == view), None)
            image = images.pop(stamp_to_ns(view_tracks.header.stamp), None) if view_tracks else None
            if image is not None:
                frames.append(draw_tracks(image, tracks_from_msg(view_tracks)[0], scale=scale))
        elif until_ns is None or stamp_to_ns(msg.header.stamp) <= until_ns:
            images[stamp_to_ns(msg.header.stamp)] = rgb_from_image(msg)
    return frames


def _reset(probe: GraphProbe, init_state: int) -> None:
    """Start the next episode from `init_state` through the bridge's /libero/reset service."""
    client = probe.create_client(ResetEpisode, topics.LIBERO_RESET)
    try:
        if not client.wait_for_service(timeout_sec=RESET_BUDGET_S):
            raise RuntimeError(f"{topics.LIBERO_RESET} is not offered")
        future = client.call_async(ResetEpisode.Request(init_state_index=init_state))
        if not future.done() and not _wait(future, RESET_BUDGET_S):
            raise RuntimeError(f"{topics.LIBERO_RESET} did not answer within {RESET_BUDGET_S} s")
        if not future.result().success:
            raise RuntimeError(f"reset to initial state {init_state} failed: {future.result().message}")
    finally:
        probe.destroy_client(client)


def _wait(future, timeout: float) -> bool:
    """Wait for a future that the graph's executor threads complete."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    return done.wait(timeout)


def _aggregate(rows: list[dict]) -> dict:
    """Over all episodes: success rate, and rates weighted by steps (each episode's rate over its own span)."""
    steps = np.array([r["steps"] for r in rows], float)
    weighted = {key: round(float(np.average([r[key] for r in rows], weights=steps)), 2) if steps.sum() else 0.0
                for key in ("sim_rate_hz", "fresh_action_rate_hz", "control_rate_hz")}
    return {"success_rate": round(float(np.mean([r["success"] for r in rows])), 3), **weighted,
            **{key: int(sum(r[key] for r in rows)) for key in ("on_time_steps", "planned_steps", "late_steps",
                                                               "repeated_steps", "hold_steps")}}


def run_sim_demo(out_dir: str | Path, task: str = DEFAULT_TASK, policy_path: str | Path | None = None,
                 track_model_path: str | Path | None = None, steps: int = 600,
                 mode: str = "realtime", init_states: list[int] = (0,), record: bool = True) -> dict:
    """Run one episode of `task` ("<suite>/<index>") per initial state, each for at most `steps` steps; returns
    the summary.

    `mode` realtime (the launch files' default) steps the simulation at LIBERO's 20 Hz with whatever action is
    newest; lockstep (one simulation step per action) evaluates the policy exactly as offline evaluation does,
    however fast this machine runs the models. out_dir receives bag/ (rosbag2, MCAP, all episodes; with
    `record`), tracks.mp4 (agentview of the first episode with its predicted tracks) and summary.json.
    """
    policy_path = policy_path or shipped_policy()
    track_model_path = track_model_path or shipped_track_model()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    arguments = {"task": task, "policy_model": str(policy_path), "track_model": str(track_model_path),
                 "max_steps": str(steps), "mode": mode, "record": str(record).lower(), "bag": str(bag),
                 "init_state": str(init_states[0])}
    rows = []
    with ProcessGraph(resolve("sim", arguments), extra_nodes=lambda context: [GraphProbe(context=context)],
                      log_dir=out / "logs") as graph:
        probe: GraphProbe = graph.node("graph_probe")
        for i, init_state in enumerate(init_states):
            if i:
                _reset(probe, init_state)
            graph.wait_for(lambda seconds, episode=i: probe.wait_for_episode_end(episode, seconds),
                           (STARTUP_BUDGET_S if i == 0 else RESET_BUDGET_S) + STEP_BUDGET_S * steps,
                           f"the end of episode {i} (initial state {init_state})")
            row = {"init_state": init_state, **probe.summary(i)}
            rows.append(row)
            print(f"{task} initial state {init_state}: {'success' if row['success'] else 'failure'} after "
                  f"{row['steps']} steps; fresh actions {row['fresh_action_rate_hz']} Hz; camera->action latency "
                  f"p50 {row['latency_ms_p50']} ms", flush=True)
        latencies = probe.latencies_ms()
    first_end = max(stamp_to_ns(s.header.stamp) for s in probe.statuses if s.episode == 0)
    frames = overlay_frames(bag, until_ns=first_end) if record else []
    video = write_animation(frames, out / "tracks.mp4", fps=20) if frames else None
    summary = {"task": task, "mode": mode, "episodes": rows, **_aggregate(rows),
               "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
               "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
               "bag": str(bag) if record else None, "video": str(video) if video else None,
               "policy": str(policy_path), "track_model": str(track_model_path)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{task}, {mode}: {sum(r['success'] for r in rows)}/{len(rows)} successes; fresh actions "
          f"{summary['fresh_action_rate_hz']} Hz; camera->action latency p50 {summary['latency_ms_p50']} ms, p95 "
          f"{summary['latency_ms_p95']} ms\nbag: {summary['bag']}\nvideo: {video}\nsummary: {out / 'summary.json'}")
    return summary
