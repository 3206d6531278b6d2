#!/usr/bin/env bash
# `make models-multitask`: one policy for all ten LIBERO-Object tasks (issue 21), grown from the shipped task-0
# policy. Needs what `make models` makes first: the clean demonstrations (data/libero/libero_object), the track model
# and the task-0 policy (models/).
#   1. the task-0 policy fine-tuned on the ten tasks' clean demonstrations,
#   2. DAGGER_ROUNDS DAgger rounds over the ten tasks: the learner acts on half of the steps, the expert labels every
#      state, the learner is fine-tuned on the aggregate (demonstrations and DAgger episodes sampled 1:1 by domain),
#   3. the instruction input (ATM's language tokens) added to that policy, fine-tuned on the same aggregate,
#   4. INSTRUCTED_ROUNDS more DAgger rounds with the instructed policy as the learner,
#   5. a closed-loop evaluation on held-out initial states 30.. of every task  -> runs/cpu/mt_eval/summary.json.
# Stages 1-2 ran before the policy had an instruction input; stage 3 is where it was added (models/README.md). A
# fresh recipe could take the instruction from stage 1 on: not measured here.
# It does not replace models/policy_adaptive.safetensors: the result is the last round's last.safetensors.
# Each step resumes, as in scripts/make_models.sh. Times on the 2-core CPU are in models/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
source scripts/lib.sh
ROUNDS=${DAGGER_ROUNDS:-2}
INSTRUCTED_ROUNDS=${INSTRUCTED_ROUNDS:-4}
EPISODES=${DAGGER_EPISODES:-10}    # DAgger episodes per task and round
EVAL_TRIALS=${EVAL_TRIALS:-20}
CLEAN=${CLEAN:-data/libero/libero_object}  # the clean demonstrations (any folder of them)
finetune=(optim.lr=3e-4 optim.warmup_epochs=1 train.epochs=20 train.val_every=5 train.save_every=1)
# Four actions per step after stage 1 (the task-0 policy's one-action head widened): the real-time graph executes a
# chunk by time, so a late step gets the action planned for it (docs/ros-graph.md).
chunk=(model.action_chunk=4)
instructed=("${chunk[@]}" model.instruction_dim=384)

sources="{path: $CLEAN, domain: libero_object}"
train tramoe-train-policy config/train_policy_cpu.yaml runs/cpu/mt_policy \
  train.init_weights=models/policy_adaptive.safetensors "${finetune[@]}" "data.sources=[$sources]"
learner=runs/cpu/mt_policy

dagger_round() {  # dagger_round ROUND MODEL_OVERRIDES...: collect with $learner, fine-tune it on the aggregate
  local round=$1 pids=() half pid
  shift
  # Two collections side by side (one per half of the tasks), each one process on one core: two torch threads
  # each would oversubscribe a 2-core machine (3x slower per episode here).
  for half in 0-4 5-9; do
    OMP_NUM_THREADS=1 $BIN/tramoe-collect-libero --suite libero_object --tasks $half --episodes "$EPISODES" \
      --init-states 0-29 --policy $learner/last.safetensors --track-model models/track_moe.safetensors \
      --policy-share 0.5 --seed $((round - 1)) --out data/libero/mt_dagger${round}_tasks$half &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done  # a failed collection stops the script
  sources="$sources, {path: data/libero/mt_dagger${round}_tasks0-4, domain: dagger}"
  sources="$sources, {path: data/libero/mt_dagger${round}_tasks5-9, domain: dagger}"
  train tramoe-train-policy config/train_policy_cpu.yaml runs/cpu/mt_dagger$round "$@" \
    train.init_weights=$learner/last.safetensors "${finetune[@]}" "data.sources=[$sources]"
  learner=runs/cpu/mt_dagger$round
}

for round in $(seq 1 "$ROUNDS"); do dagger_round "$round" "${chunk[@]}"; done
# The instruction: in one LIBERO-Object scene only it says which object to pick. Its projections start at zero, so
# this starts as the policy before it; 30 epochs, since the new inputs start from nothing.
train tramoe-train-policy config/train_policy_cpu.yaml runs/cpu/mt_instructed "${instructed[@]}" \
  train.init_weights=$learner/last.safetensors "${finetune[@]}" train.epochs=30 "data.sources=[$sources]"
learner=runs/cpu/mt_instructed
for round in $(seq $((ROUNDS + 1)) $((ROUNDS + INSTRUCTED_ROUNDS))); do dagger_round "$round" "${instructed[@]}"; done

$BIN/tramoe-eval-libero --suite libero_object --tasks 0-9 --policy $learner/last.safetensors \
  --track-model models/track_moe.safetensors --trials "$EVAL_TRIALS" --first-init-state 30 --workers 2 \
  --out runs/cpu/mt_eval
