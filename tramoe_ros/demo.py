"""The sim demo: one LIBERO episode through the whole ROS graph, recorded and summarised.

`run_sim_demo` starts the `sim` graph (bridge, track, policy and arm nodes, recorder) in this process from the
graph description, runs one episode, then reads the recorded bag back to draw the predicted tracks on the
agentview camera into a video. It prints and writes (out_dir/summary.json) success, steps, the achieved control
rate and the camera->action latency (p50/p95, from the image stamps carried through the graph).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from tramoe_ros.ros.bag import read_bag
from tramoe_ros.ros.compose import BackgroundGraph
from tramoe_ros.ros.conversions import rgb_from_image, stamp_to_ns, tracks_from_msg
from tramoe_ros.ros.graph import resolve
from tramoe_ros.ros.probe import GraphProbe
from tramoe_ros.ros import topics
from tramoe_ros.viz import draw_tracks, write_animation

DEFAULT_TASK = "libero_object/0"
DEFAULT_POLICY = "models/policy_adaptive.safetensors"
DEFAULT_TRACK_MODEL = "models/track_moe.safetensors"
# Time allowed to load the simulator and models before the first step, and per step after it.
STARTUP_BUDGET_S = 180.0
STEP_BUDGET_S = 2.0


def overlay_frames(bag: Path, view: str = "agentview", scale: int = 4) -> list[np.ndarray]:
    """The view's recorded images with the tracks predicted from them, in recording order."""
    images, frames = {}, []
    for topic, _, msg in read_bag(bag, [topics.camera_image(view), topics.TRACKS]):
        if topic == topics.TRACKS:
            view_tracks = next((t for t in msg.views if t.view == view), None)
            image = images.pop(stamp_to_ns(view_tracks.header.stamp), None) if view_tracks else None
            if image is not None:
                frames.append(draw_tracks(image, tracks_from_msg(view_tracks)[0], scale=scale))
        else:
            images[stamp_to_ns(msg.header.stamp)] = rgb_from_image(msg)
    return frames


def run_sim_demo(out_dir: str | Path, task: str = DEFAULT_TASK, policy_path: str | Path = DEFAULT_POLICY,
                 track_model_path: str | Path = DEFAULT_TRACK_MODEL, steps: int = 600,
                 mode: str = "lockstep") -> dict:
    """Run one episode of `task` ("<suite>/<index>") for at most `steps` steps; returns the summary.

    `mode` lockstep (one simulation step per action) evaluates the policy exactly as offline evaluation does,
    however fast this machine runs the models; the control rate then says how many steps per second the graph
    sustains. `realtime` steps at 20 Hz with whatever action is newest. out_dir receives bag/ (rosbag2, MCAP),
    tracks.mp4 (agentview with predicted tracks) and summary.json.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bag = out / "bag"
    if bag.exists():
        shutil.rmtree(bag)
    resolved = resolve("sim", {"task": task, "policy_model": str(policy_path), "track_model": str(track_model_path),
                               "max_steps": str(steps), "mode": mode, "record": "true", "bag": str(bag)})
    with BackgroundGraph(resolved, extra_nodes=lambda context: [GraphProbe(context=context)]) as graph:
        probe: GraphProbe = graph.node("graph_probe")
        probe.episode_done.wait(STARTUP_BUDGET_S + STEP_BUDGET_S * steps)
        result = probe.summary()
    frames = overlay_frames(bag)
    video = write_animation(frames, out / "tracks.mp4", fps=20) if frames else None
    summary = {"task": task, **result, "bag": str(bag), "video": str(video) if video else None,
               "policy": str(policy_path), "track_model": str(track_model_path), "mode": mode}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{task}: {'success' if summary['success'] else 'failure'} after {summary['steps']} steps; "
          f"control rate {summary['control_rate_hz']} Hz; camera->action latency p50 {summary['latency_ms_p50']} "
          f"ms, p95 {summary['latency_ms_p95']} ms\nbag: {bag}\nvideo: {video}\nsummary: {out / 'summary.json'}")
    return summary
