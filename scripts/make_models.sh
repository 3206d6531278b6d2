#!/usr/bin/env bash
# `make models`: the shipped default models from nothing, with the commands a user would run by hand:
#   1. scripted-expert demonstrations of libero_object (in-domain, initial states 0-29, ground-truth tracks),
#   2. action-free libero_90 videos (out-of-domain, the tasks the scripted expert solves),
#   3. the Tra-MoE track model (config/train_tracks_cpu.yaml)  -> models/track_moe.safetensors,
#   4. the adaptive-mask policy (config/train_policy_cpu.yaml, task 0) -> models/policy_adaptive.safetensors,
#   5. its evaluation on task 0's held-out initial states 30-49    -> runs/cpu/eval/summary.json.
# Each step resumes: collection keeps the episodes already written; training continues from its train state.
# About 5 hours on a 2-core CPU; on a GPU machine the training steps take minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
# libero_90 tasks the scripted expert solves (tramoe-collect-libero --suite libero_90 --dry-run ...; see
# models/README.md): the out-of-domain videos.
OOD_TASKS=${OOD_TASKS:-2,9,10,12,13,14,15,16,17,24,25,26,27,29,30,31,34,36,37,43,46,47,49,50,51,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,74,76,79,82,84,85,87}

$BIN/tramoe-collect-libero --suite libero_object --tasks 0-9 --episodes 30 --out data/libero/libero_object
$BIN/tramoe-collect-libero --suite libero_90 --tasks "$OOD_TASKS" --episodes 3 --max-attempts 6 --no-actions \
  --out data/libero/libero_90

train() {  # train TRAINER CONFIG RUN_DIR: a run interrupted (or finished) earlier resumes from its train state
  if [ -f "$3/train_state.pt" ]; then "$BIN/$1" --config "$2" "train.resume=$3"; else "$BIN/$1" --config "$2"; fi
}

train tramoe-train-tracks config/train_tracks_cpu.yaml runs/cpu/tracks
mkdir -p models
cp runs/cpu/tracks/best.safetensors models/track_moe.safetensors

train tramoe-train-policy config/train_policy_cpu.yaml runs/cpu/policy
# The last policy, not the lowest validation loss: action MSE on held-out frames does not rank closed-loop success.
cp runs/cpu/policy/last.safetensors models/policy_adaptive.safetensors

$BIN/tramoe-eval-libero --suite libero_object --tasks 0 --policy models/policy_adaptive.safetensors \
  --track-model models/track_moe.safetensors --trials 20 --first-init-state 30 --workers 2 --out runs/cpu/eval
