"""The paper's ablations at a small scale, with the project's trainers.

- Track model (paper Tab. 1f): dense Tra-baseline vs Tra-MoE, each trained on in-domain data only and on in-domain +
  out-of-domain data, with the same steps and batch; measured by validation track MSE on held-out in-domain episodes
  (the same episodes for all four: `DataConfig.val_domains`).
- Policy (paper Tab. 3): no track mask (ATM) vs the hand-drawn mask vs the adaptive mask, with one frozen track
  model; measured by validation action MSE and, when trials are asked for, LIBERO success rate.

Each variant trains into its own folder under the output folder and leaves `result.json` there; a variant whose
result exists is not trained again, and one interrupted after a checkpoint continues from its train state, so an
interrupted ablation continues where it stopped.
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tramoe_ros.config import MaskMode, PolicyTrainConfig, TrackTrainConfig, config_to_dict  # noqa: E402
from tramoe_ros.models.device import select_device  # noqa: E402
from tramoe_ros.training.loop import fit, seed_everything  # noqa: E402

RESULT_NAME = "result.json"


@dataclass(frozen=True)
class TrackVariant:
    key: str
    label: str
    moe: bool
    out_of_domain: bool


TRACK_VARIANTS = (
    TrackVariant("dense_in", "Tra-baseline, in-domain", moe=False, out_of_domain=False),
    TrackVariant("moe_in", "Tra-MoE, in-domain", moe=True, out_of_domain=False),
    TrackVariant("dense_in_ood", "Tra-baseline, in + out-of-domain", moe=False, out_of_domain=True),
    TrackVariant("moe_in_ood", "Tra-MoE, in + out-of-domain", moe=True, out_of_domain=True),
)
MASK_LABELS = {MaskMode.NONE: "no mask (ATM)", MaskMode.DRAWN: "hand-drawn mask", MaskMode.ADAPTIVE: "adaptive mask"}


def track_variant_config(base: TrackTrainConfig, variant: TrackVariant, in_domain: str,
                         out_dir: Path) -> TrackTrainConfig:
    """`base` turned into one variant: dense (no MoE layer) or not, out-of-domain sources dropped or not, validation
    on the in-domain domain only."""
    domains = {s.domain for s in base.data.sources}
    if in_domain not in domains:
        raise ValueError(f"in-domain {in_domain!r} is not among the config's data sources ({sorted(domains)})")
    if len(domains) < 2:
        raise ValueError(f"the ablation needs out-of-domain sources besides {in_domain!r}; the config has only it")
    cfg = copy.deepcopy(base)
    if not variant.moe:
        cfg.model.moe_layers = []
    if not variant.out_of_domain:
        cfg.data.sources = [s for s in cfg.data.sources if s.domain == in_domain]
    cfg.data.val_domains = [in_domain]
    cfg.train.out_dir = str(out_dir / variant.key)
    return cfg


def _train(task_cls, cfg) -> tuple[object, dict]:
    """Train one variant, continuing from its train state if an earlier invocation saved one; returns the task and
    the validation metrics of its best validated epoch."""
    seed_everything(cfg.train.seed)
    device = select_device(cfg.train.device)
    task = task_cls(cfg, device)
    if (Path(cfg.train.out_dir) / "train_state.pt").exists():
        cfg.train.resume = cfg.train.out_dir
    result = fit(task, cfg.train, cfg.optim, device, config_to_dict(cfg))
    validated = [row for row in result.history["val"] if "val_loss" in row]  # epochs between val_every have none
    if not validated:
        raise ValueError(f"{cfg.train.out_dir}: training ran no validation")
    best = min(validated, key=lambda row: row["val_loss"])
    return task, {k: v for k, v in best.items() if k.startswith("val_")}


def _load_or_run(folder: Path, run) -> dict:
    path = folder / RESULT_NAME
    if path.exists():
        return json.loads(path.read_text())
    row = run()
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=2))
    return row


def run_track_ablation(base: TrackTrainConfig, in_domain: str, out_dir: str | Path) -> list[dict]:
    """Train the four Tab. 1f variants; one row per variant with its best in-domain validation track MSE."""
    from tramoe_ros.training.tracks import TrackTrainingTask

    out = Path(out_dir)
    rows = []
    for variant in TRACK_VARIANTS:
        cfg = track_variant_config(base, variant, in_domain, out)

        def run() -> dict:
            task, metrics = _train(TrackTrainingTask, cfg)
            model = task.model
            return {"variant": variant.key, "label": variant.label, "moe": variant.moe,
                    "out_of_domain": variant.out_of_domain, "params": model.num_parameters(),
                    "active_params": model.num_active_parameters(), "train_items": len(task.train_set),
                    "val_items": len(task.val_set), **metrics}

        rows.append(_load_or_run(Path(cfg.train.out_dir), run))
    return rows


def run_policy_ablation(base: PolicyTrainConfig, out_dir: str | Path, eval_suite: str = "",
                        eval_tasks: list[int] | None = None, init_states: list[int] | None = None,
                        workers: int = 1) -> list[dict]:
    """Train the Tab. 3 variants (mask none / drawn / adaptive) with the same frozen track model; one row each with
    the best validation action MSE and, when `init_states` are given, the LIBERO success rate of the last
    checkpoint on `eval_suite`'s `eval_tasks`."""
    from tramoe_ros.sim.evaluate import EvalSettings, evaluate
    from tramoe_ros.training.policy import PolicyTrainingTask

    out = Path(out_dir)
    rows = []
    for mode in (MaskMode.NONE, MaskMode.DRAWN, MaskMode.ADAPTIVE):
        cfg = copy.deepcopy(base)
        cfg.model.mask_mode = mode
        cfg.train.out_dir = str(out / f"mask_{mode.value}")

        def run() -> dict:
            _, metrics = _train(PolicyTrainingTask, cfg)
            row = {"variant": f"mask_{mode.value}", "label": MASK_LABELS[mode], "mask_mode": mode.value, **metrics}
            if init_states:
                settings = EvalSettings(policy=str(Path(cfg.train.out_dir) / "last.safetensors"),
                                        track_model=str(cfg.track_model), out_dir=str(Path(cfg.train.out_dir) / "eval"))
                summary = evaluate({eval_suite: eval_tasks or [0]}, init_states, settings, workers=workers,
                                   videos_per_task=0)[0]
                row.update(success_rate=summary.average, success_by_task=summary.tasks,
                           trials_per_task=len(init_states))
            return row

        rows.append(_load_or_run(Path(cfg.train.out_dir), run))
    return rows


def track_table(rows: list[dict]) -> str:
    """Markdown table of the track ablation, with each variant's MSE relative to the in-domain Tra-baseline."""
    reference = next(r for r in rows if r["variant"] == "dense_in")["val_track_mse"]
    lines = ["| variant | MoE | out-of-domain | params (active) | val track MSE (in-domain) | vs. dense in-domain |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['label']} | {'yes' if r['moe'] else 'no'} | {'yes' if r['out_of_domain'] else 'no'} | "
                     f"{r['params'] / 1e6:.2f} M ({r['active_params'] / 1e6:.2f} M) | {r['val_track_mse']:.5f} | "
                     f"{r['val_track_mse'] / reference:.3f} |")
    lines.append(f"\n'Nothing moves' baseline MSE on the same episodes: {rows[0]['val_static_mse']:.5f}.")
    return "\n".join(lines)


def policy_table(rows: list[dict]) -> str:
    with_success = all("success_rate" in r for r in rows)
    header = "| policy conditioning | val action MSE |" + (" success rate |" if with_success else "")
    lines = [header, "|---|---|" + ("---|" if with_success else "")]
    for r in rows:
        cells = f"| {r['label']} | {r['val_action_mse']:.5f} |"
        if with_success:
            cells += f" {r['success_rate'] * 100:.1f}% ({r['trials_per_task']} trials/task) |"
        lines.append(cells)
    return "\n".join(lines)


def _save(fig, path: str | Path) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_track_ablation(rows: list[dict], path: str | Path) -> Path:
    """Grouped bars: in-domain only vs + out-of-domain, dense vs MoE, with the 'nothing moves' line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    groups = [False, True]
    width = 0.36
    for i, moe in enumerate([False, True]):
        values = [next(r["val_track_mse"] for r in rows if r["moe"] == moe and r["out_of_domain"] == ood)
                  for ood in groups]
        bars = ax.bar([g + (i - 0.5) * width for g in range(len(groups))], values, width,
                      label="Tra-MoE" if moe else "Tra-baseline (dense)", color="#d95f02" if moe else "#7570b3")
        ax.bar_label(bars, fmt="%.4f", fontsize=8)
    ax.axhline(rows[0]["val_static_mse"], color="grey", linestyle="--", linewidth=1, label="nothing moves")
    ax.set_xticks(range(len(groups)), ["in-domain only", "in + out-of-domain"])
    ax.set_ylabel("validation track MSE (in-domain)")
    ax.set_title("Track model ablation (paper Tab. 1f, small)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_policy_ablation(rows: list[dict], path: str | Path) -> Path:
    """Bars per conditioning: validation action MSE, and success rate when measured."""
    with_success = all("success_rate" in r for r in rows)
    fig, axes = plt.subplots(1, 2 if with_success else 1, figsize=(8 if with_success else 4.5, 3.4), squeeze=False)
    labels = [r["label"] for r in rows]
    colors = ["#7570b3", "#1b9e77", "#d95f02"]
    bars = axes[0, 0].bar(labels, [r["val_action_mse"] for r in rows], color=colors)
    axes[0, 0].bar_label(bars, fmt="%.4f", fontsize=8)
    axes[0, 0].set_ylabel("validation action MSE")
    if with_success:
        bars = axes[0, 1].bar(labels, [100 * r["success_rate"] for r in rows], color=colors)
        axes[0, 1].bar_label(bars, fmt="%.1f", fontsize=8)
        axes[0, 1].set_ylabel("success rate (%)")
    for ax in axes[0]:
        ax.tick_params(axis="x", labelsize=8)
    fig.suptitle("Policy conditioning ablation (paper Tab. 3, small)")
    return _save(fig, path)
