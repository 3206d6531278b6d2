"""Smoke demo on generated data: write synthetic in-domain demos and out-of-domain action-free videos, train a tiny
Tra-MoE track model and a tiny adaptive-mask policy on them, and show what the track model predicts.

Everything goes through the same code as full-size training (configs, datasets, `fit`, checkpoints,
`TrackPredictor`); only the sizes differ (config/smoke_*.yaml).
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from einops import rearrange

from tramoe_ros.config import DomainSource, PolicyTrainConfig, TrackTrainConfig, config_to_dict, load_config
from tramoe_ros.data.episode import EpisodeFile
from tramoe_ros.data.sampling import sample_double_grid
from tramoe_ros.data.synthetic import synthetic_instructions, write_synthetic_dataset
from tramoe_ros.models.device import select_device
from tramoe_ros.models.predictor import TrackPredictor
from tramoe_ros.paths import config_path
from tramoe_ros.training.loop import fit, seed_everything
from tramoe_ros.training.policy import PolicyTrainingTask
from tramoe_ros.training.tracks import TrackTrainingTask
from tramoe_ros.viz import draw_tracks, write_animation, write_png


def make_smoke_data(out: Path, episodes: int, image_size: int, seed: int = 0) -> tuple[Path, Path]:
    """In-domain demos (with actions) on 8 instructions; out-of-domain action-free videos on all of them."""
    in_dir, ood_dir = out / "data" / "in_domain", out / "data" / "out_of_domain"
    instructions = synthetic_instructions()
    if not any(in_dir.glob("*.hdf5")):
        write_synthetic_dataset(in_dir, episodes, seed, instructions=instructions[::4], image_size=image_size,
                                length=32, domain="synthetic_robot")
    if not any(ood_dir.glob("*.hdf5")):
        write_synthetic_dataset(ood_dir, episodes, seed + 1, instructions=instructions, image_size=image_size,
                                length=32, with_actions=False, domain="synthetic_human")
    return in_dir, ood_dir


def render_overlay(predictor: TrackPredictor, episode: EpisodeFile, view: str, out: Path) -> tuple[Path, Path]:
    """GIF of the episode with the tracks predicted from every frame (grid queries), and a PNG strip."""
    queries = sample_double_grid(4)
    frames = []
    for t in range(episode.length):
        image = episode.frame(view, t)
        tracks = predictor.predict(image[None], queries, episode.instruction)[0].numpy()
        frames.append(draw_tracks(rearrange(image, "c h w -> h w c"), tracks, scale=4))
    gif = write_animation(frames, out / "tracks.gif", fps=8)
    strip = write_png(np.concatenate(frames[:: max(1, len(frames) // 4)][:4], axis=1), out / "tracks.png")
    return gif, strip


def run_smoke_demo(out: str | Path, episodes: int = 24, track_epochs: int | None = None,
                   policy_epochs: int | None = None, overrides: list[str] | None = None) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    track_cfg = load_config(TrackTrainConfig, config_path("smoke_tracks.yaml"), overrides)
    seed_everything(track_cfg.train.seed)
    in_dir, ood_dir = make_smoke_data(out, episodes, track_cfg.model.image_size)
    track_cfg.data.sources = [DomainSource(str(in_dir), "synthetic_robot"), DomainSource(str(ood_dir), "synthetic_human")]
    track_cfg.train = replace(track_cfg.train, out_dir=str(out / "tracks"),
                              epochs=track_epochs or track_cfg.train.epochs)
    device = select_device(track_cfg.train.device)
    track_task = TrackTrainingTask(track_cfg, device)
    track_fit = fit(track_task, track_cfg.train, track_cfg.optim, device, config_to_dict(track_cfg))

    policy_cfg = load_config(PolicyTrainConfig, config_path("smoke_policy.yaml"))
    policy_cfg.track_model = str(out / "tracks" / "best.safetensors")
    policy_cfg.data.sources = [DomainSource(str(in_dir), "synthetic_robot")]
    policy_cfg.train = replace(policy_cfg.train, out_dir=str(out / "policy"),
                               epochs=policy_epochs or policy_cfg.train.epochs)
    policy_task = PolicyTrainingTask(policy_cfg, device)
    policy_fit = fit(policy_task, policy_cfg.train, policy_cfg.optim, device, config_to_dict(policy_cfg))

    predictor = TrackPredictor.from_checkpoint(out / "tracks" / "best.safetensors", device=device)
    val_episode = EpisodeFile(track_task.val_set.files[0].path)
    gif, strip = render_overlay(predictor, val_episode, "agentview", out)
    summary = {
        "track_model": str(out / "tracks" / "best.safetensors"),
        "policy": str(out / "policy" / "best.safetensors"),
        "track_val_mse": track_fit.best_val,
        "track_val_static_baseline_mse": track_fit.history["val"][-1]["val_static_mse"],
        "track_train_loss_first": track_fit.history["train"][0]["total"],
        "track_train_loss_last": track_fit.history["train"][-1]["total"],
        "policy_val_mse": policy_fit.best_val,
        "policy_train_loss_first": policy_fit.history["train"][0]["total"],
        "policy_train_loss_last": policy_fit.history["train"][-1]["total"],
        "overlay_gif": str(gif),
        "overlay_png": str(strip),
        "loss_curves": [str(out / "tracks" / "loss_curves.png"), str(out / "policy" / "loss_curves.png")],
        "seconds": round(track_fit.seconds + policy_fit.seconds, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
