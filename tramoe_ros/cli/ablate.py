"""`tramoe-ablate`: the paper's ablations, small (see tramoe_ros/training/ablation.py and docs/ablation.md).

    tramoe-ablate tracks --config config/train_tracks_cpu.yaml --in-domain libero_object --out runs/ablation \\
        train.epochs=8
    tramoe-ablate policy --config config/ablation_policy_cpu.yaml --out runs/ablation \\
        --eval-suite libero_object --eval-tasks 0-9 --trials 5 --first-init-state 30 train.epochs=10

`tracks` trains dense and MoE track models on in-domain data with and without the out-of-domain sources (Tab. 1f);
`policy` trains policies with no mask, the hand-drawn mask and the adaptive mask (Tab. 3). Each writes a Markdown
table, a JSON file and a PNG plot into --out; finished variants are not trained again.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tramoe_ros.cli.arguments import parse_index_list
from tramoe_ros.config import ConfigError, PolicyTrainConfig, TrackTrainConfig, load_config
from tramoe_ros.data.episode import EpisodeFormatError
from tramoe_ros.models.checkpoint import CheckpointError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-ablate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="study", required=True)
    tracks = sub.add_parser("tracks", help="dense vs MoE x in-domain vs + out-of-domain (paper Tab. 1f)")
    tracks.add_argument("--config", default="config/train_tracks_cpu.yaml", help="base track training config")
    tracks.add_argument("--in-domain", required=True, help="domain tag of the in-domain source (validation data)")
    policy = sub.add_parser("policy", help="no mask vs hand-drawn vs adaptive mask (paper Tab. 3)")
    policy.add_argument("--config", default="config/ablation_policy_cpu.yaml", help="base policy training config")
    policy.add_argument("--eval-suite", default="libero_object", help="LIBERO suite for the success rate")
    policy.add_argument("--eval-tasks", type=parse_index_list, default=[0], help="its tasks, e.g. 0-9 (default 0)")
    policy.add_argument("--trials", type=int, default=0, help="episodes per task; 0 = no success rate (default)")
    policy.add_argument("--first-init-state", type=int, default=30, help="first initial state (default 30)")
    policy.add_argument("--workers", type=int, default=1, help="evaluation processes")
    for p in (tracks, policy):
        p.add_argument("--out", default="runs/ablation", help="output folder (default runs/ablation)")
        p.add_argument("overrides", nargs="*", metavar="key.sub=value",
                       help="config overrides for every variant, e.g. train.epochs=8")
    args = parser.parse_args(argv)

    from tramoe_ros.training import ablation

    out = Path(args.out)
    try:
        if args.study == "tracks":
            cfg = load_config(TrackTrainConfig, args.config, args.overrides)
            rows = ablation.run_track_ablation(cfg, args.in_domain, out / "tracks")
            table, plot = ablation.track_table(rows), ablation.plot_track_ablation(rows, out / "tracks.png")
        else:
            cfg = load_config(PolicyTrainConfig, args.config, args.overrides)
            states = list(range(args.first_init_state, args.first_init_state + args.trials))
            rows = ablation.run_policy_ablation(cfg, out / "policy", args.eval_suite, args.eval_tasks, states,
                                                args.workers)
            table, plot = ablation.policy_table(rows), ablation.plot_policy_ablation(rows, out / "policy.png")
    except (ConfigError, CheckpointError, EpisodeFormatError, FileNotFoundError, ValueError) as e:
        print(f"tramoe-ablate: error: {e}", file=sys.stderr)
        return 2
    (out / f"{args.study}.json").write_text(json.dumps(rows, indent=2))
    (out / f"{args.study}.md").write_text(table + "\n")
    print(table)
    print(f"plot: {plot}\ntable: {out / f'{args.study}.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
