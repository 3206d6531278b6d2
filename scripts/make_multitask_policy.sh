#!/usr/bin/env bash
# `make models-multitask`: one policy for all ten LIBERO-Object tasks (issue 21), grown from the shipped task-0
# policy. Needs what `make models` makes first: the clean demonstrations (data/libero/libero_object), the track model
# and the task-0 policy (models/).
#   1. the task-0 policy fine-tuned on the ten tasks' clean demonstrations,
#   2. DAgger rounds over the ten tasks: the learner acts on half of the steps, the expert labels every state, the
#      learner is fine-tuned on the aggregate (demonstrations and DAgger episodes sampled 1:1 by domain),
#   3. a closed-loop evaluation on held-out initial states 30.. of every task  -> runs/cpu/mt_eval/summary.json.
# It does not replace models/policy_adaptive.safetensors: the result is runs/cpu/mt_dagger<N>/last.safetensors.
# Each step resumes, as in scripts/make_models.sh. Times on the 2-core CPU are in models/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
ROUNDS=${DAGGER_ROUNDS:-2}
EPISODES=${DAGGER_EPISODES:-10}    # DAgger episodes per task and round
EVAL_TRIALS=${EVAL_TRIALS:-20}
CLEAN=${CLEAN:-data/libero/libero_object}  # the clean demonstrations (any folder of them)

train() {  # train CONFIG RUN_DIR [OVERRIDES...]: resumes a run interrupted (or finished) earlier
  local config=$1 run=$2
  shift 2
  if [ -f "$run/train_state.pt" ]; then set -- "$@" "train.resume=$run"; fi
  "$BIN/tramoe-train-policy" --config "$config" "train.out_dir=$run" "$@"
}
finetune=(optim.lr=3e-4 optim.warmup_epochs=1 train.epochs=20 train.val_every=5 train.save_every=1)

sources="{path: $CLEAN, domain: libero_object}"
train config/train_policy_cpu.yaml runs/cpu/mt_policy \
  train.init_weights=models/policy_adaptive.safetensors "${finetune[@]}" "data.sources=[$sources]"

learner=runs/cpu/mt_policy
for round in $(seq 1 "$ROUNDS"); do
  # Two collections side by side (one per half of the tasks), each one process on one core: two torch threads
  # each would oversubscribe a 2-core machine (3x slower per episode here).
  pids=()
  for half in 0-4 5-9; do
    OMP_NUM_THREADS=1 $BIN/tramoe-collect-libero --suite libero_object --tasks $half --episodes "$EPISODES" \
      --init-states 0-29 --policy $learner/last.safetensors --track-model models/track_moe.safetensors \
      --policy-share 0.5 --seed $((round - 1)) --out data/libero/mt_dagger${round}_tasks$half &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # a failed collection stops the script
  sources="$sources, {path: data/libero/mt_dagger${round}_tasks0-4, domain: dagger}"
  sources="$sources, {path: data/libero/mt_dagger${round}_tasks5-9, domain: dagger}"
  # Four actions per step from here on (the task-0 policy's one-action head widened): the real-time graph
  # executes a chunk by time, so a late step gets the action planned for it (docs/ros-graph.md).
  train config/train_policy_cpu.yaml runs/cpu/mt_dagger$round model.action_chunk=4 \
    train.init_weights=$learner/last.safetensors "${finetune[@]}" "data.sources=[$sources]"
  learner=runs/cpu/mt_dagger$round
done

$BIN/tramoe-eval-libero --suite libero_object --tasks 0-9 --policy $learner/last.safetensors \
  --track-model models/track_moe.safetensors --trials "$EVAL_TRIALS" --first-init-state 30 --workers 2 \
  --out runs/cpu/mt_eval
