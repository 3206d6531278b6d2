"""`tramoe-smoke-demo`: train tiny track and policy models on generated data and render predicted tracks."""
from __future__ import annotations

import argparse
import json

from tramoe_ros.smoke import run_smoke_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tramoe-smoke-demo", description=__doc__)
    parser.add_argument("--out", default="runs/smoke", help="output folder (data, runs, GIF, summary.json)")
    parser.add_argument("--episodes", type=int, default=24, help="generated episodes per domain")
    parser.add_argument("--track-epochs", type=int, default=None)
    parser.add_argument("--policy-epochs", type=int, default=None)
    parser.add_argument("overrides", nargs="*", help="track-config overrides, e.g. model.moe_layers=[]")
    args = parser.parse_args(argv)
    summary = run_smoke_demo(args.out, args.episodes, args.track_epochs, args.policy_epochs, args.overrides)
    print(json.dumps(summary, indent=2))
    return 0
